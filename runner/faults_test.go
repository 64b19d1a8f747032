package runner

import (
	"bufio"
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/internal/wire/wiretest"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// Regression tests for the faults the 2026-12 review reproduced (P1-P10): each failed before its
// fix.

// goroutinesIn counts the goroutines whose stack mentions fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 8<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), fn)
}

// eventually waits for cond with a generous deadline, failing with what.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// P2: lines the code writes straight to the container's stdout after its execution fill the
// session's line queue; closing the session must still end its reader and free its buffers.
func TestSessionCloseEndsItsReaderWhateverTheCodeWrote(t *testing.T) {
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	r := warmRunner(t, fc, o, pod.Attach)
	ctx := context.Background()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "flood"})
	if err != nil {
		t.Fatal(err)
	}
	flood := `import os, base64, threading, time
fd = os.open('/proc/%d/fd/1' % os.getppid(), os.O_WRONLY)
def flood():
    time.sleep(0.2)
    for i in range(200):
        os.write(fd, b'O:' + base64.b64encode(b'junk %d\n' % i) + b'\n')
threading.Thread(target=flood, daemon=True).start()
print("ok")`
	if res, err := s.Execute(ctx, Request{Code: flood}); err != nil || string(res.Stdout) != "ok\n" {
		t.Fatalf("Execute: %v stdout %q stderr %q", err, res.Stdout, res.Stderr)
	}
	eventually(t, "the junk lines fill the session's queue", func() bool { return goroutinesIn("(*Conn).pump") > 0 && pumpBlocked() })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the session's reader ends after Close", func() bool { return goroutinesIn("(*Conn).pump") == 0 })
}

// pumpBlocked: a session reader is stuck handing a line to nobody.
func pumpBlocked() bool {
	buf := make([]byte, 8<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "(*Conn).pump") && (strings.Contains(g, "[chan send") || strings.Contains(g, "[select")) {
			return true
		}
	}
	return false
}

// P3: a Request.Output callback that blocks must not hold the runner's deadline: Execute returns
// at its timeout with the callback still blocked.
func TestTimeoutFiresWhileTheOutputCallbackBlocks(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}}, poolPod(t, o, "pool-a", time.Minute))
	r := warmRunner(t, fc, o, fakeAttach(new(framed).out("first chunk\n").Bytes()))
	release := make(chan struct{})
	defer close(release)
	called := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		res, err := r.Execute(context.Background(), Request{Code: "x", Timeout: 500 * time.Millisecond, Output: func(Stream, []byte) {
			select {
			case called <- struct{}{}:
			default:
			}
			<-release
		}})
		if err == nil && !res.TimedOut {
			err = errors.New("no timeout reported")
		}
		done <- err
	}()
	await(t, called, "the output callback")
	select {
	case err := <-done:
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("Execute: %v, want ErrTimeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Execute did not return at its timeout while the output callback blocked")
	}
}

// P5: Close right after Start (serve on an early SIGTERM) must leave nothing claimed and no refill
// running, however the two interleave.
func TestCloseRightAfterStartLeavesNothingClaimed(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox", WarmPoolReady: 1}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	listing := make(chan struct{}, 1)
	fc.client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		select {
		case listing <- struct{}{}:
		default:
		}
		time.Sleep(300 * time.Millisecond) // the watches are still starting when Close comes
		return false, nil, nil
	})
	r := fc.runner(o)
	r.env.Attach = fakeAttach(nil)
	go func() { _ = r.Start(context.Background()) }()
	await(t, listing, "the watches' start")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, a := range fc.client.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && strings.Contains(string(p.GetPatch()), `"`+LabelPoolState+`":"`+PoolStateClaimed+`"`) {
			t.Fatalf("a pool pod was claimed although the runner was closed: %s", p.GetPatch())
		}
	}
	if w := r.warm; w != nil && !w.Closed() {
		t.Error("the warm source's refill outlives Close")
	}
	got, err := fc.pod("pool-a")
	if err != nil || got.Labels[LabelPoolState] != PoolStateIdle {
		t.Errorf("pool-a after Close: %v %v, want it idle", err, got.Labels)
	}
}

