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
//
// The bound is set (Options.MaxInFlight), or what the namespace's ResourceQuota admits, and a
// slot is held until its Pod is gone. Without either, the admission learns the bound from its own
// sandboxes' scheduling, counting room as the scheduler does: a slot is held until its Pod
// finished (Succeeded or Failed) or is gone.
//
//   - Until one of its Pods lacks room, there is no bound.
//   - When the scheduler reports one of its Pods unschedulable for lack of room (Insufficient cpu
//     or memory, Too many pods) and no node is being added for it (TriggeredScaleUp), the bound
//     becomes the runner's sandboxes in flight and scheduled — the room they prove there is —
//     and at least 1, so that one may always be in flight. While such a Pod waits for room, no
//     other is created: a newer Pod could take the room it waits for, since the scheduler does
//     not serve Pods in order; it is served next, by the scheduler, as the queue would.
//   - The bound never stays below the sandboxes scheduled at once (the room they prove), and it
//     probes upward by one after a bound's worth of sandboxes ran without waiting for room while
//     others waited in line: one Pod at a time may find there is no more room, and it then waits
//     as the head of the queue would.
//   - A Pod for which the autoscaler is adding a node, or for which the scheduler preempts
//     lower-priority Pods (an idle warm pool's: it runs below executions), waits as it would
//     without the bound, and undoes the lowering it caused: room is coming. Counting a
//     preemption as no room kept the bound at what the pool left over (4–7 on a node of 10
//     with a pool of 4 in make bench's staggered run).
//
// That is "bound = the room proven, with a slow probe upward" rather than additive increase and
// multiplicative decrease: the scheduled count measures the room itself, so halving would only
// waste it, and a probe that fails costs one Pending Pod that is next in line anyway.
type Admission struct {
	limit int          // a fixed bound on cold sandboxes in flight; 0: none
	learn bool         // no fixed bound: learn one from the sandboxes' scheduling
	log   *slog.Logger // learning: where each change of the bound is told, at Debug

	mu       sync.Mutex
	inFlight int
	waiting  list.List // of chan struct{}, closed when its waiter is handed a slot
	// Learning: bound is the learned bound (0: none yet); scheduled counts the slots whose Pod is
	// bound to a node, starved those whose Pod waits for room that no scale-up brings; clean the
	// slots given back since the bound last changed that never waited for room, while others
	// waited in line.
	bound, scheduled, starved, clean int
	// OnQueued, if set, is called when a waiter joins the queue (tests await it).
	OnQueued func()
	// OnBound, if set, is called with the learned bound each time it changes (tests await it).
	OnBound func(bound int)
}

// NewAdmission bounds the cold sandboxes in flight at limit; 0 for no bound.
func NewAdmission(limit int) *Admission { return &Admission{limit: max(limit, 0)} }

// NewLearningAdmission learns its bound from its sandboxes' scheduling (see Admission); it logs
// each change at Debug.
func NewLearningAdmission(log *slog.Logger) *Admission {
	return &Admission{learn: true, log: log}
}

// AdmissionFor is the admission the settings ask for: setting when set (-1: unbounded); otherwise
// what the namespace's ResourceQuotas admit (MaxInFlight); with neither, a learning one.
func AdmissionFor(ctx context.Context, client kubernetes.Interface, setting int, s *podspec.Shape, log *slog.Logger) *Admission {
	limit := MaxInFlight(ctx, client, setting, s, log)
	if limit == 0 && setting == 0 {
		log.Debug("no bound on cold sandboxes in flight is set or in a quota: learning it from the scheduler", "namespace", s.Namespace)
		return NewLearningAdmission(log)
	}
	log.Debug("cold sandboxes in flight", "bound", limit, "namespace", s.Namespace)
	return NewAdmission(limit)
}

// Bounded: a bound is or may come in force, so a slot must be held until its sandbox has really
// ended (a terminating Pod still holds its requests).
func (a *Admission) Bounded() bool { return a != nil && (a.limit > 0 || a.learn) }

