package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// A session the REPL did not open, or one it keeps, stays open at exit.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestREPLLeavesOpenWhatItDidNotOpenOrKeeps(t *testing.T) {
	for _, args := range [][]string{{"repl", "theirs"}, {"repl", "--keep"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			s := &fakeSession{id: "theirs"}
			fs := &fakeSessions{s: s}
			code, _, stderr := onFake(t, fs, "print(1)\n", args...)
			if _, closed, detached := s.state(); code != 0 || closed != 0 || detached != 1 {
				t.Errorf("exit %d closed %d detached %d, want 0 and the session left open", code, closed, detached)
			}
			if !strings.Contains(stderr, "session theirs stays open") {
				t.Errorf("stderr %q does not say the session stays open", stderr)
			}
			if resumed := len(fs.found) == 1; resumed != (args[1] == "theirs") {
				t.Errorf("resumed %v opened %v", fs.found, fs.opened)
			}
		})
	}
}

// The end of the session ends the REPL with its exit code; there is nothing left to close.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestREPLEndsWithTheSession(t *testing.T) {
	s := &fakeSession{id: "r1", run: func(_ context.Context, req runner.Request) (runner.Result, error) {
		return runner.Result{ExitCode: 137, OOMKilled: true, Timings: runner.Timings{Started: time.Now()}},
			fmt.Errorf("%w: session r1: the interpreter was killed", runner.ErrSessionEnded)
	}}
	code, _, stderr := onFake(t, &fakeSessions{s: s}, "x = bytearray(10**10)\nprint('never')\n", "repl")
	codes, closed, _ := s.state()
	if code != exitSessionEnded || len(codes) != 1 || closed != 0 {
		t.Errorf("exit %d ran %q closed %d; want %d after the first, nothing closed", code, codes, closed, exitSessionEnded)
	}
	if !strings.Contains(stderr, "out of memory") || !strings.Contains(stderr, "gkexec: session ended: session r1") {
		t.Errorf("stderr %q: want the OOM note and the session's end", stderr)
	}
}
