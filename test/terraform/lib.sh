# shellcheck shell=bash
# Shared by the scripts in test/terraform/. Source it; it defines paths and helpers, runs nothing.
#
# Environment (all optional):
#   GKEXEC_CACHE        cache root that survives clean clones        (default ~/.cache/gkexec)
#   GKEXEC_TERRAFORM    terraform or tofu binary to use                (default: terraform, else tofu,
#                       else OpenTofu built from the Go module proxy into the cache)

REPO_ROOT=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
GKEXEC_CACHE=${GKEXEC_CACHE:-$HOME/.cache/gkexec}
# Recorded provider schemas, part of the repository (test/tfprovider-replay/schemas/README.md):
# nothing outside the clone is read.
SCHEMA_DIR=$REPO_ROOT/test/tfprovider-replay/schemas
TF_CACHE=$GKEXEC_CACHE/terraform
# The CLI config every offline run uses. Its path is stable so that other tests (terratest)
# can point TF_CLI_CONFIG_FILE at it; test/terraform/env.sh prints it.
TF_CLI_CONFIG=$TF_CACHE/cli.tfrc

KUBECTL_PROVIDER_VERSION=1.19.0
OPENTOFU_VERSION=1.10.10

# Never let Terraform phone home (update checks go to checkpoint-api.hashicorp.com).
export CHECKPOINT_DISABLE=1

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# terraform_dirs prints the module and example directories (relative to the repository) that hold
# Terraform configuration; examples/ also has non-Terraform examples.
terraform_dirs() {
	local dir
	for dir in "$REPO_ROOT"/terraform/modules/*/ "$REPO_ROOT"/examples/*/; do
		if compgen -G "$dir*.tf" >/dev/null; then
			dir=${dir#"$REPO_ROOT"/}
			echo "${dir%/}"
		fi
	done
}

go_platform() { echo "$(go env GOOS)_$(go env GOARCH)"; }

# with_cache_lock CMD...: one builder at a time per cache, so parallel test runs share a build.
with_cache_lock() {
	mkdir -p "$TF_CACHE"
	(
		flock 9
		"$@"
	) 9>"$TF_CACHE/.lock"
}

# terraform_bin prints the Terraform-compatible binary to use, building OpenTofu if neither
# terraform nor tofu is installed.
terraform_bin() {
	if [[ -n ${GKEXEC_TERRAFORM:-} ]]; then
		echo "$GKEXEC_TERRAFORM"
	elif command -v terraform >/dev/null; then
		command -v terraform
	elif command -v tofu >/dev/null; then
		command -v tofu
	else
		with_cache_lock build_opentofu >&2 || return 1
		echo "$TF_CACHE/opentofu-v$OPENTOFU_VERSION/tofu"
	fi
}

# build_opentofu builds tofu from the Go module proxy. `go install` refuses OpenTofu's replace
# directives, so it is built inside a writable copy of the module.
build_opentofu() {
	local dest=$TF_CACHE/opentofu-v$OPENTOFU_VERSION
	[[ -x $dest/tofu ]] && return 0
	log "building OpenTofu v$OPENTOFU_VERSION from the Go module proxy (about 5 minutes)..."
	local src tmp
	src=$(go mod download -json "github.com/opentofu/opentofu@v$OPENTOFU_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[[ -d $src ]] || die "go mod download github.com/opentofu/opentofu@v$OPENTOFU_VERSION failed"
	tmp=$(mktemp -d "$TF_CACHE/opentofu-build.XXXXXX")
	cp -r "$src" "$tmp/src" && chmod -R u+w "$tmp/src"
	(cd "$tmp/src" && CGO_ENABLED=0 go build -trimpath -ldflags "-X github.com/opentofu/opentofu/version.dev=no" -o "$tmp/tofu" ./cmd/tofu) || { rm -rf "$tmp"; return 1; }
	mkdir -p "$dest" && mv "$tmp/tofu" "$dest/tofu" && rm -rf "$tmp"
}
