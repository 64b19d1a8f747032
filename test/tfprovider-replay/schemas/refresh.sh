#!/usr/bin/env bash
# refresh.sh VERSION: record the schema of the real hashicorp/google provider VERSION into
# google-VERSION.json.gz, filtered to the resources and data sources this kit may use (README.md).
#
# Needs the Terraform registry (or a mirror with the real provider in TF_CLI_CONFIG_FILE), so it
# is never run by the tests. Afterwards: delete the old file, update the version in README.md and
# in ../schema_test.go, and run `make tf-test`.
set -euo pipefail

version=${1:?usage: refresh.sh GOOGLE_PROVIDER_VERSION, e.g. 7.45.0}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# What is kept; keep this in step with the table in README.md.
keep='^google_(container_|service_account|project|compute_(network|subnetwork|router|firewall|zones)|artifact_registry_repository|kms_|gke_hub|client_config)'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/main.tf" <<TF
terraform {
  required_providers {
    google = { source = "hashicorp/google", version = "= $version" }
  }
}
TF
terraform -chdir="$tmp" init -backend=false -input=false >&2
terraform -chdir="$tmp" providers schema -json |
	jq --indent 1 --arg re "$keep" '.provider_schemas |= with_entries(
		.value.resource_schemas |= with_entries(select(.key | test($re))) |
		.value.data_source_schemas |= with_entries(select(.key | test($re))))' |
	gzip -9 -n >"$here/google-$version.json.gz.new"
mv "$here/google-$version.json.gz.new" "$here/google-$version.json.gz"
gzip -dc "$here/google-$version.json.gz" | sha256sum
ls -l "$here/google-$version.json.gz"
