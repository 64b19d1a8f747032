package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// exec resumes the session, streams the code's output, exits with its status and detaches.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestSessionExecStreamsAndExitsWithTheCodesStatus(t *testing.T) {
	s := &fakeSession{id: "s1", run: func(_ context.Context, req runner.Request) (runner.Result, error) {
		emit(req, runner.Stdout, []byte("one\n"))
		emit(req, runner.Stderr, []byte("Traceback: boom"))
		return runner.Result{Session: "s1", ExitCode: 1, Stdout: []byte("one\n"), Stderr: []byte("Traceback: boom"), StdoutTruncated: true,
			Timings: runner.Timings{Started: time.Now()}}, nil
	}}
	fs := &fakeSessions{s: s}
	input := t.TempDir() + "/data.csv"
	if err := os.WriteFile(input, []byte("a,b"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := onFake(t, fs, "print(x)\n", "exec", "-i", input, "s1")
	if code != 1 || stdout != "one\n" {
		t.Errorf("exit %d stdout %q, want the code's 1 and its output", code, stdout)
	}
	if stderr != "Traceback: boom\ngkexec: stdout truncated at the size cap\n" {
		t.Errorf("stderr %q, want the code's stderr, then gkexec's note on a line of its own", stderr)
	}
	codes, closed, detached := s.state()
	if !slices.Equal(fs.found, []string{"s1"}) || !slices.Equal(codes, []string{"print(x)\n"}) || string(s.reqs[0].Files["data.csv"]) != "a,b" {
		t.Errorf("resumed %v ran %q files %v", fs.found, codes, s.reqs[0].Files)
	}
	if closed != 0 || detached != 1 || fs.closed != 1 {
		t.Errorf("session closed %d detached %d, runner closed %d; want detached, left open, runner closed", closed, detached, fs.closed)
	}

	code, stdout, _ = onFake(t, fs, "", "exec", "--json", "-c", "print(x)", "s1")
	var res runner.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 1 || res.Session != "s1" || string(res.Stdout) != "one\n" {
		t.Errorf("--json: exit %d result %+v (%v), want one Result document of session s1", code, res, err)
	}
}

// The session's own failures have their exit codes; output already streamed stays, once.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestSessionExecFailures(t *testing.T) {
	started := runner.Timings{Started: time.Now()}
	for _, tc := range []struct {
		name   string
		res    runner.Result
		err    error
		code   int
		stdout string
	}{
		{"busy", runner.Result{}, fmt.Errorf("%w: session s1 is running execution e2 for host/12", runner.ErrSessionBusy), exitSessionBusy, ""},
		{"ended before it ran", runner.Result{}, fmt.Errorf("%w: session s1: idle timeout reached", runner.ErrSessionEnded), exitSessionEnded, ""},
		{"ended by the code", runner.Result{Stdout: []byte("bye"), ExitCode: 3, Timings: started},
			fmt.Errorf("%w: session s1: the interpreter exited", runner.ErrSessionEnded), exitSessionEnded, "bye"},
		{"interrupted at the timeout", runner.Result{Stdout: []byte("so far\n"), TimedOut: true, ExitCode: 137, Timings: started},
			fmt.Errorf("%w: the code ran past 1s", runner.ErrTimeout), exitTimeout, "so far\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &fakeSession{id: "s1", run: func(_ context.Context, req runner.Request) (runner.Result, error) {
				if len(tc.res.Stdout) > 0 {
					req.Output(runner.Stdout, tc.res.Stdout)
				}
				return tc.res, tc.err
			}}
			code, stdout, stderr := onFake(t, &fakeSessions{s: s}, "", "exec", "-c", "x", "s1")
			if code != tc.code || stdout != tc.stdout || !strings.Contains(stderr, "gkexec: "+tc.err.Error()) {
				t.Errorf("exit %d stdout %q stderr %q, want %d, %q and the error", code, stdout, stderr, tc.code, tc.stdout)
			}
			if tc.res.Stdout != nil && tc.stdout[len(tc.stdout)-1] != '\n' && !strings.HasPrefix(stderr, "\ngkexec: ") {
				t.Errorf("stderr %q: the error does not start on a line of its own", stderr)
			}
		})
	}
	// Not found: the session is never run in.
	fs := &fakeSessions{s: &fakeSession{id: "s1"}, findErr: fmt.Errorf("%w: session s1", runner.ErrSessionNotFound)}
	if code, _, _ := onFake(t, fs, "", "exec", "-c", "x", "s1"); code != exitSessionNotFound {
		t.Errorf("not found: exit %d, want %d", code, exitSessionNotFound)
	}
	if codes, _, _ := fs.s.state(); len(codes) != 0 {
		t.Errorf("ran %q in a session that was not found", codes)
	}
}