// Limit is the bound on cold sandboxes in flight in force now: the fixed one, or the one learned;
// 0 for none.
func (a *Admission) Limit() int {
	if a.limit > 0 || !a.learn {
		return a.limit
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bound
}

// InFlight is how many cold sandboxes are in flight now, and how many executions wait in line.
func (a *Admission) InFlight() (inFlight, waiting int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inFlight, a.waiting.Len()
}

// Slot is one admitted execution's place among the sandboxes in flight.
type Slot struct {
	a    *Admission
	once sync.Once
	// Guarded by a.mu: the Pod is bound to a node; it waits for room now; it ever did; the
	// learned bound before it lowered it.
	scheduled, starved, waited bool
	before                     int
}

// admit waits for a slot. It fails only when ctx ends first; the waiter then leaves the queue at
// once.
func (a *Admission) admit(ctx context.Context) (*Slot, error) {
	a.mu.Lock()
	if a.waiting.Len() == 0 && a.admissible() {
		a.inFlight++
		a.mu.Unlock()
		return &Slot{a: a}, nil
	}
	ready := make(chan struct{})
	place := a.waiting.PushBack(ready)
	if a.OnQueued != nil {
		a.OnQueued()
	}
	a.mu.Unlock()
	select {
	case <-ready:
		return &Slot{a: a}, nil
	case <-ctx.Done():
		a.mu.Lock()
		select {
		case <-ready: // handed a slot as ctx ended: pass it on
			a.mu.Unlock()
			(&Slot{a: a}).Leave()
		default:
			a.waiting.Remove(place)
			a.mu.Unlock()
		}
		return nil, ctx.Err()
	}
}

// admissible: one more may be in flight now. Called with a.mu held.
func (a *Admission) admissible() bool {
	switch {
	case a.limit > 0:
		return a.inFlight < a.limit
	case !a.learn:
		return true
	}
	// While one of ours waits for room, a new Pod could take that room first.
	return a.starved == 0 && (a.bound == 0 || a.inFlight < a.bound)
}

// dispatch hands slots to the first waiters while there is room for them. Called with a.mu held.
func (a *Admission) dispatch() {
	for a.waiting.Len() > 0 && a.admissible() {
		first := a.waiting.Front()
		a.waiting.Remove(first)
		a.inFlight++
		close(first.Value.(chan struct{}))
	}
}

// setBound changes the learned bound. Called with a.mu held.
func (a *Admission) setBound(bound int, why string) {
	if bound == a.bound {
		return
	}
	a.log.Debug("cold sandboxes in flight: bound changed", "bound", bound, "was", a.bound, "why", why,
		"in_flight", a.inFlight, "scheduled", a.scheduled, "waiting", a.waiting.Len())
	a.bound, a.clean = bound, 0
	if a.OnBound != nil {
		a.OnBound(bound)
	}
}

// Leave gives the slot back: the next in line may go. Only the first call counts.
func (s *Slot) Leave() {
	if s == nil {
		return
	}
	s.once.Do(func() {
		a := s.a
		a.mu.Lock()
		defer a.mu.Unlock()
		a.inFlight--
		if s.scheduled {
			a.scheduled--
		}
		if s.starved {
			a.starved--
		}
		if a.learn && a.bound > 0 && s.scheduled && !s.waited && a.starved == 0 && a.waiting.Len() > 0 {
			if a.clean++; a.clean >= a.bound {
				a.setBound(a.bound+1, "probing for more room: a bound's worth of sandboxes ran without waiting for room while others waited in line")
			}
		}
		a.dispatch()
	})
}

// ended tells a learning admission that the slot's Pod finished (Succeeded or Failed) or is gone:
// the scheduler no longer counts it, so its room is free, and the slot with it. A set bound keeps
// the slot until Leave, once the Pod is gone.
func (s *Slot) ended() {
	if s != nil && s.a.learn {
		s.Leave()
	}
}

// observe tells a learning admission what the scheduler says of the slot's Pod: it is bound to a
// node; it lacks room (Insufficient cpu or memory, Too many pods); room is being made for it (the
// autoscaler is adding a node, or the scheduler preempted lower-priority Pods for it).
func (s *Slot) observe(scheduled, noRoom, roomComing bool) {
	if s == nil || !s.a.learn {
		return
	}
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case scheduled:
		if !s.scheduled {
			s.scheduled = true
			a.scheduled++
			if a.bound > 0 && a.scheduled > a.bound {
				a.setBound(a.scheduled, "more sandboxes are scheduled at once than the bound")
			}
		}
		if s.starved {
			s.starved = false
			a.starved--
		}
		a.dispatch()
	case noRoom && !roomComing:
		if !s.starved {
			s.starved, s.waited, s.before = true, true, a.bound
			a.starved++
			a.setBound(max(a.scheduled, 1), "a sandbox pod is unschedulable for lack of room: the bound is what is scheduled")
		}
	case noRoom && roomComing:
		s.waited = true
		if s.starved {
			s.starved = false
			a.starved--
			if a.bound > 0 && (s.before == 0 || s.before > a.bound) { // 0: no bound, the highest
				a.setBound(s.before, "room is being made for a sandbox pod that lacked room (a node added, or lower-priority pods preempted)")
			}
			a.dispatch()
		}
	}
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