// P6: without a warm pool, sessions run cold; they are not refused for want of a REST config
// the runner has.
func TestSessionsRunColdWithoutAWarmPool(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox", NoWarmPool: true, RESTConfig: &rest.Config{Host: "http://127.0.0.1:1"}}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}})
	r := fc.runner(o)
	_, err := r.OpenSession(context.Background(), SessionOptions{ID: "nopool"})
	if errors.Is(err, ErrInvalidOptions) || !hasAction(fc.client.Actions(), "create", "jobs") {
		t.Fatalf("OpenSession without a pool: %v; want a cold session's Job and an attach to it", err)
	}
	if !errors.Is(err, ErrSandboxFailed) || !strings.Contains(err.Error(), "attach") {
		t.Errorf("OpenSession: %v, want the attach to 127.0.0.1:1 to fail (ErrSandboxFailed)", err)
	}
}

// P9: a warm one-shot whose attach breaks mid-execution reads its result from the container log,
// which holds the entrypoint's whole output, within seconds rather than failing at a grace.
func TestWarmExecutionRecoversItsResultWhenTheAttachBreaks(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	r := warmRunner(t, fc, o, func(ctx context.Context, _ string, stdin io.Reader, stdout io.Writer) error {
		br := bufio.NewReader(stdin)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return nil
			}
			switch {
			case strings.HasPrefix(line, "P:"):
				_, _ = io.WriteString(stdout, "P:\n")
			case strings.HasPrefix(line, "G:"):
				_, _ = stdout.Write(new(framed).out("first ").Bytes())
				return errors.New("connection reset by peer") // the attach breaks; the code runs on
			}
		}
	})
	logs := 0
	var mu sync.Mutex
	r.env.OpenLogs = func(ctx context.Context, pod string, lo *corev1.PodLogOptions) (io.ReadCloser, error) {
		mu.Lock()
		logs++
		mu.Unlock()
		return nopCloser(append([]byte("P:\n"), new(framed).out("first ").out("second").end(endRecord{ExitCode: 3})...)), nil
	}
	var streamed chunks
	start := time.Now()
	res, err := r.Execute(context.Background(), Request{Code: "x", Output: streamed.add})
	if err != nil || string(res.Stdout) != "first second" || res.ExitCode != 3 || res.Sandbox != SandboxWarm {
		t.Fatalf("Execute: %v stdout %q exit %d sandbox %s; want the whole result from the container log", err, res.Stdout, res.ExitCode, res.Sandbox)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("recovering took %s", took)
	}
	if string(streamed.stream[Stdout]) != "first second" {
		t.Errorf("streamed %q, want each byte once", streamed.stream[Stdout])
	}
	mu.Lock()
	defer mu.Unlock()
	if logs == 0 {
		t.Error("the container log was never read")
	}
}

// A warm one-shot whose attach breaks as the request goes down it, losing it (an API server
// restart as the runner takes a sandbox it held ready): the sandbox's log shows it never had the
// request, so nothing ran there; its Pod is deleted and the execution runs cold, in the same call.
func TestAWarmRequestLostWithItsAttachRunsCold(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).out("cold\n").end(endRecord{})},
		poolPod(t, o, "pool-a", time.Minute))
	r := warmRunner(t, fc, o, func(ctx context.Context, _ string, stdin io.Reader, stdout io.Writer) error {
		br := bufio.NewReader(stdin)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return nil
			}
			switch {
			case strings.HasPrefix(line, "P:"):
				_, _ = io.WriteString(stdout, "P:\n")
			case strings.HasPrefix(line, "Q:"):
				return errors.New("connection reset by peer") // the request goes nowhere
			}
		}
	})
	jobLogs := r.env.OpenLogs
	r.env.OpenLogs = func(ctx context.Context, pod string, lo *corev1.PodLogOptions) (io.ReadCloser, error) {
		if pod != "pool-a" {
			return jobLogs(ctx, pod, lo)
		}
		if lo.Follow { // the pool Pod's entrypoint waits for a request that never comes
			return blockingReader{ctx}, nil
		}
		return nopCloser([]byte("P:\n")), nil
	}
	res, err := r.Execute(context.Background(), Request{Code: "print('cold')"})
	if err != nil || string(res.Stdout) != "cold\n" || res.Sandbox != SandboxCold {
		t.Fatalf("Execute: %v stdout %q sandbox %s; want the execution run cold", err, res.Stdout, res.Sandbox)
	}
	if _, err := fc.pod("pool-a"); !apierrors.IsNotFound(err) {
		t.Errorf("the warm sandbox that lost the request: %v; want it deleted", err)
	}
}

