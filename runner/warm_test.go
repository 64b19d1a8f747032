package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
)

// The warm source on the fake clientset: pool Pods are objects in it, and attach is a stand-in
// that speaks the entrypoint's stdin protocol (the real entrypoint's side of it is proven in
// warm_entrypoint_test.go, the whole path on the real cluster in test/e2e).

// poolPod is an idle, ready pool Pod for the options, created age ago.
func poolPod(t *testing.T, o Options, name string, age time.Duration) *corev1.Pod {
	t.Helper()
	d, err := WarmPoolDeployment(o, 1)
	if err != nil {
		t.Fatal(err)
	}
	created := metav1.NewTime(time.Now().Add(-age))
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, UID: types.UID("uid-" + name),
			Labels: d.Spec.Template.Labels, Annotations: d.Spec.Template.Annotations, CreationTimestamp: created},
		Spec: d.Spec.Template.Spec,
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &created,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: podspec.ContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
}

// fakeAttach answers pings and, once the request is complete, writes output for it.
func fakeAttach(output []byte) sandbox.AttachFunc {
	return func(ctx context.Context, _ string, stdin io.Reader, stdout io.Writer) error {
		br := bufio.NewReader(stdin)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return nil
			}
			switch {
			case strings.HasPrefix(line, "P:"):
				if _, err := io.WriteString(stdout, "P:\n"); err != nil {
					return err
				}
			case strings.HasPrefix(line, "G:"):
				if _, err := stdout.Write(output); err != nil {
					return err
				}
				<-ctx.Done() // the entrypoint lingers until its Pod is deleted
				return nil
			}
		}
	}
}

func warmRunner(t *testing.T, fc *fakeCluster, o Options, attach sandbox.AttachFunc) *Runner {
	t.Helper()
	o.WarmPoolReady = -1
	r := fc.runner(o)
	r.env.Attach = attach
	return r
}

func TestWarmExecutionClaimsOnePodAndDeletesIt(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}}, poolPod(t, o, "pool-a", time.Minute))
	r := warmRunner(t, fc, o, fakeAttach(new(framed).out("warm\n").err("note\n").end(endRecord{ExitCode: 2})))

	var streamed chunks
	res, err := r.Execute(context.Background(), Request{Code: "print('warm')", ExecutionID: "w1", Output: streamed.add})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if !reflect.DeepEqual(streamed.order, []Stream{Stdout, Stderr}) || string(streamed.stream[Stderr]) != "note\n" {
		t.Errorf("streamed %v %q, want stdout then stderr as the sandbox sent them", streamed.order, streamed.stream)
	}
	if res.Sandbox != SandboxWarm || res.PodName != "pool-a" || string(res.Stdout) != "warm\n" || res.ExitCode != 2 {
		t.Errorf("sandbox %q pod %q stdout %q exit %d, want warm in pool-a", res.Sandbox, res.PodName, res.Stdout, res.ExitCode)
	}
	_ = r.Close() // waits for the background delete of the used Pod
	var claim []byte
	for _, a := range fc.client.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetResource().Resource == "pods" && strings.Contains(string(p.GetPatch()), `"`+LabelPoolState+`":"`+PoolStateClaimed+`"`) {
			claim = p.GetPatch()
		}
	}
	for _, want := range []string{`"resourceVersion"`, `"activeDeadlineSeconds"`, AnnotationClaimedAt, AnnotationSafeToEvict} {
		if !strings.Contains(string(claim), want) {
			t.Errorf("claim patch %s lacks %s", claim, want)
		}
	}
	if _, err := fc.pod("pool-a"); err == nil {
		t.Error("the used pool pod was not deleted")
	}
	// Used, it is gone at once: a graceful delete would hold its requests on the node (and the
	// scheduler's room) through the kubelet's kill and gVisor's teardown.
	for _, a := range fc.client.Actions() {
		if d, ok := a.(k8stesting.DeleteAction); ok && a.GetResource().Resource == "pods" {
			if g := d.GetDeleteOptions().GracePeriodSeconds; g == nil || *g != 0 {
				t.Errorf("the used pool pod was deleted with grace period %v, want 0", g)
			}
		}
	}
	if hasAction(fc.client.Actions(), "create", "jobs") {
		t.Error("a Job was created for a warm execution")
	}
}

