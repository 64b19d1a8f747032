package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/gkexec/gkexec/internal/egress"
)

// Pod annotations the gateway reads: the runner's side of the contract.
const (
	// AnnotationEgressAllow narrows the namespace's allow-list for one sandbox Pod, in
	// ParseRules syntax: "pypi.org *.pythonhosted.org api.example.com:8443". Absent: the Pod
	// gets the namespace's list. "none" or empty: the Pod gets nothing, and so does a Pod whose
	// value does not parse (fail closed; the gateway logs why).
	//
	// Set it when the Pod is created (a cold Job's template), or, for a warm pool, create idle
	// Pods with "none" and patch the narrowing in when claiming: the gateway sees the change a
	// moment later (the admin API's Version shows when), and until then the Pod gets nothing.
	AnnotationEgressAllow = egress.AnnotationAllow
	// AnnotationEgressTokenSHA256 is TokenHash of the token the sandbox sends as its proxy
	// password (HTTPS_PROXY=http://sandbox:TOKEN@gateway:3128), for networks where the source
	// address does not identify the Pod. The token itself is never on the Pod object.
	AnnotationEgressTokenSHA256 = egress.AnnotationTokenSHA256
	// EgressNone is the AnnotationEgressAllow value that allows nothing.
	EgressNone = egress.AllowNone
)

// DefaultPodSelector selects the sandbox Pods the runner creates (runner.LabelManagedBy and
// runner.LabelComponent; a test in cmd/gkexec keeps the two in step).
const DefaultPodSelector = "app.kubernetes.io/managed-by=gkexec,app.kubernetes.io/component=sandbox"

// PodDirectory is the production Directory: a watch on the namespace's sandbox Pods that maps
// each Pod's IP addresses (and token hash) to the Pod, with its narrowing annotation. A Pod
// leaves the directory when it is deleted, terminating, or finished, so a reused IP address
// never carries a gone Pod's identity longer than the watch's delay; while the watch still
// holds a Pod whose address a newer one has, the address is the newer Pod's (by creation time,
// whatever order the events come in; nobody's when both were created in the same second). Pods
// on the host network are never identified by address: they share the node's.
type PodDirectory struct {
	client    kubernetes.Interface
	namespace string
	selector  string
	log       *slog.Logger

	mu      sync.RWMutex
	changed chan struct{} // closed, and replaced, whenever the directory changes
	byID    map[string]podEntry
	byAddr  map[netip.Addr]string   // -> the ID of the Pod that owns the address
	claims  map[netip.Addr][]string // -> the IDs of every Pod that has the address
	byToken map[string]string       // -> ID
}

type podEntry struct {
	sandbox Sandbox
	addrs   []netip.Addr
	created time.Time
}

// NewPodDirectory watches the Pods of namespace that selector selects (DefaultPodSelector if
// empty); Start starts the watch.
func NewPodDirectory(client kubernetes.Interface, namespace, selector string, log *slog.Logger) *PodDirectory {
	if selector == "" {
		selector = DefaultPodSelector
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PodDirectory{client: client, namespace: namespace, selector: selector, log: log, changed: make(chan struct{}),
		byID: map[string]podEntry{}, byAddr: map[netip.Addr]string{}, claims: map[netip.Addr][]string{}, byToken: map[string]string{}}
}

// Start checks that the gateway may list the Pods (so a missing RBAC rule is a clear error, not
// a watch retrying forever), starts the watch until ctx ends, and waits for its first list.
func (d *PodDirectory) Start(ctx context.Context) error {
	if _, err := d.client.CoreV1().Pods(d.namespace).List(ctx, metav1.ListOptions{LabelSelector: d.selector, Limit: 1}); err != nil {
		return fmt.Errorf("listing pods in namespace %s (the gateway needs get, list and watch on pods there): %w", d.namespace, err)
	}
	inf := coreinformers.NewFilteredPodInformer(d.client, d.namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = d.selector })
	_ = inf.SetTransform(func(obj any) (any, error) {
		if p, ok := obj.(*corev1.Pod); ok {
			p.ManagedFields = nil
		}
		return obj, nil
	})
	handler, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { d.onPod(obj, false) },
		UpdateFunc: func(_, obj any) { d.onPod(obj, false) },
		DeleteFunc: func(obj any) { d.onPod(obj, true) },
	})
	if err != nil {
		return fmt.Errorf("watching pods in namespace %s: %w", d.namespace, err)
	}
	go inf.Run(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The handler's sync, not the informer's: the informer counts as synced once it has queued the
	// first list for its handlers, and a sandbox whose Pod is still in that queue would be refused.
	if !cache.WaitForCacheSync(syncCtx.Done(), handler.HasSynced) {
		return fmt.Errorf("watching pods in namespace %s did not start: %w", d.namespace, syncCtx.Err())
	}
	return nil
}

