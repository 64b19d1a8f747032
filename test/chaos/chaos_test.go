//go:build chaos

// Package chaos is the fault tier: executions in flight on the local cluster while one of its
// daemons restarts (kube-apiserver, kubelet, containerd). Every execution must return its real
// result, and the runner's own retries must leave nothing behind — no `gkexec gc`.
// Run it with `make chaos` (hack/chaos.sh), which brings the cluster up first.
package chaos

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/test/leftovers"
	"github.com/gkexec/gkexec/test/testenv"
	"github.com/gkexec/gkexec/test/testns"
)

const (
	inFlight = 5
	code     = "import time\ntime.sleep(8)\nprint('ok')\n"
	// leftDeadline: Pods terminate asynchronously after their Job is deleted.
	leftDeadline = 2 * time.Minute
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
	ctx := context.Background()
	testns.SweepStale(t, admin)

	for _, fault := range []string{"kube-apiserver", "kubelet", "containerd"} {
		t.Run(fault, func(t *testing.T) {
			ns := "gkexec-chaos-" + rand.String(6)
			if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) }()
			testns.Own(t, admin, ns)
			waitFor(t, "the namespace's default ServiceAccount", time.Minute, func(ctx context.Context) bool {
				_, err := admin.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
				return err == nil
			})
			r, err := runner.New(runner.Options{Namespace: ns, RESTConfig: cfg, NoWarmPool: true,
				Timeout: 2 * time.Minute, StartTimeout: 3 * time.Minute, CleanupTimeout: 2 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()

			results := make([]runner.Result, inFlight)
			errs := make([]error, inFlight)
			var wg sync.WaitGroup
			for i := range inFlight {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = r.Execute(ctx, runner.Request{Code: code})
				}()
			}
			waitFor(t, fmt.Sprintf("%d sandboxes running", inFlight), 3*time.Minute, func(ctx context.Context) bool {
				return runningSandboxes(ctx, admin, ns) >= inFlight
			})
			start := time.Now()
			out, err := exec.Command(filepath.Join(root, "test/localcluster/cluster.sh"), "restart", fault).CombinedOutput()
			if err != nil {
				t.Fatalf("restart %s: %v\n%s", fault, err, out)
			}
			t.Logf("%s restarted in %s", fault, time.Since(start).Round(100*time.Millisecond))
			wg.Wait()

			ok := 0
			for i := range inFlight {
				switch {
				case errs[i] != nil:
					t.Errorf("execution %d: %v", i, errs[i])
				case string(results[i].Stdout) != "ok\n" || results[i].ExitCode != 0:
					t.Errorf("execution %d: exit %d stdout %q stderr %q", i, results[i].ExitCode, results[i].Stdout, results[i].Stderr)
				case len(results[i].LeftBehind) > 0:
					t.Errorf("execution %d left %v behind", i, results[i].LeftBehind)
				default:
					ok++
				}
			}
			// Nothing may be left by the runner's own retries: no gc.
			left, err := leftovers.Wait(ctx, admin, ns, leftDeadline)
			if err != nil {
				t.Errorf("after the executions returned: %v", err)
			}
			t.Logf("fault %s: %d of %d results right, %d errors, %d objects left", fault, ok, inFlight, inFlight-ok, len(left))
		})
	}
}

func runningSandboxes(ctx context.Context, c kubernetes.Interface, ns string) int {
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: runner.LabelManagedBy + "=" + runner.ManagedByValue})
	if err != nil {
		return 0
	}
	n := 0
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil {
				n++
			}
		}
	}
	return n
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
