package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/bench"
)

// benchConfigFor is what `gkexec bench ARGS` would run, without running it.
func benchConfigFor(t *testing.T, args ...string) (bench.SuiteConfig, error) {
	t.Helper()
	cmd := benchCommand()
	var cfg bench.SuiteConfig
	var cfgErr error
	cmd.Action = func(c *cli.Context) error {
		opts, err := optionsFromFlags(c, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		cfg, cfgErr = benchConfig(c, opts)
		return nil
	}
	app := &cli.App{Name: "gkexec", Commands: []*cli.Command{cmd}, Writer: io.Discard, ErrWriter: io.Discard}
	if err := app.Run(append([]string{"gkexec", "bench"}, args...)); err != nil {
		t.Fatal(err)
	}
	return cfg, cfgErr
}

// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestBenchScenarioSetsTheArrivals(t *testing.T) {
	cases := []struct {
		args        []string
		n, c        int
		pace        time.Duration
		code        string
		firstOutput bool
	}{
		{nil, 20, 1, 0, "print(1)", false}, // no scenario: the flags as they always were
		{[]string{"-N", "40", "-C", "20", "--pace", "1s"}, 40, 20, time.Second, "print(1)", false},
		{[]string{"--scenario", "sequential"}, 100, 1, 0, bench.FirstOutputCode, true},
		{[]string{"--scenario", "sequential", "--pace", "3s", "-N", "30"}, 30, 1, 3 * time.Second, bench.FirstOutputCode, true},
		{[]string{"--scenario", "staggered"}, 100, 100, 200 * time.Millisecond, bench.FirstOutputCode, true},
		{[]string{"--scenario", "burst", "-N", "10", "-c", "print(1)"}, 10, 10, 0, "print(1)", true},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			cfg, err := benchConfigFor(t, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Executions != c.n || cfg.Concurrency != c.c || cfg.Pace != c.pace || cfg.Code != c.code || cfg.FirstOutput != c.firstOutput {
				t.Errorf("N %d, C %d, pace %s, code %q, first output %v; want %d, %d, %s, %q, %v",
					cfg.Executions, cfg.Concurrency, cfg.Pace, cfg.Code, cfg.FirstOutput, c.n, c.c, c.pace, c.code, c.firstOutput)
			}
			if !cfg.Floor || len(cfg.Modes) != 1 || cfg.Modes[0] != bench.ModeCold {
				t.Errorf("floor %v, modes %v; want the floor and cold by default", cfg.Floor, cfg.Modes)
			}
		})
	}
	cfg, err := benchConfigFor(t, "--modes", "cold,warm-ready,warm-claim,session", "--floor=false")
	if err != nil || len(cfg.Modes) != 4 || cfg.Modes[3] != bench.ModeSession || cfg.Floor {
		t.Errorf("modes %v, floor %v, err %v; want the four modes, no floor", cfg.Modes, cfg.Floor, err)
	}
}

func TestBenchRefusesContradictionsBeforeContactingACluster(t *testing.T) {
	cases := map[string][]string{
		"concurrency with a scenario": {"--scenario", "burst", "-C", "5"},
		"a paced burst":               {"--scenario", "burst", "--pace", "1s"},
		"an unknown scenario":         {"--scenario", "ramp"},
		"an unknown mode":             {"--modes", "cold,hot"},
		"a burst run without a pool":  {"--burst-run"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCLI(t, "", append([]string{"bench", "--kubeconfig", "/nonexistent"}, args...)...)
			if code != exitUsage || !strings.Contains(stderr, "gkexec:") {
				t.Errorf("exit %d, want %d with a message; stderr: %s", code, exitUsage, stderr)
			}
		})
	}
}
