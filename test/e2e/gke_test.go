//go:build gke

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/terraform"
	test_structure "github.com/gruntwork-io/terratest/modules/test-structure"
)

// Environment of the GKE tier (see README.md).
const (
	envGKEProject = "GKEXEC_GKE_PROJECT"
	envGKERegion  = "GKEXEC_GKE_REGION"
	// envGKEAgentImage is the image of the example's agent Deployment; the suite does not use the
	// Deployment (it runs the runner from here), so anything that stays up will do.
	envGKEAgentImage = "GKEXEC_GKE_AGENT_IMAGE"
	// envGKETFConfig optionally points Terraform at a CLI config for GKE (mirrors, credentials);
	// the offline config of the local tier cannot serve the google provider.
	envGKETFConfig = "GKEXEC_GKE_TF_CLI_CONFIG_FILE"

	savedGKENamespace  = "gke_namespace"
	savedGKEKubeconfig = "gke_kubeconfig"
)

// TestGKE applies the two stages of the GKE example into a real project — examples/gke (the
// network, a GKE Sandbox cluster with its system and gVisor pools, the agent identity), then
// examples/gke-workloads (the namespace and the agent, through the cluster's DNS endpoint) — runs
// stages 2-7 against it plus the metadata-server check, and destroys both stages in reverse order.
// Two root modules, as in the example, so that no Kubernetes provider is configured from a
// cluster created in the same apply. Skipped unless GKEXEC_GKE_PROJECT and GKEXEC_GKE_REGION are
// set; needs credentials (GOOGLE_APPLICATION_CREDENTIALS or gcloud's application default
// credentials), gcloud with gke-gcloud-auth-plugin, GKEXEC_BIN, and `go test -timeout 120m`.
func TestGKE(t *testing.T) {
	project, region := os.Getenv(envGKEProject), os.Getenv(envGKERegion)
	if project == "" || region == "" || !haveGoogleCredentials() {
		t.Skipf("the GKE tier needs %s, %s and Google credentials (GOOGLE_APPLICATION_CREDENTIALS or gcloud auth application-default login); see test/e2e/README.md", envGKEProject, envGKERegion)
	}
	bin := requireEnv(t, envBin, "the gkexec binary under test (make build; GKEXEC_BIN=$PWD/bin/gkexec)")
	if _, err := exec.LookPath("gcloud"); err != nil {
		t.Fatal("gcloud (with gke-gcloud-auth-plugin) is needed to reach the cluster")
	}
	root := repoRoot(t)
	// One copy of the repository holds both stages (their module sources are relative).
	clusterDir := test_structure.CopyTerraformFolderToTemp(t, root, "examples/gke")
	workloadsDir := filepath.Join(filepath.Dir(clusterDir), "gke-workloads")
	dataDir := clusterDir
	if test_structure.SkipStageEnvVarSet() {
		dataDir = filepath.Join(root, "test", "e2e", ".gke")
	}
	// Each stage's saved options, so that teardown (and SKIP_*) finds both.
	clusterData, workloadsData := filepath.Join(dataDir, "cluster"), filepath.Join(dataDir, "workloads")

	ctx := context.Background()
	// Registered before anything is applied: it destroys whatever part of either stage exists,
	// the Kubernetes objects first, while their cluster is still there.
	defer test_structure.RunTestStage(t, "teardown", func() {
		workloadsErr, workloadsLeft := destroyStage(t, ctx, workloadsData)
		clusterErr, clusterLeft := destroyStage(t, ctx, clusterData)
		t.Run("8_tear_down", func(t *testing.T) {
			for _, st := range []struct {
				name, left string
				err        error
			}{{"examples/gke-workloads", workloadsLeft, workloadsErr}, {"examples/gke", clusterLeft, clusterErr}} {
				if st.err != nil {
					t.Errorf("%s: %v", st.name, st.err)
				}
				// The cluster, and with it the namespace, is gone: nothing is left in either state.
				if strings.TrimSpace(st.left) != "" {
					t.Errorf("%s: terraform state after destroy:\n%s", st.name, st.left)
				}
			}
		})
		if workloadsErr == nil && clusterErr == nil {
			test_structure.CleanupTestDataFolder(t, dataDir)
		}
	})

	test_structure.RunTestStage(t, "setup", func() {
		id := uniqueName("gkexec-e2e")
		agentImage := os.Getenv(envGKEAgentImage)
		if agentImage == "" {
			agentImage = "registry.k8s.io/pause:3.10"
		}
		env := map[string]string{"CHECKPOINT_DISABLE": "1", envTFConfig: os.Getenv(envGKETFConfig)}
		// GKE answers some calls with retryable errors while a cluster is being changed.
		retryable := map[string]string{
			".*operation.*in progress.*": "another operation is running on the cluster",
			"(?i).*timeout.*":            "transient timeout",
		}
		clusterOpts := &terraform.Options{
			TerraformBinary: terraformBinary(),
			TerraformDir:    clusterDir,
			NoColor:         true,
			EnvVars:         env,
			Vars: map[string]any{
				"project_id":   project,
				"location":     region,
				"cluster_name": id,
				"namespace":    id,
				// The agent's ServiceAccount (and Google identity) lives apart from the sandboxes.
				"agent_namespace": id + "-agent",
				// The suite acts as the agent from outside the cluster with a ServiceAccount
				// token (becomeAgent), which the DNS endpoint accepts only when asked to.
				"kubernetes_tokens_via_dns": true,
			},
			RetryableTerraformErrors: retryable,
			MaxRetries:               3,
			TimeBetweenRetries:       30 * time.Second,
		}
		// Saved before apply, so that teardown destroys even a half-applied stage.
		test_structure.SaveTerraformOptions(t, clusterData, clusterOpts)
		test_structure.SaveString(t, dataDir, savedGKENamespace, id)
		terraform.InitAndApplyContext(t, ctx, clusterOpts)

		// Stage 2 takes stage 1's outputs as its variables.
		workloadsOpts := &terraform.Options{
			TerraformBinary: terraformBinary(),
			TerraformDir:    workloadsDir,
			NoColor:         true,
			EnvVars:         env,
			Vars: map[string]any{
				"project_id":                   terraform.OutputContext(t, ctx, clusterOpts, "project_id"),
				"location":                     terraform.OutputContext(t, ctx, clusterOpts, "location"),
				"cluster_name":                 terraform.OutputContext(t, ctx, clusterOpts, "cluster_name"),
				"namespace":                    terraform.OutputContext(t, ctx, clusterOpts, "namespace"),
				"agent_namespace":              terraform.OutputContext(t, ctx, clusterOpts, "agent_namespace"),
				"agent_google_service_account": terraform.OutputContext(t, ctx, clusterOpts, "agent_google_service_account"),
				"agent":                        map[string]any{"image": agentImage},
			},
			RetryableTerraformErrors: retryable,
			MaxRetries:               3,
			TimeBetweenRetries:       30 * time.Second,
		}
		test_structure.SaveTerraformOptions(t, workloadsData, workloadsOpts)
		terraform.InitAndApplyContext(t, ctx, workloadsOpts)

		kubeconfig := test_structure.FormatTestDataPath(dataDir, "gke.kubeconfig")
		getCredentials := strings.Fields(terraform.OutputContext(t, ctx, clusterOpts, "get_credentials_command"))
		cmd := exec.Command(getCredentials[0], getCredentials[1:]...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(getCredentials, " "), err, out)
		}
		test_structure.SaveString(t, dataDir, savedGKEKubeconfig, kubeconfig)

		if !t.Run("1_stand_up", func(t *testing.T) {
			if got := terraform.OutputContext(t, ctx, workloadsOpts, "namespace"); got != id {
				t.Errorf("output namespace = %q, want %q", got, id)
			}
			dns := terraform.OutputContext(t, ctx, clusterOpts, "dns_endpoint")
			if got := terraform.OutputContext(t, ctx, workloadsOpts, "kubernetes_host"); got != "https://"+dns {
				t.Errorf("stage 2 applied to %q, want the cluster's DNS endpoint https://%s", got, dns)
			}
			adminConfig, admin := adminClient(t, kubeconfig, "")
			(&target{name: "gke", namespace: id, serviceAccount: "gkexec-agent", agentNamespace: id + "-agent", admin: admin, adminConfig: adminConfig}).assertStoodUp(t)
		}) {
			t.Fatal("stand-up incomplete (teardown still runs)")
		}
	})

	test_structure.RunTestStage(t, "validate", func() {
		ns := test_structure.LoadString(t, dataDir, savedGKENamespace)
		kubeconfig := test_structure.LoadString(t, dataDir, savedGKEKubeconfig)
		adminConfig, admin := adminClient(t, kubeconfig, "")
		tg := &target{name: "gke", namespace: ns, serviceAccount: "gkexec-agent", agentNamespace: ns + "-agent", otherNamespace: "default",
			admin: admin, adminConfig: adminConfig, adminKubectl: k8s.NewKubectlOptions("", kubeconfig, ""),
			bin: bin, gke: true, startTimeout: 10 * time.Minute}
		tg.becomeAgent(t, t.TempDir())

		runStage(t, "2_rbac", tg, testRBAC)
		runStage(t, "3_execution", tg, testExecution)
		runStage(t, "4_sandbox", tg, testSandbox) // includes no_metadata_server on GKE
		runStage(t, "5_limits", tg, testLimits)
		runStage(t, "6_leaks", tg, testLeaks)
		runStage(t, "7_concurrency", tg, testConcurrency)
	})
}

