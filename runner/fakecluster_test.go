package runner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/internal/wire"
)

// The runner's tests run on internal/fakecluster (a Job controller and kubelet on the fake
// clientset); these are the short names they use for it.

type scenario struct {
	steps  []func(*corev1.Pod)
	log    []byte // nil: the log stream never ends until its context does
	noPod  bool
	events []corev1.Event
	// keepPods: a deleted Job's Pod stays (a slow garbage collector).
	keepPods bool
}

type fakeCluster struct {
	*fakecluster.Cluster
	client   *fake.Clientset
	t        *testing.T
	scenario scenario
}

func newFakeCluster(t *testing.T, sc scenario, objects ...runtime.Object) *fakeCluster {
	t.Helper()
	c := fakecluster.New(t, fakecluster.Scenario{Steps: sc.steps, Log: sc.log, NoPod: sc.noPod, Events: sc.events, KeepPods: sc.keepPods}, objects...)
	// The runner's Role grants list and watch on Pods, not get (manifests/base/role.yaml): the
	// fake refuses a get as the API server would. Tests read Pods with fc.pod.
	c.Client.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "" {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), a.(k8stesting.GetAction).GetName(), errors.New("the gkexec Role grants list and watch on pods, not get"))
	})
	return &fakeCluster{Cluster: c, client: c.Client, t: t, scenario: sc}
}

// pod reads Pod name as the fake API server holds it, past the reactors (the runner may not get
// Pods; a test may look).
func (fc *fakeCluster) pod(name string) (*corev1.Pod, error) {
	obj, err := fc.client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), fakecluster.Namespace, name)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Pod), nil
}

// runner returns a Runner on the fake cluster with short graces. Its log requests go through the
// fake clientset's logs API, except in scenarios whose log never ends.
func (fc *fakeCluster) runner(o Options) *Runner {
	fc.t.Helper()
	o.Namespace = fakecluster.Namespace
	o.Client = fc.client
	r, err := New(o)
	if err != nil {
		fc.t.Fatal(err)
	}
	r.env.KillGrace = 200 * time.Millisecond
	if fc.scenario.log == nil {
		r.env.OpenLogs = func(ctx context.Context, _ string, _ *corev1.PodLogOptions) (io.ReadCloser, error) {
			return blockingReader{ctx}, nil
		}
	}
	fc.t.Cleanup(func() { _ = r.Close() })
	return r
}

func (fc *fakeCluster) leftovers() []string { return fc.Leftovers() }

type blockingReader struct{ ctx context.Context }

func (b blockingReader) Read([]byte) (int, error) { <-b.ctx.Done(); return 0, b.ctx.Err() }
func (b blockingReader) Close() error             { return nil }

type ioReadCloser = io.ReadCloser

func nopCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

var (
	scheduledOn    = fakecluster.ScheduledOn
	running        = fakecluster.Running
	terminatedWith = fakecluster.TerminatedWith
	waiting        = fakecluster.Waiting
	unschedulable  = fakecluster.Unschedulable
)

// framed builds a container log the way the entrypoint writes it (the wire's framing).
type framed struct{ fakecluster.Log }

// endRecord is the entrypoint's end record.
type endRecord = wire.End

func (f *framed) rec(tag wire.Tag, payload []byte) *framed { f.Record(tag, payload); return f }
func (f *framed) out(s string) *framed                     { f.Out(s); return f }
func (f *framed) err(s string) *framed                     { f.Err(s); return f }
func (f *framed) file(path string, data []byte) *framed    { f.File(path, data); return f }
func (f *framed) end(e endRecord) []byte                   { return f.End(e) }

// closeOnFirstOutput is a Request.Output that closes ch when the first chunk comes: the code
// is running.
func closeOnFirstOutput(ch chan struct{}) func(Stream, []byte) {
	var once sync.Once
	return func(Stream, []byte) { once.Do(func() { close(ch) }) }
}

// chunks records what an execution hands to Request.Output.
type chunks struct {
	order  []Stream
	stream map[Stream][]byte
}

func (c *chunks) add(s Stream, p []byte) {
	if c.stream == nil {
		c.stream = map[Stream][]byte{}
	}
	c.order = append(c.order, s)
	c.stream[s] = append(c.stream[s], p...)
}
