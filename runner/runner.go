package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/runner/internal/gatewayclient"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
	"github.com/gkexec/gkexec/runner/internal/track"
)

const (
	// defaultKillGrace is how long past Timeout the runner waits for the sandbox's own timeout
	// record before it deletes the sandbox itself.
	defaultKillGrace = 10 * time.Second
	// watchStartTimeout bounds the first list of the shared watches.
	watchStartTimeout = 30 * time.Second
)

// Runner executes code in sandboxes: a pre-started Pod of the warm pool when one is ready and
// matches, otherwise a Job created for the execution. It is safe for concurrent use; create one
// per namespace and share it, so that all executions share one set of watches. Call Close when done.
type Runner struct {
	opts   Options
	client kubernetes.Interface
	log    *slog.Logger
	// env is what the sandbox sources are handed: the client, the shape of a sandbox, the
	// settings and a few functions. Tests replace env.OpenLogs (fake clientsets serve no logs),
	// env.Attach and env.KillGrace.
	env *sandbox.Env
	// busyWait: see its default; janitorGrace, the janitor's (0: its default). Tests shorten them.
	busyWait, janitorGrace time.Duration
	// stopping is closed by Close once no execution is in flight: background waits end early.
	stopping chan struct{}

	mu       sync.Mutex
	closed   bool
	running  map[string]bool // execution IDs in flight
	inflight sync.WaitGroup  // executions in flight, which Close waits for
	starting *hubStart
	hub      *track.Hub
	// cold and warm are the sandbox sources, set with hub; warm is nil without a pool.
	cold *sandbox.ColdSource
	warm *sandbox.WarmSource
	// work tracks background work (ConfigMap ownership patches, the watches' start, deleting
	// used warm sandboxes) that Close waits for.
	work      sync.WaitGroup
	leftCount atomic.Int64
	// pool counts what the warm pool served and missed, for PoolStats.
	pool poolCounter
	// holder names this runner on what it claims and leases ("<host>/<pid>/<random>": two
	// processes with one hostname and PID, in two containers, are still two holders).
	holder string
	// sessions are those this process holds.
	sessions *sessionRegistry
	// gateway reads the namespace's egress gateway's counts; nil without a REST config.
	gateway *gatewayclient.Client
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
	r := &Runner{opts: opts, client: client, log: opts.Logger, running: map[string]bool{}, stopping: make(chan struct{}),
		busyWait: defaultBusyWait, holder: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), NewExecutionID()[:6]),
		sessions: newSessionRegistry()}
	r.env = &sandbox.Env{Client: client, Namespace: opts.Namespace, Log: opts.Logger, Shape: opts.shape(), Holder: r.holder,
		Background: r.background, Stopping: r.stopping, Config: opts.sandboxConfig(defaultKillGrace), ColdStarts: &sandbox.StartEstimate{}}
	r.env.OpenLogs = func(ctx context.Context, pod string, lo *corev1.PodLogOptions) (io.ReadCloser, error) {
		return client.CoreV1().Pods(opts.Namespace).GetLogs(pod, lo).Stream(ctx)
	}
	// Warm sandboxes and sessions (warm or cold) are reached over pods/attach.
	if cfg, err := restConfigForAttach(opts); err == nil {
		r.env.Attach = sandbox.NewAttacher(cfg, opts.Namespace)
		r.gateway = gatewayclient.New(client, opts.Namespace, gatewayclient.NewPortForwardGet(cfg))
	} else {
		r.log.Debug("no warm pool and no sessions: cannot attach without a REST config", "error", err)
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
	for _, s := range r.sessions.all() {
		s.Detach()
	}
	close(r.stopping)
	// A start of the watches still in flight sees the runner closed and starts no refill; wait for
	// it before looking at what it made.
	r.mu.Lock()
	starting := r.starting
	r.mu.Unlock()
	if starting != nil {
		<-starting.done
	}
	r.mu.Lock()
	warm, hub := r.warm, r.hub
	r.mu.Unlock()
	if warm != nil {
		warm.Close()
	}
	r.work.Wait()
	if hub != nil {
		hub.Close()
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
	if err == nil && r.closed {
		err = fmt.Errorf("%w: runner is closed", ErrInvalidRequest)
	}
	if err != nil {
		h.Close()
		st.err = err
		r.starting = nil
	} else {
		r.hub, r.env.Hub = h, h
		r.cold = sandbox.NewCold(r.env, sandbox.AdmissionFor(ctx, r.client, r.opts.MaxInFlight, &r.env.Shape, r.log))
		if r.env.Attach != nil && !r.opts.NoWarmPool {
			r.warm = sandbox.NewWarm(r.env)
		}
		if !r.opts.KeepObjects {
			// Sandboxes that ended by themselves go while any runner lives in the namespace.
			janitor := sandbox.NewJanitor(r.env, r.janitorGrace)
			r.background(func() { janitor.Run(r.stopping) })
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

// CleanupFailures counts the objects this runner could not delete (after retrying for
// Options.CleanupTimeout), including those of warm sandboxes deleted after Execute returned.
// `gkexec gc` removes them.
func (r *Runner) CleanupFailures() int64 { return r.leftCount.Load() }

// MaxInFlight is the bound on cold sandboxes in flight in force now: Options.MaxInFlight, what the
// namespace's ResourceQuotas admit, or — with neither — what the runner learned the cluster has
// room for (see Options.MaxInFlight); 0 for none (yet), or before the shared watches started.
func (r *Runner) MaxInFlight() int {
	r.mu.Lock()
	cold := r.cold
	r.mu.Unlock()
	if cold == nil {
		return 0
	}
	return cold.Admission().Limit()
}

func (r *Runner) countLeft(left []string) { r.leftCount.Add(int64(len(left))) }
