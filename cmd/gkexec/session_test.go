package main

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/gkexec/gkexec/internal/fakecluster"
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

// fakeSession is a session whose "interpreter" is the test's run function; by default it
// answers each execution with "ran <code>" on stdout.
type fakeSession struct {
	id  string
	run func(ctx context.Context, req runner.Request) (runner.Result, error)

	mu       sync.Mutex
	codes    []string
	reqs     []runner.Request
	closed   int
	detached int
}

func (f *fakeSession) ID() string      { return f.id }
func (f *fakeSession) Sandbox() string { return runner.SandboxWarm }
func (f *fakeSession) PodName() string { return "pool-abc12" }

func (f *fakeSession) Execute(ctx context.Context, req runner.Request) (runner.Result, error) {
	f.mu.Lock()
	f.codes = append(f.codes, req.Code)
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if f.run != nil {
		return f.run(ctx, req)
	}
	out := []byte("ran " + req.Code)
	emit(req, runner.Stdout, out)
	return runner.Result{Session: f.id, Stdout: out, Timings: runner.Timings{Started: time.Now()}}, nil
}

func (f *fakeSession) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return nil
}

func (f *fakeSession) Detach() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.detached++
}

// state is what was done to the session: the code it ran, Close and Detach calls.
func (f *fakeSession) state() ([]string, int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.codes), f.closed, f.detached
}

// emit streams p as the runner does, unless the caller asked for no stream (--json).
func emit(req runner.Request, st runner.Stream, p []byte) {
	if req.Output != nil {
		req.Output(st, p)
	}
}

// fakeSessions is a runner with one session, s, to open or resume.
type fakeSessions struct {
	s       *fakeSession
	findErr error

	mu     sync.Mutex
	opened []runner.SessionOptions
	found  []string
	closed int
}

func (f *fakeSessions) OpenSession(_ context.Context, so runner.SessionOptions) (liveSession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opened = append(f.opened, so)
	if so.ID != "" {
		f.s.id = so.ID
	}
	return f.s, nil
}

func (f *fakeSessions) Session(_ context.Context, id string) (liveSession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.found = append(f.found, id)
	if f.findErr != nil {
		return nil, f.findErr
	}
	return f.s, nil
}

func (f *fakeSessions) CloseSession(context.Context, string) error { return errors.New("not used") }

func (f *fakeSessions) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return nil
}

// sessionCLI runs `gkexec session args...` with sr as its runner and sigs as its signals, to its
// exit code.
func sessionCLI(t *testing.T, newSessions func() sessionRunner, sigs chan os.Signal, stdin io.Reader, stdout, stderr io.Writer, args ...string) int {
	t.Helper()
	if sigs == nil {
		sigs = make(chan os.Signal)
	}
	app := newApp(stdin, stdout, stderr)
	for i, cmd := range app.Commands {
		if cmd.Name == "session" {
			app.Commands[i] = sessionCommandWith(sessionDeps{
				newSessions: func(*cli.Context, io.Writer) (sessionRunner, error) { return newSessions(), nil },
				signals:     func() (<-chan os.Signal, func()) { return sigs, func() {} },
			})
		}
	}
	return runApp(context.Background(), app, append([]string{"gkexec", "session"}, args...))
}

// onFake runs `gkexec session args...` with a fake runner and stdin, and returns its exit code,
// stdout and stderr.
func onFake(t *testing.T, fs *fakeSessions, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := sessionCLI(t, func() sessionRunner { return fs }, nil, strings.NewReader(stdin), &stdout, &stderr, args...)
	return code, stdout.String(), stderr.String()
}

