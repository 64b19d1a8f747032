package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/track"
)

// A session is one live interpreter in one sandbox across many executions: variables, imports
// and files under /workspace persist from one to the next, and nothing crosses to another
// session. Its sandbox comes through the same seam as a one-shot execution's — a claimed warm
// pool Pod when one is idle, else a Job of its own — and it is talked to over the same attach
// channel and framing as a warm sandbox; each execution's Result is completed by finish.
//
// The state lives in the sandbox, not in the runner: a session is addressed by its ID (the
// gkexec.dev/session label of its Pod), so any runner process can resume it with Runner.Session.
// Within one process a session runs one execution at a time (others wait their turn); across
// processes a runner writes a request only while it holds the session's lease (an annotation
// taken with a guarded patch), so two callers are serialised or the second refused with
// ErrSessionBusy, never interleaved.

// SessionOptions configures a new session.
type SessionOptions struct {
	// ID names the session (a DNS label of at most 38 characters); empty means a random one.
	ID string
	// IdleTimeout and MaxLifetime end the session; zero means Options.SessionIdleTimeout and
	// Options.SessionMaxLifetime, which are also their ceilings.
	IdleTimeout time.Duration
	MaxLifetime time.Duration
}

const (
	// sessionOpenTimeout bounds the sandbox's answer to the session's opening.
	sessionOpenTimeout = 30 * time.Second
	// sessionReadBuffer bounds the lines of session output waiting for a reader: with lines of at
	// most maxLineBytes, 1 MiB per attached session beside its execution's decoder.
	sessionReadBuffer = 16
)

// Session is an open session. It is safe for concurrent use; executions run one at a time.
type Session struct {
	r    *Runner
	id   string
	kind string // SandboxWarm or SandboxCold: where its sandbox came from
	// turn admits one execution of this process at a time; it is given back once the lease is.
	turn chan struct{}

	mu   sync.Mutex
	pod  *corev1.Pod // as last written by this runner (claim, lease) or seen by the watch
	job  string      // a cold session's Job
	conn *sessionConn
	over string // why the session ended, once it did
	// expiry is the runner's own check of the session's terms (idle timeout, lifetime), at the
	// earliest moment they may end it; the sandbox enforces them too.
	expiry *time.Timer
	// held is the Pod as this runner's lease patch left it, while it holds the lease, which
	// runs until heldUntil; unleasing gives it back sessionLeaseLinger after an execution
	// unless another one of this process takes it on first.
	held      *corev1.Pod
	heldUntil time.Time
	unleasing *time.Timer
}

const (
	// sessionLeaseLinger is how long a runner keeps a session's lease after an execution: an agent's
	// next execution often follows at once, and then needs no API call at all. Another process
	// waits for it (Runner.busyWait).
	sessionLeaseLinger = 300 * time.Millisecond
	// defaultBusyWait bounds how long an execution waits for another process's lease to be given
	// back before it is refused with ErrSessionBusy.
	defaultBusyWait = 5 * time.Second
)

// OpenSession starts a session: it claims an idle warm pool Pod (else creates a Job for it),
// attaches to its entrypoint and starts the session's interpreter there. The session outlives
// this Runner (Close detaches from it); CloseSession, Session.Close, its idle timeout or its
// maximum lifetime end it and delete its sandbox.
func (r *Runner) OpenSession(ctx context.Context, so SessionOptions) (*Session, error) {
	so, err := r.checkSession(so)
	if err != nil {
		return nil, err
	}
	end, err := r.begin("session/" + so.ID)
	if err != nil {
		return nil, err
	}
	defer end()
	h, err := r.watching(ctx)
	if err != nil {
		return nil, err
	}
	if r.attach == nil {
		return nil, fmt.Errorf("%w: sessions talk to their sandbox over pods/attach, which needs a REST config (Options.RESTConfig or a kubeconfig), not only Options.Client", ErrInvalidOptions)
	}
	if pod := h.SessionPod(so.ID); pod != nil {
		return nil, fmt.Errorf("%w: session %s already exists in namespace %s (pod %s); resume it with its ID or choose another", ErrInvalidRequest, so.ID, r.opts.Namespace, pod.Name)
	}
	expires := time.Now().Add(so.MaxLifetime)
	s := &Session{r: r, id: so.ID, turn: make(chan struct{}, 1)}
	log := r.log.With("session", so.ID, "namespace", r.opts.Namespace)
	if err := s.start(ctx, so, expires); err != nil {
		if left := s.delete(); len(left) > 0 {
			log.Warn("cleanup could not delete everything; run `gkexec gc`", "left_behind", left)
			r.countLeft(left)
		}
		return nil, err
	}
	r.mu.Lock()
	r.sessions[so.ID] = s
	r.mu.Unlock()
	s.arm()
	log.Debug("session open", "sandbox", s.kind, "pod", s.pod.Name)
	return s, nil
}

