package sandbox

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// When the pool is empty but some of its Pods are starting on a node, an execution takes the first
// of them to be ready rather than start one more sandbox on a node already busy starting them: the
// node does the same work either way (every claim is replaced), and a cold start added to the
// refills shares the CPU with all of them, so that it, and they, take longer — measured on the
// 2-core local node, a cold fallback among four refills took several times its own start. The wait
// is bounded by what two cold starts take here (StartEstimate, refillWaitStarts); past it the
// execution runs cold. Pods still waiting for a node are not waited for: a full node may keep the
// pool, which runs below executions, Pending for long.

// refillWaitStarts bounds the wait for a refill, in cold starts. Giving up at any moment commits
// the execution to a cold start that takes about one estimate more from then, beside the refill it
// gave up on, so that it ends no sooner than the refill would have: a refill is given up only once
// it is a whole cold start late. With a bound of one estimate, back to back at concurrency 4 on the
// 2-core local node, 13 of 60 executions gave their refill up just before it came and paid a cold
// start after the wait: the p95 (6.7 s) was the wait plus that start (docs/performance.md).
const refillWaitStarts = 2

// StartEstimate is a running estimate of how long a cold sandbox takes to start (admitted to
// container started), shared by the cold source, which measures, and the warm one, which waits at
// most that long for a refill.
type StartEstimate struct {
	mu   sync.Mutex
	ewma time.Duration
}

// initialStartEstimate is assumed until a cold start was measured: a gVisor start on an idle node
// with the image present takes about 1 s, one among others several.
const initialStartEstimate = 2 * time.Second

// startEstimateWeight is the weight of the newest measurement in the moving average.
const startEstimateWeight = 0.3

// Observe adds a measured cold start.
func (s *StartEstimate) Observe(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ewma == 0 {
		s.ewma = d
		return
	}
	s.ewma = time.Duration(startEstimateWeight*float64(d) + (1-startEstimateWeight)*float64(s.ewma))
}

// Get is the estimate now (the initial one on a nil estimate).
func (s *StartEstimate) Get() time.Duration {
	if s == nil {
		return initialStartEstimate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ewma == 0 {
		return initialStartEstimate
	}
	return s.ewma
}

// refilling counts the pool's Pods of the options' sandbox that a kubelet is starting: bound to a
// node, not yet ready, not going, never restarted.
func (w *WarmSource) refilling() int {
	n := 0
	for _, pod := range w.e.Hub.Pods() {
		if pod.Labels[podspec.LabelPool] != w.e.WarmPool || pod.Labels[podspec.LabelPoolState] != podspec.PoolStateIdle ||
			pod.DeletionTimestamp != nil || pod.Spec.NodeName == "" || diagnose.IdleAndReady(pod) || !starting(pod) ||
			podspec.Fingerprint(pod.Spec) != w.want {
			continue
		}
		n++
	}
	return n
}

// starting: the Pod has not ended and its sandbox container never restarted.
func starting(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodPending && pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.RestartCount > 0 || cs.State.Terminated != nil {
			return false
		}
	}
	return true
}

// joinRefillWait counts the execution among those waiting for a refill, when Pods of the pool are
// starting that no other execution of this runner waits for already; leave ends the wait (after the
// claim that followed it: the sandboxes held ready do not take a refill while an execution waits).
func (w *WarmSource) joinRefillWait() (leave func(), ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.refillWaiters >= w.refilling() {
		return nil, false
	}
	w.refillWaiters++
	return func() {
		w.mu.Lock()
		w.refillWaiters--
		w.mu.Unlock()
		select { // the sandboxes held ready, which waited for the waiters, may refill now
		case w.kick <- struct{}{}:
		default:
		}
	}, true
}

// awaitRefill waits, until deadline, for a pool Pod to become idle and ready, and says whether one
// may be there to claim now: false once nothing of the pool is starting any more.
func (w *WarmSource) awaitRefill(ctx context.Context, deadline time.Time) bool {
	if time.Until(deadline) <= 0 {
		return false
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		changed := w.e.Hub.PodsChanged()
		if fresh, _, _ := w.candidates(); len(fresh) > 0 {
			return true
		}
		if w.refilling() == 0 {
			return false // what was starting went, or was taken
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		case <-w.stop:
			return false
		}
	}
}
