//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/terraform"
	test_structure "github.com/gruntwork-io/terratest/modules/test-structure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/test/leftovers"
	"github.com/gkexec/gkexec/test/testns"
)

// warmPoolReplicas is what manifests/overlays/warm-pool installs.
const warmPoolReplicas = 2

// poolDeadline is how long a pool may take to be full again: a cold Pod start on a loaded 2-core
// machine, several at once. Generous on purpose: the assertion is that it refills.
const poolDeadline = 3 * time.Minute

// testWarm is stage 9, on the namespace installed with the warm pool: executions run in the
// pool's pre-started sandboxes as the agent, with the cold path's guarantees, each sandbox once.
func testWarm(t *testing.T, tg *target) {
	tg.waitPoolReady(t, warmPoolReplicas)
	claimOnRequest := tg.options()
	claimOnRequest.WarmPoolReady = -1

	t.Run("runs_warm", func(t *testing.T) {
		r := tg.newRunner(t, claimOnRequest)
		id := executionID("warm")
		res, err := r.Execute(context.Background(), runner.Request{Code: "import sys\nprint('out')\nprint('err', file=sys.stderr)\nopen('output/f.txt','w').write(open('in.txt').read())\nsys.exit(5)\n",
			Files: map[string][]byte{"in.txt": []byte("input")}, ExecutionID: id})
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		wantResult(t, res, 5, "out\n", "err\n")
		if res.Sandbox != runner.SandboxWarm || !strings.HasPrefix(res.PodName, runner.WarmPoolName("default")+"-") {
			t.Errorf("sandbox %q pod %q, want warm from the pool", res.Sandbox, res.PodName)
		}
		if len(res.Files) != 1 || string(res.Files[0].Data) != "input" {
			t.Errorf("files %v", fileNames(res.Files))
		}
		phases := res.Timings.Phases()
		for _, p := range []string{"claim", "attach", "start", "run"} {
			if _, ok := phases[p]; !ok {
				t.Errorf("phase %s missing from %v", p, phases)
			}
		}
		tg.assertPodGone(t, id, leftoverDeadline)
	})

	t.Run("held_ready_ahead", func(t *testing.T) {
		tg.waitPoolReady(t, warmPoolReplicas)
		opts := tg.options()
		opts.WarmPoolReady = 1
		r := tg.newRunner(t, opts)
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		held := tg.waitClaimed(t, 1)
		res, err := r.Execute(context.Background(), runner.Request{Code: "print(1)"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Sandbox != runner.SandboxWarm || res.PodName != held[0] {
			t.Errorf("ran in %s %q, want the held sandbox %q", res.Sandbox, res.PodName, held[0])
		}
		if _, claimed := res.Timings.Phases()["claim"]; claimed || !res.Timings.Claimed.Before(res.Timings.Requested) {
			t.Errorf("phases %v: a held sandbox was claimed before the request", res.Timings.Phases())
		}
		_ = r.Close()
		tg.waitNoClaimed(t)
	})

	t.Run("single_use", func(t *testing.T) {
		tg.waitPoolReady(t, warmPoolReplicas)
		r := tg.newRunner(t, claimOnRequest)
		plant := `import os, subprocess
for d in ("/tmp", "/dev/shm", "/workspace"):
    open(d + "/planted", "w").write("secret")
os.environ["PLANTED"] = "secret"
subprocess.Popen(["python3", "-c", "import time; time.sleep(600)  # planted-process"], start_new_session=True)
keep = bytearray(b"planted-memory" * 1000000)
print(os.getpid())
`
		look := `import os
found = [d for d in ("/tmp", "/dev/shm", "/workspace") if os.path.exists(d + "/planted")]
procs = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            if b"planted-process" in open("/proc/%s/cmdline" % pid, "rb").read():
                procs.append(pid)
        except OSError:
            pass
print("files", found, "procs", procs, "env", os.environ.get("PLANTED"))
`
		first, err := r.Execute(context.Background(), runner.Request{Code: plant})
		if err != nil || first.Sandbox != runner.SandboxWarm {
			t.Fatalf("plant: %v, sandbox %q", err, first.Sandbox)
		}
		tg.waitPoolReady(t, 1)
		second, err := r.Execute(context.Background(), runner.Request{Code: look})
		if err != nil || second.Sandbox != runner.SandboxWarm {
			t.Fatalf("look: %v, sandbox %q", err, second.Sandbox)
		}
		if first.PodName == second.PodName {
			t.Errorf("both executions ran in pod %s", first.PodName)
		}
		if got := string(second.Stdout); got != "files [] procs [] env None\n" {
			t.Errorf("the second execution saw %q of the first", got)
		}
	})

	t.Run("hostile", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			code  string
			req   runner.Request
			check func(t *testing.T, res runner.Result, err error)
		}{
			{"timeout", "import time\nprint('started', flush=True)\ntime.sleep(600)\n", runner.Request{Timeout: 3 * time.Second},
				func(t *testing.T, res runner.Result, err error) {
					errorsIs(t, err, runner.ErrTimeout)
					if !res.TimedOut || string(res.Stdout) != "started\n" || res.ExitCode != 137 {
						t.Errorf("timed out %v exit %d stdout %q", res.TimedOut, res.ExitCode, res.Stdout)
					}
				}},
			{"oom", "x = bytearray(2 << 30)\n", runner.Request{},
				func(t *testing.T, res runner.Result, err error) {
					if err != nil || !res.OOMKilled || res.ExitCode != 137 || res.Signal != 9 {
						t.Errorf("err %v oom %v exit %d signal %d, want an OOM kill reported as 137/SIGKILL", err, res.OOMKilled, res.ExitCode, res.Signal)
					}
				}},
			{"fork_bomb", "import os\nwhile True:\n    os.fork()\n", runner.Request{Timeout: 30 * time.Second},
				func(t *testing.T, res runner.Result, err error) {
					if res.ExitCode == 0 {
						t.Errorf("err %v exit %d: a fork bomb ended well?", err, res.ExitCode)
					}
				}},
			{"output_flood", "import sys\nchunk = b'x' * 65536\nfor _ in range(64):\n    sys.stdout.buffer.write(chunk)\n", runner.Request{},
				func(t *testing.T, res runner.Result, err error) {
					if err != nil || !res.StdoutTruncated || int64(len(res.Stdout)) != runner.DefaultMaxOutputBytes {
						t.Errorf("err %v stdout %d bytes truncated %v, want capped at %d", err, len(res.Stdout), res.StdoutTruncated, runner.DefaultMaxOutputBytes)
					}
				}},
		} {
			t.Run(c.name, func(t *testing.T) {
				tg.waitPoolReady(t, 1)
				r := tg.newRunner(t, claimOnRequest)
				id := executionID("warm-" + strings.ReplaceAll(c.name, "_", "-"))
				req := c.req
				req.Code, req.ExecutionID = c.code, id
				res, err := r.Execute(context.Background(), req)
				if res.Sandbox != runner.SandboxWarm {
					t.Fatalf("ran %q (%v), want warm", res.Sandbox, err)
				}
				c.check(t, res, err)
				tg.assertPodGone(t, id, leftoverDeadline)
			})
		}
		ok, msg, err := nodesReady(context.Background(), tg.admin)
		if err != nil || !ok {
			t.Errorf("node not ready after the hostile executions: %s %v", msg, err)
		}
	})

	t.Run("concurrent_claimers", func(t *testing.T) {
		// Several runners (as if several agent processes) claim at once from a pool of 4: no two
		// get the same Pod, and those that find the pool empty run cold.
		const replicas, claimers = 4, 6
		tg.scalePool(t, replicas)
		defer tg.scalePool(t, warmPoolReplicas)
		tg.waitPoolReady(t, replicas)
		runners := make([]*runner.Runner, claimers)
		for i := range runners {
			runners[i] = tg.newRunner(t, claimOnRequest)
			// Start each runner's watches first, so that they all see the full pool.
			if err := runners[i].Start(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		results := make([]runner.Result, claimers)
		errs := make([]error, claimers)
		start := make(chan struct{})
		for i, r := range runners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], errs[i] = r.Execute(context.Background(), runner.Request{Code: fmt.Sprintf("print(%d)", i)})
			}()
		}
		close(start)
		wg.Wait()
		pods := map[string]int{}
		warm := 0
		for i, res := range results {
			if errs[i] != nil || string(res.Stdout) != fmt.Sprintf("%d\n", i) {
				t.Errorf("claimer %d: %v, stdout %q", i, errs[i], res.Stdout)
			}
			if res.Sandbox == runner.SandboxWarm {
				warm++
				pods[res.PodName]++
			}
		}
		for pod, n := range pods {
			if n != 1 {
				t.Errorf("pod %s served %d executions", pod, n)
			}
		}
		if warm == 0 {
			t.Error("no claimer got a warm sandbox from a full pool")
		}
		t.Logf("%d of %d ran warm, in %d distinct pods", warm, claimers, len(pods))
	})

	t.Run("refill", func(t *testing.T) {
		tg.waitPoolReady(t, warmPoolReplicas)
		r := tg.newRunner(t, claimOnRequest)
		for range warmPoolReplicas {
			if res, err := r.Execute(context.Background(), runner.Request{Code: "pass"}); err != nil || res.Sandbox != runner.SandboxWarm {
				t.Fatalf("%v, %s", err, res.Sandbox)
			}
		}
		start := time.Now()
		tg.waitPoolReady(t, warmPoolReplicas)
		t.Logf("pool of %d full again %s after it was emptied", warmPoolReplicas, time.Since(start).Round(100*time.Millisecond))
	})

	t.Run("runner_killed_then_gc", func(t *testing.T) {
		tg.waitPoolReady(t, 1)
		id := executionID("warm-kill")
		cmd, _, _ := tg.startSleeper(t, id)
		pods, err := tg.admin.CoreV1().Pods(tg.namespace).List(context.Background(), metav1.ListOptions{LabelSelector: leftovers.Selector(id)})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("the execution's pod: %v %v", pods, err)
		}
		pod := pods.Items[0]
		if pod.Labels[runner.LabelPoolState] != runner.PoolStateClaimed || pod.Spec.ActiveDeadlineSeconds == nil {
			t.Errorf("pod %s: state %q, activeDeadlineSeconds %v; want claimed, with a deadline so that it expires by itself",
				pod.Name, pod.Labels[runner.LabelPoolState], pod.Spec.ActiveDeadlineSeconds)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		res := tg.gkexec(t, 2*time.Minute, nil, "gc", "--older-than", "0s")
		if res.exitCode != 0 || !strings.Contains(string(res.stdout), pod.Name) {
			t.Errorf("%s; want gc to delete the orphaned warm sandbox %s", res, pod.Name)
		}
		tg.assertPodGone(t, id, leftoverDeadline)
	})

	t.Run("fallback_when_the_pool_is_empty", func(t *testing.T) {
		tg.scalePool(t, 0)
		defer func() {
			tg.scalePool(t, warmPoolReplicas)
			tg.waitPoolReady(t, warmPoolReplicas)
		}()
		tg.waitNoIdle(t)
		r := tg.newRunner(t, claimOnRequest)
		res, err := r.Execute(context.Background(), runner.Request{Code: "print('cold')"})
		if err != nil || res.Sandbox != runner.SandboxCold || string(res.Stdout) != "cold\n" {
			t.Errorf("%v, sandbox %q, stdout %q; want a cold run", err, res.Sandbox, res.Stdout)
		}
	})

	t.Run("doctor", func(t *testing.T) {
		tg.waitPoolReady(t, warmPoolReplicas)
		res := tg.gkexec(t, 3*time.Minute, nil, "doctor", "--smoke=false")
		if res.exitCode != 0 || !strings.Contains(string(res.stdout), `warm pool "default"`) || !strings.Contains(string(res.stdout), "matching these options") {
			t.Errorf("%s; want the warm pool check to pass", res)
		}
	})
}