// P4: two processes opening one session ID at once on the warm pool: exactly one opens it, the
// other is told the ID is taken and touches nothing of the winner's.
func TestASessionIDIsOpenedOnceAcrossProcesses(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute), poolPod(t, o, "pool-b", time.Minute))
	// Claims take a while, as they do under load: both opens pass every check before either lands.
	fc.client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		time.Sleep(300 * time.Millisecond)
		return false, nil, nil
	})
	a, b := warmRunner(t, fc, o, wiretest.NewPod(t).Attach), warmRunner(t, fc, o, wiretest.NewPod(t).Attach)
	ctx := context.Background()
	for _, r := range []*Runner{a, b} {
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 2)
	for _, r := range []*Runner{a, b} {
		go func() {
			_, err := r.OpenSession(ctx, SessionOptions{ID: "s1"})
			errs <- err
		}()
	}
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) {
		t.Fatalf("opens: %v and %v; want exactly one to succeed", e1, e2)
	}
	lost := e1
	if lost == nil {
		lost = e2
	}
	if !errors.Is(lost, ErrInvalidRequest) || !strings.Contains(lost.Error(), "already") {
		t.Errorf("the second open: %v, want ErrInvalidRequest saying the session exists", lost)
	}
	pods, _ := fc.client.CoreV1().Pods(fakecluster.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelSession + "=s1"})
	if len(pods.Items) != 1 {
		t.Errorf("%d pods carry session s1, want 1", len(pods.Items))
	}
}

// P7: the loser of a cold session's race never deletes the winner's Job.
func TestTheLoserOfAColdSessionRaceLeavesTheWinnersJob(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox", NoWarmPool: true, RESTConfig: &rest.Config{Host: "http://127.0.0.1:1"}}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}})
	jobMade := make(chan struct{}, 1)
	fc.client.PrependReactor("create", "pods", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		select {
		case jobMade <- struct{}{}: // the Job exists; its Pod comes a while later, as the Job controller's does
		default:
		}
		time.Sleep(2 * time.Second)
		return false, nil, nil
	})
	pod := wiretest.NewPod(t)
	a, b := fc.runner(o), fc.runner(o)
	a.env.Attach, b.env.Attach = pod.Attach, pod.Attach
	ctx := context.Background()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := a.OpenSession(ctx, SessionOptions{ID: "c1"})
		first <- err
	}()
	await(t, jobMade, "the first open's Job")
	if _, err := b.OpenSession(ctx, SessionOptions{ID: "c1"}); !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "already") {
		t.Errorf("the second open: %v, want ErrInvalidRequest saying the session exists", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("the first open: %v, want it to succeed", err)
	}
	if _, err := fc.client.BatchV1().Jobs(fakecluster.Namespace).Get(ctx, "gkexec-s-c1", metav1.GetOptions{}); err != nil {
		t.Errorf("the winner's Job: %v", err)
	}
}

