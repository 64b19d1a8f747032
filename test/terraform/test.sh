#!/usr/bin/env bash
# test.sh: every offline check of the Terraform modules, examples and manifests (make tf-test).
#
#   fmt          terraform fmt -check over terraform/ and examples/
#   coverage     every validation block has an expect_failures run
#   providers    the offline providers (built once, then cached; see providers.sh)
#   replay-provider  unit tests of test/tfprovider-replay (its own Go module)
#   canary       the schema replay provider rejects a config the real provider rejects
#   <dir>        init, validate and `terraform test` for each module and example, in a scratch copy
#   parity       go test ./test/parity: manifests/ = the namespace module = runner.RequiredRules()
#
# Each stage prints its time; a failing stage prints the end of its log and the log's path.
# Logs: $GKEXEC_TF_TEST_LOGS (default <repo>/bin/tf-test).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOG_DIR=${GKEXEC_TF_TEST_LOGS:-$REPO_ROOT/bin/tf-test}
# A leading underscore keeps the go tool out of the copied examples (go ./... skips such folders).
WORK=$LOG_DIR/_work
rm -rf "$LOG_DIR" && mkdir -p "$LOG_DIR"
# Until the offline CLI config exists, Terraform reads none (never the developer's, which may
# point at a registry).
export TF_CLI_CONFIG_FILE=/dev/null

# stage NAME CMD...: run CMD with its output in $LOG_DIR/NAME.log.
stage() {
	local name=$1 log="$LOG_DIR/${1//\//_}.log" start=$SECONDS
	shift
	printf '==> %-40s' "$name" >&2
	if "$@" >"$log" 2>&1; then
		# The count of terraform test runs or Go tests, where the stage has one.
		printf 'ok    %3ds  %s\n' $((SECONDS - start)) "$(grep -ohE '^Success! [0-9]+ passed|^ok .*' "$log" | tail -n 1)" >&2
	else
		printf 'FAIL  %3ds\n' $((SECONDS - start)) >&2
		tail -n 40 "$log" | sed 's/^/    /' >&2
		log "stage $name failed; full log: $log"
		exit 1
	fi
}

tf_fmt() { "$TF" fmt -check -recursive -diff -no-color "$REPO_ROOT/terraform" "$REPO_ROOT/examples"; }

# copy_tree: the scratch copy keeps the repository clean and free of stale lock files.
copy_tree() {
	rm -rf "$WORK" && mkdir -p "$WORK"
	tar -C "$REPO_ROOT" --exclude=.terraform --exclude=.terraform.lock.hcl --exclude='*.tfstate*' -cf - terraform examples |
		tar -C "$WORK" -xf -
}

check_dir() {
	local dir=$WORK/$1
	cd "$dir"
	"$TF" init -backend=false -input=false -no-color
	"$TF" validate -no-color
	if compgen -G "tests/*.tftest.hcl" >/dev/null; then
		"$TF" test -no-color
	else
		echo "no tests/*.tftest.hcl in $1" >&2
		return 1
	fi
}

replay_unit() {
	cd "$REPO_ROOT/test/tfprovider-replay"
	go test -count=1 ./...
}

# canary: the replay provider must reject what the real google provider rejects (here the
# pre-7.22 sandbox_type argument), or every validate would pass for nothing.
canary() {
	local dir=$WORK/canary
	mkdir -p "$dir" && cd "$dir"
	cat >main.tf <<-'EOF'
		terraform {
		  required_providers {
		    google = { source = "hashicorp/google", version = ">= 7.22, < 8.0" }
		  }
		}
		resource "google_container_node_pool" "canary" {
		  cluster = "c"
		  node_config {
		    sandbox_config {
		      sandbox_type = "gvisor"
		    }
		  }
		}
	EOF
	"$TF" init -backend=false -input=false -no-color
	local out
	if out=$("$TF" validate -no-color 2>&1); then
		echo "the replay provider accepted sandbox_type, which google >= 7.22 rejects: it does not enforce the schema" >&2
		return 1
	fi
	echo "$out"
	grep -q 'An argument named "sandbox_type" is not expected here' <<<"$out"
}

parity() {
	cd "$REPO_ROOT"
	GKEXEC_REQUIRE_TOOLS=1 GKEXEC_TERRAFORM=$TF go test -count=1 -v ./test/parity/
}

main() {
	local total=$SECONDS dir
	TF=$(terraform_bin)
	log "terraform: $TF ($("$TF" version | head -n 1))"
	stage fmt tf_fmt
	stage coverage "$REPO_ROOT/test/terraform/validation-coverage.sh"
	stage providers "$REPO_ROOT/test/terraform/providers.sh"
	stage replay-provider replay_unit
	export TF_CLI_CONFIG_FILE=$TF_CLI_CONFIG TF_IN_AUTOMATION=1 TF_INPUT=0
	stage copy copy_tree
	stage canary canary
	for dir in $(terraform_dirs); do
		stage "$dir" check_dir "$dir"
	done
	stage parity parity
	log "all Terraform checks passed in $((SECONDS - total))s; logs in $LOG_DIR"
}

main "$@"
