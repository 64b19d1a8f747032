package main

import (
	"strings"
	"testing"
)

// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestPoolAutoscaleRejectsABadPolicyBeforeContactingACluster(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"min without max":         {[]string{"pool", "autoscale", "--kubeconfig", "/nonexistent", "--min", "2"}, "need --max"},
		"max below min":           {[]string{"pool", "autoscale", "--kubeconfig", "/nonexistent", "--min", "3", "--max", "2"}, "max 2: must be at least 1 and at least min (3)"},
		"negative spare":          {[]string{"pool", "autoscale", "--kubeconfig", "/nonexistent", "--max", "2", "--spare", "-1"}, "spare -1"},
		"an argument":             {[]string{"pool", "autoscale", "default"}, "takes no arguments"},
		"unknown subcommand flag": {[]string{"pool", "autoscale", "--replicas", "3"}, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCLI(t, "", c.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q, want it to say %q", stderr, c.want)
			}
		})
	}
}
