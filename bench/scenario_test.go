package bench

import (
	"errors"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner"
)

func TestScenariosArriveAsThePublicBenchmarksDo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		scenario  Scenario
		n         int
		pace      time.Duration
		wantC     int
		wantPace  time.Duration
		wantWords string
	}{
		{Sequential, 100, 0, 1, 0, "100, one at a time"},
		{Sequential, 30, 3 * time.Second, 1, 3 * time.Second, "30, one at a time, one every 3s"},
		{Staggered, 100, 0, 100, DefaultStagger, "100, one every 200ms"},
		{Staggered, 40, time.Second, 40, time.Second, "40, one every 1s"},
		{Burst, 100, 0, 100, 0, "100 at once"},
	}
	for _, c := range cases {
		t.Run(string(c.scenario), func(t *testing.T) {
			t.Parallel()
			conc, pace, err := c.scenario.Arrivals(c.n, c.pace)
			if err != nil {
				t.Fatal(err)
			}
			if conc != c.wantC || pace != c.wantPace {
				t.Errorf("Arrivals(%d, %s) = %d at once, one every %s; want %d, %s", c.n, c.pace, conc, pace, c.wantC, c.wantPace)
			}
			if got := c.scenario.Describe(c.n, pace); got != c.wantWords {
				t.Errorf("Describe = %q, want %q", got, c.wantWords)
			}
		})
	}
}

func TestScenarioRefusesWhatContradictsIt(t *testing.T) {
	t.Parallel()
	cases := map[string]func() error{
		"a paced burst":        func() error { _, _, err := Burst.Arrivals(10, time.Second); return err },
		"no executions":        func() error { _, _, err := Sequential.Arrivals(0, 0); return err },
		"a negative pace":      func() error { _, _, err := Staggered.Arrivals(10, -time.Second); return err },
		"an unknown scenario":  func() error { _, err := ParseScenario("ramp"); return err },
		"an unknown arrival":   func() error { _, _, err := Scenario("ramp").Arrivals(10, 0); return err },
		"an unknown mode name": func() error { _, err := ParseMode("hot"); return err },
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, runner.ErrInvalidOptions) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions", name, err)
		}
	}
	for _, s := range Scenarios {
		if got, err := ParseScenario(string(s)); err != nil || got != s {
			t.Errorf("ParseScenario(%q) = %q, %v", s, got, err)
		}
	}
}

func TestModesTakeTheirSandboxesWhereTheySay(t *testing.T) {
	t.Parallel()
	base := runner.Options{WarmPoolReady: 3}
	if o := ModeCold.Options(base); !o.NoWarmPool {
		t.Error("cold must not use the warm pool")
	}
	if o := ModeWarmReady.Options(base); o.NoWarmPool || o.WarmPoolReady != 1 {
		t.Errorf("warm-ready: NoWarmPool %v, WarmPoolReady %d; want the pool, one held ready", o.NoWarmPool, o.WarmPoolReady)
	}
	for _, m := range []Mode{ModeWarmClaim, ModeSession} {
		if o := m.Options(base); o.NoWarmPool || o.WarmPoolReady != -1 {
			t.Errorf("%s: NoWarmPool %v, WarmPoolReady %d; want the pool, nothing held ready", m, o.NoWarmPool, o.WarmPoolReady)
		}
	}
}
