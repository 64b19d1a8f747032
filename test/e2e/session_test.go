//go:build integration

package e2e

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gkexec/gkexec/runner"
)

// testSessions is stage 10, on the namespace with the warm pool (whose Role grants what sessions
// need: pods patch/delete and pods/attach): sessions as the agent, warm and cold, state kept
// within one and never across two, timeouts and exceptions survived, a second runner resuming,
// streaming as the code writes, and nothing left behind.
func testSessions(t *testing.T, tg *target) {
	tg.waitPoolReady(t, warmPoolReplicas)
	opts := tg.options()
	opts.WarmPoolReady = -1
	cold := opts
	cold.WarmPool = "no-such-pool" // nothing matches: a Job of its own

	tg.step(t, "state_and_isolation", func(t *testing.T) {
		r := tg.newRunner(t, opts)
		rc := tg.newRunner(t, cold)
		ctx := context.Background()
		a := openSession(t, r, runner.SessionOptions{ID: executionID("sa")})
		b := openSession(t, rc, runner.SessionOptions{ID: executionID("sb")})
		if a.Sandbox() != runner.SandboxWarm || b.Sandbox() != runner.SandboxCold {
			t.Errorf("sandboxes %s and %s, want warm (pool) and cold (no matching pool)", a.Sandbox(), b.Sandbox())
		}
		sessionExec(t, a, "x = 1\nopen('state.txt', 'w').write('a')\n", 0, "")
		sessionExec(t, b, "x = 2\n", 0, "")
		sessionExec(t, a, "print(x, open('state.txt').read())\n", 0, "1 a\n")
		sessionExec(t, b, "import os\nprint(x, os.path.exists('state.txt'))\n", 0, "2 False\n")
		// An exception is a result; the session goes on.
		res := sessionExec(t, a, "raise ValueError('boom')\n", 1, "")
		if !strings.Contains(string(res.Stderr), "ValueError: boom") {
			t.Errorf("stderr %q", res.Stderr)
		}
		sessionExec(t, a, "print(x + 1)\n", 0, "2\n")
		// A runaway is interrupted at its timeout and the session is still usable.
		res, err := a.Execute(ctx, runner.Request{Code: "x = 10\nwhile True:\n    pass\n", Timeout: 2 * time.Second})
		if !errors.Is(err, runner.ErrTimeout) || errors.Is(err, runner.ErrSessionEnded) || !res.TimedOut {
			t.Errorf("runaway: err %v timed out %v; want ErrTimeout with the session kept", err, res.TimedOut)
		}
		sessionExec(t, a, "print(x)\n", 0, "10\n")
		for _, s := range []*runner.Session{a, b} {
			if err := s.Close(); err != nil {
				t.Errorf("close %s: %v", s.ID(), err)
			}
			if _, err := s.Execute(ctx, runner.Request{Code: "print(1)"}); !errors.Is(err, runner.ErrSessionEnded) {
				t.Errorf("after close: %v, want ErrSessionEnded", err)
			}
		}
	})

	tg.step(t, "resume_from_a_second_runner", func(t *testing.T) {
		first := tg.newRunner(t, opts)
		s := openSession(t, first, runner.SessionOptions{ID: executionID("sr")})
		sessionExec(t, s, "import math\nv = math.pi\n", 0, "")
		_ = first.Close() // detaches; the session stays
		second := tg.newRunner(t, opts)
		again, err := second.Session(context.Background(), s.ID())
		if err != nil {
			t.Fatalf("resume: %v", err)
		}
		sessionExec(t, again, "print(round(v, 2))\n", 0, "3.14\n")
		if err := second.CloseSession(context.Background(), s.ID()); err != nil {
			t.Errorf("close: %v", err)
		}
	})

	tg.step(t, "uninterruptible_code_ends_the_session", func(t *testing.T) {
		r := tg.newRunner(t, opts)
		s := openSession(t, r, runner.SessionOptions{ID: executionID("su")})
		_, err := s.Execute(context.Background(), runner.Request{Timeout: time.Second,
			Code: "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        pass\n"})
		if !errors.Is(err, runner.ErrSessionEnded) {
			t.Errorf("err %v, want ErrSessionEnded (the interpreter could not be interrupted)", err)
		}
	})

	tg.step(t, "idle_timeout", func(t *testing.T) {
		r := tg.newRunner(t, opts)
		s := openSession(t, r, runner.SessionOptions{ID: executionID("si"), IdleTimeout: 3 * time.Second})
		sessionExec(t, s, "print(1)\n", 0, "1\n")
		tg.waitSessionGone(t, s.ID())
		if _, err := s.Execute(context.Background(), runner.Request{Code: "print(1)"}); !errors.Is(err, runner.ErrSessionEnded) {
			t.Errorf("after the idle timeout: %v, want ErrSessionEnded", err)
		}
	})

	tg.step(t, "max_lifetime", func(t *testing.T) {
		r := tg.newRunner(t, opts)
		s := openSession(t, r, runner.SessionOptions{ID: executionID("sl"), MaxLifetime: 8 * time.Second})
		// Busy all along: the lifetime ends it anyway.
		for i := 0; i < 3; i++ {
			sessionExec(t, s, "print(1)\n", 0, "1\n")
		}
		tg.waitSessionGone(t, s.ID())
		if _, err := s.Execute(context.Background(), runner.Request{Code: "print(1)"}); !errors.Is(err, runner.ErrSessionEnded) {
			t.Errorf("after the lifetime: %v, want ErrSessionEnded", err)
		}
	})

	tg.step(t, "output_flood_against_the_caps", func(t *testing.T) {
		capped := opts
		capped.MaxOutputBytes = 64 << 10
		r := tg.newRunner(t, capped)
		s := openSession(t, r, runner.SessionOptions{ID: executionID("sf")})
		var streamed [3]int
		res, err := s.Execute(context.Background(), runner.Request{
			Code:   "import sys\nfor i in range(2000):\n    print('o' * 100)\n    print('e' * 100, file=sys.stderr)\n",
			Output: func(st runner.Stream, p []byte) { streamed[st] += len(p) }})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Stdout) != 64<<10 || len(res.Stderr) != 64<<10 || !res.StdoutTruncated || !res.StderrTruncated {
			t.Errorf("stdout %d stderr %d bytes truncated %v/%v, want both cut at 64 KiB", len(res.Stdout), len(res.Stderr), res.StdoutTruncated, res.StderrTruncated)
		}
		if streamed[runner.Stdout] != len(res.Stdout) || streamed[runner.Stderr] != len(res.Stderr) {
			t.Errorf("streamed %v bytes, the result has %d/%d: the caps apply to the stream too", streamed, len(res.Stdout), len(res.Stderr))
		}
		// The caps are per execution: the next one has its own.
		sessionExec(t, s, "print('after')\n", 0, "after\n")
	})

	tg.step(t, "streams_as_the_code_writes", func(t *testing.T) {
		r := tg.newRunner(t, opts)
		s := openSession(t, r, runner.SessionOptions{ID: executionID("ss")})
		defer s.Close()
		var mu sync.Mutex
		var first time.Time
		var out, errs []byte
		start := time.Now()
		res, err := s.Execute(context.Background(), runner.Request{
			Code: "import sys, time\nsys.stdout.write('a')\nsys.stdout.flush()\nsys.stderr.buffer.write(bytes(range(256)))\nsys.stderr.flush()\ntime.sleep(3)\nprint('b' * 100000)\n",
			Output: func(st runner.Stream, p []byte) {
				mu.Lock()
				defer mu.Unlock()
				if first.IsZero() {
					first = time.Now()
				}
				if st == runner.Stdout {
					out = append(out, p...)
				} else {
					errs = append(errs, p...)
				}
			}})
		end := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != string(res.Stdout) || string(errs) != string(res.Stderr) || len(errs) != 256 {
			t.Errorf("streamed %d/%d bytes, result %d/%d: the chunks must add up to the result", len(out), len(errs), len(res.Stdout), len(res.Stderr))
		}
		if first.IsZero() || end.Sub(first) < 2*time.Second {
			t.Errorf("first chunk %v after the start, execution %v: it arrived at the end, not as written", first.Sub(start), end.Sub(start))
		}
	})
}

