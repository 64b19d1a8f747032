//go:build integration || gke

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gkexec/gkexec/test/testenv"
)

// Environment the suites read. test/run.sh (make test) and make e2e set the first two.
const (
	// envKubeconfig is the admin kubeconfig of the local cluster: it stands the stack up and
	// inspects the cluster. The code under test never uses it; it runs as the agent.
	envKubeconfig = "GKEXEC_E2E_KUBECONFIG"
	// envBin is the gkexec binary under test.
	envBin = "GKEXEC_BIN"
	// envTerraform and envTFConfig: the Terraform binary and its offline CLI config. When unset,
	// test/terraform/env.sh provides them.
	envTerraform = "GKEXEC_TERRAFORM"
	envTFConfig  = "TF_CLI_CONFIG_FILE"
)

const howToRun = testenv.HowToRun

func requireEnv(t *testing.T, name, what string) string { return testenv.RequireEnv(t, name, what) }

func repoRoot(t *testing.T) string { return testenv.RepoRoot(t) }

// terraformEnv returns the Terraform binary and the environment that runs it offline, from the
// environment or else from test/terraform/env.sh (which builds the providers if the cache lacks them).
func terraformEnv(t *testing.T, root string) (binary string, env map[string]string) {
	t.Helper()
	binary, config := os.Getenv(envTerraform), os.Getenv(envTFConfig)
	if binary == "" || config == "" {
		cmd := exec.Command("bash", "-c", `eval "$(test/terraform/env.sh)" && printf '%s\n%s\n' "$GKEXEC_TERRAFORM" "$TF_CLI_CONFIG_FILE"`)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("test/terraform/env.sh: %v\n%s", err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 2 {
			t.Fatalf("test/terraform/env.sh printed %q, want the binary and the CLI config", out)
		}
		binary, config = lines[0], lines[1]
	}
	return binary, map[string]string{
		envTFConfig: config,
		// Never let Terraform phone home.
		"CHECKPOINT_DISABLE": "1",
	}
}