func TestIdlePoolPodsPastTheirAgeAreRecycledNotUsed(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox", WarmPoolMaxIdleAge: time.Hour}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).out("cold\n").end(endRecord{})},
		poolPod(t, o, "pool-old", 2*time.Hour))
	r := warmRunner(t, fc, o, fakeAttach(new(framed).out("warm\n").end(endRecord{})))

	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || res.Sandbox != SandboxCold {
		t.Fatalf("Execute: %v, sandbox %q; want cold (the only pool pod is too old)", err, res.Sandbox)
	}
	_ = r.Close()
	if _, err := fc.pod("pool-old"); err == nil {
		t.Error("the idle pod past WarmPoolMaxIdleAge was not recycled")
	}
}

func TestWarmFallsBackToColdWhenTheAttachFails(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).out("cold\n").end(endRecord{})},
		poolPod(t, o, "pool-a", time.Minute))
	r := warmRunner(t, fc, o, func(context.Context, string, io.Reader, io.Writer) error {
		return errors.New("upgrade refused")
	})
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || res.Sandbox != SandboxCold || string(res.Stdout) != "cold\n" {
		t.Fatalf("Execute: %v, sandbox %q, stdout %q; want a cold run", err, res.Sandbox, res.Stdout)
	}
	_ = r.Close()
	// The claimed Pod is out of the pool: it must not linger.
	if _, err := fc.pod("pool-a"); err == nil {
		t.Error("the claimed pod whose attach failed was not deleted")
	}
}

func TestPoolPodsOfOtherOptionsAreNotClaimed(t *testing.T) {
	t.Parallel()
	pool := Options{Namespace: "sandbox", Image: "python:3.12-slim"}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).out("cold\n").end(endRecord{})},
		poolPod(t, pool, "pool-other", time.Minute))
	r := warmRunner(t, fc, Options{Namespace: "sandbox"}, fakeAttach(nil))
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || res.Sandbox != SandboxCold {
		t.Fatalf("Execute: %v, sandbox %q; want cold", err, res.Sandbox)
	}
	if hasAction(fc.client.Actions(), "patch", "pods") {
		t.Error("a pool pod with another image was claimed")
	}
}

// TestColdFallbacksSayWhyThePoolMissed: an execution the pool cannot serve runs cold, and its Job
// and Pod say which pool missed it and why (what sizes the pool counts across runners); the
// runner counts claims and fallbacks by reason.
func TestColdFallbacksSayWhyThePoolMissed(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	notReady := poolPod(t, o, "pool-starting", time.Second)
	notReady.Status.Conditions = nil
	cases := []struct {
		name   string
		pods   []*corev1.Pod
		attach sandbox.AttachFunc
		want   string // the annotation; "" for a warm execution
	}{
		{name: "warm: no annotation", pods: []*corev1.Pod{poolPod(t, o, "pool-a", time.Minute)}},
		{name: "no pod at all", want: "default/" + PoolMissEmpty},
		{name: "only a pod not yet ready", pods: []*corev1.Pod{notReady}, want: "default/" + PoolMissEmpty},
		{name: "only pods of other options", pods: []*corev1.Pod{poolPod(t, Options{Namespace: "sandbox", Image: "python:3.12-slim"}, "pool-other", time.Minute)},
			want: "default/" + PoolMissMismatch},
		{name: "the attach fails", pods: []*corev1.Pod{poolPod(t, o, "pool-a", time.Minute)},
			attach: func(context.Context, string, io.Reader, io.Writer) error { return errors.New("upgrade refused") }, want: "default/" + PoolMissAttach},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var objs []runtime.Object
			for _, p := range c.pods {
				objs = append(objs, p)
			}
			fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).out("cold\n").end(endRecord{})}, objs...)
			attach := c.attach
			if attach == nil {
				attach = fakeAttach(new(framed).out("warm\n").end(endRecord{}))
			}
			r := warmRunner(t, fc, o, attach)
			if _, err := r.Execute(context.Background(), Request{Code: "x", ExecutionID: "m1"}); err != nil {
				t.Fatalf("Execute: %v", err)
			}
			var job *batchv1.Job
			for _, a := range fc.client.Actions() {
				if ca, ok := a.(k8stesting.CreateAction); ok && a.GetResource().Resource == "jobs" {
					job = ca.GetObject().(*batchv1.Job)
				}
			}
			stats := r.PoolStats()
			if c.want == "" {
				if job != nil || stats.Claims != 1 {
					t.Errorf("a Job was created (%v) or claims = %d, want one warm claim", job != nil, stats.Claims)
				}
				return
			}
			if job == nil {
				t.Fatal("no Job was created")
			}
			if got, got2 := job.Annotations[AnnotationPoolMiss], job.Spec.Template.Annotations[AnnotationPoolMiss]; got != c.want || got2 != c.want {
				t.Errorf("Job annotation %q, Pod template's %q; want %q on both", got, got2, c.want)
			}
			reason := strings.TrimPrefix(c.want, "default/")
			for _, r := range PoolMissReasons() {
				want := uint64(0)
				if r == reason {
					want = 1
				}
				if stats.ColdFallbacks[r] != want {
					t.Errorf("ColdFallbacks[%s] = %d, want %d (all: %v)", r, stats.ColdFallbacks[r], want, stats.ColdFallbacks)
				}
			}
		})
	}
}