// The held_ready_ahead flake: an execution that arrives while the sandbox to be held ready is
// still attaching waits for it rather than claim a second Pod.
func TestAnExecutionWaitsForTheSandboxBeingHeldReady(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox", WarmPoolReady: 1}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute), poolPod(t, o, "pool-b", time.Minute))
	claimed := make(chan string, 4)
	fc.client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, k8sruntime.Object, error) {
		if p := a.(k8stesting.PatchAction); strings.Contains(string(p.GetPatch()), `"`+LabelPoolState+`":"`+PoolStateClaimed+`"`) {
			claimed <- p.GetName()
		}
		return false, nil, nil
	})
	r := fc.runner(o)
	inner := fakeAttach(new(framed).out("held\n").end(endRecord{}))
	r.env.Attach = func(ctx context.Context, pod string, stdin io.Reader, stdout io.Writer) error {
		time.Sleep(500 * time.Millisecond) // a slow attach, as on a loaded node
		return inner(ctx, pod, stdin, stdout)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	held := await(t, claimed, "the claim of the sandbox to hold")
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sandbox != SandboxWarm || res.PodName != held {
		t.Errorf("ran in %s pod %s, want the held sandbox %s: a second pod was claimed on request", res.Sandbox, res.PodName, held)
	}
}

