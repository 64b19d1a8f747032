package adktool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/internal/wire/wiretest"
	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/adktool"
)

// The sandbox's end of the tool, played by the real entrypoint.py (wiretest) with this machine's
// python3, bash and node: sandboxExecutor starts a fresh one per execution, as a one-shot
// sandbox is; sandboxSessions holds one per session, opened in the session's language. They
// speak the wire as the runner does and give what the sandbox said back as the runner gives it
// for what these tests look at: the output, the exit code, the files, a refusal
// (runner.ErrInvalidRequest) and a session's end (runner.ErrSessionEnded). What the Kubernetes
// side adds is the runner's own tests' business (runner/language_test.go).

// wireRequest is req as a runner sends it, with the runner's default limits.
func wireRequest(req runner.Request, executionID string) wire.Request {
	return wire.Request{ExecutionID: executionID, Code: req.Code, Files: req.Files, Language: req.Language,
		Timeout: time.Minute, MaxOutput: 1 << 20, MaxFile: 4 << 20, MaxProcesses: 256}
}

// sandboxExecutor runs each execution in a fresh entrypoint, with env added to its environment.
type sandboxExecutor struct {
	t   *testing.T
	env []string
}

func (x sandboxExecutor) Execute(_ context.Context, req runner.Request) (runner.Result, error) {
	e := wiretest.Start(x.t, x.env...)
	// A runner pings a waiting sandbox before it sends the request.
	if _, err := io.WriteString(e.Stdin, "P:\n"); err != nil {
		return runner.Result{}, err
	}
	if line, err := e.Out.ReadString('\n'); err != nil || line != "P:\n" {
		return runner.Result{}, fmt.Errorf("%w: the ping was answered %q, %v", runner.ErrSandboxFailed, line, err)
	}
	return exchange(e, wireRequest(req, "e1"), "")
}

// exchange sends one request and reads its records; in session, those after the begin record
// that names it.
func exchange(e *wiretest.Entrypoint, req wire.Request, session string) (runner.Result, error) {
	if _, err := e.Stdin.Write(req.Encode(session != "")); err != nil {
		return runner.Result{}, err
	}
	if session != "" {
		begin := string(wire.Begin(req.ExecutionID))
		for {
			line, err := e.Out.ReadString('\n')
			if err != nil {
				return runner.Result{}, fmt.Errorf("%w: session %s: its stream ended before the execution began: %v", runner.ErrSessionEnded, session, err)
			}
			if line == begin {
				break
			}
		}
	}
	started := time.Now()
	dec := wire.NewDecoder(req.MaxOutput, req.MaxFile, nil)
	if err := dec.Decode(e.Out); err != nil || dec.End() == nil {
		return runner.Result{}, fmt.Errorf("%w: the sandbox's records: %v (end record %v)", runner.ErrSandboxFailed, err, dec.End())
	}
	out := dec.Output()
	res := runner.Result{ExecutionID: req.ExecutionID, Session: session, ExitCode: out.End.ExitCode,
		Stdout: bytes.Clone(out.Stdout), Stderr: bytes.Clone(out.Stderr), TimedOut: out.End.TimedOut,
		CodeDuration: out.End.CodeDuration(), Timings: runner.Timings{Started: started}, Files: []runner.File{}}
	for _, f := range out.Files {
		res.Files = append(res.Files, runner.File{Path: f.Path, Data: bytes.Clone(f.Data), Size: f.Size, Truncated: f.Truncated})
	}
	switch end := out.End; {
	case end.Refused != "":
		return runner.Result{ExecutionID: req.ExecutionID, Session: session}, fmt.Errorf("%w: the sandbox refused it: %s; nothing ran", runner.ErrInvalidRequest, end.Refused)
	case end.SessionOver != "":
		return res, fmt.Errorf("%w: session %s: %s", runner.ErrSessionEnded, session, end.SessionOver)
	}
	return res, nil
}

// sandboxSessions are sessions each held by an entrypoint of its own, with env added to its
// environment.
type sandboxSessions struct {
	t   *testing.T
	env []string

	mu     sync.Mutex
	open   map[string]*sandboxSession
	opened []runner.SessionOptions
}

func newSandboxSessions(t *testing.T, env ...string) *sandboxSessions {
	return &sandboxSessions{t: t, env: env, open: map[string]*sandboxSession{}}
}

type sandboxSession struct {
	ss *sandboxSessions
	id string
	e  *wiretest.Entrypoint

	mu    sync.Mutex // one execution at a time, as a runner's session runs them
	calls int
}

func (ss *sandboxSessions) OpenSession(_ context.Context, so runner.SessionOptions) (adktool.Executor, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.opened = append(ss.opened, so)
	if ss.open[so.ID] != nil {
		return nil, fmt.Errorf("%w: session %s is open", runner.ErrInvalidRequest, so.ID)
	}
	e := wiretest.Start(ss.t, ss.env...)
	hello, err := json.Marshal(wire.Hello{ID: so.ID, Language: so.Language, IdleTimeoutSeconds: 600, MaxLifetimeSeconds: 3600})
	if err != nil {
		return nil, err
	}
	if _, err := e.Stdin.Write(wire.Frame(wire.TagSession, hello)); err != nil {
		return nil, err
	}
	line, err := e.Out.ReadString('\n')
	opened, ok := wire.ParseOpened([]byte(line))
	switch {
	case err != nil || !ok:
		return nil, fmt.Errorf("%w: session %s: the opening was answered %q, %v", runner.ErrSandboxFailed, so.ID, line, err)
	case opened.Refused != "":
		return nil, fmt.Errorf("%w: the sandbox refused to open session %s: %s; nothing was opened", runner.ErrInvalidRequest, so.ID, opened.Refused)
	}
	s := &sandboxSession{ss: ss, id: so.ID, e: e}
	ss.open[so.ID] = s
	return s, nil
}

func (ss *sandboxSessions) Session(_ context.Context, id string) (adktool.Executor, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s := ss.open[id]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("%w: session %s", runner.ErrSessionNotFound, id)
}

func (ss *sandboxSessions) CloseSession(_ context.Context, id string) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.open[id]
	if s == nil {
		return fmt.Errorf("%w: session %s", runner.ErrSessionNotFound, id)
	}
	delete(ss.open, id)
	_ = s.e.Stdin.Close() // the entrypoint ends its session when its stdin does
	return nil
}

func (s *sandboxSession) Execute(_ context.Context, req runner.Request) (runner.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	res, err := exchange(s.e, wireRequest(req, fmt.Sprintf("%s-%d", s.id, s.calls)), s.id)
	if errors.Is(err, runner.ErrSessionEnded) {
		// The session is over: the next lookup does not find it, as the runner's does not.
		s.ss.mu.Lock()
		delete(s.ss.open, s.id)
		s.ss.mu.Unlock()
	}
	return res, err
}

// bashOnly is a PATH with bash and without node: an image that lacks Node.js.
func bashOnly(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bash, filepath.Join(dir, "bash")); err != nil {
		t.Fatal(err)
	}
	return "PATH=" + dir
}