func TestAColdOnlyRunnerMarksNoMiss(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).out("cold\n").end(endRecord{})})
	r := fc.runner(Options{NoWarmPool: true})
	if _, err := r.Execute(context.Background(), Request{Code: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range fc.client.Actions() {
		if ca, ok := a.(k8stesting.CreateAction); ok && a.GetResource().Resource == "jobs" {
			if v, ok := ca.GetObject().(*batchv1.Job).Spec.Template.Annotations[AnnotationPoolMiss]; ok {
				t.Errorf("a runner without a pool marked its cold sandbox %q", v)
			}
		}
	}
}

// TestClaimsSayWhatTheyAreFor: a claim says what it is for, so that what sizes the pool counts
// demand and not a runner's own renewals: the sandbox held at Start is a renewal, the one that
// replaces it once an execution took it is demand ("ready"), a claim on request is an execution's.
func TestClaimsSayWhatTheyAreFor(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox", WarmPoolReady: 1}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute), poolPod(t, o, "pool-b", time.Minute))
	r := fc.runner(o)
	r.env.Attach = fakeAttach(new(framed).out("warm\n").end(endRecord{}))
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	claimedFor := func() []string {
		var got []string
		for _, a := range fc.client.Actions() {
			p, ok := a.(k8stesting.PatchAction)
			if !ok || !strings.Contains(string(p.GetPatch()), `"`+LabelPoolState+`":"`+PoolStateClaimed+`"`) {
				continue
			}
			var patch struct {
				Metadata struct{ Annotations map[string]string } `json:"metadata"`
			}
			if err := json.Unmarshal(p.GetPatch(), &patch); err != nil {
				t.Fatal(err)
			}
			got = append(got, patch.Metadata.Annotations[AnnotationClaimedFor])
		}
		return got
	}
	eventually(t, "the sandbox held at Start", func() bool { return len(claimedFor()) == 1 })
	if _, err := r.Execute(context.Background(), Request{Code: "x"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the held sandbox's replacement", func() bool { return len(claimedFor()) == 2 })
	if got, want := claimedFor(), []string{ClaimedForRenewal, ClaimedForReady}; !reflect.DeepEqual(got, want) {
		t.Errorf("claimed for %q, want %q", got, want)
	}

	fc2 := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	r2 := warmRunner(t, fc2, o, fakeAttach(new(framed).out("warm\n").end(endRecord{})))
	if _, err := r2.Execute(context.Background(), Request{Code: "x"}); err != nil {
		t.Fatal(err)
	}
	fc = fc2
	if got := claimedFor(); !reflect.DeepEqual(got, []string{ClaimedForExecution}) {
		t.Errorf("claim on request: claimed for %q, want %q", got, ClaimedForExecution)
	}
}

// TestTheAttachOpensWhileTheClaimIsOnItsWay: the attach stream is opened as the claim's patch
// is sent, so that the two round trips overlap: here the patch is held until the attach began,
// which would never happen were the attach opened after it.
func TestTheAttachOpensWhileTheClaimIsOnItsWay(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	attached := make(chan struct{})
	var once sync.Once
	inner := fakeAttach(new(framed).out("warm\n").end(endRecord{}))
	fc.client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if !strings.Contains(string(a.(k8stesting.PatchAction).GetPatch()), PoolStateClaimed) {
			return false, nil, nil
		}
		select {
		case <-attached:
			return false, nil, nil
		case <-time.After(10 * time.Second):
			return true, nil, errors.New("the attach did not begin while the claim was on its way")
		}
	})
	r := warmRunner(t, fc, o, func(ctx context.Context, pod string, stdin io.Reader, stdout io.Writer) error {
		once.Do(func() { close(attached) })
		return inner(ctx, pod, stdin, stdout)
	})
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || res.Sandbox != SandboxWarm {
		t.Fatalf("Execute: %v, sandbox %q; want warm", err, res.Sandbox)
	}
}

// TestAStreamToAPodAnotherRunnerWonIsCutUnwritten: when another runner wins the Pod whose
// stream was opened with the claim, that stream ends at once and nothing was written to it; the
// execution claims the next Pod.
func TestAStreamToAPodAnotherRunnerWonIsCutUnwritten(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute), poolPod(t, o, "pool-b", time.Minute))
	var lost string
	var mu sync.Mutex
	fc.client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(string(p.GetPatch()), PoolStateClaimed) || lost != "" {
			return false, nil, nil
		}
		lost = p.GetName() // the first claim loses the race
		return true, nil, apierrors.NewConflict(corev1.Resource("pods"), p.GetName(), errors.New("the object has been modified"))
	})
	written := map[string]*int{}
	ended := map[string]chan struct{}{}
	for _, name := range []string{"pool-a", "pool-b"} {
		written[name], ended[name] = new(int), make(chan struct{})
	}
	inner := fakeAttach(new(framed).out("warm\n").end(endRecord{}))
	r := warmRunner(t, fc, o, func(ctx context.Context, pod string, stdin io.Reader, stdout io.Writer) error {
		defer close(ended[pod])
		counting := readerFunc(func(b []byte) (int, error) {
			n, err := stdin.Read(b)
			mu.Lock()
			*written[pod] += n
			mu.Unlock()
			return n, err
		})
		return inner(ctx, pod, counting, stdout)
	})
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || res.Sandbox != SandboxWarm {
		t.Fatalf("Execute: %v, sandbox %q; want warm", err, res.Sandbox)
	}
	mu.Lock()
	loser := lost
	mu.Unlock()
	if res.PodName == loser || loser == "" {
		t.Fatalf("ran in %q, lost %q: want the race lost on one pod and the run on the other", res.PodName, loser)
	}
	select {
	case <-ended[loser]:
	case <-time.After(10 * time.Second):
		t.Fatalf("the stream to %s, which another runner won, was not cut", loser)
	}
	mu.Lock()
	defer mu.Unlock()
	if *written[loser] != 0 {
		t.Errorf("%d bytes were written to %s, which another runner won", *written[loser], loser)
	}
	if *written[res.PodName] == 0 {
		t.Errorf("nothing was written to %s, the pod that ran", res.PodName)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// startingPoolPod is a pool Pod a kubelet is starting (on a node unless unscheduled): Pending,
// not ready.
func startingPoolPod(t *testing.T, o Options, name string, scheduled bool) *corev1.Pod {
	p := poolPod(t, o, name, time.Second)
	p.Status = corev1.PodStatus{Phase: corev1.PodPending}
	if scheduled {
		p.Spec.NodeName = "n"
	}
	return p
}

// becomeReady makes a starting pool Pod ready after delay, as its kubelet would.
func becomeReady(t *testing.T, fc *fakeCluster, o Options, name string, delay time.Duration) {
	go func() {
		time.Sleep(delay)
		ready := poolPod(t, o, name, time.Second)
		ready.Spec.NodeName = "n"
		if _, err := fc.client.CoreV1().Pods("sandbox").UpdateStatus(context.Background(), ready, metav1.UpdateOptions{}); err != nil {
			t.Errorf("make %s ready: %v", name, err)
		}
	}()
}

// TestAnEmptyPoolsRefillIsTakenRatherThanAColdStart: with no idle Pod but one starting on a node,
// the execution waits for it (at most a cold start's time) instead of starting one more sandbox.
func TestAnEmptyPoolsRefillIsTakenRatherThanAColdStart(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).out("cold\n").end(endRecord{})},
		startingPoolPod(t, o, "pool-refill", true))
	r := warmRunner(t, fc, o, fakeAttach(new(framed).out("warm\n").end(endRecord{})))
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	becomeReady(t, fc, o, "pool-refill", 300*time.Millisecond)
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || res.Sandbox != SandboxWarm || res.PodName != "pool-refill" {
		t.Fatalf("Execute: %v, sandbox %q pod %q; want the refill, warm", err, res.Sandbox, res.PodName)
	}
	if hasAction(fc.client.Actions(), "create", "jobs") {
		t.Error("a cold sandbox was started while the pool's refill was on its way")
	}
}