// A crashed holder blocks its session no longer than the sandbox takes to say nothing runs: the
// lease another process left behind (killed within its linger, or whose give-back failed) is taken
// over, and the session's state is there.
func TestADeadHoldersLeaseIsTakenOverWhenTheSandboxSaysNothingRuns(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	first := warmRunner(t, fc, o, pod.Attach)
	ctx := context.Background()
	s, err := first.OpenSession(ctx, SessionOptions{ID: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Execute(ctx, Request{Code: "x = 7"}); err != nil {
		t.Fatal(err)
	}
	// The first process dies holding the lease for five more minutes, as a killed serve did.
	until := time.Now().Add(5 * time.Minute).UTC().Format(time.RFC3339)
	patch := `{"metadata":{"annotations":{"` + AnnotationSessionLease + `":"dead-host/1/x e1 ` + until + `"}}}`
	if _, err := fc.client.CoreV1().Pods(fakecluster.Namespace).Patch(ctx, "pool-a", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	second := warmRunner(t, fc, o, pod.Attach)
	second.busyWait = time.Minute // a refusal would come only after a minute
	again, err := second.Session(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(sessionTakeoverIdle) // the sandbox has been idle for longer than a live holder's linger
	start := time.Now()
	res, err := again.Execute(ctx, Request{Code: "print(x)"})
	if err != nil || string(res.Stdout) != "7\n" {
		t.Fatalf("resumed after the holder died: %v stdout %q", err, res.Stdout)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the takeover took %s", took)
	}
}

// A holder that died just after its execution (the sandbox idle for less than the takeover bound
// when the next process asks) is taken over as soon as the sandbox has been idle long enough —
// the sandbox is asked again — not refused after the whole busy wait for a Pod change a dead
// holder never makes.
func TestADeadHoldersLeaseIsTakenOverRightAfterItsLastExecution(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	first := warmRunner(t, fc, o, pod.Attach)
	ctx := context.Background()
	s, err := first.OpenSession(ctx, SessionOptions{ID: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Execute(ctx, Request{Code: "x = 7"}); err != nil {
		t.Fatal(err)
	}
	// The first process gives its lease back after its linger; then it "dies" holding a new one
	// (nothing of it changes the Pod any more), well within the takeover bound of its execution.
	eventually(t, "the first process's give-back", func() bool {
		p, _ := fc.pod("pool-a")
		return p.Annotations[AnnotationSessionLease] == ""
	})
	until := time.Now().Add(5 * time.Minute).UTC().Format(time.RFC3339)
	patch := `{"metadata":{"annotations":{"` + AnnotationSessionLease + `":"dead-host/1/x e1 ` + until + `"}}}`
	if _, err := fc.client.CoreV1().Pods(fakecluster.Namespace).Patch(ctx, "pool-a", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	second := warmRunner(t, fc, o, pod.Attach) // the default busy wait
	again, err := second.Session(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	res, err := again.Execute(ctx, Request{Code: "print(x)"})
	if err != nil || string(res.Stdout) != "7\n" {
		t.Fatalf("resumed right after the holder died: %v stdout %q", err, res.Stdout)
	}
}

// A session's call whose attach cannot be opened (the API server, the kubelet or the runtime is
// away) is ErrCluster naming why — the session is intact, and the call works once tried again —
// not ErrSandboxFailed about a closed pipe.
func TestASessionCallWhoseAttachFailsIsRetryable(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	first := warmRunner(t, fc, o, pod.Attach)
	ctx := context.Background()
	s, err := first.OpenSession(ctx, SessionOptions{ID: "away"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Execute(ctx, Request{Code: "x = 7"}); err != nil {
		t.Fatal(err)
	}
	_ = first.Close() // detaches; the session stays
	var away atomic.Bool
	away.Store(true)
	second := warmRunner(t, fc, o, func(ctx context.Context, name string, stdin io.Reader, stdout io.Writer) error {
		if away.Load() {
			return errors.New("error dialing backend: dial tcp 127.0.0.1:10250: connect: connection refused")
		}
		return pod.Attach(ctx, name, stdin, stdout)
	})
	again, err := second.Session(ctx, "away")
	if err != nil {
		t.Fatal(err)
	}
	_, err = again.Execute(ctx, Request{Code: "print(x)"})
	if !errors.Is(err, ErrCluster) || errors.Is(err, ErrSandboxFailed) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("with the attach refused: %v; want ErrCluster saying why", err)
	}
	away.Store(false)
	if res, err := again.Execute(ctx, Request{Code: "print(x)"}); err != nil || string(res.Stdout) != "7\n" {
		t.Errorf("tried again: %v stdout %q; want the session's state", err, res.Stdout)
	}
}

// A live holder's lease is not taken over while its code runs: the other process waits, then is
// told the session is busy.
func TestALiveHoldersLeaseIsNotTakenOver(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	first := warmRunner(t, fc, o, pod.Attach)
	ctx := context.Background()
	s, err := first.OpenSession(ctx, SessionOptions{ID: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	running := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		_, err := s.Execute(ctx, Request{Code: "import time\nprint('running', flush=True)\ntime.sleep(6)",
			Output: closeOnFirstOutput(started)})
		running <- err
	}()
	// The code runs (its output is out), not only its lease written: a sandbox with nothing
	// running would rightly be taken over.
	select {
	case <-started:
	case err := <-running:
		t.Fatalf("the first execution ended before its output: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the first execution's code did not start within 30s")
	}
	second := warmRunner(t, fc, o, pod.Attach)
	second.busyWait = time.Second
	again, err := second.Session(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Execute(ctx, Request{Code: "print(1)"}); !errors.Is(err, ErrSessionBusy) {
		t.Errorf("while the first process's code runs: %v, want ErrSessionBusy", err)
	}
	if err := <-running; err != nil {
		t.Errorf("the first execution: %v", err)
	}
}

// P1: a request the session's sandbox cannot run is refused at once with a clear error, and the
// session goes on.
func TestASessionsBadRequestIsRefusedAndTheSessionGoesOn(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	r := warmRunner(t, fc, o, wiretest.NewPod(t).Attach)
	ctx := context.Background()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Execute(ctx, Request{Code: "open('data', 'w').write('x')\nx = 1\n"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = s.Execute(ctx, Request{Code: "print(x)", Files: map[string][]byte{"data/in.csv": []byte("a")}, Timeout: time.Minute})
	if !errors.Is(err, ErrInvalidRequest) || errors.Is(err, ErrSessionEnded) || errors.Is(err, ErrTimeout) {
		t.Fatalf("a request through a file: %v, want ErrInvalidRequest and the session going on", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the refusal took %s", took)
	}
	if res, err := s.Execute(ctx, Request{Code: "print(x)"}); err != nil || string(res.Stdout) != "1\n" {
		t.Errorf("after the refusal: %v stdout %q", err, res.Stdout)
	}
}

// P8: a session execution whose attach breaks mid-run is recovered on a new attach (the sandbox
// replays it), within seconds, and the session goes on.
func TestASessionExecutionSurvivesABrokenAttach(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	var mu sync.Mutex
	cut := make(chan struct{})
	attaches := 0
	r := warmRunner(t, fc, o, func(ctx context.Context, name string, stdin io.Reader, stdout io.Writer) error {
		mu.Lock()
		attaches++
		first := attaches == 1
		mu.Unlock()
		if !first {
			return pod.Attach(ctx, name, stdin, stdout)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-cut:
				cancel()
			case <-ctx.Done():
			}
		}()
		_ = pod.Attach(ctx, name, stdin, stdout)
		return errors.New("connection reset by peer")
	})
	ctx := context.Background()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "cut"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Execute(ctx, Request{Code: "x = 7"}); err != nil {
		t.Fatal(err)
	}
	var streamed chunks
	cutWhenRunning := closeOnFirstOutput(cut) // an API server restart, mid-execution
	output := func(st Stream, p []byte) {
		streamed.add(st, p)
		cutWhenRunning(st, p)
	}
	start := time.Now()
	res, err := s.Execute(ctx, Request{Code: "import time\nprint('before', flush=True)\ntime.sleep(1)\nprint(x + 1)", Output: output})
	if err != nil || string(res.Stdout) != "before\n8\n" {
		t.Fatalf("across the broken attach: %v stdout %q", err, res.Stdout)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("recovering took %s", took)
	}
	if string(streamed.stream[Stdout]) != "before\n8\n" {
		t.Errorf("streamed %q, want each byte once", streamed.stream[Stdout])
	}
	if res, err := s.Execute(ctx, Request{Code: "print(x)"}); err != nil || string(res.Stdout) != "7\n" {
		t.Errorf("after: %v stdout %q, want the session going on", err, res.Stdout)
	}
}

// The janitor: a claimed pool Pod whose container was restarted (its entrypoint left) and a cold
// session's finished Job go, whichever runner made them; a sandbox this runner uses stays.
func TestTheJanitorDeletesSandboxesThatEndedByThemselves(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	restarted := poolPod(t, o, "pool-left", time.Minute)
	restarted.Labels[LabelPoolState] = PoolStateClaimed
	restarted.Status.ContainerStatuses[0].RestartCount = 1
	busy := poolPod(t, o, "pool-busy", time.Minute)
	busy.Labels[LabelPoolState] = PoolStateClaimed
	idle := poolPod(t, o, "pool-idle", time.Minute)
	fc := newFakeCluster(t, scenario{}, restarted, busy, idle)
	r := fc.runner(o)
	r.janitorGrace = 200 * time.Millisecond
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	gone := func(name string) bool {
		_, err := fc.pod(name)
		return err != nil
	}
	eventually(t, "the restarted claimed pod deleted", func() bool { return gone("pool-left") })
	if gone("pool-busy") || gone("pool-idle") {
		t.Error("the janitor deleted a sandbox that did not end")
	}
}

// A process that resumes a session while another is still opening it (the loser of an open race,
// as the ADK tool is) is told to try again; it never deletes the sandbox being opened.
func TestResumingASessionBeingOpenedLeavesItsSandbox(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	release := make(chan struct{})
	opener := warmRunner(t, fc, o, func(ctx context.Context, name string, stdin io.Reader, stdout io.Writer) error {
		// The opener's session opening (its hello) is held back: the sandbox answers pings, but
		// holds no session yet.
		return pod.Attach(ctx, name, holdHello(stdin, release), stdout)
	})
	ctx := context.Background()
	opened := make(chan error, 1)
	go func() {
		_, err := opener.OpenSession(ctx, SessionOptions{ID: "early"})
		opened <- err
	}()
	resumer := warmRunner(t, fc, o, pod.Attach)
	var s *Session
	eventually(t, "the session's pod labelled", func() bool {
		var err error
		s, err = resumer.Session(ctx, "early")
		return err == nil
	})
	_, err := s.Execute(ctx, Request{Code: "print(1)"})
	close(release)
	if errors.Is(err, ErrSessionEnded) {
		t.Errorf("resuming a session still opening: %v; it must not end it", err)
	}
	if err := <-opened; err != nil {
		t.Fatalf("the opener: %v", err)
	}
	if _, err := fc.pod("pool-a"); err != nil {
		t.Errorf("the session's pod: %v, want it kept", err)
	}
}

// holdHello passes stdin on, except that a session's opening (an S record) waits for release.
func holdHello(stdin io.Reader, release <-chan struct{}) io.Reader {
	r, w := io.Pipe()
	go func() {
		br := bufio.NewReader(stdin)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				if wire.TagSession.Starts(line) {
					<-release
				}
				if _, werr := w.Write(line); werr != nil {
					return
				}
			}
			if err != nil {
				w.CloseWithError(err)
				return
			}
		}
	}()
	return r
}

// TestASessionReattachThatAnswersNothingIsTriedAgain: the attach broke mid-execution and the
// first re-attach opens but carries nothing (seen in the fault tier, through an API server coming
// back): the sandbox answers a ping at once, so such an attach is given up and the next one
// recovers the execution, instead of the execution waiting for its deadline.
func TestASessionReattachThatAnswersNothingIsTriedAgain(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	pod := wiretest.NewPod(t)
	var mu sync.Mutex
	cut := make(chan struct{})
	attaches := 0
	r := warmRunner(t, fc, o, func(ctx context.Context, name string, stdin io.Reader, stdout io.Writer) error {
		mu.Lock()
		attaches++
		n := attaches
		mu.Unlock()
		switch n {
		case 1: // the session's attach, until the cut
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				select {
				case <-cut:
					cancel()
				case <-ctx.Done():
				}
			}()
			_ = pod.Attach(ctx, name, stdin, stdout)
			return errors.New("connection reset by peer")
		case 2: // open, takes what is written, says nothing
			go func() { _, _ = io.Copy(io.Discard, stdin) }()
			<-ctx.Done()
			return ctx.Err()
		}
		return pod.Attach(ctx, name, stdin, stdout)
	})
	ctx := context.Background()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "silent"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Execute(ctx, Request{Timeout: time.Minute, Output: closeOnFirstOutput(cut),
		Code: "import time\nprint('before', flush=True)\ntime.sleep(1)\nprint('after')"})
	if err != nil || res.TimedOut || string(res.Stdout) != "before\nafter\n" {
		t.Fatalf("across a silent re-attach: %v timed out %v stdout %q, want the result", err, res.TimedOut, res.Stdout)
	}
	mu.Lock()
	defer mu.Unlock()
	if attaches < 3 {
		t.Errorf("%d attaches, want the silent one given up and another opened", attaches)
	}
}

// A cold session's Pod that ended is seen by the janitor; before its grace is over the session is
// closed and opened again under its ID (a watch that lags shows the old Pod still). The Job that
// now carries the name is the new session's: the janitor deletes the ended Pod's own Job only.
func TestTheJanitorDeletesOnlyTheEndedSessionsOwnJob(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	name := podspec.ObjectName(podspec.SessionSandboxID("s1"))
	old := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, UID: "uid-old"}}
	ended := sessionPod(t, o, name+"-old", "s1", "")
	delete(ended.Labels, LabelPool)
	delete(ended.Labels, LabelPoolState)
	ended.Status.Phase = corev1.PodSucceeded
	ended.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(old, batchv1.SchemeGroupVersion.WithKind("Job"))}
	reopened := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, UID: "uid-new"},
		Spec: batchv1.JobSpec{Suspend: ptr.To(true)}}
	fc := newFakeCluster(t, scenario{}, ended, reopened)
	r := fc.runner(o)
	r.janitorGrace = 200 * time.Millisecond
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the janitor's delete of the ended session's Job", func() bool {
		for _, a := range fc.client.Actions() {
			if a.Matches("delete", "jobs") {
				return true
			}
		}
		return false
	})
	if job, err := fc.client.BatchV1().Jobs(o.Namespace).Get(context.Background(), name, metav1.GetOptions{}); err != nil || job.UID != "uid-new" {
		t.Errorf("the reopened session's Job: %v (uid %v); the janitor must delete only the ended Pod's own Job", err, job.GetUID())
	}
}
