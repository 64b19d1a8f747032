//go:build chaos

// Package chaos is the fault tier: what users run, in flight on the local cluster while one of its
// daemons restarts (kube-apiserver, kubelet, containerd). For each daemon, at once: cold one-shot
// executions, warm one-shot executions (from a warm pool, one of them through a sandbox held
// ready), and an execution in a warm session and in a cold one. Every execution already running
// when the daemon stops must return its real result; calls started while it is down must return
// their real result or a clean retryable error (calls_test.go says which and why) and succeed when
// tried again; the sessions keep their state; and once the runners are closed nothing is left,
// without `gkexec gc`. Run it with `make chaos` (hack/chaos.sh), which brings the cluster up first.
package chaos

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/test/leftovers"
	"github.com/gkexec/gkexec/test/testenv"
	"github.com/gkexec/gkexec/test/testns"
)

const (
	// coldInFlight and warmInFlight are the one-shot executions running when the daemon stops.
	coldInFlight = 3
	warmInFlight = 2
	// poolReplicas: the warm one-shots, the warm session and the sandbox held ready each take one.
	poolReplicas = warmInFlight + 2
	// cpuRequest: about 15 sandboxes run at once (the in-flight ones, the pool refilling behind its
	// claims, the calls started during the fault) on a 2-core node that fits 10 at the default
	// 200m. Requests only place Pods; the faults are the same.
	cpuRequest = "100m"
	// leftDeadline: Pods terminate asynchronously after their deletion.
	leftDeadline = 2 * time.Minute
	// startedDeadline: every sandbox started and its code running, on a loaded 2-core machine.
	startedDeadline = 3 * time.Minute
)

func TestFaults(t *testing.T) {
	kubeconfig := testenv.RequireEnv(t, "KUBECONFIG", "the local cluster's admin kubeconfig")
	root := testenv.RepoRoot(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	admin := kubernetes.NewForConfigOrDie(cfg)
	testns.SweepStale(t, admin)

	for _, fault := range []string{"kube-apiserver", "kubelet", "containerd"} {
		t.Run(fault, func(t *testing.T) {
			start := time.Now()
			(&faultRun{fault: fault, root: root, cfg: cfg, admin: admin}).run(t)
			t.Logf("fault %s: %s in all", fault, time.Since(start).Round(time.Second))
		})
	}
}

// faultRun is one daemon restarted under everything users run, in a namespace of its own.
type faultRun struct {
	fault string
	root  string
	cfg   *rest.Config
	admin kubernetes.Interface
	ns    string
	log   *syncBuffer // the runners' debug log, shown when the fault's test fails
}

func (f *faultRun) run(t *testing.T) {
	ctx := context.Background()
	f.makeNamespace(t)
	f.log = &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the runners' log:\n%s", f.log.String())
		}
	})
	logger := slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	base := runner.Options{Namespace: f.ns, RESTConfig: f.cfg, CPURequest: cpuRequest, Logger: logger,
		Timeout: 2 * time.Minute, StartTimeout: startedDeadline, CleanupTimeout: 2 * time.Minute}
	f.makePool(t, base)

	// rc runs everything cold (no pool: one-shots in Jobs, its session in a Job of its own); rw
	// takes from the pool and holds one sandbox ready, as serve does; other is a second process
	// of the agent, which resumes the warm session and uses it during the fault.
	coldOpts, warmOpts, otherOpts := base, base, base
	coldOpts.NoWarmPool = true
	warmOpts.WarmPoolReady = 1
	otherOpts.WarmPoolReady = -1
	rc, rw, other := newRunner(t, coldOpts), newRunner(t, warmOpts), newRunner(t, otherOpts)
	for _, r := range []*runner.Runner{rw, other} {
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	coldSession, warmSession := openSession(t, rc, runner.SandboxCold), openSession(t, rw, runner.SandboxWarm)
	resumed, err := other.Session(ctx, warmSession.ID())
	if err != nil {
		t.Fatalf("resuming the warm session from another runner: %v", err)
	}

	var inFlight []*call
	for i := range coldInFlight {
		inFlight = append(inFlight, oneShot(fmt.Sprintf("cold one-shot %d", i), rc, runner.SandboxCold, false))
	}
	for i := range warmInFlight {
		inFlight = append(inFlight, oneShot(fmt.Sprintf("warm one-shot %d", i), rw, runner.SandboxWarm, false))
	}
	inFlight = append(inFlight, inSession("cold session", coldSession), inSession("warm session", warmSession))
	for _, c := range inFlight {
		c.start()
	}
	for _, c := range inFlight {
		c.awaitStarted(t, startedDeadline)
	}

	// The daemon stops under them. Once it is down, calls start that it may refuse.
	before := f.daemonPIDs()
	if before == "" {
		t.Fatalf("no %s process found (pgrep -x %s): is this the local cluster's host?", f.fault, f.fault)
	}
	restarted := make(chan error, 1)
	var restartOut []byte
	stopped := time.Now()
	go func() {
		var err error
		restartOut, err = exec.Command(filepath.Join(f.root, "test/localcluster/cluster.sh"), "restart", f.fault).CombinedOutput()
		restarted <- err
	}()
	late := []*call{
		oneShot("cold one-shot started during the fault", rc, "", true),
		oneShot("warm one-shot started during the fault", rw, "", true),
		lateInSession("the warm session from another process, during the fault", resumed),
	}
	f.awaitDown(t, before)
	for _, c := range late {
		c.start()
	}
	if err := <-restarted; err != nil {
		t.Fatalf("restart %s: %v\n%s", f.fault, err, restartOut)
	}
	t.Logf("%s restarted in %s", f.fault, time.Since(stopped).Round(100*time.Millisecond))

	for _, c := range inFlight {
		c.check(t)
	}
	for _, c := range late {
		c.checkOrRetry(t)
	}
	// The state set before the fault, and by the execution that ran through it, is there.
	for _, s := range []*runner.Session{coldSession, warmSession} {
		res, err := s.Execute(ctx, runner.Request{Code: "print(x, y)"})
		if err != nil || string(res.Stdout) != "7 8\n" {
			t.Errorf("%s session %s after the fault: %v, stdout %q stderr %q; want \"7 8\": the state set before it and during it",
				s.Sandbox(), s.ID(), err, res.Stdout, res.Stderr)
		}
		if err := s.Close(); err != nil {
			t.Errorf("closing %s session %s: %v", s.Sandbox(), s.ID(), err)
		}
	}
	for name, r := range map[string]*runner.Runner{"cold": rc, "warm": rw, "other": other} {
		_ = r.Close()
		if n := r.CleanupFailures(); n > 0 {
			t.Errorf("the %s runner could not delete %d objects", name, n)
		}
	}
	// Nothing may be left once the runners are closed: no gc, and no janitor of a live runner.
	left, err := leftovers.Wait(ctx, f.admin, f.ns, leftDeadline)
	if err != nil {
		t.Errorf("after the runners closed: %v", err)
	}
	t.Logf("fault %s: %d calls in flight, %d started during it; %d objects left", f.fault, len(inFlight), len(late), len(left))
}

