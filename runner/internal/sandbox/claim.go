package sandbox

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// WarmSource claims pre-started sandbox Pods from the warm pool: a Deployment (created by the
// sandbox-namespace Terraform module or manifests/components/warm-pool) whose Pods run the
// entrypoint waiting for a request on stdin. Kubernetes' own ReplicaSet controller keeps the pool
// full; the runner writes no controller. A claim is one patch guarded by the Pod's
// resourceVersion that changes its pool-state label: the Pod leaves the Deployment's selector (so
// the controller replaces it at once) and no other claimer can have it. The same patch sets the
// Pod's activeDeadlineSeconds, so a claimed Pod whose runner died ends by itself.
//
// The source may hold a few sandboxes claimed and attached ahead of demand (Config.WarmPoolReady,
// ready.go); they count against the pool, are released after WarmPoolHold and on Close, and each
// serves one execution, like every warm sandbox.
type WarmSource struct {
	e    *Env
	want string // fingerprint of the sandbox the options describe

	mu       sync.Mutex
	ready    []*warmSandbox // oldest first
	tried    map[types.UID]time.Time
	claiming map[types.UID]bool
	stop     chan struct{}
	kick     chan struct{}
	stopped  sync.WaitGroup
	// filling counts the sandboxes being claimed and attached for holding; waiting, the
	// executions waiting for one of them; change is closed and replaced when one is held or fails.
	// owed counts the held sandboxes executions took that are not replaced yet; refillWaiters the
	// executions waiting for a starting pool Pod (refill.go).
	filling, waiting, owed, refillWaiters int
	change                                chan struct{}
}

const (
	// claimAttempts bounds the claims tried for one request when other runners win the races.
	claimAttempts = 4
	// AttachTimeout bounds opening the attach stream and the first ping through it.
	AttachTimeout = 10 * time.Second
	// streamCloseGrace is how long a deletion waits for an attach stream to end with its deleted
	// Pod's container (1 s of grace period, then the sandbox's teardown).
	streamCloseGrace = 5 * time.Second
)

// NewWarm returns the warm source of e's pool, and starts holding sandboxes ready if
// Config.WarmPoolReady asks for some; Close stops it.
func NewWarm(e *Env) *WarmSource {
	w := &WarmSource{e: e, want: podspec.Fingerprint(podspec.Pod(&e.Shape, nil)),
		tried: map[types.UID]time.Time{}, claiming: map[types.UID]bool{},
		stop: make(chan struct{}), kick: make(chan struct{}, 1), change: make(chan struct{})}
	if e.WarmPoolReady > 0 {
		w.stopped.Add(1)
		go w.keepReady()
	}
	return w
}

// Acquire hands out a held sandbox, else claims one now; ErrNotServed when the pool has none.
func (w *WarmSource) Acquire(ctx context.Context, x *Execution) (Sandbox, error) {
	if len(x.EgressAllow) > 0 {
		return nil, ErrNarrowed
	}
	if sb := w.takeReady(ctx); sb != nil {
		x.Marks.Claimed, x.Marks.Attached = sb.claimed, sb.attached
		x.NoteSandbox(Warm, sb.Pod)
		return sb, nil
	}
	a, err := w.ClaimAndAttach(ctx, Claim{}, &x.Marks)
	if why := MissReason(err); why == MissEmpty || why == MissRaced {
		// An empty pool whose Pods are starting: take the first ready rather than start one more
		// sandbox beside them (refill.go), for at most what two cold starts take.
		if leave, ok := w.joinRefillWait(); ok {
			deadline := time.Now().Add(refillWaitStarts * w.e.ColdStarts.Get())
			for why := why; (why == MissEmpty || why == MissRaced) && w.awaitRefill(ctx, deadline); why = MissReason(err) {
				a, err = w.ClaimAndAttach(ctx, Claim{}, &x.Marks)
			}
			leave()
		}
	}
	if err != nil {
		return nil, err
	}
	x.NoteSandbox(Warm, a.Pod)
	return &warmSandbox{Attachment: a, claimed: x.Marks.Claimed, attached: x.Marks.Attached}, nil
}

