package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	"github.com/gkexec/gkexec/runner/internal/podspec"
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
	// StartTimeout also bounds each execution's own start through the fake cluster's watch chain,
	// so it is not made small: only the queue wait must outlast it.
	const startTimeout = 2 * time.Second
	const queueWait = startTimeout + 500*time.Millisecond
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
	<-time.After(queueWait)
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
	if q := res.Timings.Phases()["queue"]; q < queueWait {
		t.Errorf("queue phase %v, want at least the %v it waited", q, queueWait)
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

// Without a quota or MaxInFlight, the runner learns the room from its Pods' scheduling.

const insufficientCPU = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."

// boundSignal sends a's learned bound on the returned channel each time it changes.
func boundSignal(a *sandbox.Admission) <-chan int {
	ch := make(chan int, 100)
	a.OnBound = func(bound int) { ch <- bound }
	return ch
}

// logGate stands in for the container logs: each sandbox's log ends, with its Pod's name on
// stdout, when the test ends it; opened gets each Pod whose log was opened (its container started).
type logGate struct {
	mu     sync.Mutex
	end    map[string]chan struct{}
	ended  map[string]bool
	opened chan string
}

func newLogGate(r *Runner) *logGate {
	g := &logGate{end: map[string]chan struct{}{}, ended: map[string]bool{}, opened: make(chan string, 100)}
	r.env.OpenLogs = func(ctx context.Context, pod string, _ *corev1.PodLogOptions) (ioReadCloser, error) {
		g.opened <- pod
		select {
		case <-g.ch(pod):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nopCloser(new(framed).out(pod).end(endRecord{})), nil
	}
	return g
}

func (g *logGate) ch(pod string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.end[pod] == nil {
		g.end[pod] = make(chan struct{})
	}
	return g.end[pod]
}

// finish ends execution id's log; once is enough.
func (g *logGate) finish(id string) {
	ch := g.ch(podName(id))
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.ended[id] {
		g.ended[id] = true
		close(ch)
	}
}

// podName is the name the fake Job controller gives execution id's Pod.
func podName(id string) string { return podspec.ObjectName(id) + "-abcde" }

// setPod applies steps to execution id's Pod, once the fake Job controller has made it.
func (fc *fakeCluster) setPod(id string, steps ...func(*corev1.Pod)) {
	fc.t.Helper()
	pods := fc.client.CoreV1().Pods(fakecluster.Namespace)
	deadline := time.Now().Add(30 * time.Second)
	for {
		pod, err := fc.pod(podName(id))
		if err == nil {
			pod = pod.DeepCopy()
			for _, step := range steps {
				step(pod)
			}
			if _, err := pods.UpdateStatus(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
				fc.t.Fatal(err)
			}
			return
		}
		if time.Now().After(deadline) {
			fc.t.Fatalf("execution %s has no pod: %v", id, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// jobs names the executions whose Job was created so far, in order.
func (fc *fakeCluster) jobs() []string {
	var ids []string
	for _, a := range fc.client.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "jobs" {
			name := a.(k8stesting.CreateAction).GetObject().(metav1.Object).GetName()
			ids = append(ids, strings.TrimPrefix(name, "gkexec-"))
		}
	}
	return ids
}

// startQueueRun starts a runner on a fake cluster where the test plays the scheduler and the
// kubelet (fc.setPod) and ends each execution's log (logs.finish); x runs executions on it.
func startQueueRun(t *testing.T, opts Options, objects ...runtime.Object) (fc *fakeCluster, r *Runner, logs *logGate, x *executions) {
	t.Helper()
	fc = newFakeCluster(t, scenario{}, objects...)
	r = fc.runner(opts)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return fc, r, newLogGate(r), &executions{t: t, r: r}
}

// schedule binds execution id's Pod to node and runs it, then waits for that sandbox to start
// (its log opened) and fails if another's started instead.
func schedule(t *testing.T, fc *fakeCluster, logs *logGate, id, node string) {
	t.Helper()
	fc.setPod(id, scheduledOn(node), running)
	if got := await(t, logs.opened, id+" to start"); got != podName(id) {
		t.Fatalf("%s started, want %s", got, podName(id))
	}
}

// executions runs Execute for each ID in the background; results gets their errors by ID.
type executions struct {
	t       *testing.T
	r       *Runner
	results sync.Map // id -> chan error
}

func (e *executions) start(ids ...string) {
	for _, id := range ids {
		done := make(chan error, 1)
		e.results.Store(id, done)
		go func() {
			res, err := e.r.Execute(context.Background(), Request{Code: "x", ExecutionID: id})
			if err == nil && string(res.Stdout) != podName(id) {
				err = fmt.Errorf("stdout %q", res.Stdout)
			}
			done <- err
		}()
	}
}

func (e *executions) ended(id string) {
	e.t.Helper()
	done, _ := e.results.Load(id)
	if err := await(e.t, done.(chan error), "execution "+id+" to end"); err != nil {
		e.t.Errorf("execution %s: %v", id, err)
	}
}

// awaitInFlight waits until a holds n slots: a slot is given back once its Pod is gone, after
// Execute returned.
func awaitInFlight(t *testing.T, a *sandbox.Admission, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := a.InFlight()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d in flight, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNoRoomHoldsColdStartsInTheQueueUntilThereIsRoom(t *testing.T) {
	t.Parallel()
	fc, r, logs, x := startQueueRun(t, Options{}) // no quota, no MaxInFlight
	adm := r.cold.Admission()
	queued, bounds := queuedSignal(adm), boundSignal(adm)
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		defer logs.finish(id) // on every path: Close waits for the executions
	}

	// The node fits 2: a and b run, c lacks room.
	x.start("a", "b", "c")
	schedule(t, fc, logs, "a", "n")
	schedule(t, fc, logs, "b", "n")
	fc.setPod("c", unschedulable(insufficientCPU))
	if got := await(t, bounds, "the bound to be learned"); got != 2 {
		t.Fatalf("bound %d after c lacked room with a and b scheduled, want 2", got)
	}
	if got := r.MaxInFlight(); got != 2 {
		t.Errorf("Runner.MaxInFlight() = %d, want the learned 2", got)
	}
	for _, id := range []string{"d", "e", "f", "g"} {
		x.start(id)
		await(t, queued, id+" in the queue")
	}
	// a ends: its room is c's, and no new Pod is made to race c for it.
	logs.finish("a")
	x.ended("a")
	awaitInFlight(t, adm, 2)
	if got := fc.jobs(); len(got) != 3 {
		t.Fatalf("jobs created %v while c waited for room, want only a, b and c's", got)
	}
	schedule(t, fc, logs, "c", "n")
	// b ends: d, the first in line, goes; then c ends: e goes.
	logs.finish("b")
	x.ended("b")
	schedule(t, fc, logs, "d", "n")
	if got := fc.jobs(); !slices.Equal(got[3:], []string{"d"}) {
		t.Fatalf("jobs created after a, b and c: %v, want d's (first in line)", got[3:])
	}
	logs.finish("c")
	x.ended("c")
	schedule(t, fc, logs, "e", "n")
	// d ends: b and d ran without waiting for room while others waited in line — a bound's
	// worth: one more may go, and f and g do.
	logs.finish("d")
	x.ended("d")
	if got := await(t, bounds, "the bound to grow"); got != 3 {
		t.Fatalf("bound %d, want 3", got)
	}
	fc.setPod("f", scheduledOn("n"), running)
	fc.setPod("g", scheduledOn("n"), running)
	for _, id := range []string{"e", "f", "g"} {
		logs.finish(id)
		x.ended(id)
	}
	if got := fc.jobs(); !slices.Equal(got[3:5], []string{"d", "e"}) || len(got) != 7 {
		t.Errorf("jobs created %v, want a, b, c, then d, e in the order they queued, then f and g", got)
	}
	awaitInFlight(t, adm, 0)
	if left := fc.leftovers(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestScaleUpDoesNotShrinkTheBoundToNothing(t *testing.T) {
	t.Parallel()
	fc, r, logs, x := startQueueRun(t, Options{})
	adm := r.cold.Admission()
	queued, bounds := queuedSignal(adm), boundSignal(adm)
	defer logs.finish("a")
	defer logs.finish("b")
	x.start("a")
	fc.setPod("a", unschedulable(insufficientCPU)) // the node is full of others' Pods
	if got := await(t, bounds, "the bound to be learned"); got != 1 {
		t.Fatalf("bound %d, want 1", got)
	}
	x.start("b")
	await(t, queued, "b in the queue")
	// The autoscaler adds a node for a: a waits for it, as it would without the bound, and b
	// goes to the scheduler (and the autoscaler) too.
	_, err := fc.client.CoreV1().Events(fakecluster.Namespace).Create(context.Background(), &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "a.scaleup", UID: "uid-a-scaleup"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: podName("a"), Namespace: fakecluster.Namespace},
		Type:           corev1.EventTypeNormal, Reason: "TriggeredScaleUp",
		Message: "pod triggered scale-up: [{sandbox-pool 1->2 (max: 3)}]",
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := await(t, bounds, "the bound to be undone"); got != 0 {
		t.Fatalf("bound %d while a node is being added, want none", got)
	}
	schedule(t, fc, logs, "b", "n")
	schedule(t, fc, logs, "a", "n2") // the new node
	logs.finish("a")
	logs.finish("b")
	x.ended("a")
	x.ended("b")
}

// A sandbox Pod the scheduler makes room for by preempting lower-priority Pods (an idle warm
// pool's, which runs below executions) lacks room only for a moment: the learned bound must not
// shrink to what is scheduled, or a namespace with a warm pool runs fewer cold sandboxes at once
// than the node holds (make bench, staggered, pool of 4: bound 4–7 on a node of 10, 1.36/s
// against the floor's 1.82/s).
func TestPreemptionDoesNotShrinkTheLearnedBound(t *testing.T) {
	t.Parallel()
	fc, r, logs, x := startQueueRun(t, Options{})
	bounds := boundSignal(r.cold.Admission())
	for _, id := range []string{"a", "b", "c", "d"} {
		defer logs.finish(id)
	}
	x.start("a", "b")
	schedule(t, fc, logs, "a", "n")
	schedule(t, fc, logs, "b", "n")
	x.start("c")
	fc.setPod("c", unschedulable(insufficientCPU)) // the first attempt, before the preemption
	if got := await(t, bounds, "the bound to be learned"); got != 2 {
		t.Fatalf("bound %d, want 2", got)
	}
	// The scheduler evicts idle pool Pods for c and nominates the node for it: room is coming.
	fc.setPod("c", unschedulable(insufficientCPU), nominatedFor("n"))
	if got := await(t, bounds, "the bound to be undone"); got != 0 {
		t.Fatalf("bound %d while room is made for a sandbox by preemption, want none", got)
	}
	x.start("d") // not held in the runner's queue: it goes to the scheduler at once
	schedule(t, fc, logs, "d", "n")
	schedule(t, fc, logs, "c", "n")
	for _, id := range []string{"a", "b", "c", "d"} {
		logs.finish(id)
		x.ended(id)
	}
}

// nominatedFor is the scheduler's mark on a Pod it preempted others for.
func nominatedFor(node string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Status.NominatedNodeName = node }
}

func TestASetOrQuotaBoundIsNotLearned(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		opts    Options
		objects []runtime.Object
	}{
		{name: "MaxInFlight", opts: Options{MaxInFlight: 3}},
		{name: "quota", objects: []runtime.Object{quota("gkexec-quota", corev1.ResourceList{"pods": resource.MustParse("3")})}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fc, r, logs, x := startQueueRun(t, tc.opts, tc.objects...)
			queued := queuedSignal(r.cold.Admission())
			for _, id := range []string{"a", "b", "c", "d"} {
				defer logs.finish(id)
			}
			x.start("a", "b", "c")
			schedule(t, fc, logs, "a", "n")
			schedule(t, fc, logs, "b", "n")
			fc.setPod("c", unschedulable(insufficientCPU))
			x.start("d")
			await(t, queued, "d in the queue")
			// a ends: d takes its slot, though c lacks room, as the bound set says.
			logs.finish("a")
			x.ended("a")
			schedule(t, fc, logs, "d", "n")
			if got := r.MaxInFlight(); got != 3 {
				t.Errorf("Runner.MaxInFlight() = %d, want 3", got)
			}
			schedule(t, fc, logs, "c", "n")
		})
	}
}

// succeeded ends the sandbox container, and the Pod as Succeeded.
func succeeded(p *corev1.Pod) {
	p.Status.Phase = corev1.PodSucceeded
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "sandbox",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}}
}

// TestWhenASlotIsFree: a learning queue counts room as the scheduler does, which ignores a Pod
// that finished; a set bound holds the slot until the Pod is gone (a terminating Pod may still
// hold its requests on the node).
func TestWhenASlotIsFree(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name               string
		opts               Options
		freeOnceItFinished bool
	}{
		{name: "learning: once its pod finished", freeOnceItFinished: true},
		{name: "MaxInFlight: once its pod is gone", opts: Options{MaxInFlight: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.KeepObjects = true // the Pod stays after Execute: the test deletes it
			fc, r, logs, x := startQueueRun(t, tc.opts)
			adm := r.cold.Admission()
			x.start("a")
			schedule(t, fc, logs, "a", "n")
			logs.finish("a")
			x.ended("a")
			fc.setPod("a", succeeded)
			if tc.freeOnceItFinished {
				awaitInFlight(t, adm, 0)
			} else {
				time.Sleep(100 * time.Millisecond) // the runner sees the Pod finished in far less
				if n, _ := adm.InFlight(); n != 1 {
					t.Fatalf("%d in flight once the pod finished, want its slot held until the pod is gone", n)
				}
			}
			if err := fc.client.CoreV1().Pods(fakecluster.Namespace).Delete(context.Background(), podName("a"), metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			awaitInFlight(t, adm, 0)
		})
	}
}

// TestACancelledExecutionsSlotWaitsForAPodTheWatchHasNotShown: an execution cancelled right after
// its Job was made, before the watch showed the Job's Pod. The Pod exists, and holds its room on
// the node until it is gone: the slot must not be freed on the watch's silence.
func TestACancelledExecutionsSlotWaitsForAPodTheWatchHasNotShown(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{keepPods: true})
	r := fc.runner(Options{MaxInFlight: 1})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	adm := r.cold.Admission()
	release := fc.HoldPodEvents()
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	made := make(chan struct{})
	fc.client.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		close(made) // the Job controller makes the Pod: the caller gives up now
		return false, nil, nil
	})
	done := make(chan error)
	go func() {
		_, err := r.Execute(ctx, Request{Code: "x", ExecutionID: "gaveup"})
		done <- err
	}()
	await(t, made, "the job's pod to be made")
	cancel()
	if err := <-done; !errors.Is(err, ErrCanceled) {
		t.Fatalf("Execute: %v, want ErrCanceled", err)
	}
	eventually(t, "the job's pod to be made", func() bool { _, err := fc.pod(podName("gaveup")); return err == nil })
	time.Sleep(200 * time.Millisecond) // the runner decides in far less
	if n, _ := adm.InFlight(); n != 1 {
		t.Fatalf("%d in flight while the cancelled execution's pod exists, want its slot held", n)
	}
	if err := fc.client.CoreV1().Pods(fakecluster.Namespace).Delete(context.Background(), podName("gaveup"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	release()
	awaitInFlight(t, adm, 0)
}
