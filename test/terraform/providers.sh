#!/usr/bin/env bash
# providers.sh: make the Terraform providers the kit needs available offline, and write the CLI
# config that installs them. Prints the CLI config's path.
#
#   - gavinbunney/kubectl: the real provider, built from the Go module proxy (about 2.5 min and
#     1.1 GB of RAM cold). The namespace module uses it, and the e2e tests apply with it.
#   - hashicorp/google: test/tfprovider-replay serving the schema recorded from the real provider
#     (test/tfprovider-replay/schemas/*.json.gz, in the repository), enough for validate and
#     mock_provider tests.
#
# Both go into filesystem mirrors under $GKEXEC_CACHE/terraform, keyed on what they are built from,
# and are reused when present. The CLI config has no `direct` installation method, so nothing is
# ever fetched from a registry: a provider missing from the mirrors fails `init` with a clear error.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPLAY_SRC=$REPO_ROOT/test/tfprovider-replay
# OpenTofu resolves `hashicorp/google` to registry.opentofu.org, Terraform to registry.terraform.io.
HOSTS=(registry.terraform.io registry.opentofu.org)

# place BINARY DIR NAME: put a provider binary into a mirror package directory, hard-linked when
# possible (the replay binary serves several providers).
place() {
	mkdir -p "$2"
	ln -f "$1" "$2/$3" 2>/dev/null || cp "$1" "$2/$3"
}

kubectl_mirror() { echo "$TF_CACHE/kubectl-v$KUBECTL_PROVIDER_VERSION-$(go env GOVERSION)/mirror"; }

build_kubectl_provider() {
	local mirror platform name tmp host
	mirror=$(kubectl_mirror)
	platform=$(go_platform)
	name=terraform-provider-kubectl_v$KUBECTL_PROVIDER_VERSION
	if [[ -x $mirror/${HOSTS[0]}/gavinbunney/kubectl/$KUBECTL_PROVIDER_VERSION/$platform/$name ]]; then
		log "kubectl provider v$KUBECTL_PROVIDER_VERSION: cached in $mirror"
		return 0
	fi
	log "kubectl provider v$KUBECTL_PROVIDER_VERSION: building from the Go module proxy (about 2.5 minutes)..."
	tmp=$(mktemp -d "$TF_CACHE/kubectl-build.XXXXXX")
	rm -rf "$mirror.new"
	if ! GOBIN=$tmp CGO_ENABLED=0 go install -trimpath "github.com/gavinbunney/terraform-provider-kubectl@v$KUBECTL_PROVIDER_VERSION"; then
		rm -rf "$tmp"
		die "building github.com/gavinbunney/terraform-provider-kubectl@v$KUBECTL_PROVIDER_VERSION failed"
	fi
	for host in "${HOSTS[@]}"; do
		place "$tmp/terraform-provider-kubectl" "$mirror.new/$host/gavinbunney/kubectl/$KUBECTL_PROVIDER_VERSION/$platform" "$name"
	done
	rm -rf "$tmp" "$mirror"
	mv "$mirror.new" "$mirror"
}

# replay_key hashes everything the replay mirror is built from.
replay_key() {
	{
		go env GOVERSION
		cd "$REPLAY_SRC" && sha256sum go.mod go.sum ./*.go
		sha256sum "$SCHEMA_DIR"/*.json.gz
	} | sha256sum | cut -c1-16
}

build_replay_provider() {
	compgen -G "$SCHEMA_DIR/*.json.gz" >/dev/null || die "no provider schemas in $SCHEMA_DIR (see its README.md)"
	local key dir platform bin schema base type version address host
	key=$(replay_key)
	dir=$TF_CACHE/replay-$key
	if [[ -d $dir/mirror ]]; then
		log "schema replay provider: cached in $dir/mirror"
		echo "$dir/mirror"
		return 0
	fi
	log "schema replay provider: building $REPLAY_SRC..."
	platform=$(go_platform)
	rm -rf "$dir.new" && mkdir -p "$dir.new"
	bin=$dir.new/terraform-provider-replay
	(cd "$REPLAY_SRC" && CGO_ENABLED=0 go build -trimpath -o "$bin" .) || die "building the schema replay provider failed"
	for schema in "$SCHEMA_DIR"/*.json.gz; do
		base=$(basename "$schema" .json.gz) # e.g. google-7.45.0
		type=${base%-*}
		version=${base##*-}
		address=$(GKEXEC_REPLAY_SCHEMA=$schema "$bin" -schema-address) # registry.terraform.io/hashicorp/google
		[[ ${address##*/} == "$type" ]] || die "$schema serves $address, but its file name says $type"
		for host in "${HOSTS[@]}"; do
			local pkg=$dir.new/mirror/$host/${address#*/}/$version/$platform
			place "$bin" "$pkg" "terraform-provider-${type}_v$version"
			gzip -dc "$schema" >"$pkg/schema.json"
		done
		log "  ${address#*/} $version <- $schema"
	done
	# Drop mirrors built from older sources.
	find "$TF_CACHE" -maxdepth 1 -name 'replay-*' ! -name "replay-$key.new" -exec rm -rf {} +
	mv "$dir.new" "$dir"
	echo "$dir/mirror"
}

write_cli_config() {
	local replay_mirror=$1 kubectl_mirror_dir includes_kubectl="" includes_replay="" host p
	kubectl_mirror_dir=$(kubectl_mirror)
	for host in "${HOSTS[@]}"; do
		includes_kubectl+="\"$host/gavinbunney/kubectl\", "
		for p in "$replay_mirror/$host"/*/*; do
			includes_replay+="\"$host/${p#"$replay_mirror/$host/"}\", "
		done
	done
	cat >"$TF_CLI_CONFIG.new" <<EOF
# Written by test/terraform/providers.sh: offline provider installation for gkexec's tests.
# No "direct" method: nothing is fetched from a registry.
disable_checkpoint = true

provider_installation {
  filesystem_mirror {
    path    = "$kubectl_mirror_dir"
    include = [${includes_kubectl%, }]
  }
  filesystem_mirror {
    path    = "$replay_mirror"
    include = [${includes_replay%, }]
  }
}
EOF
	mv "$TF_CLI_CONFIG.new" "$TF_CLI_CONFIG"
}

main() {
	local replay_mirror
	build_kubectl_provider
	replay_mirror=$(build_replay_provider)
	write_cli_config "$replay_mirror"
	echo "$TF_CLI_CONFIG"
}

with_cache_lock main
