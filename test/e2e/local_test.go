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
// runs stages 2-7 against them as the agent ServiceAccount, and tears both down (stage 8).
//
// Stages (test_structure): setup, validate, teardown. SKIP_teardown=true leaves the namespaces
// up; a later run with SKIP_setup=true reuses them (see README.md).
func TestLocalCluster(t *testing.T) {
	kubeconfig := requireEnv(t, envKubeconfig, "the local cluster's admin kubeconfig")
	bin := requireEnv(t, envBin, "the gkexec binary under test")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s=%s: %v; %s", envBin, bin, err, howToRun)
	}
	useClusterKubectl(t)
	root := repoRoot(t)
	adminConfig, admin := adminClient(t, kubeconfig, "")

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

	defer test_structure.RunTestStage(t, "teardown", func() {
		tornDown = t.Run("8_tear_down", func(t *testing.T) {
			t.Run("terraform_destroy", func(t *testing.T) {
				if !test_structure.IsTestDataPresent(t, test_structure.FormatTestDataPath(dataDir, "TerraformOptions.json")) {
					t.Skip("nothing was applied")
				}
				opts := test_structure.LoadTerraformOptions(t, dataDir)
				ns := test_structure.LoadString(t, dataDir, savedTerraformNamespace)
				terraform.DestroyContext(t, context.Background(), opts)
				// The module waits for the namespace on destroy: it must be gone when destroy returns.
				_, err := admin.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
				if !apierrors.IsNotFound(err) {
					t.Errorf("namespace %s still there after terraform destroy (err %v)", ns, err)
					waitNamespaceGone(t, admin, ns, 3*time.Minute)
				}
			})
			t.Run("kubectl_delete_k", func(t *testing.T) {
				path := test_structure.FormatTestDataPath(dataDir, savedManifestsNamespace+".json")
				if !test_structure.IsTestDataPresent(t, path) {
					t.Skip("nothing was applied")
				}
				ns := test_structure.LoadString(t, dataDir, savedManifestsNamespace)
				overlay := test_structure.LoadString(t, dataDir, savedManifestsOverlay)
				k8s.KubectlDeleteFromKustomizeContext(t, context.Background(), k8s.NewKubectlOptions("", kubeconfig, ""), overlay)
				waitNamespaceGone(t, admin, ns, 3*time.Minute)
			})
			if !t.Failed() {
				test_structure.CleanupTestDataFolder(t, dataDir)
			}
		})
	})

	test_structure.RunTestStage(t, "setup", func() {
		ok := t.Run("1_stand_up", func(t *testing.T) {
			t.Run("terraform_apply", func(t *testing.T) {
				ns := uniqueName("gkexec-e2e-tf")
				tfBinary, tfEnv := terraformEnv(t, root)
				opts := &terraform.Options{
					TerraformBinary: tfBinary,
					TerraformDir:    workDir,
					EnvVars:         tfEnv,
					NoColor:         true,
					Vars: map[string]any{
						"kubeconfig_path": kubeconfig,
						"namespace":       ns,
					},
				}
				// Saved before apply, so that teardown destroys even a half-applied stack.
				test_structure.SaveTerraformOptions(t, dataDir, opts)
				test_structure.SaveString(t, dataDir, savedTerraformNamespace, ns)
				terraform.InitAndApplyContext(t, context.Background(), opts)
				if got := terraform.OutputContext(t, context.Background(), opts, "namespace"); got != ns {
					t.Errorf("output namespace = %q, want %q", got, ns)
				}
				if got := terraform.OutputContext(t, context.Background(), opts, "runtime_class_name"); got != "gvisor" {
					t.Errorf("output runtime_class_name = %q, want gvisor", got)
				}
				tg := &target{name: "terraform", namespace: ns, serviceAccount: terraform.OutputContext(t, context.Background(), opts, "agent_service_account"),
					admin: admin, adminConfig: adminConfig}
				tg.assertStoodUp(t)
			})
			t.Run("kubectl_apply_k", func(t *testing.T) {
				ns := uniqueName("gkexec-e2e-mf")
				overlay := writeManifestsOverlay(t, root, dataDir, ns)
				test_structure.SaveString(t, dataDir, savedManifestsNamespace, ns)
				test_structure.SaveString(t, dataDir, savedManifestsOverlay, overlay)
				k8s.KubectlApplyFromKustomizeContext(t, context.Background(), k8s.NewKubectlOptions("", kubeconfig, ""), overlay)
				tg := &target{name: "manifests", namespace: ns, serviceAccount: "gkexec-agent", admin: admin, adminConfig: adminConfig}
				tg.assertStoodUp(t)
			})
		})
		if !ok {
			t.Fatal("stand-up failed; the stages need both namespaces (teardown still runs)")
		}
	})

	test_structure.RunTestStage(t, "validate", func() {
		tfNS := test_structure.LoadString(t, dataDir, savedTerraformNamespace)
		mfNS := test_structure.LoadString(t, dataDir, savedManifestsNamespace)
		dir := t.TempDir()
		adminKubectl := k8s.NewKubectlOptions("", kubeconfig, "")
		tf := &target{name: "terraform", namespace: tfNS, serviceAccount: "gkexec-agent", otherNamespace: mfNS,
			admin: admin, adminConfig: adminConfig, adminKubectl: adminKubectl, bin: bin}
		mf := &target{name: "manifests", namespace: mfNS, serviceAccount: "gkexec-agent", otherNamespace: tfNS,
			admin: admin, adminConfig: adminConfig, adminKubectl: adminKubectl, bin: bin}
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
	})
}

// writeManifestsOverlay writes a kustomization that retargets manifests/base to namespace and
// returns its directory. The base alone: the local cluster has the gvisor RuntimeClass already,
// and deleting the overlay must not remove it.
func writeManifestsOverlay(t *testing.T, root, dataDir, namespace string) string {
	t.Helper()
	dir := test_structure.FormatTestDataPath(dataDir, "manifests-overlay-"+namespace)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Rel(dir, filepath.Join(root, "manifests", "base"))
	if err != nil {
		t.Fatal(err)
	}
	kustomization := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" +
		"namespace: " + namespace + "\nresources:\n  - " + base + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
