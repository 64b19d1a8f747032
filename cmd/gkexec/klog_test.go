package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"k8s.io/klog/v2"
)

// client-go logs through klog (a reflector's "event bookmark expired", say). Under every
// subcommand that goes to the command's own logger: nowhere without -v, stderr with it; it must
// never land in the code's stderr on its own.
// Not parallel: klog's logger, like urfave/cli's help flags, is global.
func TestClientGoLogsFollowVerbose(t *testing.T) {
	const line = "Warning: event bookmark expired"
	// klog writes to os.Stderr itself when nobody routed it; catch that too.
	processStderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = processStderr
	t.Cleanup(func() { os.Stderr = saved })
	for _, name := range []string{"run", "gc", "doctor", "serve", "bench"} {
		for _, verbose := range []bool{false, true} {
			var stderr bytes.Buffer
			app := newApp(strings.NewReader(""), new(bytes.Buffer), &stderr)
			var found bool
			for _, cmd := range app.Commands {
				if cmd.Name == name {
					found = true
					cmd.Action = func(*cli.Context) error { // what client-go does while the command runs
						klog.InfoS(line, "reflector", "k8s.io/client-go/tools/cache/reflector.go:1261")
						klog.Warning(line)
						klog.Flush()
						return nil
					}
				}
			}
			if !found {
				t.Fatalf("no %s command", name)
			}
			args := []string{"gkexec", name}
			if verbose {
				args = append(args, "-v")
			}
			if code := runApp(context.Background(), app, args); code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
			}
			if direct, _ := os.ReadFile(processStderr.Name()); bytes.Contains(direct, []byte(line)) {
				t.Fatalf("gkexec %s (verbose %v): klog wrote to the process's stderr directly:\n%s", name, verbose, direct)
			}
			got := strings.Count(stderr.String(), line)
			if !verbose && got != 0 {
				t.Errorf("gkexec %s: client-go's log reached stderr without -v:\n%s", name, stderr.String())
			}
			if verbose && got != 2 {
				t.Errorf("gkexec %s -v: stderr has %d of client-go's 2 lines, want both:\n%s", name, got, stderr.String())
			}
		}
	}
}