func poolSelector(state string) string {
	return labels.Set{runner.LabelManagedBy: runner.ManagedByValue, runner.LabelPool: "default", runner.LabelPoolState: state}.String()
}

// waitPoolReady waits until at least n idle pool Pods are ready.
func (tg *target) waitPoolReady(t *testing.T, n int) {
	t.Helper()
	var last int
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, poolDeadline, true, func(ctx context.Context) (bool, error) {
		pods, err := tg.admin.CoreV1().Pods(tg.namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(runner.PoolStateIdle)})
		if err != nil {
			return false, nil
		}
		last = 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && podReady(&p) {
				last++
			}
		}
		return last >= n, nil
	})
	if err != nil {
		t.Fatalf("warm pool: %d ready idle pods after %s, want %d", last, poolDeadline, n)
	}
}

// waitClaimed waits until n pool Pods are claimed and returns their names.
func (tg *target) waitClaimed(t *testing.T, n int) []string {
	t.Helper()
	var names []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, poolDeadline, true, func(ctx context.Context) (bool, error) {
		pods, err := tg.admin.CoreV1().Pods(tg.namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(runner.PoolStateClaimed)})
		if err != nil {
			return false, nil
		}
		names = names[:0]
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				names = append(names, p.Name)
			}
		}
		return len(names) >= n, nil
	})
	if err != nil {
		t.Fatalf("%d claimed pool pods, want %d", len(names), n)
	}
	return names
}