func (d *PodDirectory) onPod(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() { close(d.changed); d.changed = make(chan struct{}) }()
	d.removeLocked(pod.Name)
	if deleted || pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return
	}
	e := podEntry{sandbox: d.sandboxOf(pod), created: pod.CreationTimestamp.Time}
	if !pod.Spec.HostNetwork {
		for _, ip := range pod.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				e.addrs = append(e.addrs, a.Unmap())
			}
		}
		if len(e.addrs) == 0 && pod.Status.PodIP != "" {
			if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
				e.addrs = append(e.addrs, a.Unmap())
			}
		}
	}
	if len(e.addrs) > 0 {
		e.sandbox.Addr = e.addrs[0]
	}
	d.byID[pod.Name] = e
	for _, a := range e.addrs {
		d.claims[a] = append(d.claims[a], pod.Name)
		d.settleLocked(a)
	}
	if h := e.sandbox.TokenSHA256; h != "" {
		d.byToken[h] = pod.Name
	}
}

// sandboxOf reads a Pod's identity and narrowing.
func (d *PodDirectory) sandboxOf(pod *corev1.Pod) Sandbox {
	sb := Sandbox{ID: pod.Name, Version: pod.ResourceVersion}
	if h, ok := pod.Annotations[AnnotationEgressTokenSHA256]; ok {
		sb.TokenSHA256 = strings.ToLower(strings.TrimSpace(h))
	}
	value, narrowed := pod.Annotations[AnnotationEgressAllow]
	if !narrowed {
		return sb
	}
	sb.Allow = &AllowList{}
	if v := strings.TrimSpace(value); v == "" || v == EgressNone {
		return sb
	}
	rules, err := ParseRules(value)
	if err == nil {
		var l *AllowList
		if l, err = NewAllowList(rules); err == nil {
			sb.Allow = l
			return sb
		}
	}
	d.log.Warn("sandbox Pod's egress narrowing does not parse: it gets nothing", "pod", pod.Name, "annotation", AnnotationEgressAllow, "error", err)
	return sb
}

func (d *PodDirectory) removeLocked(id string) {
	e, ok := d.byID[id]
	if !ok {
		return
	}
	delete(d.byID, id)
	for _, a := range e.addrs {
		d.claims[a] = slices.DeleteFunc(d.claims[a], func(c string) bool { return c == id })
		d.settleLocked(a)
	}
	if h := e.sandbox.TokenSHA256; h != "" && d.byToken[h] == id {
		delete(d.byToken, h)
	}
}

// settleLocked gives an address to the newest Pod that has it (a reused address: the older
// one is gone, the watch has not seen it yet), or to nobody when the newest two were created
// in the same second (creation times have seconds only) or no Pod has it.
func (d *PodDirectory) settleLocked(a netip.Addr) {
	delete(d.byAddr, a)
	var owner string
	var newest time.Time
	tie := false
	for _, id := range d.claims[a] {
		switch c := d.byID[id].created; {
		case owner == "" || c.After(newest):
			owner, newest, tie = id, c, false
		case c.Equal(newest):
			tie = true
		}
	}
	switch {
	case len(d.claims[a]) == 0:
		delete(d.claims, a)
	case !tie:
		d.byAddr[a] = owner
	}
}

// ByAddr implements Directory.
func (d *PodDirectory) ByAddr(a netip.Addr) (Sandbox, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	id, ok := d.byAddr[a.Unmap()]
	if !ok {
		return Sandbox{}, false
	}
	return d.byID[id].sandbox, true
}

// WaitAddr implements AddrWaiter.
func (d *PodDirectory) WaitAddr(ctx context.Context, a netip.Addr) (Sandbox, bool) {
	for {
		d.mu.RLock()
		id, ok := d.byAddr[a.Unmap()]
		sb, changed := d.byID[id].sandbox, d.changed
		d.mu.RUnlock()
		if ok {
			return sb, true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Sandbox{}, false
		}
	}
}

// ByTokenHash implements Directory.
func (d *PodDirectory) ByTokenHash(h string) (Sandbox, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	id, ok := d.byToken[h]
	if !ok {
		return Sandbox{}, false
	}
	return d.byID[id].sandbox, true
}

// ByID implements Directory.
func (d *PodDirectory) ByID(id string) (Sandbox, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	e, ok := d.byID[id]
	return e.sandbox, ok
}
