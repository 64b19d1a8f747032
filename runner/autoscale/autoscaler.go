package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/gkexec/gkexec/runner"
)

// Config is what an Autoscaler sizes and how.
type Config struct {
	Client    kubernetes.Interface
	Namespace string
	// Pool is the pool's name (Options.WarmPool); its Deployment is runner.WarmPoolName(Pool).
	Pool string
	// Identity names this process in the Lease (unique per process: "<host>/<pid>/<random>").
	Identity string
	// Policy, if set, is used instead of the one on the Deployment's annotations.
	Policy *Policy
	Log    *slog.Logger
	// Tick is how often the leader reconsiders the size without new demand (default 1 s);
	// PolicyEvery, how often it rereads the Deployment (default 30 s). Lease* are the election's
	// timings (defaults 15 s, 10 s, 2 s: a leader that dies is replaced within about 15 s).
	Tick, PolicyEvery                             time.Duration
	LeaseDuration, LeaseRenewDeadline, LeaseRetry time.Duration
}

// Autoscaler sizes one warm pool by its demand (see the package documentation). Every process
// that runs one follows the demand; the one holding the Lease writes the size.
type Autoscaler struct {
	cfg Config
	t   *tracker

	mu    sync.Mutex
	stats Stats
}

// Stats are what an Autoscaler saw and did, for the metrics.
type Stats struct {
	// Leader: this process writes the pool's size now.
	Leader bool
	// Policy in force (as last read); Recommended, the size the demand calls for; Replicas, the
	// Deployment's size as last read or written (-1 before the first).
	Policy      Policy
	Recommended int32
	Replicas    int32
	// IdleReady counts the pool's idle, ready Pods; Refill is the refill time planned with.
	IdleReady int
	Refill    time.Duration
	// Claims and Misses (by reason) seen in the cluster, from every runner, since this process
	// started; Refills, the refill times measured.
	Claims  uint64
	Misses  map[string]uint64
	Refills Histogram
	// ScaledUp and ScaledDown count this process's writes.
	ScaledUp, ScaledDown uint64
}

// New checks the configuration and returns an Autoscaler; Run runs it.
func New(cfg Config) (*Autoscaler, error) {
	switch {
	case cfg.Client == nil || cfg.Namespace == "" || cfg.Pool == "" || cfg.Identity == "":
		return nil, fmt.Errorf("%w: the autoscaler needs a client, a namespace, a pool and an identity", runner.ErrInvalidOptions)
	case cfg.Policy != nil:
		p := cfg.Policy.WithDefaults()
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", runner.ErrInvalidOptions, err)
		}
		cfg.Policy = &p
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	setDefault(&cfg.Tick, time.Second)
	setDefault(&cfg.PolicyEvery, 30*time.Second)
	setDefault(&cfg.LeaseDuration, 15*time.Second)
	setDefault(&cfg.LeaseRenewDeadline, 10*time.Second)
	setDefault(&cfg.LeaseRetry, 2*time.Second)
	a := &Autoscaler{cfg: cfg, stats: Stats{Replicas: -1, Misses: map[string]uint64{}}}
	// Demand is kept for the longest cooldown it may serve (a policy read later may be longer).
	a.t = newTracker(cfg.Pool, time.Hour)
	if cfg.Policy != nil {
		a.stats.Policy = *cfg.Policy
	}
	return a, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// LeaseName is the Lease through which the processes sizing pool elect their writer.
func LeaseName(pool string) string { return runner.WarmPoolName(pool) + "-autoscaler" }

// Run follows the demand and, while this process holds the Lease, sizes the pool, until ctx
// ends; it then gives the Lease up, so that another process takes over at once. It returns
// ErrNotAutoscaled when the Deployment does not ask for it (and no Policy was given), and an
// error wrapping runner.ErrCluster when the watch cannot start.
func (a *Autoscaler) Run(ctx context.Context) error {
	if a.cfg.Policy == nil {
		if _, err := a.readPolicy(ctx); err != nil {
			return err
		}
	}
	stop, err := a.watch(ctx)
	if err != nil {
		return err
	}
	defer stop()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: a.cfg.Namespace, Name: LeaseName(a.cfg.Pool)},
		Client:     a.cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: a.cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, Name: LeaseName(a.cfg.Pool), ReleaseOnCancel: true,
			LeaseDuration: a.cfg.LeaseDuration, RenewDeadline: a.cfg.LeaseRenewDeadline, RetryPeriod: a.cfg.LeaseRetry,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: a.lead,
				OnStoppedLeading: func() { a.setLeader(false) },
			},
		})
		if err != nil {
			return fmt.Errorf("%w: %w", runner.ErrInvalidOptions, err)
		}
		le.Run(ctx) // returns when the lead is lost (or ctx ends): stand again
	}
	return nil
}