// destroyStage destroys the stage whose options were saved in dataDir (nothing if none were) and
// returns the destroy error and what `terraform state list` still lists afterwards.
func destroyStage(t *testing.T, ctx context.Context, dataDir string) (error, string) {
	t.Helper()
	if !test_structure.IsTestDataPresent(t, test_structure.FormatTestDataPath(dataDir, "TerraformOptions.json")) {
		return nil, ""
	}
	opts := test_structure.LoadTerraformOptions(t, dataDir)
	_, err := terraform.DestroyContextE(t, ctx, opts)
	// Without the options' variables, which `state list` does not take.
	bare := &terraform.Options{TerraformBinary: opts.TerraformBinary, TerraformDir: opts.TerraformDir, EnvVars: opts.EnvVars}
	left, listErr := terraform.RunTerraformCommandContextE(t, ctx, bare, "state", "list")
	if listErr != nil {
		left += "\n(terraform state list: " + listErr.Error() + ")"
	}
	return err, left
}

// terraformBinary is GKEXEC_TERRAFORM or terraform on PATH.
func terraformBinary() string {
	if b := os.Getenv(envTerraform); b != "" {
		return b
	}
	return "terraform"
}

// haveGoogleCredentials: GOOGLE_APPLICATION_CREDENTIALS names a file, or gcloud's application
// default credentials exist.
func haveGoogleCredentials() bool {
	if p := os.Getenv("GOOGLE_APPLICATION_CREDENTIALS"); p != "" {
		_, err := os.Stat(p)
		return err == nil
	}
	dir := os.Getenv("CLOUDSDK_CONFIG")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config", "gcloud")
	}
	_, err := os.Stat(filepath.Join(dir, "application_default_credentials.json"))
	return err == nil
}
