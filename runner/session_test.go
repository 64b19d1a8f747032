package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/internal/wire/wiretest"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/session"
)

// sessionPod is a running session's sandbox Pod whose lease is held as given ("" for none).
func sessionPod(t *testing.T, o Options, name, session, lease string) *corev1.Pod {
	t.Helper()
	pod := poolPod(t, o, name, time.Minute)
	pod.Labels[LabelPoolState] = PoolStateClaimed
	pod.Labels[LabelSession] = session
	pod.Annotations = podspec.SessionAnnotations(10*time.Minute, time.Now().Add(time.Hour), "")
	if lease != "" {
		pod.Annotations[AnnotationSessionLease] = lease
	}
	return pod
}

// leaseFor starts the runner's watches and tries to take the lease of session s1 for one execution.
func leaseFor(t *testing.T, r *Runner, pod *corev1.Pod) error {
	t.Helper()
	if _, err := r.watching(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := r.newSession("s1", SandboxWarm)
	s.setPod(pod)
	_, err := s.lease.Take(context.Background(), pod, "e2", time.Second)
	return err
}

func TestSessionLeaseOfAnotherProcessIsWaitedForThenRefused(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	pod := sessionPod(t, o, "pool-a", "s1", "other-host/7 e1 "+until)
	fc := newFakeCluster(t, scenario{}, pod)
	r := fc.runner(o)
	r.busyWait = 300 * time.Millisecond
	err := leaseFor(t, r, pod)
	if !errors.Is(err, ErrSessionBusy) {
		t.Fatalf("lease held by another process: %v, want ErrSessionBusy", err)
	}
	got, _ := fc.pod("pool-a")
	if h, _, _ := session.ParseLease(got.Annotations[AnnotationSessionLease]); h != "other-host/7" {
		t.Errorf("the lease is now %q: a refused caller must not take it", got.Annotations[AnnotationSessionLease])
	}
}

func TestSessionLeaseGivenBackMeanwhileIsTaken(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	pod := sessionPod(t, o, "pool-a", "s1", "other-host/7 e1 "+until)
	fc := newFakeCluster(t, scenario{}, pod)
	r := fc.runner(o)
	r.busyWait = time.Minute
	go func() {
		// The other process's execution ends and it gives the lease back.
		time.Sleep(100 * time.Millisecond)
		p, err := fc.pod("pool-a")
		if err != nil {
			return
		}
		delete(p.Annotations, AnnotationSessionLease)
		_, _ = fc.client.CoreV1().Pods(fakecluster.Namespace).Update(context.Background(), p, metav1.UpdateOptions{})
	}()
	if err := leaseFor(t, r, pod); err != nil {
		t.Fatalf("lease given back while waiting: %v, want it taken", err)
	}
	got, _ := fc.pod("pool-a")
	if h, e, _ := session.ParseLease(got.Annotations[AnnotationSessionLease]); h != r.holder || e != "e2" {
		t.Errorf("lease %q, want this runner's for e2", got.Annotations[AnnotationSessionLease])
	}
}

func TestSessionLeaseExpiredIsTaken(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	pod := sessionPod(t, o, "pool-a", "s1", fmt.Sprintf("dead-host/9 e1 %s", past))
	fc := newFakeCluster(t, scenario{}, pod)
	r := fc.runner(o)
	if err := leaseFor(t, r, pod); err != nil {
		t.Fatalf("an expired lease (a runner that died mid-execution): %v, want it taken", err)
	}
}

func TestSessionOptionsAreChecked(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{})
	r := fc.runner(Options{SessionIdleTimeout: time.Minute})
	for name, so := range map[string]SessionOptions{
		"bad ID":             {ID: "Not_A_Label"},
		"ID too long":        {ID: "a123456789a123456789a123456789a123456789"},
		"idle above ceiling": {IdleTimeout: time.Hour},
		"negative lifetime":  {MaxLifetime: -time.Second},
	} {
		if _, err := r.OpenSession(context.Background(), so); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: %v, want ErrInvalidRequest", name, err)
		}
	}
	if left := fc.leftovers(); len(left) != 0 {
		t.Errorf("a refused session left %v", left)
	}
}