func (r *Runner) checkSession(so SessionOptions) (SessionOptions, error) {
	if so.ID == "" {
		so.ID = NewExecutionID()
	}
	var errs []error
	for _, msg := range SessionIDProblems(so.ID) {
		errs = append(errs, fmt.Errorf("session ID %q: %s", so.ID, msg))
	}
	limit := func(name string, d *time.Duration, ceiling time.Duration) {
		switch {
		case *d == 0:
			*d = ceiling
		case *d < 0 || *d > ceiling:
			errs = append(errs, fmt.Errorf("%s %s: must be positive and at most %s (the runner's ceiling)", name, *d, ceiling))
		}
	}
	limit("IdleTimeout", &so.IdleTimeout, r.opts.SessionIdleTimeout)
	limit("MaxLifetime", &so.MaxLifetime, r.opts.SessionMaxLifetime)
	if len(errs) > 0 {
		return so, fmt.Errorf("%w: %w", ErrInvalidRequest, errors.Join(errs...))
	}
	return so, nil
}

// MaxSessionIDLength is the longest session ID: a cold session's Job is gkexec-s-<id>.
const MaxSessionIDLength = maxExecutionIDLength - 2

// SessionIDProblems says what keeps id from being a session's ID — a DNS label of at most
// MaxSessionIDLength characters — or nothing when it is one. The CLI and serve check IDs with it
// before they contact anything.
func SessionIDProblems(id string) []string {
	var problems []string
	if len(id) > MaxSessionIDLength {
		problems = append(problems, fmt.Sprintf("longer than %d characters", MaxSessionIDLength))
	}
	return append(problems, validation.IsDNS1123Label(id)...)
}

// start obtains the session's sandbox and opens the session in it.
func (s *Session) start(ctx context.Context, so SessionOptions, expires time.Time) error {
	r := s.r
	meta := &metav1.ObjectMeta{Labels: map[string]string{LabelSession: so.ID}, Annotations: podspec.SessionAnnotations(so.IdleTimeout, expires)}
	r.mu.Lock()
	warm := r.warm
	r.mu.Unlock()
	var sb *warmSandbox
	if warm != nil {
		var tm Timings
		claimed, err := warm.claimAndAttach(ctx, so.MaxLifetime, meta, &tm)
		switch {
		case err == nil:
			s.kind, sb = SandboxWarm, claimed
			s.setPod(claimed.pod)
		case !errors.Is(err, errNotServed):
			return err
		default:
			r.log.Debug("session: cold start", "why", err)
		}
	}
	if sb == nil {
		s.kind = SandboxCold
		pod, err := s.createJob(ctx, so, expires)
		if err != nil {
			return err
		}
		s.setPod(pod)
		sb = warm.connect(pod)
		if err := sb.ping(ctx); err != nil {
			return fmt.Errorf("%w: attach to session pod %s/%s: %w", ErrSandboxFailed, r.opts.Namespace, pod.Name, err)
		}
	}
	conn := newSessionConn(sb)
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	hello := wire.FrameJSON(wire.TagSession, wire.Hello{ID: so.ID, IdleTimeoutSeconds: so.IdleTimeout.Seconds(),
		MaxLifetimeSeconds: time.Until(expires).Seconds(), MaxProcesses: max(r.opts.MaxProcesses, 0), ExitWhenOver: s.kind == SandboxCold})
	if err := conn.send(ctx, hello); err != nil {
		return fmt.Errorf("%w: pod %s/%s: opening the session: %w", ErrSandboxFailed, r.opts.Namespace, sb.pod.Name, err)
	}
	openCtx, cancel := context.WithTimeout(ctx, sessionOpenTimeout)
	defer cancel()
	for {
		line, err := conn.next(openCtx)
		if err != nil {
			return fmt.Errorf("%w: pod %s/%s: the sandbox did not open the session: %w", ErrSandboxFailed, r.opts.Namespace, sb.pod.Name, err)
		}
		if wire.TagSession.Starts(line) {
			return nil
		}
	}
}

