package runner

import (
	"container/list"
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// admission bounds the cold sandboxes in flight and lets waiting executions in first come, first
// served. The scheduler does not serve unschedulable Pods in order: left to it, executions that
// only wait for capacity fail at StartTimeout while later ones run. An execution waits here
// instead, before it creates anything, for as long as its context allows; StartTimeout starts
// once it is admitted.
type admission struct {
	limit int // cold sandboxes in flight at most; 0: unbounded

	mu       sync.Mutex
	inFlight int
	waiting  list.List // of chan struct{}, closed when its waiter is handed a slot
	// onQueued, if set, is called when a waiter joins the queue (tests await it).
	onQueued func()
}

func newAdmission(limit int) *admission { return &admission{limit: max(limit, 0)} }

// bounded: a limit is in force, so a slot must be held until its sandbox is really gone.
func (a *admission) bounded() bool { return a != nil && a.limit > 0 }

// admit waits for a slot and returns the function that gives it back. It fails only when ctx
// ends first; the waiter then leaves the queue at once.
func (a *admission) admit(ctx context.Context) (leave func(), err error) {
	a.mu.Lock()
	if a.limit == 0 || (a.inFlight < a.limit && a.waiting.Len() == 0) {
		a.inFlight++
		a.mu.Unlock()
		return a.leaver(), nil
	}
	ready := make(chan struct{})
	place := a.waiting.PushBack(ready)
	if a.onQueued != nil {
		a.onQueued()
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

func (a *admission) leaver() func() {
	var once sync.Once
	return func() { once.Do(a.release) }
}

// release hands the slot to the first waiter, or frees it.
func (a *admission) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if first := a.waiting.Front(); first != nil {
		a.waiting.Remove(first)
		close(first.Value.(chan struct{}))
		return
	}
	a.inFlight--
}

// maxInFlight is the bound on cold sandboxes in flight: Options.MaxInFlight when set (-1:
// none), otherwise as many sandboxes as the namespace's ResourceQuotas admit — the smallest,
// over every quota, of its hard pods and its hard cpu and memory requests and limits divided by
// one sandbox's — at least 1; no quota, or a list that fails or is forbidden, means no bound.
// Warm pool Pods count against the same quota, so the bound is an upper one: a quota that is
// full still fails an execution with ErrQuotaExceeded.
func maxInFlight(ctx context.Context, client kubernetes.Interface, o *Options) int {
	switch {
	case o.MaxInFlight > 0:
		return o.MaxInFlight
	case o.MaxInFlight < 0:
		return 0
	}
	quotas, err := client.CoreV1().ResourceQuotas(o.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		o.Logger.Debug("no bound on cold sandboxes in flight: cannot list resource quotas", "namespace", o.Namespace, "error", err)
		return 0
	}
	per := map[corev1.ResourceName]string{
		"requests.cpu": o.CPURequest, "cpu": o.CPURequest,
		"requests.memory": o.MemoryRequest, "memory": o.MemoryRequest,
		"limits.cpu": o.CPULimit, "limits.memory": o.MemoryLimit,
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