func TestSessionKeepsStateAcrossExecutionsAndRunners(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	first := warmRunner(t, fc, o, pod.Attach)
	ctx := context.Background()
	s, err := first.OpenSession(ctx, SessionOptions{ID: "s1"})
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	if s.Sandbox() != SandboxWarm || s.PodName() != "pool-a" {
		t.Errorf("session in %s pod %s, want the warm pool's pool-a", s.Sandbox(), s.PodName())
	}
	var streamed chunks
	if res, err := s.Execute(ctx, Request{Code: "x = 41\nprint('set')\n", Output: streamed.add}); err != nil || string(res.Stdout) != "set\n" || res.Session != "s1" {
		t.Fatalf("first: %v stdout %q session %q", err, res.Stdout, res.Session)
	}
	if string(streamed.stream[Stdout]) != "set\n" {
		t.Errorf("streamed %q", streamed.stream[Stdout])
	}
	if res, err := s.Execute(ctx, Request{Code: "x += 1\nprint(x)\n"}); err != nil || string(res.Stdout) != "42\n" {
		t.Fatalf("second: %v stdout %q stderr %q", err, res.Stdout, res.Stderr)
	}
	got, _ := fc.pod("pool-a")
	if got.Labels[LabelSession] != "s1" || got.Labels[LabelPoolState] != PoolStateClaimed {
		t.Errorf("pod labels %v, want claimed for session s1", got.Labels)
	}
	if err := first.Close(); err != nil { // detaches: the session stays
		t.Fatal(err)
	}
	second := warmRunner(t, fc, o, pod.Attach)
	again, err := second.Session(ctx, "s1")
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if res, err := again.Execute(ctx, Request{Code: "print(x)\n"}); err != nil || string(res.Stdout) != "42\n" {
		t.Fatalf("resumed: %v stdout %q stderr %q", err, res.Stdout, res.Stderr)
	}
	if err := second.CloseSession(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := fc.pod("pool-a"); err == nil {
		t.Error("the closed session's pod was not deleted")
	}
	if _, err := again.Execute(ctx, Request{Code: "print(x)\n"}); !errors.Is(err, ErrSessionEnded) {
		t.Errorf("after close: %v, want ErrSessionEnded", err)
	}
}

// TestClosedSessionStaysEndedWhileItsPodGoes: between a session's close and its Pod's
// disappearance (a terminating Pod, a watch that has not seen the delete yet), the session must
// not be found again and resumed.
func TestClosedSessionStaysEndedWhileItsPodGoes(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	// The delete is accepted but the Pod stays, as a terminating one does for a while.
	fc.client.PrependReactor("delete", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, nil })
	pod := wiretest.NewPod(t)
	r := warmRunner(t, fc, o, pod.Attach)
	ctx := context.Background()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CloseSession(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	again, err := r.Session(ctx, "s1")
	if err == nil {
		_, err = again.Execute(ctx, Request{Code: "print(1)"})
	}
	if !errors.Is(err, ErrSessionEnded) {
		t.Errorf("after close, with its pod still there: %v, want ErrSessionEnded", err)
	}
	if err := r.CloseSession(ctx, "s1"); !errors.Is(err, ErrSessionEnded) {
		t.Errorf("closing it again: %v, want ErrSessionEnded", err)
	}
}

// TestASessionDoesNotTakeALaggingWatchForItsPodsEnd: the watch shows a claim some time after
// the claim's patch returned (on a loaded node, longer than a session's opening takes). A session
// used meanwhile must find its Pod — the API server has it — and not end itself and delete its
// sandbox because the watch has not caught up. CI saw exactly that: "its sandbox pod ... is gone".
func TestASessionDoesNotTakeALaggingWatchForItsPodsEnd(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	r := warmRunner(t, fc, o, pod.Attach)
	other := warmRunner(t, fc, o, pod.Attach) // a second process, which will resume the session
	ctx := context.Background()
	for _, r := range []*Runner{r, other} {
		if _, err := r.watching(ctx); err != nil {
			t.Fatal(err)
		}
	}
	release := fc.HoldPodEvents()
	defer release()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "s1"})
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	if res, err := s.Execute(ctx, Request{Code: "x = 41\nprint(x + 1)\n"}); err != nil || string(res.Stdout) != "42\n" {
		t.Fatalf("first execution while the watch lags: %v stdout %q", err, res.Stdout)
	}
	if _, err := fc.pod("pool-a"); err != nil {
		t.Errorf("the session's pod: %v, want it kept", err)
	}
	if _, err := other.Session(ctx, "s1"); err != nil {
		t.Errorf("resumed by a process whose watch lags: %v, want it found", err)
	}
	release()
	if res, err := s.Execute(ctx, Request{Code: "print(x)\n"}); err != nil || string(res.Stdout) != "41\n" {
		t.Fatalf("once the watch caught up: %v stdout %q", err, res.Stdout)
	}
}

