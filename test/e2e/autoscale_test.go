//go:build integration

package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/autoscale"
	"github.com/gkexec/gkexec/test/testenv"
	"github.com/gkexec/gkexec/test/testns"
)

const (
	// holdCooldown replaces the component's 5 minutes while the burst runs and the pool refills: long
	// enough that no loaded machine's refill outlasts it, so the pool must stay at its peak meanwhile.
	holdCooldown = 10 * time.Minute
	// shrinkAfter: once the pool is full again, the cooldown is set to end this long after that
	// moment, and the pool is watched coming down to its minimum then, not before.
	shrinkAfter = 20 * time.Second
)

// TestPoolAutoscale installs manifests/overlays/warm-pool-autoscale into a fresh namespace (a pool
// between 1 and 4 idle sandboxes, sized by demand) and runs two autoscalers as the agent, as two
// serve replicas would: a burst of executions scales the pool up within seconds, the pool then
// refills and stays at its peak through the cooldown, and once idle for the cooldown it comes back
// down to its minimum, without flapping; one autoscaler writes, the other follows.
//
// Every size the Deployment takes is taken from a watch started before the burst, so the test
// judges the series of sizes, not the autoscalers' own counts, which miss a write whose reply was
// lost and count a shrink in as many steps as the demand's peaks fall.
func TestPoolAutoscale(t *testing.T) {
	kubeconfig := requireEnv(t, envKubeconfig, "the local cluster's admin kubeconfig")
	testenv.UseClusterKubectl(t)
	root := repoRoot(t)
	adminConfig, admin := adminClient(t, kubeconfig, "")
	adminKubectl := k8s.NewKubectlOptions("", kubeconfig, "")
	ctx := context.Background()

	ns := uniqueName("gkexec-e2e-as")
	overlay := writeManifestsOverlay(t, root, t.TempDir(), ns, "warm-pool-autoscale")
	defer func() {
		if err := k8s.KubectlDeleteFromKustomizeContextE(t, ctx, adminKubectl, overlay); err != nil {
			t.Errorf("kubectl delete -k: %v", err)
		}
		testns.WaitGone(t, admin, ns, 3*time.Minute)
	}()
	k8s.KubectlApplyFromKustomizeContext(t, ctx, adminKubectl, overlay)
	testns.Own(t, admin, ns)
	tg := &target{name: "manifests-autoscale", namespace: ns, serviceAccount: "gkexec-agent", admin: admin, adminConfig: adminConfig,
		adminKubectl: adminKubectl, warmPool: true, autoscaled: true}
	tg.assertStoodUp(t) // the Role: runner.RequiredRules + WarmPoolRules + PoolAutoscaleRules
	tg.becomeAgent(t, t.TempDir())

	pool := runner.WarmPoolName("default")
	setCooldown := func(d time.Duration) {
		t.Helper()
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, autoscale.AnnotationCooldown, d)
		if _, err := admin.AppsV1().Deployments(ns).Patch(ctx, pool, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatalf("set the cooldown to %s: %v", d, err)
		}
	}
	setCooldown(holdCooldown)
	sizes := watchSizes(t, admin, ns, pool)
	if got := sizes.now(); got != 1 {
		t.Errorf("the pool starts at %d replicas, want 1 (the API server's default: the component sets none)", got)
	}

	// Two autoscalers as the agent, as two replicas of gkexec serve.
	agent, err := kubernetes.NewForConfig(tg.agentConfig)
	if err != nil {
		t.Fatal(err)
	}
	var scalers []*autoscale.Autoscaler
	runCtx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer func() { stop(); running.Wait() }()
	for i := range 2 {
		a, err := autoscale.New(autoscale.Config{Client: agent, Namespace: ns, Pool: "default", Identity: fmt.Sprintf("e2e-%d", i),
			PolicyEvery: time.Second, Log: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		scalers = append(scalers, a)
		running.Add(1)
		go func() {
			defer running.Done()
			if err := a.Run(runCtx); err != nil && runCtx.Err() == nil {
				t.Errorf("autoscaler %d: %v", i, err)
			}
		}()
	}
	leaders := func() (n int) {
		for _, a := range scalers {
			if a.Stats().Leader {
				n++
			}
		}
		return n
	}
	poll(t, "an autoscaler leads under the held cooldown", time.Minute, func() bool {
		for _, a := range scalers {
			if a.Stats().Leader && a.Stats().Policy.Cooldown == holdCooldown {
				return leaders() == 1
			}
		}
		return false
	})
	lease := func() (holder string, transitions int32) {
		l, err := admin.CoordinationV1().Leases(ns).Get(ctx, autoscale.LeaseName("default"), metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			t.Fatalf("the Lease %s: %v, want it held", autoscale.LeaseName("default"), err)
		}
		if l.Spec.LeaseTransitions != nil {
			transitions = *l.Spec.LeaseTransitions
		}
		return *l.Spec.HolderIdentity, transitions
	}
	firstHolder, _ := lease()
	tg.waitPoolReady(t, 1)
	if got := sizes.changes(); len(got) != 0 {
		t.Fatalf("the idle pool was resized before any demand: %v", got)
	}

	// A burst of 4 at once on a pool of 1: 1 warm, 3 cold because the pool was empty (or claimed
	// first). All four are demand: 4 + the spare, at most the maximum, 4.
	opts := tg.options()
	opts.WarmPoolReady = -1
	r := tg.newRunner(t, opts)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	burst := time.Now()
	var wg sync.WaitGroup
	results := make([]runner.Result, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = r.Execute(ctx, runner.Request{Code: "print(1)"})
		}()
	}
	poll(t, "the pool grows to its maximum, 4", 2*time.Minute, func() bool { return sizes.now() == 4 })
	scaledUp := time.Since(burst)
	wg.Wait()
	warm := 0
	for i := range results {
		if errs[i] != nil {
			t.Errorf("burst execution %d: %v", i, errs[i])
		}
		if results[i].Sandbox == runner.SandboxWarm {
			warm++
		}
	}
	s := r.PoolStats()
	t.Logf("runner pool stats after the burst: %+v", s)
	misses := uint64(0)
	for _, n := range s.ColdFallbacks {
		misses += n
	}
	if s.Claims != uint64(warm) || s.Claims+misses != 4 || s.ColdFallbacks[runner.PoolMissMismatch] != 0 {
		t.Errorf("runner pool stats %+v: want %d claims (the warm executions), the rest cold fallbacks, none for a mismatch", s, warm)
	}
	// Idle within the cooldown: the pool refills to its peak and stays there.
	tg.waitPoolReady(t, 4)
	full := time.Since(burst)
	t.Logf("burst of 4 (%d warm): scaled up to 4 after %s, the pool full of 4 after %s", warm, scaledUp.Round(time.Millisecond), full.Round(time.Millisecond))

	// Let the cooldown end shrinkAfter from now: the pool may come down then, not before.
	cooldown := (time.Since(burst) + shrinkAfter).Round(time.Millisecond)
	setCooldown(cooldown)
	earliest := burst.Add(cooldown) // the last demand came after the burst began, so its cooldown ends later
	poll(t, "the idle pool shrinks back to 1 once the cooldown ends", shrinkAfter+2*time.Minute, func() bool { return sizes.now() == 1 })
	series := sizes.changes()
	t.Logf("the pool's sizes after the burst: %v", series)
	peak, prev, firstDown, regrew := int32(1), int32(1), -1, false
	for i, c := range series {
		peak = max(peak, c.replicas)
		switch {
		case firstDown < 0 && c.replicas < prev:
			firstDown = i
		case firstDown >= 0 && c.replicas > prev:
			regrew = true
		}
		prev = c.replicas
	}
	switch {
	case peak != 4:
		t.Errorf("the pool peaked at %d, want 4", peak)
	case firstDown < 0:
		t.Error("the pool never shrank")
	case series[firstDown].at.Before(earliest):
		t.Errorf("the pool shrank %s after the burst, within its cooldown (%s)", series[firstDown].at.Sub(burst).Round(time.Millisecond), cooldown)
	case regrew:
		t.Errorf("the pool grew again after it began to shrink, with no demand: %v", series)
	}
	t.Logf("back to 1 %s after the cooldown ended", series[len(series)-1].at.Sub(earliest).Round(time.Millisecond))

	// The autoscalers count a resize once its write has returned; the API server shows the new
	// size before that (CI saw replicas at 1 and the count still 0): wait for the counts too.
	var up, down uint64
	poll(t, "the autoscalers count their scale-down", time.Minute, func() bool {
		up, down = 0, 0
		for _, a := range scalers {
			up, down = up+a.Stats().ScaledUp, down+a.Stats().ScaledDown
		}
		return down > 0
	})
	if up < 1 {
		t.Errorf("the autoscalers scaled up %d times, down %d, want at least once each", up, down)
	}
	// One writes, the other follows: with the Lease never handed over, only its holder wrote.
	if holder, transitions := lease(); holder == firstHolder && transitions == 0 {
		for _, a := range scalers {
			if st := a.Stats(); !st.Leader && st.ScaledUp+st.ScaledDown != 0 {
				t.Errorf("the follower wrote the size though the Lease never moved: %+v", st)
			}
		}
	} else {
		t.Logf("the Lease moved under load (%s to %s, %d transitions)", firstHolder, holder, transitions)
	}
	if n := leaders(); n != 1 {
		t.Errorf("%d autoscalers lead, want 1", n)
	}
	var refills autoscale.Histogram
	for _, a := range scalers {
		if st := a.Stats(); st.Leader {
			refills = st.Refills
			t.Logf("refills measured %d, mean %.2f s, planned with %s", st.Refills.Count, st.Refills.Sum/float64(max(st.Refills.Count, 1)), st.Refill)
		}
	}
	if refills.Count == 0 {
		t.Error("the leader measured no refill")
	}

	// Stopping them gives the Lease up (the next process takes over at once): none leads after.
	stop()
	running.Wait()
	poll(t, "no autoscaler leads once their contexts ended", 10*time.Second, func() bool { return leaders() == 0 })
}

