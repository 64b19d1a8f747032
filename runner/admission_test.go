package runner

import (
	"context"
	"errors"
	"slices"
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
)

// queuedSignal makes a signal on the returned channel each time a waiter joins a's queue.
func queuedSignal(a *admission) <-chan struct{} {
	ch := make(chan struct{}, 100)
	a.onQueued = func() { ch <- struct{}{} }
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

func TestAdmissionIsFirstComeFirstServed(t *testing.T) {
	t.Parallel()
	a := newAdmission(1)
	queued := queuedSignal(a)
	leave, err := a.admit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	order := make(chan int, n)
	for i := range n {
		go func() {
			leave, err := a.admit(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			leave()
		}()
		await(t, queued, "a waiter in the queue") // waiter i is in line before waiter i+1 arrives
	}
	leave()
	var got []int
	for range n {
		got = append(got, await(t, order, "an admission"))
	}
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7}; !slices.Equal(got, want) {
		t.Errorf("admitted in order %v, want %v", got, want)
	}
}

func TestAdmissionBoundsInFlight(t *testing.T) {
	t.Parallel()
	a := newAdmission(2)
	queued := queuedSignal(a)
	first, _ := a.admit(context.Background())
	second, _ := a.admit(context.Background())
	third := make(chan func(), 1)
	go func() {
		leave, _ := a.admit(context.Background())
		third <- leave
	}()
	await(t, queued, "a waiter in the queue")
	select {
	case <-third:
		t.Fatal("a third execution was admitted while two were in flight")
	default:
	}
	second()
	(<-third)()
	first()
	// Unbounded: never waits.
	u := newAdmission(0)
	for range 100 {
		if _, err := u.admit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAdmissionCancelledWaiterLeavesTheQueue(t *testing.T) {
	t.Parallel()
	a := newAdmission(1)
	queued := queuedSignal(a)
	leave, _ := a.admit(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := a.admit(ctx)
		gaveUp <- err
	}()
	await(t, queued, "a waiter in the queue")
	next := make(chan struct{})
	go func() {
		leave, _ := a.admit(context.Background())
		close(next)
		leave()
	}()
	await(t, queued, "a waiter in the queue")
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: %v, want context.Canceled", err)
	}
	leave()
	<-next // the slot went to the waiter behind the cancelled one
	if l, _ := a.admit(context.Background()); l == nil {
		t.Error("the slot was lost")
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
	queued := queuedSignal(r.admission)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // on every path: Close waits for the first execution
	running := make(chan struct{})
	r.openLogs = func(ctx context.Context, pod string, _ *corev1.PodLogOptions) (ioReadCloser, error) {
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
	queued := queuedSignal(r.admission)
	release := make(chan struct{})
	running := make(chan struct{})
	r.openLogs = func(ctx context.Context, pod string, _ *corev1.PodLogOptions) (ioReadCloser, error) {
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
			if got := maxInFlight(context.Background(), client, &o); got != tc.want {
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
	if got := r.admission.limit; got != 7 {
		t.Errorf("admission limit %d, want the quota's 7 pods", got)
	}
}
