package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
	"github.com/gkexec/gkexec/runner/internal/track"
)

// Execute runs req in the session's interpreter and returns its Result, as Runner.Execute does
// for a one-shot execution: streams (Request.Output included), exit status, the output files
// this execution created or changed, timings. An exception is a result (exit code 1), not the
// end of the session. On timeout the code is interrupted (KeyboardInterrupt, then harder): the
// Result says TimedOut, Execute returns ErrTimeout, and the session stays usable if the
// interpreter could be interrupted; if not, or if it died (os._exit, OOM), the session is over
// and Execute's error wraps ErrSessionEnded.
func (s *Session) Execute(ctx context.Context, req Request) (Result, error) {
	r := s.r
	x, err := r.prepare(req, "session", s.id)
	x.session, x.Kind = s.id, s.kind
	if err == nil && len(req.AllowDomains) > 0 {
		err = fmt.Errorf("%w: AllowDomains: a session's egress is narrowed when it opens (SessionOptions.AllowDomains), not per execution", ErrInvalidRequest)
	}
	if err != nil {
		return r.finish(ctx, x, err)
	}
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return r.finish(ctx, x, ctx.Err())
	}
	giveBack := func() { <-s.turn }
	end, err := r.begin(x.req.ExecutionID)
	if err != nil {
		giveBack()
		return r.finish(ctx, x, err)
	}
	defer end()
	x.mark(&x.Marks.Admitted)
	conn, pod, err := s.ready(ctx, x)
	if err != nil {
		giveBack()
		return r.finish(ctx, x, err)
	}
	x.NoteSandbox(s.kind, pod)
	if _, err := s.lease.Take(ctx, pod, x.req.ExecutionID, x.timeout+r.env.KillGrace); err != nil {
		giveBack()
		return r.finish(ctx, x, err)
	}
	err = r.exchange(ctx, x, &sessionSandbox{s: s, conn: conn})
	s.egressSeen = r.readEgress(ctx, x, s.egressSeen)
	switch {
	case x.dec != nil && x.dec.End() != nil && x.dec.End().SessionOver != "":
		x.sessionOver = x.dec.End().SessionOver
	case x.killed:
		x.sessionOver = "the sandbox did not answer within the timeout and a grace period"
	case err == nil && !x.codeEnded():
		x.sessionOver = "the sandbox ended without a result"
	case err != nil && ctx.Err() != nil:
		// The caller gave up: interrupt the code, so that the session is free for the next. The
		// write is bounded: a stuck attach must not hold the session's turn.
		interrupt, cancel := context.WithTimeout(context.Background(), sandbox.AttachTimeout)
		_ = conn.Send(interrupt, wire.Interrupt)
		cancel()
	}
	if x.sessionOver != "" {
		s.end(x.sessionOver)
		if x.LeftBehind = s.delete(); len(x.LeftBehind) == 0 {
			x.mark(&x.cleanedUp)
		}
		r.countLeft(x.LeftBehind)
	} else {
		// Keep the lease a moment for this process's next execution; give it back after that.
		s.lease.Linger(sessionLeaseLinger, s.unleaseIfIdle)
	}
	giveBack()
	return r.finish(ctx, x, err)
}

// unleaseIfIdle gives the lease back, unless an execution of this process is running (it
// schedules its own).
func (s *Session) unleaseIfIdle() {
	select {
	case s.turn <- struct{}{}:
	default:
		return
	}
	defer func() { <-s.turn }()
	s.lease.GiveBack()
}

// ready returns the session's attach, attaching first when this process has none (a resumed
// session, or one whose stream broke), after checking that the session is still what it was.
func (s *Session) ready(ctx context.Context, x *execution) (*sandbox.Conn, *corev1.Pod, error) {
	r := s.r
	s.mu.Lock()
	over, conn := s.over, s.conn
	s.mu.Unlock()
	if over != "" {
		return nil, nil, fmt.Errorf("%w: session %s: %s", ErrSessionEnded, s.id, over)
	}
	pod, present, err := s.refresh(ctx)
	if err != nil {
		return nil, nil, err
	}
	if !present {
		s.end("its sandbox is gone")
		r.countLeft(s.delete())
		return nil, nil, fmt.Errorf("%w: session %s in namespace %s: its sandbox pod %s is gone (closed, expired or evicted)", ErrSessionEnded, s.id, r.opts.Namespace, pod.Name)
	}
	if ended := sandbox.Ended(pod); ended != "" {
		// The sandbox ended the session itself (its idle timeout, its lifetime, a dead
		// interpreter), or lost it (a restarted container holds no state).
		why := "its sandbox ended: " + ended
		x.sessionOver = why
		s.end(why)
		r.countLeft(s.delete())
		return nil, nil, fmt.Errorf("%w: session %s: %s", ErrSessionEnded, s.id, why)
	}
	if conn != nil && !conn.Broken() {
		return conn, pod, nil
	}
	if conn != nil {
		conn.Detach()
	}
	conn = sandbox.NewConn(r.env.Connect(pod))
	answer, err := conn.Ping(ctx)
	if err != nil {
		broken := conn.Broken()
		conn.Detach()
		switch {
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case broken:
			// The attach itself failed. Either the Pod is gone (another process closed the
			// session, and this process's watch has not shown it yet) — the session's end — or
			// the API server, the kubelet or the runtime is away: the Pod runs and the session is
			// intact; nothing was sent.
			if why := r.goneNow(ctx, pod); why != "" {
				s.end(why)
				r.countLeft(s.delete())
				return nil, nil, fmt.Errorf("%w: session %s in namespace %s: %s", ErrSessionEnded, s.id, r.opts.Namespace, why)
			}
			return nil, nil, fmt.Errorf("%w: session %s: could not attach to its pod %s/%s (the session is intact; try again): %w",
				ErrCluster, s.id, r.opts.Namespace, pod.Name, err)
		}
		return nil, nil, fmt.Errorf("%w: session %s: the sandbox in pod %s/%s did not answer on its attach: %w", ErrSandboxFailed, s.id, r.opts.Namespace, pod.Name, err)
	}
	if answer.Session == "" && !answer.Spent {
		// The sandbox holds no session yet: another process is still opening it (a lost open
		// race, resumed at once). It is not this process's to end.
		conn.Detach()
		return nil, nil, fmt.Errorf("%w: session %s is still being opened by another process; try again in a moment", ErrSessionBusy, s.id)
	}
	if answer.Session != s.id {
		conn.Detach()
		why := "its sandbox no longer holds the session's interpreter"
		s.end(why)
		r.countLeft(s.delete())
		return nil, nil, fmt.Errorf("%w: session %s: %s", ErrSessionEnded, s.id, why)
	}
	x.mark(&x.Marks.Attached)
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	return conn, pod, nil
}