// watch starts the Pod watch that feeds the tracker: every sandbox Pod of the namespace (pool
// Pods, and cold ones that may say the pool missed them).
func (a *Autoscaler) watch(ctx context.Context) (stop func(), err error) {
	sel := labels.Set{runner.LabelManagedBy: runner.ManagedByValue, runner.LabelComponent: runner.ComponentSandbox}.String()
	factory := informers.NewSharedInformerFactoryWithOptions(a.cfg.Client, 0, informers.WithNamespace(a.cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	inf := factory.Core().V1().Pods().Informer()
	handler, err := inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if pod, ok := obj.(*corev1.Pod); ok {
				a.t.observe(pod, time.Now(), !initial)
			}
		},
		UpdateFunc: func(_, obj any) {
			if pod, ok := obj.(*corev1.Pod); ok {
				a.t.observe(pod, time.Now(), true)
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				a.t.observe(pod, time.Now(), true) // a claim seen only as it went is still one
				a.t.forget(pod.UID)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", runner.ErrCluster, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	factory.Start(wctx.Done())
	// The handler's sync: the demand is judged from what it observed, the whole first list.
	if !cache.WaitForCacheSync(wctx.Done(), handler.HasSynced) {
		cancel()
		factory.Shutdown()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: the watch of sandbox pods in namespace %s did not sync", runner.ErrCluster, a.cfg.Namespace)
	}
	return func() { cancel(); factory.Shutdown() }, nil
}

// lead sizes the pool while this process holds the Lease: at every tick, and at once when demand
// arrives.
func (a *Autoscaler) lead(ctx context.Context) {
	a.setLeader(true)
	defer a.setLeader(false) // also when this goroutine starts after the lead was lost
	a.cfg.Log.Info("sizing the warm pool by demand", "pool", a.cfg.Pool, "identity", a.cfg.Identity)
	tick := time.NewTicker(a.cfg.Tick)
	defer tick.Stop()
	var known int32 = -1 // the Deployment's replicas as last read or written
	var policyAt time.Time
	policy := a.Stats().Policy
	for {
		if a.cfg.Policy == nil && time.Since(policyAt) >= a.cfg.PolicyEvery {
			switch p, err := a.readPolicy(ctx); {
			case err == nil:
				policy, policyAt, known = p, time.Now(), -1 // reread the size too
			case ctx.Err() != nil:
				return
			case errors.Is(err, ErrNotAutoscaled):
				if policy.Max > 0 {
					a.cfg.Log.Info("the warm pool is no longer sized by demand; leaving its size alone", "pool", a.cfg.Pool, "why", err)
				}
				policy, policyAt = Policy{}, time.Now()
				a.record(func(s *Stats) { s.Policy = policy })
			default:
				a.cfg.Log.Warn("cannot read the warm pool's policy; keeping the last one", "pool", a.cfg.Pool, "error", err)
				policyAt = time.Now()
			}
		}
		if policy.Max > 0 {
			known = a.size(ctx, policy, known)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-a.t.changed:
		}
	}
}

// size writes the recommended size when it differs from the Deployment's, and returns the size
// the Deployment has now (-1 when unknown).
func (a *Autoscaler) size(ctx context.Context, p Policy, known int32) int32 {
	demand, refills, idle := a.t.snapshot()
	refill := RefillEstimate(refills, p.Refill)
	want := Recommend(demand, refill, p, time.Now())
	a.record(func(s *Stats) { s.Recommended, s.IdleReady, s.Refill = want, idle, refill })
	if want == known {
		return known
	}
	deployments := a.cfg.Client.AppsV1().Deployments(a.cfg.Namespace)
	name := runner.WarmPoolName(a.cfg.Pool)
	scale, err := deployments.GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		a.cfg.Log.Warn("cannot read the warm pool's size", "deployment", name, "error", err)
		return -1
	}
	from := scale.Spec.Replicas
	if from == want {
		a.record(func(s *Stats) { s.Replicas = want })
		return want
	}
	scale.Spec.Replicas = want
	if _, err := deployments.UpdateScale(ctx, name, scale, metav1.UpdateOptions{}); err != nil {
		// A conflict: someone else resized it since the read; the next tick reads again.
		if !apierrors.IsConflict(err) && ctx.Err() == nil {
			a.cfg.Log.Warn("cannot resize the warm pool", "deployment", name, "to", want, "error", err)
		}
		return -1
	}
	a.cfg.Log.Info("resized the warm pool", "deployment", name, "from", from, "to", want,
		"demand_in_window", len(demand), "refill", refill.Round(10*time.Millisecond), "idle_ready", idle)
	a.record(func(s *Stats) {
		s.Replicas = want
		if want > from {
			s.ScaledUp++
		} else {
			s.ScaledDown++
		}
	})
	return want
}

// readPolicy reads the policy from the pool's Deployment.
func (a *Autoscaler) readPolicy(ctx context.Context) (Policy, error) {
	p, err := ReadPolicy(ctx, a.cfg.Client, a.cfg.Namespace, a.cfg.Pool)
	if err == nil {
		a.record(func(s *Stats) { s.Policy = p })
	}
	return p, err
}

// ReadPolicy reads the policy on pool's Deployment: ErrNotAutoscaled when it has none or does not
// exist, an error wrapping runner.ErrCluster when it cannot be read (Forbidden without
// runner.PoolAutoscaleRules), runner.ErrInvalidOptions when it is malformed.
func ReadPolicy(ctx context.Context, client kubernetes.Interface, namespace, pool string) (Policy, error) {
	name := runner.WarmPoolName(pool)
	d, err := client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return Policy{}, fmt.Errorf("%w: no warm pool Deployment %s/%s", ErrNotAutoscaled, namespace, name)
		}
		return Policy{}, fmt.Errorf("%w: read the warm pool's Deployment %s/%s: %w", runner.ErrCluster, namespace, name, err)
	}
	p, err := PolicyOf(d.Annotations)
	if err != nil {
		if errors.Is(err, ErrNotAutoscaled) {
			return Policy{}, fmt.Errorf("%w (%s/%s)", err, namespace, name)
		}
		return Policy{}, fmt.Errorf("%w: Deployment %s/%s: %w", runner.ErrInvalidOptions, namespace, name, err)
	}
	return p, nil
}

func (a *Autoscaler) setLeader(on bool) { a.record(func(s *Stats) { s.Leader = on }) }

func (a *Autoscaler) record(f func(*Stats)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(&a.stats)
}

// Stats returns what the autoscaler saw and did so far.
func (a *Autoscaler) Stats() Stats {
	a.mu.Lock()
	s := a.stats
	a.mu.Unlock()
	tot := a.t.copyTotals()
	s.Claims, s.Misses, s.Refills = tot.claims, tot.misses, tot.refills
	for _, r := range runner.PoolMissReasons() {
		s.Misses[r] += 0
	}
	return s
}