func (tg *target) waitNoClaimed(t *testing.T) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, leftoverDeadline, true, func(ctx context.Context) (bool, error) {
		pods, err := tg.admin.CoreV1().Pods(tg.namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(runner.PoolStateClaimed)})
		return err == nil && len(pods.Items) == 0, nil
	})
	if err != nil {
		t.Error("claimed pool pods remain after the runner closed")
	}
}

func (tg *target) waitNoIdle(t *testing.T) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, poolDeadline, true, func(ctx context.Context) (bool, error) {
		pods, err := tg.admin.CoreV1().Pods(tg.namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(runner.PoolStateIdle)})
		return err == nil && len(pods.Items) == 0, nil
	})
	if err != nil {
		t.Fatal("idle pool pods remain after scaling the pool to 0")
	}
}

// scalePool sets the pool Deployment's replicas, as the admin.
func (tg *target) scalePool(t *testing.T, replicas int) {
	t.Helper()
	patch := []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))
	if _, err := tg.admin.AppsV1().Deployments(tg.namespace).Patch(context.Background(), runner.WarmPoolName("default"), types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("scale the warm pool to %d: %v", replicas, err)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// testWarmPoolTerraform applies examples/local-cluster with warm_pool = {replicas = 1} into a fresh
// namespace — the pool installed by `terraform apply` — and runs one execution warm in it as the
// agent, then destroys it.
func testWarmPoolTerraform(t *testing.T, root, kubeconfig, bin string, admin kubernetes.Interface, adminConfig *rest.Config, adminKubectl *k8s.KubectlOptions) {
	ctx := context.Background()
	workDir := test_structure.CopyTerraformFolderToTemp(t, root, "examples/local-cluster")
	copyRoot := filepath.Dir(filepath.Dir(filepath.Dir(workDir)))
	ns := uniqueName("gkexec-e2e-tfw")
	tfBinary, tfEnv := terraformEnv(t, root)
	opts := &terraform.Options{
		TerraformBinary: tfBinary, TerraformDir: workDir, EnvVars: tfEnv, NoColor: true,
		Vars: map[string]any{"kubeconfig_path": kubeconfig, "namespace": ns, "warm_pool": map[string]any{"replicas": 1}},
	}
	destroyed := false
	defer func() {
		if _, err := terraform.DestroyContextE(t, ctx, opts); err != nil {
			t.Errorf("terraform destroy: %v (kept %s)", err, copyRoot)
			return
		}
		destroyed = true
		testns.WaitGone(t, admin, ns, 3*time.Minute)
		if destroyed && strings.HasPrefix(filepath.Base(copyRoot), "TestLocalCluster") {
			_ = os.RemoveAll(copyRoot)
		}
	}()
	terraform.InitAndApplyContext(t, ctx, opts)
	testns.Own(t, admin, ns)
	tg := &target{name: "terraform-warm", namespace: ns, serviceAccount: "gkexec-agent", admin: admin, adminConfig: adminConfig,
		adminKubectl: adminKubectl, bin: bin, warmPool: true}
	tg.assertStoodUp(t)
	tg.becomeAgent(t, t.TempDir())
	tg.waitPoolReady(t, 1)
	o := tg.options()
	o.WarmPoolReady = -1
	r, err := runner.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Execute(ctx, runner.Request{Code: "print('warm from terraform')"})
	if err != nil || res.Sandbox != runner.SandboxWarm || string(res.Stdout) != "warm from terraform\n" {
		t.Errorf("%v, sandbox %q, stdout %q; want a warm run in the pool terraform installed", err, res.Sandbox, res.Stdout)
	}
}