// goneNow asks the API server whether a session's Pod, as the watch or an answer showed it, is
// gone: deleted, being deleted, ended, or replaced by another of the same name. "" when it runs,
// or when the API server could not say.
func (r *Runner) goneNow(ctx context.Context, pod *corev1.Pod) string {
	got, err := r.hub.PodNow(ctx, pod.Name)
	switch {
	case err != nil:
		return ""
	case got == nil || got.UID != pod.UID:
		return fmt.Sprintf("its sandbox pod %s is gone (closed, expired or evicted)", pod.Name)
	case got.DeletionTimestamp != nil:
		return fmt.Sprintf("its sandbox pod %s is being deleted (closed, expired or evicted)", pod.Name)
	case diagnose.PodFinished(got):
		return fmt.Sprintf("its sandbox pod %s ended: %s", pod.Name, got.Status.Phase)
	}
	return ""
}

// sessionSandbox is the session's sandbox as exchange sees it for one execution: the request goes
// down the session's attach, and the stream is that execution's records, from its begin record
// to its end record.
type sessionSandbox struct {
	s    *Session
	conn *sandbox.Conn
	id   string // the execution's, once Open sent it
}

var _ sandbox.Sandbox = (*sessionSandbox)(nil)

func (sb *sessionSandbox) Kind() string { return sb.s.kind }

// Tracker is the tracker of the attach the execution reads now: Reopen may replace it from
// recover's reading goroutine while recover watches the tracker, hence the session's lock.
func (sb *sessionSandbox) Tracker() *track.Tracker {
	sb.s.mu.Lock()
	defer sb.s.mu.Unlock()
	return sb.conn.Tracker()
}

func (sb *sessionSandbox) Open(ctx context.Context, x *sandbox.Execution) (io.ReadCloser, error) {
	if err := sb.conn.Send(ctx, x.Request.Encode(true)); err != nil {
		return nil, fmt.Errorf("%w: session %s: sending the request: %v", ErrSandboxFailed, sb.s.id, err)
	}
	x.Marks.Started = time.Now()
	sb.id = x.Request.ExecutionID
	conn := sb.conn
	return wire.NewRecords(sb.id, func() ([]byte, error) { return conn.Next(ctx) }), nil
}

// Reopen attaches to the session's sandbox again and asks it to replay this execution's records
// (the entrypoint keeps those of the execution running and of the last one); the records written
// since follow on the new attach, which the session keeps. Once the sandbox ended (follow false)
// there is nothing to attach to.
func (sb *sessionSandbox) Reopen(ctx context.Context, follow bool) io.ReadCloser {
	s := sb.s
	if !follow || sb.id == "" {
		return nil
	}
	pod, present, err := s.refresh(ctx)
	if err != nil || !present {
		return nil
	}
	conn := sandbox.NewConn(s.r.env.Connect(pod))
	if err := conn.Send(ctx, wire.PingWith(wire.PingRequest{Replay: sb.id})); err != nil {
		conn.Detach()
		return nil
	}
	// The sandbox answers a ping at once, after the records it replays. An attach that says
	// nothing — one opened through an API server still coming up, seen to hang in the fault tier —
	// is given up and tried again, instead of holding the execution to its deadline.
	first, cancel := context.WithTimeout(ctx, sandbox.AttachTimeout)
	line, err := conn.Next(first)
	cancel()
	if err != nil {
		conn.Detach()
		return nil
	}
	s.mu.Lock()
	old := s.conn
	s.conn, sb.conn = conn, conn
	s.mu.Unlock()
	if old != nil {
		go old.Detach() // its stream broke; its goroutines end with it
	}
	return wire.NewRecords(sb.id, func() ([]byte, error) {
		if line != nil {
			l := line
			line = nil
			return l, nil
		}
		return conn.Next(ctx)
	})
}

// Release: the session's sandbox outlives its executions.
func (sb *sessionSandbox) Release(*slog.Logger) []string { return nil }