// sizeChange is one size the pool's Deployment took, when the watch saw it.
type sizeChange struct {
	at       time.Time
	replicas int32
}

func (c sizeChange) String() string {
	return fmt.Sprintf("%d@%s", c.replicas, c.at.Format("15:04:05.000"))
}

// sizeWatch follows the replicas of one Deployment.
type sizeWatch struct {
	mu     sync.Mutex
	series []sizeChange
	last   int32
}

// watchSizes watches the Deployment's spec.replicas from its current version until the test ends.
func watchSizes(t *testing.T, client kubernetes.Interface, ns, name string) *sizeWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		cancel()
		t.Fatalf("read the pool's Deployment: %v", err)
	}
	w := &sizeWatch{last: replicasOf(d)}
	lw := cache.NewFilteredListWatchFromClient(client.AppsV1().RESTClient(), "deployments", ns,
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		})
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, d.ResourceVersion, lw)
	if err != nil {
		cancel()
		t.Fatalf("watch the pool's Deployment: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range rw.ResultChan() {
			if d, ok := e.Object.(*appsv1.Deployment); ok {
				w.observe(replicasOf(d))
			}
		}
	}()
	t.Cleanup(func() { cancel(); rw.Stop(); <-done })
	return w
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return -1
	}
	return *d.Spec.Replicas
}

func (w *sizeWatch) observe(n int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n != w.last {
		w.series, w.last = append(w.series, sizeChange{time.Now(), n}), n
	}
}

// now is the size last seen; changes, every change seen so far.
func (w *sizeWatch) now() int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

func (w *sizeWatch) changes() []sizeChange {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sizeChange(nil), w.series...)
}

// testLogger logs to the test's log (the autoscalers log each resize at Info).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// poll waits for cond, checking every 100 ms, failing after timeout.
func poll(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if errors.Is(err, context.DeadlineExceeded) || err != nil {
		t.Fatalf("not within %s: %s", timeout, what)
	}
}
