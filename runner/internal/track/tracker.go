package track

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gkexec/gkexec/runner/internal/diagnose"
)

// Tracker is one execution's view: the latest Pod and the warnings seen, plus a wake-up channel.
type Tracker struct {
	id      string
	wake    chan struct{}
	mu      sync.Mutex
	pod     *corev1.Pod
	podGone bool
	// job: the tracker follows a Job's Pod (Hub.TrackJob); owner is that Job's UID once made, and
	// early holds the Pods of Jobs seen before it was known, by UID: its own among them, it is
	// taken on Own.
	job   bool
	owner types.UID
	early map[types.UID]earlyPod
	// events by UID, so that a repeated event (count++) replaces its earlier copy.
	events  map[string]*corev1.Event
	scaleUp bool
}

func (t *Tracker) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Snapshot returns the latest state; the Pod must not be modified.
func (t *Tracker) Snapshot() (pod *corev1.Pod, gone bool, events []*corev1.Event, scaleUp bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.events {
		if t.concerns(e) {
			events = append(events, e)
		}
	}
	return t.pod, t.podGone, events, t.scaleUp
}

// concerns says whether e is about this tracker's own Job or Pod. Events are routed by the
// execution ID their object's name carries, and an ID used again names the previous run's Job
// and Pod too: by UID, their warnings are told apart. An event of a Pod not seen yet waits until
// it is (it may be the previous Pod's); one without a UID cannot be told apart and counts.
func (t *Tracker) concerns(e *corev1.Event) bool {
	uid := e.InvolvedObject.UID
	switch {
	case uid == "":
		return true
	case e.InvolvedObject.Kind == "Job":
		return !t.job || uid == t.owner
	case e.InvolvedObject.Kind == "Pod":
		return t.pod != nil && uid == t.pod.UID
	}
	return true
}

// Wake is signalled whenever the tracked Pod or its events change.
func (t *Tracker) Wake() <-chan struct{} { return t.wake }

// Seed sets the Pod a tracker starts from, unless the watch already showed it: a claimed Pod is
// known from the claim's answer before the watch reports it.
func (t *Tracker) Seed(pod *corev1.Pod) {
	t.mu.Lock()
	if t.pod == nil {
		t.pod = pod
	}
	t.mu.Unlock()
}

type earlyPod struct {
	pod     *corev1.Pod
	deleted bool
}

// Own names the Job whose Pod a tracker of Hub.TrackJob follows, as soon as it is made.
func (t *Tracker) Own(job types.UID) {
	t.mu.Lock()
	t.owner = job
	var mine *earlyPod
	for _, e := range t.early {
		if ref := metav1.GetControllerOf(e.pod); ref != nil && ref.UID == job {
			mine = &e
		}
	}
	t.early = nil
	if mine != nil && t.pod == nil {
		t.pod, t.podGone = mine.pod, mine.deleted
	}
	t.mu.Unlock()
	if mine != nil {
		t.signal()
	}
}

// offer hands the tracker a change of a Pod it may follow; it takes it if it is its Pod.
func (t *Tracker) offer(pod *corev1.Pod, deleted bool) {
	t.mu.Lock()
	ref := metav1.GetControllerOf(pod)
	switch {
	case t.pod != nil && !t.job && t.pod.UID != pod.UID:
		t.mu.Unlock()
		return // another Pod of the same name
	case t.job && ref != nil && t.owner == "":
		// A Job's Pod before this tracker's Job is known: the previous Job's of a reused ID, or
		// (rarely) its own, reported before the Job's creation answered.
		if t.early == nil {
			t.early = map[types.UID]earlyPod{}
		}
		t.early[pod.UID] = earlyPod{pod, deleted}
		t.mu.Unlock()
		return
	case t.job && ref != nil && ref.UID != t.owner:
		t.mu.Unlock()
		return // another Job's
	}
	t.pod, t.podGone = pod, deleted
	t.mu.Unlock()
	t.signal()
}

// AwaitGone waits until the tracked Pod has been deleted (or was never seen), at most timeout or
// until stop is closed.
func (t *Tracker) AwaitGone(timeout time.Duration, stop <-chan struct{}) {
	t.await(timeout, stop, func(*corev1.Pod) bool { return false })
}

// AwaitEnded waits until the tracked Pod holds no room on a node as the scheduler counts it: it
// finished (Succeeded or Failed; the scheduler ignores such Pods), was deleted, or was never seen;
// at most timeout or until stop is closed.
func (t *Tracker) AwaitEnded(timeout time.Duration, stop <-chan struct{}) {
	t.await(timeout, stop, diagnose.PodFinished)
}

// await waits until the tracked Pod is gone, was never seen, or is done.
func (t *Tracker) await(timeout time.Duration, stop <-chan struct{}, done func(*corev1.Pod) bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		pod, gone, _, _ := t.Snapshot()
		if pod == nil || gone || done(pod) {
			return
		}
		select {
		case <-t.wake:
		case <-deadline.C:
			return
		case <-stop:
			return
		}
	}
}
