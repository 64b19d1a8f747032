package track

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// Hub follows every execution of one runner through three shared watches in its namespace —
// sandbox Pods (by label), Warning events and autoscaler scale-up events — and routes each
// change to the execution it belongs to. However many executions run, the API server sees three
// watches, not one per execution.
type Hub struct {
	mu       sync.Mutex
	trackers map[string]*Tracker // by execution ID (cold) or PodKey (warm)
	stop     chan struct{}
	done     sync.WaitGroup
	// pods is the shared informer's view of every sandbox Pod, warm pool Pods included.
	pods cache.Store
	// poolChanged is signalled when a warm pool Pod changes, for the pool's refill.
	poolChanged chan struct{}
	// changed is closed, and replaced, when any sandbox Pod changes (under mu).
	changed chan struct{}
	// client and namespace answer what only the API server can: SessionPodNow.
	client    kubernetes.Interface
	namespace string
}

// PodKey is the tracker key of a warm sandbox, which is followed by its Pod's name: it was
// started before its execution existed.
func PodKey(name string) string { return "pod/" + name }

// Tracker is one execution's view: the latest Pod and the warnings seen, plus a wake-up channel.
type Tracker struct {
	id      string
	wake    chan struct{}
	mu      sync.Mutex
	pod     *corev1.Pod
	podGone bool
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
		events = append(events, e)
	}
	return t.pod, t.podGone, events, t.scaleUp
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

// NewHub returns a hub; Start starts its watches.
func NewHub() *Hub {
	return &Hub{trackers: map[string]*Tracker{}, changed: make(chan struct{}), stop: make(chan struct{}), poolChanged: make(chan struct{}, 1)}
}

// Start checks that the runner may list what it watches (so RBAC problems surface as a clear error
// instead of a reflector retrying forever), then starts the informers and waits for their first list.
func (h *Hub) Start(ctx context.Context, client kubernetes.Interface, namespace string) error {
	podSelector := labels.Set{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelComponent: podspec.ComponentSandbox}.String()
	warnings := fields.OneTermEqualSelector("type", corev1.EventTypeWarning).String()
	scaleUps := fields.OneTermEqualSelector("reason", "TriggeredScaleUp").String()

	if _, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: podSelector, Limit: 1}); err != nil {
		return diagnose.APIError(err, "list", "pods", namespace, "")
	}
	if _, err := client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: warnings, Limit: 1}); err != nil {
		return diagnose.APIError(err, "list", "events", namespace, "")
	}

	pods := coreinformers.NewFilteredPodInformer(client, namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = podSelector })
	events := coreinformers.NewFilteredEventInformer(client, namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = warnings })
	scale := coreinformers.NewFilteredEventInformer(client, namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = scaleUps })
	informers := []cache.SharedIndexInformer{pods, events, scale}
	h.pods = pods.GetStore()
	h.client, h.namespace = client, namespace
	for _, inf := range informers {
		_ = inf.SetTransform(stripManagedFields)
	}
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { h.onPod(obj, false) },
		UpdateFunc: func(_, obj any) { h.onPod(obj, false) },
		DeleteFunc: func(obj any) { h.onPod(obj, true) },
	})
	for _, inf := range informers[1:] {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    h.onEvent,
			UpdateFunc: func(_, obj any) { h.onEvent(obj) },
		})
	}
	for _, inf := range informers {
		h.done.Add(1)
		go func() {
			defer h.done.Done()
			inf.Run(h.stop)
		}()
	}
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), pods.HasSynced, events.HasSynced, scale.HasSynced) {
		return fmt.Errorf("%w: watching pods and events in namespace %s did not start: %v", diagnose.ErrCluster, namespace, syncCtx.Err())
	}
	return nil
}

// stripManagedFields keeps the caches small: nothing here reads field ownership.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// Close stops the watches.
func (h *Hub) Close() {
	close(h.stop)
	h.done.Wait()
}

// Track registers a sandbox to follow: by execution ID for a Job's Pod, by podKey for a warm
// sandbox. The runner admits each execution ID once at a time, so keys never collide.
func (h *Hub) Track(key string) *Tracker {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := &Tracker{id: key, wake: make(chan struct{}, 1), events: map[string]*corev1.Event{}}
	h.trackers[key] = t
	return t
}