// createJob makes a cold session's Job and waits for its Pod to run.
func (s *Session) createJob(ctx context.Context, so SessionOptions, expires time.Time) (*corev1.Pod, error) {
	r := s.r
	id := podspec.SessionSandboxID(so.ID)
	job := podspec.SessionJob(&r.shape, so.ID, so.MaxLifetime, so.IdleTimeout, expires)
	s.job = job.Name
	t := r.hub.Track(id)
	defer r.hub.Untrack(id, t)
	sb := &coldSandbox{r: r, t: t, name: job.Name}
	if err := sb.create(ctx, nil, job); err != nil {
		return nil, err
	}
	x := &execution{req: Request{ExecutionID: id}, log: r.log}
	if err := sb.awaitStart(ctx, x); err != nil {
		return nil, err
	}
	pod, _, _, _ := t.Snapshot()
	return pod, nil
}

// Session returns the open session id, resuming it when this process has not used it yet (its
// Pod is found by label and attached to on the first execution).
func (r *Runner) Session(ctx context.Context, id string) (*Session, error) {
	r.mu.Lock()
	s := r.sessions[id]
	r.mu.Unlock()
	if s != nil {
		return s, nil
	}
	h, err := r.watching(ctx)
	if err != nil {
		return nil, err
	}
	if r.attach == nil {
		return nil, fmt.Errorf("%w: sessions need pods/attach, which needs a REST config", ErrInvalidOptions)
	}
	pod := h.SessionPod(id)
	if why := r.endedSession(h, id, pod); why != "" {
		return nil, fmt.Errorf("%w: session %s: %s; its sandbox is being deleted", ErrSessionEnded, id, why)
	}
	if pod == nil {
		return nil, fmt.Errorf("%w: session %s in namespace %s: no running sandbox carries it (closed, expired, or never opened)", ErrSessionNotFound, id, r.opts.Namespace)
	}
	s = &Session{r: r, id: id, kind: SandboxCold, turn: make(chan struct{}, 1)}
	if pod.Labels[LabelPool] != "" {
		s.kind = SandboxWarm
	} else {
		s.job = podspec.ObjectName(podspec.SessionSandboxID(id))
	}
	s.setPod(pod)
	r.mu.Lock()
	defer r.mu.Unlock()
	if existing := r.sessions[id]; existing != nil {
		return existing, nil
	}
	r.sessions[id] = s
	s.arm()
	return s, nil
}

// arm schedules the runner's check of the session's terms for when they may next end it.
func (s *Session) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over != "" || s.pod == nil {
		return
	}
	at := sessionDeadline(s.pod)
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.expiry = time.AfterFunc(time.Until(at)+time.Second, s.checkExpiry)
}

// checkExpiry ends the session if its terms say so, as another process may have used it since
// (its Pod's last-used annotation); a session executing now is looked at again later.
func (s *Session) checkExpiry() {
	select {
	case s.turn <- struct{}{}:
	default:
		s.arm()
		return
	}
	defer func() { <-s.turn }()
	pod, _ := s.refresh()
	why := sessionExpired(pod, time.Now())
	if why == "" {
		s.arm()
		return
	}
	s.r.log.Debug("session expired", "session", s.id, "why", why)
	s.end(why)
	s.r.countLeft(s.delete())
}

// sessionDeadline is the earliest moment the session's terms may end it.
func sessionDeadline(pod *corev1.Pod) time.Time {
	a := pod.Annotations
	at, err := time.Parse(time.RFC3339, a[AnnotationSessionExpiresAt])
	if err != nil {
		at = time.Now().Add(time.Hour)
	}
	idle, err := time.ParseDuration(a[AnnotationSessionIdleTimeout])
	last, err2 := time.Parse(time.RFC3339, a[AnnotationSessionLastUsed])
	if err == nil && err2 == nil && last.Add(idle).Before(at) {
		at = last.Add(idle)
	}
	return at
}