// makeNamespace makes the fault's namespace, deleted when the test ends.
func (f *faultRun) makeNamespace(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	f.ns = "gkexec-chaos-" + rand.String(6)
	if _, err := f.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.admin.CoreV1().Namespaces().Delete(context.Background(), f.ns, metav1.DeleteOptions{}) })
	testns.Own(t, f.admin, f.ns)
	waitFor(t, "the namespace's default ServiceAccount", time.Minute, func(ctx context.Context) bool {
		_, err := f.admin.CoreV1().ServiceAccounts(f.ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
}

// makePool applies the warm pool for opts, as an operator would (runner.WarmPoolDeployment), and
// waits until it is full.
func (f *faultRun) makePool(t *testing.T, opts runner.Options) {
	t.Helper()
	pool, err := runner.WarmPoolDeployment(opts, poolReplicas)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.AppsV1().Deployments(f.ns).Create(context.Background(), pool, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("a warm pool of %d ready", poolReplicas), startedDeadline, func(ctx context.Context) bool {
		d, err := f.admin.AppsV1().Deployments(f.ns).Get(ctx, pool.Name, metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == poolReplicas
	})
}

// daemonPIDs are the daemon's processes as pgrep lists them, "" for none.
func (f *faultRun) daemonPIDs() string {
	out, _ := exec.Command("pgrep", "-x", f.fault).Output()
	return strings.TrimSpace(string(out))
}

// awaitDown waits until the daemon that ran as before is gone (cluster.sh stops it, then starts
// it again; a kubelet or containerd is back within a second), so that the calls started next
// meet it down or restarting.
func (f *faultRun) awaitDown(t *testing.T, before string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
		return f.daemonPIDs() != before, nil
	})
	if err != nil {
		t.Errorf("%s (pid %s) still runs 15 s after its restart began; the calls for the outage start now", f.fault, before)
	}
}

func newRunner(t *testing.T, opts runner.Options) *runner.Runner {
	t.Helper()
	r, err := runner.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// openSession opens a session whose sandbox must come from kind, and sets x in it.
func openSession(t *testing.T, r *runner.Runner, kind string) *runner.Session {
	t.Helper()
	ctx := context.Background()
	s, err := r.OpenSession(ctx, runner.SessionOptions{})
	if err != nil {
		t.Fatalf("OpenSession (%s): %v", kind, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if s.Sandbox() != kind {
		t.Fatalf("session %s runs %s, want %s", s.ID(), s.Sandbox(), kind)
	}
	if res, err := s.Execute(ctx, runner.Request{Code: "x = 7"}); err != nil || res.ExitCode != 0 {
		t.Fatalf("session %s: x = 7: %v, exit %d stderr %q", s.ID(), err, res.ExitCode, res.Stderr)
	}
	return s
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func(context.Context) bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		return cond(ctx), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// syncBuffer is a buffer that many goroutines write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
