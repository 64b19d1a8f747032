package sandbox

import (
	"container/list"
	"context"
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// Admission bounds the cold sandboxes in flight and lets waiting executions in first come, first
// served. The scheduler does not serve unschedulable Pods in order: left to it, executions that
// only wait for capacity fail at StartTimeout while later ones run. An execution waits here
// instead, before it creates anything, for as long as its context allows; StartTimeout starts
// once it is admitted.
type Admission struct {
	limit int // cold sandboxes in flight at most; 0: unbounded

	mu       sync.Mutex
	inFlight int
	waiting  list.List // of chan struct{}, closed when its waiter is handed a slot
	// OnQueued, if set, is called when a waiter joins the queue (tests await it).
	OnQueued func()
}

// NewAdmission bounds the cold sandboxes in flight at limit; 0 for no bound.
func NewAdmission(limit int) *Admission { return &Admission{limit: max(limit, 0)} }

// Bounded: a limit is in force, so a slot must be held until its sandbox is really gone.
func (a *Admission) Bounded() bool { return a != nil && a.limit > 0 }

// admit waits for a slot and returns the function that gives it back. It fails only when ctx
// ends first; the waiter then leaves the queue at once.
func (a *Admission) admit(ctx context.Context) (leave func(), err error) {
	a.mu.Lock()
	if a.limit == 0 || (a.inFlight < a.limit && a.waiting.Len() == 0) {
		a.inFlight++
		a.mu.Unlock()
		return a.leaver(), nil
	}
	ready := make(chan struct{})
	place := a.waiting.PushBack(ready)
	if a.OnQueued != nil {
		a.OnQueued()
	}
	a.mu.Unlock()
	select {
	case <-ready:
		return a.leaver(), nil
	case <-ctx.Done():
		a.mu.Lock()
		select {
		case <-ready: // handed a slot as ctx ended: pass it on
			a.mu.Unlock()
			a.release()
		default:
			a.waiting.Remove(place)
			a.mu.Unlock()
		}
		return nil, ctx.Err()
	}
}

func (a *Admission) leaver() func() {
	var once sync.Once
	return func() { once.Do(a.release) }
}

// release hands the slot to the first waiter, or frees it.
func (a *Admission) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if first := a.waiting.Front(); first != nil {
		a.waiting.Remove(first)
		close(first.Value.(chan struct{}))
		return
	}
	a.inFlight--
}

// MaxInFlight is the bound on cold sandboxes in flight: setting when set (-1: none), otherwise as many sandboxes as the namespace's ResourceQuotas admit — the smallest,
// over every quota, of its hard pods and its hard cpu and memory requests and limits divided by
// one sandbox's — at least 1; no quota, or a list that fails or is forbidden, means no bound.
// Warm pool Pods count against the same quota, so the bound is an upper one: a quota that is
// full still fails an execution with diagnose.ErrQuotaExceeded.
func MaxInFlight(ctx context.Context, client kubernetes.Interface, setting int, s *podspec.Shape, log *slog.Logger) int {
	switch {
	case setting > 0:
		return setting
	case setting < 0:
		return 0
	}
	quotas, err := client.CoreV1().ResourceQuotas(s.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		log.Debug("no bound on cold sandboxes in flight: cannot list resource quotas", "namespace", s.Namespace, "error", err)
		return 0
	}
	per := map[corev1.ResourceName]string{
		"requests.cpu": s.CPURequest, "cpu": s.CPURequest,
		"requests.memory": s.MemoryRequest, "memory": s.MemoryRequest,
		"limits.cpu": s.CPULimit, "limits.memory": s.MemoryLimit,
	}
	bound := 0
	lower := func(n int64) {
		if bound == 0 || n < int64(bound) {
			bound = int(max(n, 1))
		}
	}
	for _, q := range quotas.Items {
		for name, hard := range q.Spec.Hard {
			if name == corev1.ResourcePods || name == "count/pods" {
				lower(hard.Value())
				continue
			}
			one, ok := per[name]
			if !ok {
				continue
			}
			if each := resource.MustParse(one); each.MilliValue() > 0 {
				lower(hard.MilliValue() / each.MilliValue())
			}
		}
	}
	return bound
}

// Limit is the bound on cold sandboxes in flight; 0 for none.
func (a *Admission) Limit() int { return a.limit }