// endedSession says why session id ended, if this runner ended it and pod is still its sandbox
// (deleted, but not gone yet).
func (r *Runner) endedSession(h *track.Hub, id string, pod *corev1.Pod) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.ended[id]
	switch {
	case !ok:
		return ""
	case pod == nil || pod.UID != e.uid:
		delete(r.ended, id)
		return ""
	}
	return e.why
}

// endedSessionPod is a session this runner ended, and its Pod's UID.
type endedSessionPod struct {
	uid types.UID
	why string
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
	s.unlease()
	<-s.turn
	s.mu.Lock()
	conn := s.conn
	s.conn = nil
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.mu.Unlock()
	if conn != nil {
		conn.close()
	}
	s.r.mu.Lock()
	if s.r.sessions[s.id] == s {
		delete(s.r.sessions, s.id)
	}
	s.r.mu.Unlock()
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
	if s.expiry != nil {
		s.expiry.Stop()
	}
	if s.unleasing != nil {
		s.unleasing.Stop()
	}
	s.held = nil
	pod, why := s.pod, s.over
	s.mu.Unlock()
	s.r.mu.Lock()
	if s.r.sessions[s.id] == s {
		delete(s.r.sessions, s.id)
	}
	// Remember it while its Pod goes; forget those whose Pods are gone, so that the list stays
	// as short as the Pods still terminating.
	for other := range s.r.ended {
		if s.r.hub.SessionPod(other) == nil {
			delete(s.r.ended, other)
		}
	}
	if pod != nil {
		s.r.ended[s.id] = endedSessionPod{uid: pod.UID, why: why}
	}
	s.r.mu.Unlock()
}

// delete removes the session's sandbox, retrying until Options.CleanupTimeout, and returns what
// it could not delete.
func (s *Session) delete() []string {
	r := s.r
	s.mu.Lock()
	conn, pod, job := s.conn, s.pod, s.job
	s.conn = nil
	s.mu.Unlock()
	if r.opts.KeepObjects {
		return nil
	}
	if job != "" {
		if conn != nil {
			conn.close()
		}
		return (&coldSandbox{r: r, name: job, made: made{job: true}}).release(r.log)
	}
	if conn != nil {
		return conn.sb.release(r.log)
	}
	if pod == nil {
		return nil
	}
	return deleteAll(r.log, r.opts.CleanupTimeout, r.podDeletion(pod))
}

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
	x.session, x.kind = s.id, s.kind
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
	x.mark(&x.timings.Admitted)
	conn, pod, err := s.ready(ctx, x)
	if err != nil {
		giveBack()
		return r.finish(ctx, x, err)
	}
	x.noteSandbox(s.kind, pod)
	_, err = s.lease(ctx, x, pod)
	if err != nil {
		giveBack()
		return r.finish(ctx, x, err)
	}
	sb := &sessionSandbox{s: s, conn: conn}
	err = r.exchange(ctx, x, sb)
	switch {
	case x.dec != nil && x.dec.End() != nil && x.dec.End().SessionOver != "":
		x.sessionOver = x.dec.End().SessionOver
	case x.killed:
		x.sessionOver = "the sandbox did not answer within the timeout and a grace period"
	case err == nil && !x.codeEnded():
		x.sessionOver = "the sandbox ended without a result"
	case err != nil && ctx.Err() != nil:
		// The caller gave up: interrupt the code, so that the session is free for the next.
		_ = conn.send(context.Background(), wire.Interrupt)
	}
	if x.sessionOver != "" {
		s.end(x.sessionOver)
		if x.leftBehind = s.delete(); len(x.leftBehind) == 0 {
			x.mark(&x.timings.CleanedUp)
		}
		r.countLeft(x.leftBehind)
		giveBack()
	} else {
		// Keep the lease a moment for this process's next execution; give it back after that.
		s.mu.Lock()
		if s.unleasing != nil {
			s.unleasing.Stop()
		}
		s.unleasing = time.AfterFunc(sessionLeaseLinger, s.unleaseIfIdle)
		s.mu.Unlock()
		giveBack()
	}
	return r.finish(ctx, x, err)
}

