package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// waitTimeout bounds every wait for an event in these tests: a failure, never a pause.
const waitTimeout = 10 * time.Second

// watchedBuffer is a writer the test can read while gkexec writes, and wait on.
type watchedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newWatchedBuffer() *watchedBuffer { return &watchedBuffer{changed: make(chan struct{})} }

func (b *watchedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return len(p), nil
}

func (b *watchedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until s has been written n times in all.
func (b *watchedBuffer) waitFor(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		b.mu.Lock()
		seen, changed := strings.Count(b.buf.String(), s), b.changed
		b.mu.Unlock()
		if seen >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("waited %s for %q (%d times); have %q", waitTimeout, s, n, b.String())
		}
	}
}

// Lines go to the session one submission at a time: a simple line at once, a block at the first
// empty line (or the end of input); each streamed to stdout, prompts on stderr.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestREPLSubmissions(t *testing.T) {
	s := &fakeSession{id: "r1"}
	fs := &fakeSessions{s: s}
	in := "x = 1\n\nfor i in range(2):\n    print(i)\n\nd = {\n  'a': 1,\n}\n\nprint(x)  # a comment: done\n" +
		"@decorator\ndef f():\n    pass\n\ndef g():\n    return 1\n"
	code, stdout, stderr := onFake(t, fs, in, "repl")
	if code != 0 {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	want := []string{"x = 1\n", "for i in range(2):\n    print(i)\n", "d = {\n  'a': 1,\n}\n", "print(x)  # a comment: done\n",
		"@decorator\ndef f():\n    pass\n", "def g():\n    return 1\n"}
	codes, closed, detached := s.state()
	if !slices.Equal(codes, want) {
		t.Errorf("submissions\n%q\nwant\n%q", codes, want)
	}
	if stdout != "ran "+strings.Join(want, "ran ") {
		t.Errorf("stdout %q, want each execution's output", stdout)
	}
	if len(fs.opened) != 1 || closed != 1 || detached != 0 {
		t.Errorf("opened %d closed %d detached %d: the session the REPL opened must be closed at exit", len(fs.opened), closed, detached)
	}
	if !strings.Contains(stderr, "gkexec: session r1 opened (warm sandbox, pod pool-abc12)") ||
		strings.Count(stderr, ">>> ") != 7 || strings.Count(stderr, "... ") != 10 {
		t.Errorf("stderr %q: want the banner, 7 prompts and 10 continuation prompts", stderr)
	}
}

// Ctrl-C while code runs cancels that execution (the library then interrupts the code) and the
// REPL goes on; at the prompt it discards the block being typed. SIGTERM ends the REPL.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestREPLInterrupts(t *testing.T) {
	running := make(chan struct{}, 1)
	canceled := make(chan error, 1)
	s := &fakeSession{id: "r1"}
	s.run = func(ctx context.Context, req runner.Request) (runner.Result, error) {
		if !strings.HasPrefix(req.Code, "while") {
			req.Output(runner.Stdout, []byte("ran "+req.Code))
			return runner.Result{Timings: runner.Timings{Started: time.Now()}}, nil
		}
		req.Output(runner.Stdout, []byte("spinning"))
		running <- struct{}{}
		<-ctx.Done()
		canceled <- ctx.Err()
		return runner.Result{Timings: runner.Timings{Started: time.Now()}}, fmt.Errorf("%w: execution e1: %w", runner.ErrCanceled, ctx.Err())
	}
	fs := &fakeSessions{s: s}
	stdinR, stdinW := io.Pipe()
	stdout, stderr := newWatchedBuffer(), newWatchedBuffer()
	sigs := make(chan os.Signal, 1)
	exit := make(chan int, 1)
	go func() {
		exit <- sessionCLI(t, func() sessionRunner { return fs }, sigs, stdinR, stdout, stderr, "repl")
	}()
	write := func(s string) {
		t.Helper()
		if _, err := io.WriteString(stdinW, s); err != nil {
			t.Fatal(err)
		}
	}

	stderr.waitFor(t, ">>> ", 1)
	write("while True: pass\n")
	select {
	case <-running:
	case <-time.After(waitTimeout):
		t.Fatal("the execution did not start")
	}
	sigs <- os.Interrupt
	select {
	case err := <-canceled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the execution's context: %v, want canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Ctrl-C did not cancel the execution")
	}
	stderr.waitFor(t, "KeyboardInterrupt (the session goes on)\n>>> ", 1)
	if stdout.String() != "spinning" {
		t.Errorf("stdout %q, want the interrupted code's output", stdout.String())
	}

	write("for i in range(3):\n")
	stderr.waitFor(t, "... ", 1)
	sigs <- os.Interrupt // discards the block
	stderr.waitFor(t, "\nKeyboardInterrupt\n>>> ", 1)
	write("print(2)\n")
	stdout.waitFor(t, "ran print(2)\n", 1)
	stderr.waitFor(t, ">>> ", 4)
	sigs <- syscall.SIGTERM
	var code int
	select {
	case code = <-exit:
	case <-time.After(waitTimeout):
		t.Fatal("SIGTERM did not end the REPL")
	}
	_ = stdinW.Close()
	codes, closed, _ := s.state()
	if code != exitInterrupted || closed != 1 {
		t.Errorf("after SIGTERM: exit %d closed %d, want %d and the session it opened closed", code, closed, exitInterrupted)
	}
	if !slices.Equal(codes, []string{"while True: pass\n", "print(2)\n"}) {
		t.Errorf("submissions %q: want the interrupted one and the one after the discarded block", codes)
	}
	// The code's output and gkexec's words each start on a line of their own.
	if !strings.Contains(stderr.String(), ">>> \nKeyboardInterrupt (the session goes on)") {
		t.Errorf("stderr %q: the interruption does not start on a line of its own after the code's open line", stderr.String())
	}
}

func TestOpensBlock(t *testing.T) {
	t.Parallel()
	for line, want := range map[string]bool{
		"x = 1":                     false,
		"print('a:')":               false,
		"a[1:]":                     false,
		"if x: print(1)":            false,
		"x: int = 3":                false,
		"d = {1: 2}":                false,
		`s = "(" # )`:               false,
		`s = """one line"""`:        false,
		"print(x)  # ends with a:":  false,
		"for i in range(3):":        true,
		"def f(x):  # comment":      true,
		"class A(B):":               true,
		"@functools.cache":          true,
		"x = (1,":                   true,
		"total = 1 + \\":            true,
		`doc = """starts here`:      true,
		`s = 'it\'s (' + f(`:        true,
		"else:":                     true,
		"   ":                       false,
		"lambda x: x":               false,
		"with open('f') as f:":      true,
		"try:":                      true,
		"match = re.match('a:', s)": false,
	} {
		if got := opensBlock(line); got != want {
			t.Errorf("opensBlock(%q) = %v, want %v", line, got, want)
		}
	}
}
