package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
)

// sessionOpenTimeout bounds the sandbox's answer to the session's opening.
const sessionOpenTimeout = 30 * time.Second

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
	if r.env.Attach == nil {
		return nil, fmt.Errorf("%w: sessions talk to their sandbox over pods/attach, which needs a REST config (Options.RESTConfig or a kubeconfig), not only Options.Client", ErrInvalidOptions)
	}
	// The watch may still show the Pod of a session of this ID just closed: the API server decides.
	if pod := h.SessionPod(so.ID); pod != nil && r.goneNow(ctx, pod) == "" {
		return nil, fmt.Errorf("%w: session %s already exists in namespace %s (pod %s); resume it with its ID or choose another", ErrInvalidRequest, so.ID, r.opts.Namespace, pod.Name)
	}
	if err := r.takeSessionID(ctx, so.ID); err != nil {
		return nil, err
	}
	expires := time.Now().Add(so.MaxLifetime)
	s := r.newSession(so.ID, "")
	log := r.log.With("session", so.ID, "namespace", r.opts.Namespace)
	if err := s.start(ctx, so, expires); err != nil {
		if left := s.delete(); len(left) > 0 {
			log.Warn("cleanup could not delete everything; run `gkexec gc`", "left_behind", left)
			r.countLeft(left)
		}
		return nil, err
	}
	r.background(func() { r.adoptSessionMarker(s) })
	r.sessions.add(s)
	log.Debug("session open", "sandbox", s.kind, "pod", s.pod.Name)
	return s, nil
}

func (r *Runner) checkSession(so SessionOptions) (SessionOptions, error) {
	if so.ID == "" {
		so.ID = NewSessionID()
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
	if why := languageProblem(so.Language); why != "" {
		errs = append(errs, errors.New(why))
	}
	for _, why := range allowDomainsProblems("AllowDomains", so.AllowDomains) {
		errs = append(errs, errors.New(why))
	}
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

// start obtains the session's sandbox — a claimed warm pool Pod, else a Job of its own — and
// opens the session in it.
func (s *Session) start(ctx context.Context, so SessionOptions, expires time.Time) error {
	r := s.r
	r.mu.Lock()
	warm := r.warm
	r.mu.Unlock()
	var a *sandbox.Attachment
	var miss string // why the pool did not serve the session
	switch {
	case warm != nil && len(so.AllowDomains) > 0:
		// A narrowed session's Pod is created with its narrowing (see WarmSource.Acquire).
		miss = r.pool.missed(sandbox.ErrNarrowed)
	case warm != nil:
		var marks sandbox.Marks
		claimed, err := warm.ClaimAndAttach(ctx, sandbox.Claim{For: podspec.ClaimedForSession, Hold: so.MaxLifetime,
			Labels: map[string]string{LabelSession: so.ID}, Annotations: podspec.SessionAnnotations(so.IdleTimeout, expires, so.Language)}, &marks)
		switch {
		case err == nil:
			r.pool.claimed()
			s.kind, a = SandboxWarm, claimed
			s.setPod(claimed.Pod)
		case !errors.Is(err, sandbox.ErrNotServed):
			return err
		default:
			r.log.Debug("session: cold start", "why", err)
			miss = r.pool.missed(err)
		}
	}
	if a == nil {
		s.kind = SandboxCold
		job := podspec.SessionJob(&r.env.Shape, so.ID, so.Language, so.MaxLifetime, so.IdleTimeout, expires)
		podspec.NarrowEgress(&job.Spec.Template, so.AllowDomains)
		if miss != "" {
			podspec.MarkPoolMiss(job, r.opts.WarmPool, miss)
		}
		pod, made, err := r.env.StartSessionJob(ctx, job)
		if made {
			s.mu.Lock()
			s.job = job.Name
			s.mu.Unlock()
		}
		if err != nil {
			return err
		}
		s.setPod(pod)
		a = r.env.Connect(pod)
		if err := a.Ping(ctx, wire.PingRequest{}); err != nil {
			return fmt.Errorf("%w: attach to session pod %s/%s: %w", ErrSandboxFailed, r.opts.Namespace, pod.Name, err)
		}
	}
	conn := sandbox.NewConn(a)
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	hello := wire.FrameJSON(wire.TagSession, wire.Hello{ID: so.ID, IdleTimeoutSeconds: so.IdleTimeout.Seconds(),
		MaxLifetimeSeconds: time.Until(expires).Seconds(), MaxProcesses: max(r.opts.MaxProcesses, 0), ExitWhenOver: s.kind == SandboxCold,
		Language: so.Language})
	if err := conn.Send(ctx, hello); err != nil {
		return fmt.Errorf("%w: pod %s/%s: opening the session: %w", ErrSandboxFailed, r.opts.Namespace, a.Pod.Name, err)
	}
	openCtx, cancel := context.WithTimeout(ctx, sessionOpenTimeout)
	defer cancel()
	for {
		line, err := conn.Next(openCtx)
		if err != nil {
			return fmt.Errorf("%w: pod %s/%s: the sandbox did not open the session: %w", ErrSandboxFailed, r.opts.Namespace, a.Pod.Name, err)
		}
		if opened, ok := wire.ParseOpened(line); ok {
			if opened.Refused != "" {
				return fmt.Errorf("%w: the sandbox refused to open session %s: %s; nothing was opened", ErrInvalidRequest, so.ID, opened.Refused)
			}
			return nil
		}
	}
}

// takeSessionID makes session id's marker: the API server creates an object of a name once, so
// of two processes opening one ID at the same moment the second is refused here, before it claims
// or creates anything.
func (r *Runner) takeSessionID(ctx context.Context, id string) error {
	marker := podspec.SessionMarker(&r.env.Shape, id)
	err := diagnose.RetryQuotaConflict(func() error {
		_, err := r.client.CoreV1().ConfigMaps(r.opts.Namespace).Create(ctx, marker, metav1.CreateOptions{})
		return err
	})
	switch {
	case err == nil:
		return nil
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%w: session %s already exists in namespace %s (another process opened it, or is opening it); resume it with its ID or choose another",
			ErrInvalidRequest, id, r.opts.Namespace)
	}
	// A create whose fate is unknown may have made the marker: Session.delete removes it.
	return diagnose.ClarifyForbidden(ctx, r.client, r.opts.Namespace, diagnose.APIError(err, "create", "configmaps", r.opts.Namespace, marker.Name))
}

// adoptSessionMarker makes the session's sandbox own its marker — a cold session's Job, a warm
// session's Pod — so that the garbage collector removes the marker with the sandbox, however the
// sandbox goes. Off the critical path: until then Session.delete and `gkexec gc` remove it.
func (r *Runner) adoptSessionMarker(s *Session) {
	s.mu.Lock()
	pod := s.pod
	s.mu.Unlock()
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == "Job" {
		owner = *ref
		owner.Controller, owner.BlockOwnerDeletion = nil, nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"ownerReferences": []metav1.OwnerReference{owner}}})
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.CleanupTimeout)
	defer cancel()
	name := podspec.SessionMarkerName(s.id)
	if _, err := r.client.CoreV1().ConfigMaps(r.opts.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		r.log.Debug("could not make the session's sandbox own its marker; the runner and gc still delete it", "configmap", name, "error", err)
	}
}
