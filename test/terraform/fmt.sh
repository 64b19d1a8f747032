#!/usr/bin/env bash
# fmt.sh: rewrite every .tf and .tftest.hcl file of terraform/ and examples/ in canonical format.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TF_CLI_CONFIG_FILE=/dev/null "$(terraform_bin)" fmt -recursive "$REPO_ROOT/terraform" "$REPO_ROOT/examples"