// ready returns the session's attach, attaching first when this process has none (a resumed
// session, or one whose stream broke), after checking that the session is still what it was.
func (s *Session) ready(ctx context.Context, x *execution) (*sessionConn, *corev1.Pod, error) {
	r := s.r
	s.mu.Lock()
	over, conn := s.over, s.conn
	s.mu.Unlock()
	if over != "" {
		return nil, nil, fmt.Errorf("%w: session %s: %s", ErrSessionEnded, s.id, over)
	}
	pod, present := s.refresh()
	if !present {
		s.end("its sandbox is gone")
		s.delete()
		return nil, nil, fmt.Errorf("%w: session %s in namespace %s: its sandbox pod %s is gone (closed, expired or evicted)", ErrSessionEnded, s.id, r.opts.Namespace, pod.Name)
	}
	if why := sessionExpired(pod, time.Now()); why != "" {
		x.sessionOver = why
		s.end(why)
		s.delete()
		return nil, nil, fmt.Errorf("%w: session %s: %s", ErrSessionEnded, s.id, why)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == podspec.ContainerName && cs.RestartCount > 0 {
			why := "its sandbox restarted, and the interpreter's state with it"
			s.end(why)
			s.delete()
			return nil, nil, fmt.Errorf("%w: session %s: %s", ErrSessionEnded, s.id, why)
		}
	}
	if conn != nil && !conn.broken() {
		return conn, pod, nil
	}
	if conn != nil {
		conn.close()
	}
	sb := r.warm.connect(pod)
	conn = newSessionConn(sb)
	answer, err := conn.ping(ctx)
	if err != nil {
		conn.close()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("%w: session %s: attach to pod %s/%s: %w", ErrSandboxFailed, s.id, r.opts.Namespace, pod.Name, err)
	}
	if answer.Session != s.id {
		conn.close()
		why := "its sandbox no longer holds the session's interpreter"
		s.end(why)
		s.delete()
		return nil, nil, fmt.Errorf("%w: session %s: %s", ErrSessionEnded, s.id, why)
	}
	x.mark(&x.timings.Attached)
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	return conn, pod, nil
}

// refresh brings the session's Pod up to date from the shared watch, and says whether the watch
// still has that Pod.
func (s *Session) refresh() (pod *corev1.Pod, present bool) {
	s.mu.Lock()
	pod = s.pod
	s.mu.Unlock()
	seen := s.r.hub.SessionPod(s.id)
	if seen == nil || seen.UID != pod.UID {
		return pod, false
	}
	if newer(seen, pod) {
		s.setPod(seen)
		return seen, true
	}
	return pod, true
}

// newer reports whether a is a later version of the same Pod than b. resourceVersions are
// opaque; the watch's copy is newer unless it is the one this runner's own patch replaced.
func newer(a, b *corev1.Pod) bool {
	if a.ResourceVersion == b.ResourceVersion {
		return false
	}
	at, bt := a.Annotations[AnnotationSessionLease], b.Annotations[AnnotationSessionLease]
	return at == bt || a.Annotations[AnnotationSessionLastUsed] >= b.Annotations[AnnotationSessionLastUsed]
}

// sessionExpired says why the session on pod is over by its own terms, or "".
func sessionExpired(pod *corev1.Pod, now time.Time) string {
	a := pod.Annotations
	if at, err := time.Parse(time.RFC3339, a[AnnotationSessionExpiresAt]); err == nil && !now.Before(at) {
		return "max lifetime reached"
	}
	idle, err := time.ParseDuration(a[AnnotationSessionIdleTimeout])
	last, err2 := time.Parse(time.RFC3339, a[AnnotationSessionLastUsed])
	if err == nil && err2 == nil && now.Sub(last) >= idle {
		if _, _, until := parseLease(a[AnnotationSessionLease]); !now.Before(until) {
			return "idle timeout reached"
		}
	}
	return ""
}

