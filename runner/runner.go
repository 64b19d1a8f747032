package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/track"
)

const (
	// defaultKillGrace is how long past Timeout the runner waits for the sandbox's own timeout
	// record before it deletes the sandbox itself.
	defaultKillGrace = 10 * time.Second
	// defaultExitGrace is how long the runner waits, after the output ends without an end record,
	// for the kubelet to report why the container stopped (OOM kill, eviction).
	defaultExitGrace = 20 * time.Second
	// watchStartTimeout bounds the first list of the shared watches.
	watchStartTimeout = 30 * time.Second
)

// Runner executes code in sandboxes: a pre-started Pod of the warm pool when one is ready and
// matches, otherwise a Job created for the execution. It is safe for concurrent use; create one
// per namespace and share it, so that all executions share one set of watches. Call Close when done.
type Runner struct {
	opts Options
	// shape is the sandbox the options describe, as the object builders take it.
	shape  podspec.Shape
	client kubernetes.Interface
	log    *slog.Logger
	// openLogs streams the sandbox container's log; tests replace it, since fake clientsets
	// cannot serve logs.
	openLogs func(ctx context.Context, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error)
	// attach connects stdin and stdout to a warm sandbox's entrypoint until ctx ends; nil when
	// the runner has no REST config to attach with. Tests replace it.
	attach attachFunc
	// killGrace, exitGrace and busyWait: see their defaults; tests shorten them.
	killGrace, exitGrace, busyWait time.Duration
	// stopping is closed by Close once no execution is in flight: background waits end early.
	stopping chan struct{}

	mu       sync.Mutex
	closed   bool
	running  map[string]bool // execution IDs in flight
	inflight sync.WaitGroup  // executions in flight, which Close waits for
	starting *hubStart
	hub      *track.Hub
	// admission bounds the cold sandboxes in flight; set with hub.
	admission *admission
	cold      coldSource
	warm      *warmSource
	// work tracks background work (ConfigMap ownership patches, the watches' start, deleting
	// used warm sandboxes) that Close waits for.
	work      sync.WaitGroup
	leftCount atomic.Int64
	// holder names this runner process on what it claims and leases ("<host>/<pid>").
	holder string
	// sessions this process has opened or resumed, by ID; ended, those it ended whose Pods may
	// not be gone yet.
	sessions map[string]*Session
	ended    map[string]endedSessionPod
}

// hubStart is the one start of the shared watches that concurrent callers wait for.
type hubStart struct {
	done chan struct{}
	err  error
}

// New validates the options and returns a Runner. It does not contact the cluster: the first
// Execute starts the shared watches.
func New(opts Options) (*Runner, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	client, err := NewClient(opts)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	r := &Runner{opts: opts, shape: opts.shape(), client: client, log: opts.Logger, running: map[string]bool{}, stopping: make(chan struct{}),
		killGrace: defaultKillGrace, exitGrace: defaultExitGrace, busyWait: defaultBusyWait, holder: fmt.Sprintf("%s/%d", host, os.Getpid()),
		sessions: map[string]*Session{}, ended: map[string]endedSessionPod{}}
	r.cold = coldSource{r}
	r.openLogs = func(ctx context.Context, pod string, lo *corev1.PodLogOptions) (io.ReadCloser, error) {
		return r.client.CoreV1().Pods(r.opts.Namespace).GetLogs(pod, lo).Stream(ctx)
	}
	if !opts.NoWarmPool {
		if cfg, err := restConfigForAttach(opts); err == nil {
			r.attach = newAttacher(cfg, opts.Namespace)
		} else {
			r.log.Debug("no warm pool: cannot attach without a REST config", "error", err)
		}
	}
	return r, nil
}

// Options returns the effective options, defaults filled in.
func (r *Runner) Options() Options { return r.opts }

// Client returns the Kubernetes client the runner uses.
func (r *Runner) Client() kubernetes.Interface { return r.client }

// Close refuses new executions, waits for those in flight (cancel their contexts to hurry them),
// releases the warm sandboxes held ready, stops the shared watches and waits for background work.
func (r *Runner) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.inflight.Wait()
	// Sessions outlive the runner: detach from them, leaving them for another process to resume.
	r.mu.Lock()
	var open []*Session
	for _, s := range r.sessions {
		open = append(open, s)
	}
	r.mu.Unlock()
	for _, s := range open {
		s.Detach()
	}
	close(r.stopping)
	if r.warm != nil {
		r.warm.close()
	}
	r.work.Wait()
	if r.hub != nil {
		r.hub.Close()
	}
	return nil
}

// background runs f on its own goroutine; Close waits for it.
func (r *Runner) background(f func()) {
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		f()
	}()
}

// begin admits an execution: not after Close, and not twice with one ID, whose objects and
// events could not be told apart.
func (r *Runner) begin(id string) (end func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("%w: runner is closed", ErrInvalidRequest)
	}
	if r.running[id] {
		return nil, fmt.Errorf("%w: execution %s is already running on this runner; use a new execution ID", ErrInvalidRequest, id)
	}
	r.running[id] = true
	r.inflight.Add(1)
	return func() {
		r.mu.Lock()
		delete(r.running, id)
		r.mu.Unlock()
		r.inflight.Done()
	}, nil
}