// TestARefillNotOnANodeIsNotWaitedFor: a pool Pod still waiting for a node (the pool runs below
// executions: a full node keeps it Pending) is no refill on its way: the execution runs cold at once.
func TestARefillNotOnANodeIsNotWaitedFor(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).out("cold\n").end(endRecord{})},
		startingPoolPod(t, o, "pool-pending", false))
	r := warmRunner(t, fc, o, fakeAttach(new(framed).out("warm\n").end(endRecord{})))
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	becomeReady(t, fc, o, "pool-pending", 300*time.Millisecond) // too late: it was not waited for
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || res.Sandbox != SandboxCold {
		t.Fatalf("Execute: %v, sandbox %q; want cold", err, res.Sandbox)
	}
}

// TestARefillLaterThanAColdStartIsStillTaken: a refill that comes after what a cold start takes,
// but before a cold start begun then would be done, is taken: giving it up would cost the node one
// more start and the execution a later end.
func TestARefillLaterThanAColdStartIsStillTaken(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).out("cold\n").end(endRecord{})},
		startingPoolPod(t, o, "pool-late", true))
	r := warmRunner(t, fc, o, fakeAttach(new(framed).out("warm\n").end(endRecord{})))
	// A cold start takes 2 s here, so the refill is waited for until 4 s; it comes at 3 s, with a
	// second to spare for the fake cluster's watch chain on a loaded machine.
	r.env.ColdStarts.Observe(2 * time.Second)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	becomeReady(t, fc, o, "pool-late", 3*time.Second)
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || res.Sandbox != SandboxWarm || res.PodName != "pool-late" {
		t.Fatalf("Execute: %v, sandbox %q pod %q; want the refill that came 1.5 cold starts late, warm", err, res.Sandbox, res.PodName)
	}
	if hasAction(fc.client.Actions(), "create", "jobs") {
		t.Error("a cold sandbox was started while the pool's refill was on its way")
	}
}

