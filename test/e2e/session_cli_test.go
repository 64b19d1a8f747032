//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Exit codes of `gkexec session` (cmd/gkexec/exitcodes.go).
const (
	exitSessionNotFound = 121
	exitSessionBusy     = 122
	exitSessionEnded    = 123
	exitInterrupted     = 130
)

// testSessionCLI drives `gkexec session` as the agent, one process per command, on a namespace
// whose Role grants what sessions need (pods/attach): state kept from one process to the next,
// the session's own exit codes, a REPL through a pipe and interrupted with SIGINT, and every
// session closed (each step checks that nothing is left).
func testSessionCLI(t *testing.T, tg *target) {
	const timeout = 5 * time.Minute
	start := "--start-timeout=" + max(tg.startTimeout, 3*time.Minute).String()

	tg.step(t, "state_across_processes", func(t *testing.T) {
		res := tg.gkexec(t, timeout, nil, "session open", "--json", start, "--id", executionID("sc"))
		var doc struct {
			ID      string `json:"session_id"`
			Sandbox string `json:"sandbox"`
			Pod     string `json:"pod_name"`
		}
		if err := json.Unmarshal(res.stdout, &doc); res.exitCode != 0 || err != nil {
			t.Fatalf("open: %s (%v)", res, err)
		}
		id := doc.ID
		tg.closeSessionAtEnd(t, id)
		if !strings.HasPrefix(id, "e2e-sc-") || (doc.Sandbox != "warm" && doc.Sandbox != "cold") || doc.Pod == "" {
			t.Errorf("open --json: %+v", doc)
		}
		wantCLI(t, tg.gkexec(t, timeout, nil, "session exec", "-c", "x = 1\nopen('state.txt', 'w').write('kept')", id), 0, "", "")
		// Another process: what the first defined is there.
		wantCLI(t, tg.gkexec(t, timeout, nil, "session exec", "-c", "print(x, open('state.txt').read())", id), 0, "1 kept\n", "")
		wantCLI(t, tg.gkexec(t, timeout, []byte("x += 1\nprint(x)\n"), "session exec", id, "-"), 0, "2\n", "")
		// The code's exit status is gkexec's, and neither an exit nor an exception ends the session.
		wantCLI(t, tg.gkexec(t, timeout, nil, "session exec", "-c", "import sys; sys.exit(3)", id), 3, "", "")
		res = tg.gkexec(t, timeout, nil, "session exec", "-c", "raise ValueError('boom')", id)
		if res.exitCode != 1 || !strings.Contains(string(res.stderr), "ValueError: boom") {
			t.Errorf("an exception: %s; want exit 1 and the traceback", res)
		}
		wantCLI(t, tg.gkexec(t, timeout, nil, "session exec", "-c", "print(x)", id), 0, "2\n", "")

		wantCLI(t, tg.gkexec(t, timeout, nil, "session close", id), 0, "", "")
		for _, args := range [][]string{{"exec", "-c", "print(x)", id}, {"close", id}} {
			if res := tg.gkexec(t, timeout, nil, "session "+args[0], args[1:]...); res.exitCode != exitSessionNotFound || !strings.Contains(string(res.stderr), "session not found") {
				t.Errorf("%s after close: %s; want exit %d", args[0], res, exitSessionNotFound)
			}
		}
	})

	tg.step(t, "busy_while_another_process_runs", func(t *testing.T) {
		id := tg.openSessionCLI(t, timeout, start, executionID("sb"))
		wantCLI(t, tg.gkexec(t, timeout, nil, "session exec", "-c", "n = 7", id), 0, "", "")
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd, out, stderr := tg.gkexecCommand(ctx, nil, "session exec", "-c", "import time\nprint('running', flush=True)\nwhile True:\n    time.sleep(0.1)\n", id)
		seen := newLineWatch(out)
		cmd.Stdout = seen
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		seen.wait(t, "running\n", timeout)
		res := tg.gkexec(t, timeout, nil, "session exec", "-c", "print(n)", id)
		if res.exitCode != exitSessionBusy || !strings.Contains(string(res.stderr), "session busy") || len(res.stdout) != 0 {
			t.Errorf("a second process while the first runs: %s; want exit %d and nothing run", res, exitSessionBusy)
		}
		// Ctrl-C on the first interrupts its code; the session is free again, its state intact.
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if code := exitCode(t, cmd.Wait()); code != exitInterrupted {
			t.Errorf("the interrupted process: exit %d, want %d; stderr %s", code, exitInterrupted, stderr)
		}
		wantCLI(t, tg.gkexec(t, timeout, nil, "session exec", "-c", "print(n)", id), 0, "7\n", "")
		wantCLI(t, tg.gkexec(t, timeout, nil, "session close", id), 0, "", "")
	})

	tg.step(t, "code_that_ends_the_session", func(t *testing.T) {
		id := tg.openSessionCLI(t, timeout, start, executionID("se"))
		res := tg.gkexec(t, timeout, nil, "session exec", "-c", "print('last words', flush=True)\nimport os\nos._exit(3)", id)
		if res.exitCode != exitSessionEnded || string(res.stdout) != "last words\n" || !strings.Contains(string(res.stderr), "session ended") {
			t.Errorf("os._exit in a session: %s; want its output and exit %d", res, exitSessionEnded)
		}
		if res := tg.gkexec(t, timeout, nil, "session exec", "-c", "print(1)", id); res.exitCode != exitSessionNotFound {
			t.Errorf("after its end: %s; want exit %d", res, exitSessionNotFound)
		}
	})

	tg.step(t, "repl_through_a_pipe", func(t *testing.T) {
		in := "x = 40\nfor i in range(3):\n    x += i\n\nprint(x)\ndef f():\n    return x * 2\n\nprint(f())\n"
		res := tg.gkexec(t, timeout, []byte(in), "session repl", start)
		if res.exitCode != 0 || string(res.stdout) != "43\n86\n" {
			t.Fatalf("repl: %s; want 43 and 86", res)
		}
		// It closed the session it opened.
		id := bannerSessionID(t, res.stderr)
		if res := tg.gkexec(t, timeout, nil, "session exec", "-c", "print(x)", id); res.exitCode != exitSessionNotFound {
			t.Errorf("the repl's session after it ended: %s; want exit %d", res, exitSessionNotFound)
		}

		// --keep leaves it open, for another process; a repl on an ID resumes it and leaves it open.
		res = tg.gkexec(t, timeout, []byte("y = 'kept'\n"), "session repl", "--keep", start)
		id = bannerSessionID(t, res.stderr)
		tg.closeSessionAtEnd(t, id)
		if res.exitCode != 0 || !strings.Contains(string(res.stderr), "stays open") {
			t.Fatalf("repl --keep: %s", res)
		}
		if res := tg.gkexec(t, timeout, []byte("print(y)\n"), "session repl", id); res.exitCode != 0 || string(res.stdout) != "kept\n" ||
			!strings.Contains(string(res.stderr), "session "+id+" resumed") {
			t.Errorf("repl %s: %s; want the session resumed and y printed", id, res)
		}
		wantCLI(t, tg.gkexec(t, timeout, nil, "session exec", "-c", "print(y)", id), 0, "kept\n", "")
		wantCLI(t, tg.gkexec(t, timeout, nil, "session close", id), 0, "", "")
	})

	tg.step(t, "repl_ctrl_c_interrupts_the_code", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd, out, stderr := tg.gkexecCommand(ctx, nil, "session repl", start)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		seen := newLineWatch(out)
		cmd.Stdout = seen
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(stdin, "import time\nz = 5\nprint('spinning', flush=True); time.sleep(600)\n")
		seen.wait(t, "spinning\n", timeout)
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(stdin, "print('after', z)\n")
		_ = stdin.Close()
		if code := exitCode(t, cmd.Wait()); code != 0 || seen.String() != "spinning\nafter 5\n" {
			t.Errorf("repl: exit %d stdout %q stderr %s; want 0, and the code after the interrupted one run in the same session", code, seen.String(), stderr)
		}
		if !strings.Contains(stderr.String(), "KeyboardInterrupt") {
			t.Errorf("stderr %s does not report the interruption", stderr)
		}
	})
}

