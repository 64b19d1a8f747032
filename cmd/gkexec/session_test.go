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
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
)

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