// Mistakes are usage errors (exit 2) with a message, found before any cluster is contacted: the
// kubeconfig does not exist, and a runner built from it would fail with exit 125.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestSessionCommandsRejectBadUsageBeforeContactingACluster(t *testing.T) {
	file := t.TempDir() + "/code.py"
	if err := os.WriteFile(file, []byte("print(1)"), 0o644); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", runner.MaxSessionIDLength+1)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"exec without an ID", []string{"exec", "-c", "x"}, "which session?"},
		{"exec with an ID no session can have", []string{"exec", "-c", "x", "Bad_ID"}, `session ID "Bad_ID"`},
		{"exec with an ID too long", []string{"exec", "-c", "x", long}, "longer than 38 characters"},
		{"exec with flags after the ID", []string{"exec", "s1", "-c", "x"}, "flags go before the session ID"},
		{"exec with the code twice", []string{"exec", "-c", "x", "s1", file}, "not both"},
		{"exec with two files", []string{"exec", "s1", file, file}, "too many arguments"},
		{"exec with a missing file", []string{"exec", "s1", "/nonexistent/code.py"}, "no such file"},
		{"exec with a missing input", []string{"exec", "-i", "/nonexistent/data.csv", "-c", "x", "s1"}, "--input"},
		{"exec with a zero timeout", []string{"exec", "--timeout", "0s", "-c", "x", "s1"}, "--timeout must be positive"},
		{"close without an ID", []string{"close"}, "which session?"},
		{"close with two IDs", []string{"close", "s1", "s2"}, "too many arguments"},
		{"close with a bad ID", []string{"close", "ends-"}, `session ID "ends-"`},
		{"open with an argument", []string{"open", "s1"}, "give the ID with --id"},
		{"open with a bad ID", []string{"open", "--id", "UPPER"}, `session ID "UPPER"`},
		{"repl with a bad ID", []string{"repl", "no.dots"}, `session ID "no.dots"`},
		{"repl with two IDs", []string{"repl", "s1", "s2"}, "too many arguments"},
		{"no such session command", []string{"list"}, `no session command "list"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"session", tc.args[0], "--kubeconfig", "/nonexistent/kubeconfig"}, tc.args[1:]...)
			if tc.args[0] == "list" {
				args = []string{"session", "list"}
			}
			code, stdout, stderr := runCLI(t, "", args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d stderr %q, want %d and a message with %q", code, stderr, exitUsage, tc.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestSessionExitCodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want int
	}{
		{runner.ErrSessionNotFound, exitSessionNotFound},
		{runner.ErrSessionBusy, exitSessionBusy},
		{runner.ErrSessionEnded, exitSessionEnded},
		// Code that could not be interrupted at its timeout ended the session: open a new one.
		{fmt.Errorf("%w: session s: the sandbox did not answer: %w", runner.ErrSessionEnded, runner.ErrTimeout), exitSessionEnded},
		{runner.ErrTimeout, exitTimeout}, // interrupted; the session goes on
	}
	for _, tc := range cases {
		if got := exitCodeFor(fmt.Errorf("wrapped: %w", tc.err)); got != tc.want {
			t.Errorf("%v -> %d, want %d", tc.err, got, tc.want)
		}
	}
	codes := []int{exitUsage, exitSessionNotFound, exitSessionBusy, exitSessionEnded, exitTimeout, exitRunner, exitCannotStart, exitInterrupted}
	if len(slices.Compact(slices.Sorted(slices.Values(codes)))) != len(codes) {
		t.Errorf("gkexec's own exit codes collide: %v", codes)
	}
}

// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestSessionHelpNamesTheCommandsAndExitCodes(t *testing.T) {
	code, stdout, _ := runCLI(t, "", "session", "--help")
	for _, want := range []string{"open", "exec", "close", "repl", "121", "122", "123", "Flags go before the session ID"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("exit %d; session --help does not mention %q:\n%s", code, want, stdout)
		}
	}
	code, stdout, _ = runCLI(t, "", "session", "repl", "--help")
	for _, want := range []string{"--keep", "--idle-timeout", "--session-idle-timeout", "Ctrl-C", "empty line"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("exit %d; session repl --help does not mention %q", code, want)
		}
	}
	if _, stdout, _ := runCLI(t, "", "--help"); !strings.Contains(stdout, "session") {
		t.Errorf("gkexec --help does not list session:\n%s", stdout)
	}
}

// libraryOnFakeCluster is a real runner on a fake cluster holding objects. It has a REST config
// (to nowhere) so that it may look for sessions; attaching to one would fail.
func libraryOnFakeCluster(t *testing.T, objects ...runtime.Object) (*fakecluster.Cluster, func() sessionRunner) {
	t.Helper()
	fc := fakecluster.New(t, fakecluster.Scenario{}, objects...)
	return fc, func() sessionRunner {
		r, err := runner.New(runner.Options{Namespace: fakecluster.Namespace, Client: fc.Client,
			RESTConfig: &rest.Config{Host: "http://127.0.0.1:1"}, WarmPoolReady: -1})
		if err != nil {
			t.Fatal(err)
		}
		return librarySessions{r}
	}
}

// A session nobody opened is not found: exit 121, whichever command asks.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestSessionNotFoundOnTheCluster(t *testing.T) {
	for _, args := range [][]string{{"exec", "-c", "print(1)", "s-nobody"}, {"close", "s-nobody"}, {"repl", "s-nobody"}} {
		t.Run(args[0], func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			_, newSessions := libraryOnFakeCluster(t)
			code := sessionCLI(t, newSessions, nil, strings.NewReader("print(1)\n"), &stdout, &stderr, args...)
			if code != exitSessionNotFound || !strings.Contains(stderr.String(), "session s-nobody in namespace sandbox") {
				t.Errorf("exit %d stderr %q, want %d naming the session", code, stderr.String(), exitSessionNotFound)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}
}

// close deletes the session's sandbox, whoever opened it; then the session is not found.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestSessionCloseDeletesItsSandbox(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pool-abc12", Namespace: fakecluster.Namespace, UID: "u1", Labels: map[string]string{
			runner.LabelManagedBy: runner.ManagedByValue, runner.LabelComponent: runner.ComponentSandbox,
			runner.LabelPool: "default", runner.LabelPoolState: runner.PoolStateClaimed, runner.LabelSession: "s-open",
		}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	fc, newSessions := libraryOnFakeCluster(t, pod)
	var stdout, stderr bytes.Buffer
	if code := sessionCLI(t, newSessions, nil, nil, &stdout, &stderr, "close", "s-open"); code != 0 {
		t.Fatalf("close: exit %d stderr %q", code, stderr.String())
	}
	if _, err := fc.Client.CoreV1().Pods(fakecluster.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the session's pod after close: %v, want it deleted", err)
	}
	if code := sessionCLI(t, newSessions, nil, nil, &stdout, &stderr, "close", "s-open"); code != exitSessionNotFound {
		t.Errorf("closing it again: exit %d, want %d; stderr %q", code, exitSessionNotFound, stderr.String())
	}
}

// open prints the ID (or the JSON document), passes the session's terms on, and leaves the
// session open: this process detaches from it.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestSessionOpenPrintsTheIDAndLeavesItOpen(t *testing.T) {
	fs := &fakeSessions{s: &fakeSession{id: "r4nd0m"}}
	code, stdout, stderr := onFake(t, fs, "", "open", "--idle-timeout", "30m", "--max-lifetime", "4h")
	if code != 0 || stdout != "r4nd0m\n" {
		t.Errorf("exit %d stdout %q stderr %q, want 0 and the ID on a line", code, stdout, stderr)
	}
	want := runner.SessionOptions{IdleTimeout: 30 * time.Minute, MaxLifetime: 4 * time.Hour}
	if len(fs.opened) != 1 || fs.opened[0] != want {
		t.Errorf("opened %+v, want %+v", fs.opened, want)
	}
	if _, closed, detached := fs.s.state(); closed != 0 || detached != 1 {
		t.Errorf("closed %d detached %d, want the session detached and left open", closed, detached)
	}

	code, stdout, _ = onFake(t, fs, "", "open", "--id", "mine", "--json")
	var doc map[string]string
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || code != 0 {
		t.Fatalf("exit %d stdout %q: %v", code, stdout, err)
	}
	if doc["session_id"] != "mine" || doc["sandbox"] != "warm" || doc["pod_name"] != "pool-abc12" || len(doc) != 3 {
		t.Errorf("document %v", doc)
	}
}

// The sessions' ceilings come from the sandbox flags; a session's own terms above the defaults
// raise them, an explicit ceiling stays one.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestSessionTermsAndTheirCeilings(t *testing.T) {
	// A kubeconfig to nowhere: the runner is built, never used.
	kubeconfig := t.TempDir() + "/kubeconfig"
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n" +
		"users: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args     []string
		wantIdle time.Duration
	}{
		{[]string{"open"}, runner.DefaultSessionIdleTimeout},
		{[]string{"open", "--session-idle-timeout", "2m"}, 2 * time.Minute},
		{[]string{"open", "--idle-timeout", "2h"}, 2 * time.Hour},
		{[]string{"open", "--idle-timeout", "2h", "--session-idle-timeout", "20m"}, 20 * time.Minute},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var got runner.Options
			app := newApp(strings.NewReader(""), io.Discard, io.Discard)
			for i, cmd := range app.Commands {
				if cmd.Name == "session" {
					app.Commands[i] = sessionCommandWith(sessionDeps{newSessions: func(c *cli.Context, stderr io.Writer) (sessionRunner, error) {
						sr, err := sessionsFromFlags(c, stderr)
						if err != nil {
							return nil, err
						}
						got = sr.(librarySessions).Options()
						_ = sr.Close()
						return nil, cli.Exit("stop here", 99)
					}})
				}
			}
			args := append([]string{"gkexec", "session"}, append(tc.args, "--kubeconfig", kubeconfig)...)
			if code := runApp(context.Background(), app, args); code != 99 {
				t.Fatalf("exit %d", code)
			}
			if got.SessionIdleTimeout != tc.wantIdle || got.WarmPoolReady != -1 {
				t.Errorf("SessionIdleTimeout %s WarmPoolReady %d, want %s and -1 (no sandbox held ahead)", got.SessionIdleTimeout, got.WarmPoolReady, tc.wantIdle)
			}
		})
	}
}

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