// TestAnAttachToADeletedSessionPodEndsTheSession: another process closed the session (its Pod is
// deleted) and this process's watch has not shown it yet; the attach fails as the API server
// answers for a Pod it no longer has. That is the session's end, not a cluster hiccup to retry.
func TestAnAttachToADeletedSessionPodEndsTheSession(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	// The API server refuses to attach to a Pod it does not have.
	attach := func(ctx context.Context, name string, stdin io.Reader, stdout io.Writer) error {
		if _, err := fc.pod(name); err != nil {
			return err
		}
		return pod.Attach(ctx, name, stdin, stdout)
	}
	ctx := context.Background()
	first := warmRunner(t, fc, o, attach)
	s, err := first.OpenSession(ctx, SessionOptions{ID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Execute(ctx, Request{Code: "x = 1\n"}); err != nil {
		t.Fatal(err)
	}
	other := warmRunner(t, fc, o, attach)
	again, err := other.Session(ctx, "s1")
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	release := fc.HoldPodEvents()
	defer release()
	if err := fc.client.CoreV1().Pods(fakecluster.Namespace).Delete(ctx, "pool-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := again.Execute(ctx, Request{Code: "print(x)\n"}); !errors.Is(err, ErrSessionEnded) {
		t.Errorf("attach to the deleted pod: %v, want ErrSessionEnded", err)
	}
}

// TestASessionIDClosedIsOpenedAgainWhileTheWatchLags: a session closed, then opened again under
// the same ID at once, while the watch still shows the closed session's Pod: that Pod is gone
// (the API server says so), and the ID is free again.
func TestASessionIDClosedIsOpenedAgainWhileTheWatchLags(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute), poolPod(t, o, "pool-b", time.Minute))
	pods := map[string]*wiretest.Pod{"pool-a": wiretest.NewPod(t), "pool-b": wiretest.NewPod(t)}
	r := warmRunner(t, fc, o, func(ctx context.Context, name string, stdin io.Reader, stdout io.Writer) error {
		return pods[name].Attach(ctx, name, stdin, stdout)
	})
	ctx := context.Background()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watch to show the claim", func() bool { return r.hub.SessionPod("s1") != nil })
	release := fc.HoldPodEvents()
	defer release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := r.OpenSession(ctx, SessionOptions{ID: "s1"})
	if err != nil {
		t.Fatalf("open s1 again after closing it: %v", err)
	}
	if again.PodName() == s.PodName() {
		t.Errorf("the new session runs in %s, the closed one's pod", again.PodName())
	}
}

// TestASessionKeepsItsOwnPodWhenTheWatchShowsAnother: the watch may still show a Pod labelled for
// the session that is not its sandbox — a claimed Pod whose attach failed, deleted before the
// session went cold — after the API server deleted it. The session's sandbox is its own Pod; the
// other one must not make it end and delete its sandbox.
func TestASessionKeepsItsOwnPodWhenTheWatchShowsAnother(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-b", time.Minute))
	pod := wiretest.NewPod(t)
	r := warmRunner(t, fc, o, pod.Attach)
	ctx := context.Background()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	stale := sessionPod(t, o, "pool-a", "s1", "")
	if _, err := fc.client.CoreV1().Pods(fakecluster.Namespace).Create(ctx, stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watch to show both pods", func() bool { return len(r.hub.Pods()) == 2 })
	release := fc.HoldPodEvents()
	defer release()
	if err := fc.client.CoreV1().Pods(fakecluster.Namespace).Delete(ctx, "pool-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The watch lists its Pods in no fixed order: enough executions that one would meet the other Pod.
	for i := 0; i < 12; i++ {
		if res, err := s.Execute(ctx, Request{Code: "print(1)\n"}); err != nil || string(res.Stdout) != "1\n" {
			t.Fatalf("execution %d in the session's own pod %s: %v stdout %q", i+1, s.PodName(), err, res.Stdout)
		}
	}
}

// TestSessionsAskTheAPIServerWithWhatTheRoleGrants: the runner's Role grants list and watch on
// Pods, not get (manifests/base/role.yaml). What a session asks the API server when the watch
// lags must go through what the Role grants: the fake cluster refuses a get as the API server
// would (newFakeCluster).
func TestSessionsAskTheAPIServerWithWhatTheRoleGrants(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	r := warmRunner(t, fc, o, pod.Attach)
	ctx := context.Background()
	if _, err := r.watching(ctx); err != nil {
		t.Fatal(err)
	}
	release := fc.HoldPodEvents()
	defer release()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "s1"})
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	if _, err := s.Execute(ctx, Request{Code: "print(1)\n"}); err != nil {
		t.Fatalf("while the watch lags: %v", err)
	}
	if err := fc.client.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), fakecluster.Namespace, "pool-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Execute(ctx, Request{Code: "print(1)\n"}); !errors.Is(err, ErrSessionEnded) {
		t.Errorf("its pod deleted, the watch not showing it: %v, want ErrSessionEnded", err)
	}
}

// TestQuotaConflictOnASessionMarkerIsRetried: concurrent creates in a namespace with a
// ResourceQuota race on its usage counters, and the API server refuses the loser with a Conflict
// that asks for a retry (CI saw OpenSession fail on it). Nothing was created; opening goes on.
func TestQuotaConflictOnASessionMarkerIsRetried(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	var mu sync.Mutex
	conflicts := 2
	fc.client.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if conflicts == 0 {
			return false, nil, nil
		}
		conflicts--
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "resourcequotas"}, "gkexec-quota", errors.New("the object has been modified"))
	})
	r := warmRunner(t, fc, o, wiretest.NewPod(t).Attach)
	ctx := context.Background()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "s1"})
	if err != nil {
		t.Fatalf("OpenSession: %v; want the quota's conflicts retried", err)
	}
	if res, err := s.Execute(ctx, Request{Code: "print('ok')\n"}); err != nil || string(res.Stdout) != "ok\n" {
		t.Fatalf("Execute: %v stdout %q", err, res.Stdout)
	}
	if err := r.CloseSession(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if conflicts != 0 {
		t.Errorf("%d conflicts left unanswered: the marker was not created through the reactor", conflicts)
	}
}