// openSessionCLI opens a session with `gkexec session open` and closes it when the test ends.
func (tg *target) openSessionCLI(t *testing.T, timeout time.Duration, start, id string) string {
	t.Helper()
	res := tg.gkexec(t, timeout, nil, "session open", start, "--id", id)
	if res.exitCode != 0 || string(res.stdout) != id+"\n" {
		t.Fatalf("open: %s; want the ID on stdout", res)
	}
	tg.closeSessionAtEnd(t, id)
	return id
}

// closeSessionAtEnd closes the session when the test ends, if a failure left it open.
func (tg *target) closeSessionAtEnd(t *testing.T, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd, _, _ := tg.gkexecCommand(ctx, nil, "session close", id)
		_ = cmd.Run() // 121 when the test closed it already
	})
}

// bannerSessionID is the session ID in the REPL's banner on stderr.
func bannerSessionID(t *testing.T, stderr []byte) string {
	t.Helper()
	_, rest, ok := strings.Cut(string(stderr), "gkexec: session ")
	id, _, _ := strings.Cut(rest, " ")
	if !ok || id == "" {
		t.Fatalf("no session in the repl's banner: %q", stderr)
	}
	return id
}

// lineWatch is a process's stdout that a test can wait on.
type lineWatch struct {
	mu      sync.Mutex
	buf     *bytes.Buffer
	changed chan struct{}
}

func newLineWatch(buf *bytes.Buffer) *lineWatch {
	return &lineWatch{buf: buf, changed: make(chan struct{})}
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// wait waits until s was written.
func (w *lineWatch) wait(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		seen, changed := strings.Contains(w.buf.String(), s), w.changed
		w.mu.Unlock()
		if seen {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("waited %s for %q; stdout %q", timeout, s, w.String())
		}
	}
}
