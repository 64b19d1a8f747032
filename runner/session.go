package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gkexec/gkexec/gateway"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
	"github.com/gkexec/gkexec/runner/internal/session"
)

// A session is one live interpreter in one sandbox across many executions: variables, imports
// and files under /workspace persist from one to the next, and nothing crosses to another
// session. Its terms (idle timeout, lifetime) are the sandbox's to enforce: it ends the session
// itself, and a session's sandbox that ended is deleted by whichever runner sees it first (the
// janitor), or by gc. Its sandbox comes through the same seam as a one-shot execution's — a claimed warm
// pool Pod when one is idle, else a Job of its own — and it is talked to over the same attach
// channel and framing as a warm sandbox; each execution's Result is completed by finish.
//
// The state lives in the sandbox, not in the runner: a session is addressed by its ID (the
// gkexec.dev/session label of its Pod), so any runner process can resume it with Runner.Session.
// Within one process a session runs one execution at a time (others wait their turn); across
// processes a runner writes a request only while it holds the session's lease (an annotation
// taken with a guarded patch, internal/session), so two callers are serialised or the second
// refused with ErrSessionBusy, never interleaved.
//
// This file holds the session and its life; session_open.go opens one, session_exec.go runs code
// in it, session_registry.go keeps the sessions this process holds.

// SessionOptions configures a new session.
type SessionOptions struct {
	// ID names the session (a DNS label of at most 38 characters); empty means a random one.
	ID string
	// IdleTimeout and MaxLifetime end the session; zero means Options.SessionIdleTimeout and
	// Options.SessionMaxLifetime, which are also their ceilings.
	IdleTimeout time.Duration
	MaxLifetime time.Duration
	// Language is the session's interpreter's, one of Languages; empty is Python. A Bash
	// session keeps its shell's variables, functions and working directory from one execution to
	// the next, a JavaScript one its global bindings (top-level const, let, class and function
	// declarations included).
	Language string
	// AllowDomains narrows the namespace's egress allow-list for the session's sandbox, as
	// Request.AllowDomains does for one execution; the executions in the session cannot change it.
	AllowDomains []string
}

const (
	// sessionLeaseLinger is how long a runner keeps a session's lease after an execution: an agent's
	// next execution often follows at once, and then needs no API call at all. Another process
	// waits for it (Runner.busyWait).
	sessionLeaseLinger = 300 * time.Millisecond
	// defaultBusyWait bounds how long an execution waits for another process's lease to be given
	// back before it is refused with ErrSessionBusy.
	defaultBusyWait = 5 * time.Second
	// sessionTakeoverIdle: a lease whose session has run nothing for this long is its dead
	// holder's (a live one gives it back sessionLeaseLinger after its execution) and is taken over.
	sessionTakeoverIdle = time.Second
)

// Session is an open session. It is safe for concurrent use; executions run one at a time.
type Session struct {
	r    *Runner
	id   string
	kind string // SandboxWarm or SandboxCold: where its sandbox came from
	// turn admits one execution of this process at a time; it is given back once the lease is.
	turn chan struct{}
	// lease is this process's hold on the session's stdin.
	lease *session.Lease

	// egressSeen is what the egress gateway had counted for the sandbox when this process's
	// previous execution ended; written by one execution at a time (turn).
	egressSeen *gateway.Stats

	mu   sync.Mutex
	pod  *corev1.Pod // as last written by this runner (claim, lease) or seen by the watch
	job  string      // a cold session's Job
	conn *sandbox.Conn
	over string // why the session ended, once it did
}

// newSession is session id of this runner, with its lease.
func (r *Runner) newSession(id, kind string) *Session {
	s := &Session{r: r, id: id, kind: kind, turn: make(chan struct{}, 1)}
	s.lease = &session.Lease{Client: r.client, Namespace: r.opts.Namespace, Session: id, Holder: r.holder, Hub: r.hub, Log: r.log,
		BusyWait: r.busyWait, CleanupTimeout: r.opts.CleanupTimeout,
		TakeoverIdle: sessionTakeoverIdle, OnPod: s.setPod, OnGone: s.end, Probe: s.probe}
	return s
}

// probe asks the session's sandbox, over this process's attach, what runs in it.
func (s *Session) probe(ctx context.Context) (string, time.Duration, error) {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn == nil {
		return "", 0, fmt.Errorf("session %s: not attached", s.id)
	}
	answer, err := conn.Ping(ctx)
	if err != nil {
		return "", 0, err
	}
	return answer.Running, time.Duration(answer.IdleSeconds * float64(time.Second)), nil
}

