# shellcheck shell=bash
# Build stages: Debian packages, gVisor (runsc + containerd shim) and Kubernetes (+ etcd, kubectl) from the
# Go module proxy. Each build ends by writing a stamp naming its inputs; a matching stamp means "already built",
# so a warm `up` touches neither the network nor the Go toolchain.

# time: /usr/bin/time -v records each build's CPU and peak memory.
# nftables: the pod network's host isolation and teardown (network.sh); patch: the enforcer's one patch.
APT_PACKAGES=(containerd runc containernetworking-plugins debootstrap openssl curl ca-certificates time nftables patch)

# Go settings shared by the builds (called only when something must be built, so a warm up needs no Go): private caches under $CACHE so a fresh clone of the repo reuses them and
# the user's own GOCACHE is not bloated by ~7 GB of Kubernetes objects. CGO off: static binaries, no gcc.
go_env() {
	command -v go >/dev/null || {
		echo "go not found (PATH and /usr/local/go/bin): install Go >= 1.25 to build the cluster"
		return 1
	}
	export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOPATH=$CACHE/go/path
	export GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOTOOLCHAIN=local
}

stamp_ok() { [ "$(cat "$BIN/.$1.stamp" 2>/dev/null)" = "$2" ]; }
stamp_write() { mkdir -p "$BIN" && echo "$2" >"$BIN/.$1.stamp"; }
all_in_bin() {
	local b
	for b in "$@"; do [ -x "$BIN/$b" ] || return 1; done
}

# Records wall time, CPU and peak RSS of a build in $LOGS/NAME.time (for the README's numbers).
timed() {
	local name=$1
	shift
	/usr/bin/time -v -o "$LOGS/$name.time" "$@"
}

apt_missing() {
	local p missing=()
	for p in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	echo "${missing[@]}"
}

# Installs only what is missing, so a warm run never calls apt. Debian's runsc package is NOT used: it is
# from 2022 and ships no containerd shim.
stage_apt() {
	local missing
	missing=$(apt_missing)
	if [ -z "$missing" ]; then
		echo "all packages present"
		return
	fi
	echo "installing: $missing"
	apt-get update -qq
	# shellcheck disable=SC2086 # word splitting of the package list is intended
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
	# Debian's containerd package enables and starts a system containerd on /run/containerd/containerd.sock
	# when systemd runs; that is not ours and we never touch it. This VM has no systemd, so nothing starts.
}

# gVisor from its "go" branch on the Go proxy, with one patch: the shim sets its own oom_score_adj to -999,
# which needs CAP_SYS_RESOURCE, which root lacks in this VM (CapBnd 0x1fffeffffff) -> "failed to set OOM Score
# on shim: permission denied". The patch ignores EPERM; everything else is upstream.
stage_gvisor() {
	local key="gvisor $GVISOR_VERSION patch-oom-eperm"
	if stamp_ok gvisor "$key" && all_in_bin runsc containerd-shim-runsc-v1 containerd-shim-runsc-v1.real; then
		echo "cached: $key"
		return
	fi
	go_env
	local dir=$CACHE/build/gvisor src manager
	mkdir -p "$dir" "$BIN"
	cd "$dir" || return
	go mod download gvisor.dev/gvisor@"$GVISOR_VERSION"
	src=$dir/gvisor-src
	rm -rf "$src"
	cp -r "$GOMODCACHE/gvisor.dev/gvisor@$GVISOR_VERSION" "$src"
	chmod -R u+w "$src"
	manager=$src/pkg/shim/v1/manager.go
	sed -i 's|if err := sys.SetOOMScore(cmd.Process.Pid, oomScoreMax); err != nil {|if err := sys.SetOOMScore(cmd.Process.Pid, oomScoreMax); err != nil \&\& !os.IsPermission(err) { // gkexec: no CAP_SYS_RESOURCE|' "$manager"
	grep -q '// gkexec: no CAP_SYS_RESOURCE' "$manager" || {
		echo "the OOM-score patch no longer applies to $manager (GVISOR_VERSION=$GVISOR_VERSION)"
		return 1
	}
	cat >go.mod <<EOF
module gkexec.local/gvisorbuild

go 1.26

require gvisor.dev/gvisor $GVISOR_VERSION

replace gvisor.dev/gvisor => ./gvisor-src
EOF
	printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "gvisor.dev/gvisor/runsc"\n\t_ "gvisor.dev/gvisor/shim"\n)\n' >tools.go
	go mod tidy
	timed gvisor-build go build -trimpath -ldflags "-s -w" -o out/ gvisor.dev/gvisor/runsc gvisor.dev/gvisor/shim
	install -m 0755 out/runsc "$BIN/runsc"
	install -m 0755 out/shim "$BIN/containerd-shim-runsc-v1.real"
	# containerd 1.6 looks the shim up on its PATH by this name; the wrapper translates the start protocol.
	install -m 0755 "$LOCALCLUSTER_DIR/runsc-shim-wrapper.sh" "$BIN/containerd-shim-runsc-v1"
	# Sanity check outside Kubernetes. --network=none is essential: runsc's default (sandbox) network would
	# add a veth, NAT rules and set ip_forward=1 on the host.
	"$BIN/runsc" --root="$CACHE/build/runsc-selftest" --platform=systrap --network=none "do" true
	stamp_write gvisor "$key"
}

# Kubernetes control plane, kubelet and kubectl plus etcd, in ONE go build so they share compiled packages.
# k8s.io/kubernetes replaces its staging modules (k8s.io/api, client-go, ...) with ./staging paths, which do not
# exist in the module zip; our tool module points each of them at the published v0.MINOR.PATCH instead.
stage_k8s() {
	local key="kubernetes v$K8S_VERSION"
	local bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl) b
	if stamp_ok k8s "$key" && all_in_bin "${bins[@]}"; then
		echo "cached: $key"
		return
	fi
	go_env
	local dir=$CACHE/build/k8s-v$K8S_VERSION minor patch kmod m p ldx=""
	minor=$(echo "$K8S_VERSION" | cut -d. -f2)
	patch=$(echo "$K8S_VERSION" | cut -d. -f3)
	mkdir -p "$dir" "$BIN"
	cd "$dir" || return
	go mod download k8s.io/kubernetes@v"$K8S_VERSION"
	kmod=$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/v$K8S_VERSION.mod
	printf 'module gkexec.local/k8sbuild\n\ngo %s\n\nrequire k8s.io/kubernetes v%s\n' \
		"$(awk '/^go /{ print $2; exit }' "$kmod")" "$K8S_VERSION" >go.mod
	for m in $(grep -oE '^\s*k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$kmod" | awk '{ print $1 }'); do
		go mod edit -replace="$m=$m@v0.$minor.$patch"
	done
	cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
EOF
	go mod tidy
	# Version strings normally injected by Kubernetes' own build scripts; without them everything reports v0.0.0.
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldx+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
		ldx+=" -X $p.buildDate=1970-01-01T00:00:00Z"
	done
	timed k8s-build go build -trimpath -ldflags "-s -w$ldx" -o out/ go.etcd.io/etcd/server/v3 \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl
	install -m 0755 out/server "$BIN/etcd" # the main package go.etcd.io/etcd/server/v3 builds as "server"
	for b in "${bins[@]:1}"; do install -m 0755 "out/$b" "$BIN/$b"; done
	"$BIN/kubectl" version --client
	stamp_write k8s "$key"
}