// TestARefillIsWaitedForAtMostTwoColdStarts: a refill that does not come within what two cold
// starts take here is given up, and the execution runs cold.
func TestARefillIsWaitedForAtMostTwoColdStarts(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).out("cold\n").end(endRecord{})},
		startingPoolPod(t, o, "pool-stuck", true))
	r := warmRunner(t, fc, o, fakeAttach(new(framed).out("warm\n").end(endRecord{})))
	r.env.ColdStarts.Observe(100 * time.Millisecond)
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || res.Sandbox != SandboxCold {
		t.Fatalf("Execute: %v, sandbox %q; want cold once the wait passed", err, res.Sandbox)
	}
	if got := res.Timings.Admitted.Sub(res.Timings.Requested); got < 200*time.Millisecond {
		t.Errorf("admitted cold %s after the request: the refill was not waited for", got)
	}
}

// TestAWaitingExecutionGetsTheRefillBeforeTheHeldSandbox: a runner that holds sandboxes ready
// refills what it holds from the same pool; an execution waiting for a refill gets it first.
func TestAWaitingExecutionGetsTheRefillBeforeTheHeldSandbox(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox", WarmPoolReady: 1}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).out("cold\n").end(endRecord{})},
		poolPod(t, o, "pool-held", time.Minute), startingPoolPod(t, o, "pool-refill", true))
	r := fc.runner(o)
	r.env.Attach = fakeAttach(new(framed).out("warm\n").end(endRecord{}))
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the runner holds pool-held", func() bool {
		p, err := fc.pod("pool-held")
		return err == nil && p.Labels[LabelPoolState] == PoolStateClaimed
	})
	first, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || first.PodName != "pool-held" {
		t.Fatalf("first Execute: %v, pod %q; want the held sandbox", err, first.PodName)
	}
	becomeReady(t, fc, o, "pool-refill", 300*time.Millisecond)
	second, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || second.Sandbox != SandboxWarm || second.PodName != "pool-refill" {
		t.Fatalf("second Execute: %v, sandbox %q pod %q; want the refill, warm (pool stats %+v)", err, second.Sandbox, second.PodName, r.PoolStats())
	}
}

// TestAColdSessionSaysWhyThePoolMissedIt: a session the pool cannot serve runs in a Job of its
// own, which says so, like a one-shot's.
func TestAColdSessionSaysWhyThePoolMissedIt(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}})
	r := warmRunner(t, fc, o, fakeAttach(nil))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "missed"})
	if err == nil {
		defer s.Close()
	}
	var job *batchv1.Job
	for _, a := range fc.client.Actions() {
		if ca, ok := a.(k8stesting.CreateAction); ok && a.GetResource().Resource == "jobs" {
			job = ca.GetObject().(*batchv1.Job)
		}
	}
	if job == nil {
		t.Fatalf("no session Job was created (OpenSession: %v)", err)
	}
	if got, want := job.Spec.Template.Annotations[AnnotationPoolMiss], "default/"+PoolMissEmpty; got != want {
		t.Errorf("the session's Pod says %q, want %q", got, want)
	}
	if got := r.PoolStats().ColdFallbacks[PoolMissEmpty]; got != 1 {
		t.Errorf("cold fallbacks for an empty pool: %d, want 1", got)
	}
}