// Claim is what a claim holds a Pod for beyond one execution: how long it may be held first
// (Hold, part of its deadline), labels and annotations to set with the claim (a session's), and
// the keepalive its holder promises (Keepalive: the sandbox leaves when the pings stop). For is
// what it is claimed for (podspec.ClaimedFor*; "" for an execution's claim on request).
type Claim struct {
	For         string
	Hold        time.Duration
	Labels      map[string]string
	Annotations map[string]string
	Keepalive   time.Duration
}

// ErrNarrowed (a mismatch: a larger pool would not help): a sandbox that narrows the namespace's egress allow-list runs cold, its Pod
// created with its narrowing. A pool Pod narrowed when claimed would, for as long as the egress
// gateway had not yet seen the change, let its code reach all that the namespace allows.
var ErrNarrowed error = miss(MissMismatch, "the sandbox narrows its egress (AllowDomains): it runs in a Pod created with its narrowing")

// ClaimAndAttach claims an idle Pod, attaches to it and checks the stream with a ping; it marks
// when it claimed and attached in marks. The attach stream is opened while the claim is on its
// way (see claim), so that the two round trips overlap.
func (w *WarmSource) ClaimAndAttach(ctx context.Context, spec Claim, marks *Marks) (*Attachment, error) {
	pod, a, err := w.claim(ctx, spec)
	if err != nil {
		return nil, err
	}
	marks.Claimed = time.Now()
	if err := a.Ping(ctx, wire.PingRequest{KeepaliveSeconds: spec.Keepalive.Seconds()}); err != nil {
		if a.Broken() && a.err != nil && a.err != io.EOF {
			err = a.err // why the stream ended says more than the pipe it closed
		}
		a.Delete(w.e.Log)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, miss(MissAttach, "attach to pool pod %s/%s: %w", w.e.Namespace, pod.Name, err)
	}
	marks.Attached = time.Now()
	return a, nil
}

// candidates are the idle pool Pods this runner may claim, in random order (many runners
// claiming from one pool then rarely race for the same Pod). Pods past WarmPoolMaxIdleAge are
// not candidates: they are returned separately to be recycled. others counts the idle, ready Pods
// of the pool that are not the options' sandbox.
func (w *WarmSource) candidates() (fresh, old []*corev1.Pod, others int) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for uid, at := range w.tried {
		if now.Sub(at) > time.Minute {
			delete(w.tried, uid)
		}
	}
	for _, pod := range w.e.Hub.Pods() {
		_, tried := w.tried[pod.UID]
		if pod.Labels[podspec.LabelPool] != w.e.WarmPool || pod.Labels[podspec.LabelPoolState] != podspec.PoolStateIdle ||
			pod.DeletionTimestamp != nil || tried || !diagnose.IdleAndReady(pod) {
			continue
		}
		if podspec.Fingerprint(pod.Spec) != w.want {
			others++
			continue
		}
		if now.Sub(pod.CreationTimestamp.Time) > w.e.WarmPoolMaxIdleAge {
			old = append(old, pod)
			continue
		}
		fresh = append(fresh, pod)
	}
	rand.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
	return fresh, old, others
}