func openSession(t *testing.T, r *runner.Runner, so runner.SessionOptions) *runner.Session {
	t.Helper()
	s, err := r.OpenSession(context.Background(), so)
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func sessionExec(t *testing.T, s *runner.Session, code string, exit int, stdout string) runner.Result {
	t.Helper()
	res, err := s.Execute(context.Background(), runner.Request{Code: code})
	if err != nil {
		t.Fatalf("Execute %q: %v", code, err)
	}
	if res.ExitCode != exit || (stdout != "" && string(res.Stdout) != stdout) || res.Session != s.ID() {
		t.Errorf("Execute %q: exit %d stdout %q stderr %q session %q; want exit %d stdout %q", code, res.ExitCode, res.Stdout, res.Stderr, res.Session, exit, stdout)
	}
	return res
}

// waitSessionGone waits until no Pod carries the session's label.
func (tg *target) waitSessionGone(t *testing.T, id string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, leftoverDeadline, true, func(ctx context.Context) (bool, error) {
		pods, err := tg.admin.CoreV1().Pods(tg.namespace).List(ctx, metav1.ListOptions{LabelSelector: runner.LabelSession + "=" + id})
		return err == nil && len(pods.Items) == 0, nil
	})
	if err != nil {
		t.Errorf("session %s: its pod is still there after %s", id, leftoverDeadline)
	}
}