// Untrack stops following t; a later tracker under the same key (a new execution with a reused ID)
// is left alone.
func (h *Hub) Untrack(id string, t *Tracker) {
	h.mu.Lock()
	if h.trackers[id] == t {
		delete(h.trackers, id)
	}
	h.mu.Unlock()
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

// Tracks reports whether this runner follows key now (a sandbox it uses).
func (h *Hub) Tracks(key string) bool { return h.lookup(key) != nil }

func (h *Hub) lookup(id string) *Tracker {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.trackers[id]
}

func (h *Hub) onPod(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if pod.Labels[podspec.LabelPool] != "" {
		select {
		case h.poolChanged <- struct{}{}:
		default:
		}
	}
	h.mu.Lock()
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
	t := h.lookup(PodKey(pod.Name))
	if t == nil && pod.Labels[podspec.LabelPool] == "" {
		// A cold sandbox's Pod, followed by its execution's ID. Never a pool Pod that carried the
		// same ID: one whose request was lost, deleted as the execution runs cold.
		if id := pod.Labels[podspec.LabelExecutionID]; id != "" {
			t = h.lookup(id)
		}
	}
	if t == nil {
		return
	}
	if existing, _, _, _ := t.Snapshot(); existing != nil && t.id == PodKey(pod.Name) && existing.UID != pod.UID {
		return // another Pod of the same name
	}
	t.mu.Lock()
	t.pod, t.podGone = pod, deleted
	t.mu.Unlock()
	t.signal()
}

func (h *Hub) onEvent(obj any) {
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return
	}
	id := podspec.ExecutionIDOf(ev.InvolvedObject)
	if id == "" {
		return
	}
	t := h.lookup(id)
	if t == nil {
		return
	}
	t.mu.Lock()
	if ev.Reason == "TriggeredScaleUp" {
		t.scaleUp = true
	} else {
		t.events[string(ev.UID)] = ev
	}
	t.mu.Unlock()
	t.signal()
}

// Pod is the sandbox Pod named name as the watch last saw it, nil if it shows none; it must not be
// modified.
func (h *Hub) Pod(name string) *corev1.Pod {
	obj, ok, _ := h.pods.GetByKey(h.namespace + "/" + name)
	if !ok {
		return nil
	}
	pod, _ := obj.(*corev1.Pod)
	return pod
}

// Pods is every sandbox Pod as the watch last saw it; the Pods must not be modified.
func (h *Hub) Pods() []*corev1.Pod {
	objs := h.pods.List()
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, obj := range objs {
		if pod, ok := obj.(*corev1.Pod); ok {
			pods = append(pods, pod)
		}
	}
	return pods
}

// PodsChanged is closed when any sandbox Pod next changes, as the watch sees it: a waiter takes it,
// looks at what it waits for, and waits on it if that is not there yet.
func (h *Hub) PodsChanged() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// PoolChanged is signalled when a warm pool Pod changes.
func (h *Hub) PoolChanged() <-chan struct{} { return h.poolChanged }

// SessionPod is the live sandbox Pod of session id, as the watch last saw it; nil if none.
func (h *Hub) SessionPod(id string) *corev1.Pod {
	return liveSessionPod(h.Pods(), id)
}

// SessionPodNow is SessionPod, asking the API server when the watch shows none. The watch lags
// behind the API server — a claim's patch returns before the watch shows the claimed Pod, by
// more than a session's opening takes on a loaded node — so the watch's "none" is only a hint,
// never the verdict that ends a session and deletes its sandbox. The answer is nil with a nil
// error only when the API server has no live Pod for the session either.
func (h *Hub) SessionPodNow(ctx context.Context, id string) (*corev1.Pod, error) {
	if pod := h.SessionPod(id); pod != nil {
		return pod, nil
	}
	selector := labels.Set{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelComponent: podspec.ComponentSandbox,
		podspec.LabelSession: id}.String()
	list, err := h.client.CoreV1().Pods(h.namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, diagnose.APIError(err, "list", "pods", h.namespace, "")
	}
	pods := make([]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		pods[i] = &list.Items[i]
	}
	return liveSessionPod(pods, id), nil
}

func liveSessionPod(pods []*corev1.Pod, id string) *corev1.Pod {
	for _, pod := range pods {
		if LiveSessionPod(pod, id) {
			return pod
		}
	}
	return nil
}

// LiveSessionPod says whether pod is a live sandbox of session id: labelled for it, not being
// deleted, not ended.
func LiveSessionPod(pod *corev1.Pod, id string) bool {
	return pod.Labels[podspec.LabelSession] == id && pod.DeletionTimestamp == nil &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}
