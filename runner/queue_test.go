package runner

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
)

// queuedSignal makes a signal on the returned channel each time a waiter joins a's queue.
func queuedSignal(a *sandbox.Admission) <-chan struct{} {
	ch := make(chan struct{}, 100)
	a.OnQueued = func() { ch <- struct{}{} }
	return ch
}

// await waits for a signal on ch, failing the test if none comes within a generous bound.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestQueuedExecutionsDoNotCountAgainstStartTimeout(t *testing.T) {
	t.Parallel()
	const startTimeout = 200 * time.Millisecond
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}})
	r := fc.runner(Options{MaxInFlight: 1, StartTimeout: startTimeout})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	queued := queuedSignal(r.cold.Admission())
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // on every path: Close waits for the first execution
	running := make(chan struct{})
	r.env.OpenLogs = func(ctx context.Context, pod string, _ *corev1.PodLogOptions) (ioReadCloser, error) {
		if pod == "gkexec-first-abcde" {
			close(running)
			<-release
		}
		return nopCloser(new(framed).out(pod).end(endRecord{})), nil
	}
	first := make(chan error, 1)
	go func() {
		_, err := r.Execute(context.Background(), Request{Code: "x", ExecutionID: "first"})
		first <- err
	}()
	await(t, running, "the first execution to run") // it holds the one slot
	second := make(chan Result, 1)
	go func() {
		res, err := r.Execute(context.Background(), Request{Code: "x", ExecutionID: "second"})
		if err != nil {
			t.Errorf("the queued execution failed: %v", err)
		}
		second <- res
	}()
	await(t, queued, "the second execution in the queue") // it waits for the first's slot
	<-time.After(3 * startTimeout)
	if created := fc.Created(); len(created) != 2 {
		t.Errorf("created %v while the second execution waited in the queue, want only the first's", created)
	}
	free()
	if err := <-first; err != nil {
		t.Errorf("first: %v", err)
	}
	res := <-second
	if string(res.Stdout) != "gkexec-second-abcde" {
		t.Errorf("second stdout %q", res.Stdout)
	}
	if q := res.Timings.Phases()["queue"]; q < 3*startTimeout {
		t.Errorf("queue phase %v, want at least the %v it waited", q, 3*startTimeout)
	}
	if res.Timings.Admitted.Before(res.Timings.Requested) || res.Timings.Created.Before(res.Timings.Admitted) {
		t.Errorf("timings out of order: %+v", res.Timings)
	}
}

func TestCancelledQueuedExecutionCreatesNothing(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}})
	r := fc.runner(Options{MaxInFlight: 1})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	queued := queuedSignal(r.cold.Admission())
	release := make(chan struct{})
	running := make(chan struct{})
	r.env.OpenLogs = func(ctx context.Context, pod string, _ *corev1.PodLogOptions) (ioReadCloser, error) {
		close(running) // only the first execution gets this far
		<-release
		return nopCloser(new(framed).end(endRecord{})), nil
	}
	defer close(release)
	go func() { _, _ = r.Execute(context.Background(), Request{Code: "x", ExecutionID: "first"}) }()
	await(t, running, "the first execution to run") // it holds the one slot
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var res Result
	var err error
	go func() {
		res, err = r.Execute(ctx, Request{Code: "x", ExecutionID: "second"})
		close(done)
	}()
	await(t, queued, "a waiter in the queue")
	cancel()
	<-done
	if !errors.Is(err, ErrCanceled) {
		t.Errorf("Execute: %v, want ErrCanceled", err)
	}
	if !res.Timings.Admitted.IsZero() || !res.Timings.Created.IsZero() {
		t.Errorf("timings %+v: a cancelled waiter was admitted", res.Timings)
	}
	for _, a := range fc.client.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource != "events" {
			if name := a.(k8stesting.CreateAction).GetObject().(metav1.Object).GetName(); name == "gkexec-second" {
				t.Errorf("the cancelled waiter created %s %s", a.GetResource().Resource, name)
			}
		}
	}
}

func quota(name string, hard corev1.ResourceList) *corev1.ResourceQuota {
	return &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: fakecluster.Namespace},
		Spec: corev1.ResourceQuotaSpec{Hard: hard}}
}

func TestMaxInFlightDefaultsToWhatTheQuotasAdmit(t *testing.T) {
	t.Parallel()
	q := resource.MustParse
	cases := []struct {
		name   string
		opts   Options
		quotas []runtime.Object
		forbid bool
		want   int
	}{
		{name: "no quota: unbounded", want: 0},
		{name: "pods", quotas: []runtime.Object{quota("a", corev1.ResourceList{"pods": q("10")})}, want: 10},
		{name: "requests.cpu over CPURequest", opts: Options{CPURequest: "250m"},
			quotas: []runtime.Object{quota("a", corev1.ResourceList{"pods": q("10"), "requests.cpu": q("1")})}, want: 4},
		{name: "cpu is requests.cpu", quotas: []runtime.Object{quota("a", corev1.ResourceList{"cpu": q("1")})}, want: 5},
		{name: "requests.memory over MemoryRequest", quotas: []runtime.Object{quota("a", corev1.ResourceList{"requests.memory": q("1Gi")})}, want: 4},
		{name: "limits", quotas: []runtime.Object{quota("a", corev1.ResourceList{"limits.cpu": q("2"), "limits.memory": q("8Gi")})}, want: 4},
		{name: "the smallest over quotas", quotas: []runtime.Object{
			quota("a", corev1.ResourceList{"pods": q("20")}), quota("b", corev1.ResourceList{"limits.memory": q("3Gi")})}, want: 6},
		{name: "a quota too small for one still admits one", quotas: []runtime.Object{quota("a", corev1.ResourceList{"requests.cpu": q("100m")})}, want: 1},
		{name: "set explicitly", opts: Options{MaxInFlight: 3}, quotas: []runtime.Object{quota("a", corev1.ResourceList{"pods": q("10")})}, want: 3},
		{name: "unbounded explicitly", opts: Options{MaxInFlight: -1}, quotas: []runtime.Object{quota("a", corev1.ResourceList{"pods": q("10")})}, want: 0},
		{name: "list forbidden: unbounded", forbid: true, quotas: []runtime.Object{quota("a", corev1.ResourceList{"pods": q("10")})}, want: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := fake.NewSimpleClientset(tc.quotas...)
			if tc.forbid {
				client.PrependReactor("list", "resourcequotas", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "resourcequotas"}, "", errors.New("denied"))
				})
			}
			o := tc.opts
			o.Namespace, o.Client = fakecluster.Namespace, client
			o.setDefaults()
			shape := o.shape()
			if got := sandbox.MaxInFlight(context.Background(), client, o.MaxInFlight, &shape, o.Logger); got != tc.want {
				t.Errorf("maxInFlight = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestRunnerReadsTheQuotaWhenItsWatchesStart: the bound is in force from the first execution.
func TestRunnerReadsTheQuotaWhenItsWatchesStart(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{}, quota("gkexec-quota", corev1.ResourceList{"pods": resource.MustParse("7")}))
	r := fc.runner(Options{})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.cold.Admission().Limit(); got != 7 {
		t.Errorf("admission limit %d, want the quota's 7 pods", got)
	}
}
