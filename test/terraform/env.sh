#!/usr/bin/env bash
# env.sh: print the environment that runs Terraform offline against gkexec's modules, building the
# providers first if the cache lacks them (providers.sh). For a shell:
#
#   eval "$(test/terraform/env.sh)"
#   terraform -chdir=examples/local-cluster init && terraform -chdir=examples/local-cluster apply
#
# For terratest: run it once and pass TF_CLI_CONFIG_FILE and CHECKPOINT_DISABLE on as EnvVars, and
# use GKEXEC_TERRAFORM as TerraformBinary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$REPO_ROOT/test/terraform/providers.sh" >/dev/null
tf=$(terraform_bin)
printf 'export TF_CLI_CONFIG_FILE=%q\n' "$TF_CLI_CONFIG"
printf 'export CHECKPOINT_DISABLE=1\n'
printf 'export GKEXEC_TERRAFORM=%q\n' "$tf"