// lease takes the session's lease for x: no other runner process may write to the session's
// stdin until it is given back or expires (x's timeout, the kill grace and slack from now).
func (s *Session) lease(ctx context.Context, x *execution, pod *corev1.Pod) (*corev1.Pod, error) {
	r := s.r
	ns := r.opts.Namespace
	need := time.Now().Add(x.timeout + r.killGrace)
	s.mu.Lock()
	if s.unleasing != nil {
		s.unleasing.Stop()
	}
	held, heldUntil := s.held, s.heldUntil
	s.mu.Unlock()
	if held != nil {
		if !heldUntil.Before(need) {
			return held, nil // still ours, for long enough: no API call
		}
		pod = held
	}
	waitUntil := time.Now().Add(r.busyWait)
	for attempt := 0; ; attempt++ {
		holder, exec, until := parseLease(pod.Annotations[AnnotationSessionLease])
		if holder != "" && holder != r.holder && time.Now().Before(until) {
			if time.Now().Before(waitUntil) {
				// Another process holds it: its execution may be about to end. Wait for the
				// watch to show the Pod change.
				fresh, err := s.awaitChange(ctx, pod, time.Until(waitUntil))
				if err == nil {
					pod = fresh
					continue
				}
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
			}
			return nil, fmt.Errorf("%w: session %s is running execution %s for %s until %s at the latest; try again when it is done",
				ErrSessionBusy, s.id, exec, holder, until.Format(time.RFC3339))
		}
		until = time.Now().Add(x.timeout + r.killGrace + podspec.DeadlineSlack*time.Second)
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": pod.ResourceVersion,
			"labels":          map[string]string{LabelExecutionID: x.req.ExecutionID},
			"annotations":     map[string]string{AnnotationSessionLease: fmt.Sprintf("%s %s %s", r.holder, x.req.ExecutionID, until.UTC().Format(time.RFC3339))},
		}})
		leased, err := r.client.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		switch {
		case err == nil:
			s.setPod(leased)
			s.mu.Lock()
			s.held, s.heldUntil = leased, until
			s.mu.Unlock()
			return leased, nil
		case apierrors.IsConflict(err) && attempt < 3:
			// Someone changed the Pod since this runner saw it: wait for the watch to show the
			// change, and look again.
			fresh, werr := s.awaitChange(ctx, pod, attachTimeout)
			if werr != nil {
				return nil, werr
			}
			pod = fresh
		case apierrors.IsNotFound(err):
			s.end("its sandbox is gone")
			return nil, fmt.Errorf("%w: session %s: its sandbox pod %s/%s is gone", ErrSessionEnded, s.id, ns, pod.Name)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			return nil, diagnose.APIError(err, "patch", "pods", ns, pod.Name)
		}
	}
}

// awaitChange waits for the shared watch to show the session's Pod changed from was: another
// resourceVersion, or another lease.
func (s *Session) awaitChange(ctx context.Context, was *corev1.Pod, within time.Duration) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		if pod := s.r.hub.SessionPod(s.id); pod == nil {
			s.end("its sandbox is gone")
			return nil, fmt.Errorf("%w: session %s: its sandbox pod is gone", ErrSessionEnded, s.id)
		} else if pod.ResourceVersion != was.ResourceVersion || pod.Annotations[AnnotationSessionLease] != was.Annotations[AnnotationSessionLease] {
			return pod, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: session %s: the watch did not show its pod change within %s: %w", ErrCluster, s.id, within, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
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
	s.unlease()
	s.arm()
}

// unlease gives a held lease back and records the session's last use, unless someone else
// changed the Pod since (a lease that expired and was taken is theirs).
func (s *Session) unlease() {
	r := s.r
	s.mu.Lock()
	leased := s.held
	s.held = nil
	if s.unleasing != nil {
		s.unleasing.Stop()
	}
	s.mu.Unlock()
	if leased == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.CleanupTimeout)
	defer cancel()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": leased.ResourceVersion,
		"annotations": map[string]any{
			AnnotationSessionLease:    nil,
			AnnotationSessionLastUsed: time.Now().UTC().Format(time.RFC3339),
		},
	}})
	pod, err := r.client.CoreV1().Pods(r.opts.Namespace).Patch(ctx, leased.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		r.log.Debug("could not give the session lease back; it expires by itself", "session", s.id, "error", err)
		return
	}
	s.setPod(pod)
}