// claim takes one idle Pod out of the pool, exactly once across every runner, and returns it
// with an attach stream to it.
//
// The stream is opened as the claim's patch is sent, not after: opening it (a new connection to
// the API server, which dials the kubelet, whose runtime attaches to the container) and the patch
// are two round trips of their own, and the attach does not need the claim. Nothing is written
// to it before the claim succeeded. When another runner won the Pod, the stream is let go at once
// (its reading end closed, so that nothing the winner's sandbox writes waits on it).
func (w *WarmSource) claim(ctx context.Context, spec Claim) (*corev1.Pod, *Attachment, error) {
	ns := w.e.Namespace
	fresh, old, others := w.candidates()
	for _, pod := range old {
		w.e.Background(func() { w.recycle(pod) })
	}
	switch {
	case len(fresh) == 0 && others > 0:
		return nil, nil, miss(MissMismatch, "none of the %d idle, ready pods of warm pool %q in namespace %s is the options' sandbox (image, resources, runtime, placement)", others, w.e.WarmPool, ns)
	case len(fresh) == 0:
		return nil, nil, miss(MissEmpty, "no idle, ready pod in warm pool %q in namespace %s", w.e.WarmPool, ns)
	}
	tries := 0
	for _, pod := range fresh {
		if tries == claimAttempts {
			break
		}
		if !w.reserve(pod.UID) {
			continue // another execution of this runner is claiming it
		}
		tries++
		// The deadline counts from the Pod's start: it may run for what it has run, plus the hold,
		// plus one execution's start and run time, plus slack.
		age := time.Since(pod.Status.StartTime.Time)
		deadline := int64(math.Ceil((age + spec.Hold + w.e.StartTimeout + w.e.Timeout + w.e.KillGrace).Seconds())) + podspec.DeadlineSlack
		labels := map[string]string{podspec.LabelPoolState: podspec.PoolStateClaimed}
		annotations := map[string]string{
			podspec.AnnotationClaimedAt:   time.Now().UTC().Format(time.RFC3339),
			podspec.AnnotationClaimedBy:   w.e.Holder,
			podspec.AnnotationSafeToEvict: "false",
			podspec.AnnotationClaimedFor:  cmp.Or(spec.For, podspec.ClaimedForExecution),
		}
		maps.Copy(labels, spec.Labels)
		maps.Copy(annotations, spec.Annotations)
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{
				"resourceVersion": pod.ResourceVersion,
				"labels":          labels,
				"annotations":     annotations,
			},
			"spec": map[string]any{"activeDeadlineSeconds": deadline},
		})
		a := w.e.Connect(pod)
		claimed, err := w.e.Client.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		w.unreserve(pod.UID, err == nil)
		if err != nil {
			a.abandon()
		}
		switch {
		case err == nil:
			a.Pod = claimed
			return claimed, a, nil
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsInvalid(err):
			// Another runner won it (or it changed, or went): try the next one.
			w.mu.Lock()
			w.tried[pod.UID] = time.Now()
			w.mu.Unlock()
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		default:
			err = diagnose.APIError(err, "patch", "pods", ns, pod.Name)
			w.e.Log.Warn("cannot claim from the warm pool; running cold", "pool", w.e.WarmPool, "error", err)
			return nil, nil, miss(MissError, "%w", err)
		}
	}
	return nil, nil, miss(MissRaced, "other executions claimed the idle pods of warm pool %q first", w.e.WarmPool)
}

// reserve marks a Pod as being claimed by this runner, so that its concurrent executions try
// different Pods instead of racing each other for one.
func (w *WarmSource) reserve(uid types.UID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.claiming[uid] {
		return false
	}
	w.claiming[uid] = true
	return true
}

// unreserve ends a claim attempt; a claimed Pod stays out of the candidates (it is marked tried
// until the informer sees its new label).
func (w *WarmSource) unreserve(uid types.UID, claimed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.claiming, uid)
	if claimed {
		w.tried[uid] = time.Now()
	}
}

// recycle deletes an idle Pod that waited past WarmPoolMaxIdleAge; its ReplicaSet replaces it.
// The delete is guarded by the resourceVersion seen, so a Pod claimed meanwhile is left alone.
func (w *WarmSource) recycle(pod *corev1.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), w.e.CleanupTimeout)
	defer cancel()
	err := w.e.Client.CoreV1().Pods(w.e.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &pod.UID, ResourceVersion: &pod.ResourceVersion}})
	if err == nil {
		w.e.Log.Debug("recycled an idle pool pod", "pod", pod.Name, "age", time.Since(pod.CreationTimestamp.Time))
	}
}