// Session returns the open session id, resuming it when this process has not used it yet (its
// Pod is found by label and attached to on the first execution).
func (r *Runner) Session(ctx context.Context, id string) (*Session, error) {
	if s := r.sessions.get(id); s != nil {
		return s, nil
	}
	h, err := r.watching(ctx)
	if err != nil {
		return nil, err
	}
	if r.env.Attach == nil {
		return nil, fmt.Errorf("%w: sessions need pods/attach, which needs a REST config", ErrInvalidOptions)
	}
	pod, err := h.SessionPodNow(ctx, id)
	if err != nil {
		return nil, err
	}
	if why := r.sessions.endedWhy(id, pod); why != "" {
		return nil, fmt.Errorf("%w: session %s: %s; its sandbox is being deleted", ErrSessionEnded, id, why)
	}
	if pod == nil {
		return nil, fmt.Errorf("%w: session %s in namespace %s: no running sandbox carries it (closed, expired, or never opened)", ErrSessionNotFound, id, r.opts.Namespace)
	}
	s := r.newSession(id, SandboxCold)
	if pod.Labels[LabelPool] != "" {
		s.kind = SandboxWarm
	} else {
		s.job = podspec.ObjectName(podspec.SessionSandboxID(id))
	}
	s.setPod(pod)
	if existing := r.sessions.add(s); existing != s {
		return existing, nil
	}
	return s, nil
}

// CloseSession ends session id and deletes its sandbox, whichever process opened it.
func (r *Runner) CloseSession(ctx context.Context, id string) error {
	s, err := r.Session(ctx, id)
	if err != nil {
		return err
	}
	return s.Close()
}

// ID is the session's ID.
func (s *Session) ID() string { return s.id }

// Sandbox is where the session's sandbox came from: SandboxWarm or SandboxCold.
func (s *Session) Sandbox() string { return s.kind }

// PodName is the session's sandbox Pod.
func (s *Session) PodName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pod.Name
}

// Language is the session's interpreter's (SessionOptions.Language), whichever process opened
// it: its sandbox Pod says.
func (s *Session) Language() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lang := s.pod.Annotations[podspec.AnnotationSessionLanguage]; lang != "" {
		return lang
	}
	return "python" // opened before sessions had languages
}

// Close ends the session and deletes its sandbox. An execution in flight ends with
// ErrSessionEnded.
func (s *Session) Close() error {
	s.end("closed")
	if left := s.delete(); len(left) > 0 {
		s.r.countLeft(left)
		return fmt.Errorf("%w: session %s: could not delete %s; run `gkexec gc`", ErrCluster, s.id, strings.Join(left, ", "))
	}
	return nil
}

// Detach drops this process's attach to the session and forgets it, leaving the session open
// for another process (or a later Runner.Session) to resume.
func (s *Session) Detach() {
	s.turn <- struct{}{} // after the execution in flight, if any
	s.lease.GiveBack()
	<-s.turn
	s.mu.Lock()
	conn := s.conn
	s.conn = nil
	s.mu.Unlock()
	if conn != nil {
		conn.Detach()
	}
	s.r.sessions.forget(s)
}

func (s *Session) setPod(pod *corev1.Pod) {
	s.mu.Lock()
	s.pod = pod
	s.mu.Unlock()
}

// end marks the session over; the first reason given stays.
func (s *Session) end(why string) {
	s.mu.Lock()
	if s.over == "" {
		s.over = why
	}
	pod, why := s.pod, s.over
	s.mu.Unlock()
	s.lease.Drop()
	s.r.sessions.ended(s.r.hub, s, pod, why)
}

// delete removes the session's sandbox and its marker, retrying until Options.CleanupTimeout, and
// returns what it could not delete.
func (s *Session) delete() (left []string) {
	r := s.r
	s.mu.Lock()
	conn, pod, job := s.conn, s.pod, s.job
	s.conn = nil
	s.mu.Unlock()
	if r.opts.KeepObjects {
		return nil
	}
	// The session's ID is free once its sandbox is going.
	defer func() {
		left = append(left, sandbox.DeleteAll(r.log, r.opts.CleanupTimeout, r.env.ConfigMapDeletion(podspec.SessionMarkerName(s.id)))...)
	}()
	if job != "" {
		if conn != nil {
			conn.Detach()
		}
		var uid types.UID // a Job whose Pod was never seen is this process's, made moments ago
		if pod != nil {
			uid = sandbox.JobOf(pod)
		}
		return sandbox.DeleteAll(r.log, r.opts.CleanupTimeout, r.env.JobDeletion(job, uid))
	}
	if conn != nil {
		return conn.Delete(r.log)
	}
	if pod == nil {
		return nil
	}
	return sandbox.DeleteAll(r.log, r.opts.CleanupTimeout, r.env.PodDeletion(pod))
}

// refresh brings the session's Pod up to date and says whether it is still the session's live
// sandbox (track.Hub.SessionPodOf: the watch's copy, or the API server's when the watch does not
// show it live). err is the API server's, when it could not say.
func (s *Session) refresh(ctx context.Context) (pod *corev1.Pod, present bool, err error) {
	s.mu.Lock()
	pod = s.pod
	s.mu.Unlock()
	seen, err := s.r.hub.SessionPodOf(ctx, s.id, pod)
	switch {
	case err != nil || seen == nil:
		return pod, false, err
	case session.Newer(seen, pod):
		s.setPod(seen)
		return seen, true, nil
	}
	return pod, true, nil
}