// watching returns the shared watches, starting them on first use. A caller waits for the start
// no longer than its own context allows; a failed start is tried again by the next caller.
func (r *Runner) watching(ctx context.Context) (*track.Hub, error) {
	r.mu.Lock()
	if r.hub != nil {
		h := r.hub
		r.mu.Unlock()
		return h, nil
	}
	st := r.starting
	if st == nil {
		st = &hubStart{done: make(chan struct{})}
		r.starting = st
		r.work.Add(1)
		go r.startHub(st)
	}
	r.mu.Unlock()
	select {
	case <-st.done:
		if st.err != nil {
			return nil, st.err
		}
		return r.hub, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Runner) startHub(st *hubStart) {
	defer r.work.Done()
	ctx, cancel := context.WithTimeout(context.Background(), watchStartTimeout)
	defer cancel()
	h := track.NewHub()
	err := h.Start(ctx, r.client, r.opts.Namespace)
	r.mu.Lock()
	if err != nil {
		h.Close()
		st.err = err
		r.starting = nil
	} else {
		r.admission = newAdmission(maxInFlight(ctx, r.client, &r.opts))
		r.hub = h
		if r.attach != nil {
			r.warm = newWarmSource(r, h)
		}
	}
	r.mu.Unlock()
	close(st.done)
}

// Start starts the shared watches, and the warm pool's refill, now instead of on the first
// Execute: a server calls it at startup, so that its first request finds a sandbox held ready.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return fmt.Errorf("%w: runner is closed", ErrInvalidRequest)
	}
	_, err := r.watching(ctx)
	return err
}

// NewExecutionID returns a random execution ID.
func NewExecutionID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CheckRequest validates a request without running it: the same checks Execute makes before it
// creates anything.
func (r *Runner) CheckRequest(req Request) error {
	req, err := req.validate(&r.opts, NewExecutionID)
	if err != nil {
		return err
	}
	if n := podspec.RequestSize(wire.Request{Code: req.Code, Files: req.Files}); n > podspec.MaxConfigMapBytes {
		return fmt.Errorf("%w: %w: code and input files are %s, more than a ConfigMap holds (%s); pass large inputs another way or split the work",
			ErrInvalidRequest, ErrRequestTooLarge, describeSize(n), describeSize(podspec.MaxConfigMapBytes))
	}
	return nil
}

// Execute runs req.Code in a sandbox and returns what it produced. A non-zero exit code is a
// result, not an error. On timeout it returns the partial Result and an error wrapping ErrTimeout.
// The sandbox comes from the warm pool when a matching Pod is ready there, else from a new Job; it
// serves this one execution and is deleted before Execute returns (unless Options.KeepObjects),
// on every path. What could not be deleted is named in Result.LeftBehind.
func (r *Runner) Execute(ctx context.Context, req Request) (Result, error) {
	x, err := r.prepare(req)
	if err != nil {
		return r.finish(ctx, x, err)
	}
	end, err := r.begin(x.req.ExecutionID)
	if err != nil {
		return r.finish(ctx, x, err)
	}
	defer end()
	defer x.leaveAdmission()
	if _, err := r.watching(ctx); err != nil {
		return r.finish(ctx, x, err)
	}
	sb, err := r.acquire(ctx, x)
	if err != nil {
		return r.finish(ctx, x, err)
	}
	err = r.exchange(ctx, x, sb)
	switch {
	case r.opts.KeepObjects:
	case sb.kind() == SandboxWarm && err == nil && x.codeEnded():
		// The code is over and the Pod, out of the pool and with its stdin closed, can never serve
		// again: deleting it need not delay the result. Close waits for it; a Pod that cannot be
		// deleted expires at the deadline set when it was claimed.
		r.background(func() { r.countLeft(sb.release(x.log)) })
	default:
		if x.leftBehind = sb.release(x.log); len(x.leftBehind) == 0 {
			x.mark(&x.timings.CleanedUp)
		}
		r.countLeft(x.leftBehind)
	}
	return r.finish(ctx, x, err)
}

// prepare checks req and starts the execution's facts: when it was asked for, its ID (a random
// one if none), its timeout and its logger.
func (r *Runner) prepare(req Request, logAttrs ...any) (*execution, error) {
	x := &execution{req: req, log: r.log}
	x.mark(&x.timings.Requested)
	if err := r.CheckRequest(req); err != nil {
		return x, err
	}
	if x.req.ExecutionID == "" {
		x.req.ExecutionID = NewExecutionID()
	}
	x.timeout = x.req.timeout(&r.opts)
	x.log = r.log.With(append(logAttrs, "execution", x.req.ExecutionID, "namespace", r.opts.Namespace)...)
	return x, nil
}

// CleanupFailures counts the objects this runner could not delete (after retrying for
// Options.CleanupTimeout), including those of warm sandboxes deleted after Execute returned.
// `gkexec gc` removes them.
func (r *Runner) CleanupFailures() int64 { return r.leftCount.Load() }

func (r *Runner) countLeft(left []string) { r.leftCount.Add(int64(len(left))) }

// acquire takes a warm sandbox when one fits, and otherwise makes a cold one: an empty pool, no
// pool, or a request the pool cannot serve never fails an execution.
func (r *Runner) acquire(ctx context.Context, x *execution) (sandbox, error) {
	r.mu.Lock()
	warm := r.warm
	r.mu.Unlock()
	if warm != nil {
		sb, err := warm.acquire(ctx, x)
		if err == nil {
			return sb, nil
		}
		if !errors.Is(err, errNotServed) {
			return nil, err
		}
		x.log.Debug("cold start", "why", err)
		x.timings.Claimed, x.timings.Attached = time.Time{}, time.Time{}
	}
	return r.cold.acquire(ctx, x)
}

// explain adds what the API can tell about an error: a least-privilege identity is refused
// before the API server checks that the namespace exists.
func (r *Runner) explain(ctx context.Context, err error) error {
	if !errors.Is(err, ErrForbidden) {
		return err
	}
	return diagnose.ClarifyForbidden(ctx, r.client, r.opts.Namespace, err)
}

func describeSize(n int) string {
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}
