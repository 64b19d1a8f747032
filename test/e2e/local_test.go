//go:build integration

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/terraform"
	test_structure "github.com/gruntwork-io/terratest/modules/test-structure"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gkexec/gkexec/test/testenv"
	"github.com/gkexec/gkexec/test/testns"
)

// Stage data saved by setup and read by the later stages, so that with SKIP_setup=true a run
// reuses what an earlier run with SKIP_teardown=true left standing.
const (
	savedTerraformNamespace = "terraform_namespace"
	savedManifestsNamespace = "manifests_namespace"
	savedManifestsOverlay   = "manifests_overlay"
)

// TestLocalCluster stands the kit up once on the local gVisor cluster, in two ways (stage 1: the
// Terraform example into one fresh namespace, manifests/ with kubectl apply -k into another),
// runs stages 2-7 and 9-17 against them as the agent ServiceAccount, and tears both down (stage 8).
//
// The work of standing up and tearing down happens in the terratest stages setup and teardown
// (SKIP_setup, SKIP_teardown), not inside the subtests 1_stand_up and 8_tear_down, which only
// assert: so `-run TestLocalCluster/5_limits` still stands the stack up and tears it down.
func TestLocalCluster(t *testing.T) {
	kubeconfig := requireEnv(t, envKubeconfig, "the local cluster's admin kubeconfig")
	bin := requireEnv(t, envBin, "the gkexec binary under test")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s=%s: %v; %s", envBin, bin, err, howToRun)
	}
	testenv.UseClusterKubectl(t)
	root := repoRoot(t)
	adminConfig, admin := adminClient(t, kubeconfig, "")
	adminKubectl := k8s.NewKubectlOptions("", kubeconfig, "")
	ctx := context.Background()
	// A killed run's namespaces (their warm pools) would take the node's capacity from this one.
	testns.SweepStale(t, admin)
	// own marks the stand-up's namespaces as this process's, so that no other run's sweep takes
	// them; a run that skips its teardown keeps them for the next run, which sets SKIP_setup.
	own := func(namespaces ...string) {
		for _, ns := range namespaces {
			testns.Own(t, admin, ns)
			if os.Getenv("SKIP_teardown") != "" {
				testns.Keep(t, admin, ns, "SKIP_teardown: for a later run with SKIP_setup")
			}
		}
	}

	workDir := test_structure.CopyTerraformFolderToTemp(t, root, "examples/local-cluster")
	dataDir := workDir
	tornDown := false
	if test_structure.SkipStageEnvVarSet() {
		// Iterating: keep stage data where the next run finds it (ignored by git).
		dataDir = filepath.Join(root, "test", "e2e")
	} else {
		// The copy holds the Terraform state: remove it only once teardown has destroyed everything.
		// workDir is <tmp>/TestLocalCluster<random>/<repository>/examples/local-cluster.
		copyRoot := filepath.Dir(filepath.Dir(filepath.Dir(workDir)))
		defer func() {
			if !tornDown {
				t.Logf("kept %s: it holds the Terraform state of what was not torn down", copyRoot)
				return
			}
			if !strings.HasPrefix(filepath.Base(copyRoot), "TestLocalCluster") {
				t.Errorf("not removing %s: not the copy CopyTerraformFolderToTemp made", copyRoot)
				return
			}
			_ = os.RemoveAll(copyRoot)
		}()
	}
	saved := func(name string) bool {
		return test_structure.IsTestDataPresent(t, test_structure.FormatTestDataPath(dataDir, name+".json"))
	}

	// Registered before anything is applied: it destroys whatever part of the stack exists.
	defer test_structure.RunTestStage(t, "teardown", func() {
		var gone []func(t *testing.T)
		destroyed, deleted := true, true
		if saved("TerraformOptions") {
			opts := test_structure.LoadTerraformOptions(t, dataDir)
			ns := test_structure.LoadString(t, dataDir, savedTerraformNamespace)
			_, err := terraform.DestroyContextE(t, ctx, opts)
			destroyed = err == nil
			// Without the options' variables, which `state list` does not take.
			bare := &terraform.Options{TerraformBinary: opts.TerraformBinary, TerraformDir: opts.TerraformDir, EnvVars: opts.EnvVars}
			left, listErr := terraform.RunTerraformCommandContextE(t, ctx, bare, "state", "list")
			// The module waits for the namespace on destroy: it must be gone when destroy returns.
			_, getErr := admin.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			gone = append(gone, func(t *testing.T) {
				t.Run("terraform_destroy", func(t *testing.T) {
					if err != nil {
						t.Fatalf("terraform destroy: %v", err)
					}
					if !apierrors.IsNotFound(getErr) {
						t.Errorf("namespace %s still there when terraform destroy returned (get: %v)", ns, getErr)
					}
					if listErr != nil || strings.TrimSpace(left) != "" {
						t.Errorf("terraform state after destroy (err %v):\n%s", listErr, left)
					}
				})
			})
		}
		if saved(savedManifestsNamespace) {
			ns := test_structure.LoadString(t, dataDir, savedManifestsNamespace)
			overlay := test_structure.LoadString(t, dataDir, savedManifestsOverlay)
			err := k8s.KubectlDeleteFromKustomizeContextE(t, ctx, adminKubectl, overlay)
			deleted = err == nil
			gone = append(gone, func(t *testing.T) {
				t.Run("kubectl_delete_k", func(t *testing.T) {
					if err != nil {
						t.Fatalf("kubectl delete -k: %v", err)
					}
					testns.WaitGone(t, admin, ns, 3*time.Minute)
				})
			})
		}
		tornDown = destroyed && deleted
		t.Run("8_tear_down", func(t *testing.T) {
			for _, check := range gone {
				check(t)
			}
		})
		if tornDown {
			test_structure.CleanupTestDataFolder(t, dataDir)
		}
	})

	test_structure.RunTestStage(t, "setup", func() {
		// 1a: the Terraform example, through terratest's terraform module.
		tfNS := uniqueName("gkexec-e2e-tf")
		tfBinary, tfEnv := terraformEnv(t, root)
		opts := &terraform.Options{
			TerraformBinary: tfBinary,
			TerraformDir:    workDir,
			EnvVars:         tfEnv,
			NoColor:         true,
			Vars: map[string]any{
				"kubeconfig_path": kubeconfig,
				"namespace":       tfNS,
			},
		}
		// Saved before apply, so that teardown destroys even a half-applied stack.
		test_structure.SaveTerraformOptions(t, dataDir, opts)
		test_structure.SaveString(t, dataDir, savedTerraformNamespace, tfNS)
		terraform.InitAndApplyContext(t, ctx, opts)
		own(tfNS)
		outputs := terraform.OutputAllContext(t, ctx, opts)

		// 1b: manifests/, retargeted by an overlay, with kubectl apply -k.
		mfNS := uniqueName("gkexec-e2e-mf")
		overlay := writeManifestsOverlay(t, root, dataDir, mfNS, "warm-pool")
		test_structure.SaveString(t, dataDir, savedManifestsNamespace, mfNS)
		test_structure.SaveString(t, dataDir, savedManifestsOverlay, overlay)
		k8s.KubectlApplyFromKustomizeContext(t, ctx, adminKubectl, overlay)
		own(mfNS)

		if !t.Run("1_stand_up", func(t *testing.T) {
			t.Run("terraform_apply", func(t *testing.T) {
				want := map[string]any{"namespace": tfNS, "agent_service_account": "gkexec-agent", "runtime_class_name": "gvisor"}
				for k, v := range want {
					if outputs[k] != v {
						t.Errorf("output %s = %v, want %v", k, outputs[k], v)
					}
				}
				(&target{name: "terraform", namespace: tfNS, serviceAccount: "gkexec-agent", admin: admin, adminConfig: adminConfig}).assertStoodUp(t)
			})
			t.Run("kubectl_apply_k", func(t *testing.T) {
				(&target{name: "manifests", namespace: mfNS, serviceAccount: "gkexec-agent", admin: admin, adminConfig: adminConfig, warmPool: true}).assertStoodUp(t)
			})
		}) {
			t.Fatal("stand-up incomplete; the stages need both namespaces (teardown still runs)")
		}
	})

	test_structure.RunTestStage(t, "validate", func() {
		tfNS := test_structure.LoadString(t, dataDir, savedTerraformNamespace)
		mfNS := test_structure.LoadString(t, dataDir, savedManifestsNamespace)
		own(tfNS, mfNS) // again: with SKIP_setup, an earlier run made them
		dir := t.TempDir()
		tf := &target{name: "terraform", namespace: tfNS, serviceAccount: "gkexec-agent", otherNamespace: mfNS,
			admin: admin, adminConfig: adminConfig, adminKubectl: adminKubectl, bin: bin}
		mf := &target{name: "manifests", namespace: mfNS, serviceAccount: "gkexec-agent", otherNamespace: tfNS,
			admin: admin, adminConfig: adminConfig, adminKubectl: adminKubectl, bin: bin, warmPool: true}
		tf.becomeAgent(t, dir)
		mf.becomeAgent(t, dir)

		// The manifests namespace gets what proves its RBAC and that executions work in it; the
		// Terraform namespace gets everything.
		runStage(t, "2_rbac/manifests", mf, testRBAC)
		runStage(t, "3_execution/manifests", mf, testExecutionLibrary)
		runStage(t, "2_rbac/terraform", tf, testRBAC)
		runStage(t, "3_execution/terraform", tf, testExecution)
		runStage(t, "4_sandbox", tf, testSandbox)
		runStage(t, "5_limits", tf, testLimits)
		runStage(t, "6_leaks", tf, testLeaks)
		runStage(t, "7_concurrency", tf, testConcurrency)
		runStage(t, "9_warm_pool/manifests", mf, testWarm)
		runStage(t, "10_sessions/manifests", mf, testSessions)
		runStage(t, "11_session_cli/manifests", mf, testSessionCLI)
		runStage(t, "12_session_runner_killed/manifests", mf, testSessionRunnerKilled)
		runStage(t, "13_admission/manifests", mf, testAdmission)
		runStage(t, "14_languages/manifests", mf, testLanguages)
		runStage(t, "15_figures/manifests", mf, testFigures)
		t.Run("9_warm_pool/terraform", func(t *testing.T) {
			testWarmPoolTerraform(t, root, kubeconfig, bin, admin, adminConfig, adminKubectl)
		})
		runStage(t, "16_network_policy/manifests", mf, testNetworkPolicy)
		t.Run("17_egress", func(t *testing.T) {
			testEgress(t, root, kubeconfig, bin, admin, adminConfig, adminKubectl)
		})
	})
}

// writeManifestsOverlay writes a kustomization that retargets manifests/overlays/<overlay> (e.g.
// warm-pool: the base with the warm pool) to namespace, the way manifests/README.md does
// (testenv.WriteOverlay), and returns its directory.
func writeManifestsOverlay(t *testing.T, root, dataDir, namespace, overlay string) string {
	t.Helper()
	return testenv.WriteOverlay(t, root, test_structure.FormatTestDataPath(dataDir, "manifests-overlay-"+namespace), namespace, overlay, "")
}
