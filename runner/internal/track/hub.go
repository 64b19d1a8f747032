package track

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
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
	// previous holds, by execution ID, trackers of earlier Jobs of an ID used again, still
	// following their Pods.
	previous map[string][]*Tracker
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

// NewHub returns a hub; Start starts its watches.
func NewHub() *Hub {
	return &Hub{trackers: map[string]*Tracker{}, previous: map[string][]*Tracker{}, changed: make(chan struct{}), stop: make(chan struct{}), poolChanged: make(chan struct{}, 1)}
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
	onEvent := cache.ResourceEventHandlerFuncs{AddFunc: h.onEvent, UpdateFunc: func(_, obj any) { h.onEvent(obj) }}
	watches := []struct {
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{
		{pods, cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { h.onPod(obj, false) },
			UpdateFunc: func(_, obj any) { h.onPod(obj, false) },
			DeleteFunc: func(obj any) { h.onPod(obj, true) },
		}},
		{events, onEvent},
		{scale, onEvent},
	}
	h.pods = pods.GetStore()
	h.client, h.namespace = client, namespace
	// Synced means each handler has been handed the first list, not only that the informers hold it.
	var synced []cache.InformerSynced
	for _, w := range watches {
		_ = w.informer.SetTransform(stripManagedFields)
		reg, err := w.informer.AddEventHandler(w.handler)
		if err != nil {
			return fmt.Errorf("%w: watching pods and events in namespace %s: %w", diagnose.ErrCluster, namespace, err)
		}
		synced = append(synced, reg.HasSynced)
	}
	for _, w := range watches {
		h.done.Add(1)
		go func() {
			defer h.done.Done()
			w.informer.Run(h.stop)
		}()
	}
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), synced...) {
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

// Track registers a sandbox to follow by key: PodKey for a warm sandbox, whose Pod is known.
func (h *Hub) Track(key string) *Tracker {
	return h.track(key, false)
}

// TrackJob registers the Pod of a Job about to be made for execution id; Tracker.Own names the
// Job once it is made. An ID may be used again while the previous Job's Pod, which carries it too,
// is still going: each tracker follows its own Job's Pod, and the previous one keeps following its
// own until it is untracked.
func (h *Hub) TrackJob(id string) *Tracker {
	return h.track(id, true)
}

func (h *Hub) track(key string, job bool) *Tracker {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := &Tracker{id: key, job: job, wake: make(chan struct{}, 1), events: map[string]*corev1.Event{}}
	if old := h.trackers[key]; old != nil {
		h.previous[key] = append(h.previous[key], old)
	}
	h.trackers[key] = t
	return t
}

// Untrack stops following t; a later tracker under the same key (a new execution with a reused ID)
// is left alone.
func (h *Hub) Untrack(id string, t *Tracker) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.trackers[id] == t {
		delete(h.trackers, id)
		if prev := h.previous[id]; len(prev) > 0 {
			// The newest of the earlier ones takes the key back; the rest stay earlier.
			h.trackers[id], h.previous[id] = prev[len(prev)-1], prev[:len(prev)-1]
		}
	} else {
		h.previous[id] = slices.DeleteFunc(h.previous[id], func(p *Tracker) bool { return p == t })
	}
	if len(h.previous[id]) == 0 {
		delete(h.previous, id)
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
	if t := h.lookup(PodKey(pod.Name)); t != nil {
		t.offer(pod, deleted)
		return
	}
	if pod.Labels[podspec.LabelPool] != "" {
		return // never a pool Pod that carried an ID: one whose request was lost, deleted as the execution runs cold
	}
	// A cold sandbox's Pod, followed by its execution's ID: by the tracker of its own Job.
	if id := pod.Labels[podspec.LabelExecutionID]; id != "" {
		for _, t := range h.followers(id) {
			t.offer(pod, deleted)
		}
	}
}

// followers are the trackers under id, newest first.
func (h *Hub) followers(id string) []*Tracker {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ts []*Tracker
	if t := h.trackers[id]; t != nil {
		ts = append(ts, t)
	}
	for i := len(h.previous[id]) - 1; i >= 0; i-- {
		ts = append(ts, h.previous[id][i])
	}
	return ts
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

// PodNow is the Pod named name as the API server has it now, nil if it has none. It lists by
// name rather than getting: the runner's Role grants list and watch on Pods, not get.
func (h *Hub) PodNow(ctx context.Context, name string) (*corev1.Pod, error) {
	list, err := h.client.CoreV1().Pods(h.namespace).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		return nil, diagnose.APIError(err, "list", "pods", h.namespace, "")
	}
	for i := range list.Items {
		if list.Items[i].Name == name {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// SessionPodOf is pod — a Pod of session id, by name and UID — while it is the session's live
// sandbox: the watch's copy when the watch shows it live, else the API server's (the watch lags
// behind it); nil when the API server has it no longer live (deleted, being deleted, ended, or
// replaced by another of the name). Another Pod labelled for the session is never taken for it.
func (h *Hub) SessionPodOf(ctx context.Context, id string, pod *corev1.Pod) (*corev1.Pod, error) {
	if seen := h.Pod(pod.Name); seen != nil && seen.UID == pod.UID && LiveSessionPod(seen, id) {
		return seen, nil
	}
	return h.SessionPodOfNow(ctx, id, pod)
}

// SessionPodOfNow is SessionPodOf as the API server has it now, whatever the watch shows.
func (h *Hub) SessionPodOfNow(ctx context.Context, id string, pod *corev1.Pod) (*corev1.Pod, error) {
	got, err := h.PodNow(ctx, pod.Name)
	if err != nil || got == nil || got.UID != pod.UID || !LiveSessionPod(got, id) {
		return nil, err
	}
	return got, nil
}

// JobPodNow is the Pod that Job job made for execution id, as the API server has it now; nil if
// it has none.
func (h *Hub) JobPodNow(ctx context.Context, id string, job types.UID) (*corev1.Pod, error) {
	list, err := h.client.CoreV1().Pods(h.namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.Set{podspec.LabelExecutionID: id}.String()})
	if err != nil {
		return nil, diagnose.APIError(err, "list", "pods", h.namespace, "")
	}
	for i := range list.Items {
		if ref := metav1.GetControllerOf(&list.Items[i]); ref != nil && ref.UID == job {
			return &list.Items[i], nil
		}
	}
	return nil, nil
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