// parseLease reads AnnotationSessionLease: "<holder> <execution> <until>".
func parseLease(v string) (holder, execution string, until time.Time) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return "", "", time.Time{}
	}
	until, err := time.Parse(time.RFC3339, f[2])
	if err != nil {
		return "", "", time.Time{}
	}
	return f[0], f[1], until
}

// sessionSandbox is the session's sandbox as exchange sees it for one execution: the request goes
// down the session's attach, and the stream is that execution's records, from its begin record
// to its end record.
type sessionSandbox struct {
	s    *Session
	conn *sessionConn
}

func (sb *sessionSandbox) kind() string { return sb.s.kind }

func (sb *sessionSandbox) tracker() *track.Tracker { return sb.conn.sb.t }

func (sb *sessionSandbox) open(ctx context.Context, x *execution) (io.ReadCloser, error) {
	if err := sb.conn.send(ctx, x.sandboxRequest(&sb.s.r.opts).Encode(true)); err != nil {
		return nil, fmt.Errorf("%w: session %s: sending the request: %v", ErrSandboxFailed, sb.s.id, err)
	}
	x.mark(&x.timings.Started)
	return wire.NewRecords(x.req.ExecutionID, func() ([]byte, error) { return sb.conn.next(ctx) }), nil
}

// reopen: a session's output is not read again; its attach is opened anew for the next execution.
func (sb *sessionSandbox) reopen(context.Context) io.ReadCloser { return nil }

// release: the session's sandbox outlives its executions.
func (sb *sessionSandbox) release(*slog.Logger) []string { return nil }

// sessionConn is an attach to a session's entrypoint whose output is read line by line by one
// pump, so that executions (and pings) take lines with their own deadlines without ever cutting
// the stream.
type sessionConn struct {
	sb    *warmSandbox
	lines chan []byte
	wmu   sync.Mutex // one writer at a time on stdin
}

func newSessionConn(sb *warmSandbox) *sessionConn {
	c := &sessionConn{sb: sb, lines: make(chan []byte, sessionReadBuffer)}
	go c.pump()
	return c
}

func (c *sessionConn) pump() {
	defer close(c.lines)
	br := bufio.NewReaderSize(c.sb.out, wire.MaxLineBytes)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			for err == bufio.ErrBufferFull { // no record is that long: drop it
				_, err = br.ReadSlice('\n')
			}
			continue
		}
		if len(line) > 0 {
			c.lines <- append([]byte(nil), bytes.TrimRight(line, "\r\n")...)
		}
		if err != nil {
			return
		}
	}
}

// next is the next line of output, without its newline.
func (c *sessionConn) next(ctx context.Context) ([]byte, error) {
	select {
	case line, ok := <-c.lines:
		if !ok {
			err := c.sb.err
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("the attach stream ended: %w", err)
		}
		return append(line, '\n'), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *sessionConn) send(ctx context.Context, b []byte) error {
	written := make(chan error, 1)
	go func() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		_, err := c.sb.stdin.Write(b)
		written <- err
	}()
	select {
	case err := <-written:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ping checks the attach end to end and asks the entrypoint which session it holds; lines that
// come before the answer (an interrupted execution's) are skipped.
func (c *sessionConn) ping(ctx context.Context) (wire.PingAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, attachTimeout)
	defer cancel()
	if err := c.send(ctx, wire.Ping); err != nil {
		return wire.PingAnswer{}, err
	}
	for {
		line, err := c.next(ctx)
		if err != nil {
			return wire.PingAnswer{}, err
		}
		if answer, ok := wire.ParsePing(line); ok {
			return answer, nil
		}
	}
}

func (c *sessionConn) broken() bool { return c.sb.broken() }

// close ends this attach (the session goes on in its sandbox).
func (c *sessionConn) close() {
	_ = c.sb.stdin.Close()
	c.sb.cancel()
	select {
	case <-c.sb.done:
	case <-time.After(streamCloseGrace):
	}
	c.sb.w.h.Untrack(track.PodKey(c.sb.pod.Name), c.sb.t)
}
