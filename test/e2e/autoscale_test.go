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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/autoscale"
	"github.com/gkexec/gkexec/test/testenv"
	"github.com/gkexec/gkexec/test/testns"
)

// autoscaleCooldown replaces the component's 5 minutes for the test: long enough that the pool
// visibly stays up after the burst, short enough to watch it come down.
const autoscaleCooldown = 20 * time.Second

// TestPoolAutoscale installs manifests/overlays/warm-pool-autoscale into a fresh namespace (a pool
// between 1 and 4 idle sandboxes, sized by demand) and runs two autoscalers as the agent, as two
// serve replicas would: a burst of executions scales the pool up within seconds, the pool then
// refills, and once idle for the cooldown it comes back down to its minimum; one autoscaler
// writes, the other follows.
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
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, autoscale.AnnotationCooldown, autoscaleCooldown)
	if _, err := admin.AppsV1().Deployments(ns).Patch(ctx, pool, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("shorten the cooldown: %v", err)
	}
	replicas := func() int32 {
		d, err := admin.AppsV1().Deployments(ns).Get(ctx, pool, metav1.GetOptions{})
		if err != nil || d.Spec.Replicas == nil {
			return -1
		}
		return *d.Spec.Replicas
	}
	if got := replicas(); got != 1 {
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
	var leader *autoscale.Autoscaler
	poll(t, "an autoscaler leads", time.Minute, func() bool {
		n := 0
		for _, a := range scalers {
			if a.Stats().Leader && a.Stats().Policy.Cooldown == autoscaleCooldown {
				n, leader = n+1, a
			}
		}
		return n == 1
	})
	if lease, err := admin.CoordinationV1().Leases(ns).Get(ctx, autoscale.LeaseName("default"), metav1.GetOptions{}); err != nil || lease.Spec.HolderIdentity == nil {
		t.Errorf("the Lease %s: %v, want it held", autoscale.LeaseName("default"), err)
	}
	tg.waitPoolReady(t, 1)
	// Idle for a cooldown at its minimum: the pool stays at 1.
	if got := replicas(); got != 1 {
		t.Fatalf("the idle pool was resized to %d before any demand", got)
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
	poll(t, "the pool grows to its maximum, 4", 2*time.Minute, func() bool { return replicas() == 4 })
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
	tg.waitPoolReady(t, 4)
	full := time.Since(burst)
	t.Logf("burst of 4 (%d warm): scaled up to 4 after %s, the pool full of 4 after %s", warm, scaledUp.Round(time.Millisecond), full.Round(time.Millisecond))
	if s := r.PoolStats(); s.Claims != uint64(warm) || s.Claims+s.ColdFallbacks[runner.PoolMissEmpty]+s.ColdFallbacks[runner.PoolMissRaced] != 4 {
		t.Errorf("runner pool stats %+v: want %d claims and the rest cold because the pool was empty or raced", s, warm)
	}

	// Idle again: the pool comes down to 1 a cooldown after the last demand, not before.
	poll(t, "the idle pool shrinks back to 1", autoscaleCooldown+2*time.Minute, func() bool { return replicas() == 1 })
	down := time.Since(burst)
	t.Logf("back to 1 after %s (cooldown %s)", down.Round(time.Millisecond), autoscaleCooldown)
	if down < autoscaleCooldown {
		t.Errorf("shrank %s after the burst, within the cooldown (%s)", down, autoscaleCooldown)
	}
	// The leader counts a resize once its write has returned; the API server shows the new size
	// before that (CI saw replicas at 1 and the count still 0): wait for the count too.
	poll(t, "the leader counts its scale-down", time.Minute, func() bool { return leader.Stats().ScaledDown > 0 })
	s := leader.Stats()
	if s.ScaledUp < 1 || s.ScaledDown != 1 {
		t.Errorf("the leader scaled up %d and down %d times, want up and then down once", s.ScaledUp, s.ScaledDown)
	}
	for _, a := range scalers {
		if a != leader && (a.Stats().ScaledUp+a.Stats().ScaledDown != 0 || a.Stats().Leader) {
			t.Errorf("the follower wrote the size or leads: %+v", a.Stats())
		}
	}
	if s.Refills.Count == 0 {
		t.Error("the leader measured no refill")
	}
	t.Logf("refills measured %d, mean %.2f s, planned with %s", s.Refills.Count, s.Refills.Sum/float64(s.Refills.Count), s.Refill)

	// Stopping the leader hands the pool to the other at once (the Lease is given up).
	stop()
	running.Wait()
	for _, a := range scalers {
		if a.Stats().Leader {
			t.Error("an autoscaler still leads after its context ended")
		}
	}
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
