#!/usr/bin/env bash
# test/images/build.sh: container images of gkexec and the example ADK Go agent, without Docker or a registry.
#
#   test/images/build.sh [--import]
#
# Each image is one static binary (CGO_ENABLED=0) in a single-layer docker-archive tarball, made with plain tar
# and sha256sum by the local cluster's own mkimage (test/localcluster/lib/image.sh), cached under
# $GKEXEC_CACHE/images and rebuilt only when the binary changes. --import also loads them into the local
# cluster's containerd (its import_image, which skips a tarball it already imported), so that Pods run them
# with imagePullPolicy: Never. Prints "REF TARBALL" per image on stdout; progress goes to stderr.
#
#   ghcr.io/gkexec/gkexec:dev        /gkexec            gkexec serve as a sidecar, gkexec gateway (any gkexec command),
#                                                       with CA certificates (the gateway verifies destinations)
#   ghcr.io/gkexec/adk-go-agent:dev  /adk-go-agent      examples/adk-go-agent, with CA certificates for Gemini
#
# The images' Cmd is the binary and they have no Entrypoint (mkimage writes Cmd only): a Pod that passes
# arguments sets command too, e.g. command: [/gkexec], args: [serve, ...]. Both run as 65532:65532.
# To run them elsewhere, push the tarballs with any OCI tool: crane push TARBALL REF, or
# skopeo copy docker-archive:TARBALL docker://REF.
#
# Environment: GKEXEC_CACHE (default ~/.cache/gkexec), IMAGE_REPO (default ghcr.io/gkexec), IMAGE_TAG (dev).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
import=false
case "${1:-}" in
"") ;;
--import) import=true ;;
*)
	echo "usage: $0 [--import]" >&2
	exit 2
	;;
esac

# The local cluster's libraries: common (paths, ctr_), image (mkimage), containerd (import_image). They are
# written for cluster.sh; sourcing them sets variables and PATH, and runs nothing.
caller_path=$PATH
# shellcheck source=../localcluster/lib/common.sh
source "$repo_root/test/localcluster/lib/common.sh"
# shellcheck source=../localcluster/lib/image.sh
source "$repo_root/test/localcluster/lib/image.sh"
# shellcheck source=../localcluster/lib/containerd.sh
source "$repo_root/test/localcluster/lib/containerd.sh"
export PATH=$caller_path

IMAGE_REPO=${IMAGE_REPO:-ghcr.io/gkexec}
IMAGE_TAG=${IMAGE_TAG:-dev}
# mkimage works in $IMAGE_DIR; ours are kept apart from the cluster's python and pause images.
IMAGE_DIR=$CACHE/images
# Bump when the recipe below changes, so that cached tarballs are rebuilt.
RECIPE=2
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

mkdir -p "$IMAGE_DIR"
exec 9>"$IMAGE_DIR/.lock"
flock 9 # one build at a time: tests may call this in parallel

log() { printf 'images: %s\n' "$*" >&2; }

# image NAME PACKAGE [EXTRA_FILE...]: builds PACKAGE into /NAME of a fresh rootfs (plus each extra file at its
# own path), and makes $IMAGE_DIR/NAME.tar unless the cached one has the same content.
image() {
	local name=$1 pkg=$2 ref=$IMAGE_REPO/$1:$IMAGE_TAG rootfs key
	shift 2
	rootfs=$(mktemp -d "$IMAGE_DIR/rootfs.XXXXXX")
	# A static binary: no libc in the image to link against. -trimpath and no VCS stamp keep it reproducible.
	(cd "$repo_root" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=$IMAGE_TAG" \
		-o "$rootfs/$name" "$pkg")
	for f in "$@"; do
		install -D -m 0644 "$f" "$rootfs$f"
	done
	# Fixed mtimes: the same content gives the same tarball.
	find "$rootfs" -exec touch -h -d @0 {} +
	chmod 0755 "$rootfs"
	key="$ref recipe $RECIPE $(cd "$rootfs" && find . -type f -exec sha256sum {} + | sort | sha256sum | cut -c1-16)"
	if [ -f "$IMAGE_DIR/$name.tar" ] && [ "$(cat "$IMAGE_DIR/$name.key" 2>/dev/null)" = "$key" ]; then
		log "cached: $ref"
	else
		log "building $ref ($(du -h "$rootfs/$name" | cut -f1) binary)"
		mkimage "$rootfs" "$ref" "$IMAGE_DIR/$name.tar" "[\"/$name\"]" 65532:65532
		echo "$key" >"$IMAGE_DIR/$name.key"
	fi
	rm -rf "$rootfs"
	if [ "$import" = true ]; then
		containerd_up || {
			log "the local cluster's containerd is not running ($CTRD_SOCK): make cluster-up"
			exit 1
		}
		import_image "$IMAGE_DIR/$name.tar" "$ref" >&2
	fi
	echo "$ref $IMAGE_DIR/$name.tar"
}

image gkexec ./cmd/gkexec "$CA_BUNDLE"
image adk-go-agent ./examples/adk-go-agent "$CA_BUNDLE"
