#!/usr/bin/env bash
# A local stand-in for a GKE Sandbox node pool: a real single-node Kubernetes cluster (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet) on Debian's containerd, whose pods run under gVisor through
# the RuntimeClass "gvisor". Built from the Go module proxy and Debian packages; listens on 127.0.0.1 only.
# See README.md beside this file.
#
# usage: cluster.sh COMMAND
#   up                  build what is missing, start everything, wait until usable (idempotent)
#   down                stop everything (by PID) and undo every host change; safe after a crash
#   status              what runs (exit 0 up, 1 partly, 3 down)
#   smoke               run a pod under gVisor and print what it sees (kernel, interfaces, routes)
#   build               only build/install what is missing (apt packages, binaries, images)
#   kubeconfig          print the admin kubeconfig path
#   env                 print export lines for GKEXEC_CACHE, KUBECONFIG, KUBECTL and KUBECACHEDIR
#   sa-kubeconfig NS SA OUT [DURATION]
#                       write a kubeconfig for ServiceAccount NS/SA (TokenRequest token, default 1h)
#   reset               (after down) delete cluster state: etcd data, PKI, kubelet and containerd state
#   image datascience   build (first time: a few minutes, Debian's mirror) and import the optional image
#                       localhost/gkexec-datascience:local: python3, nodejs, numpy, pandas, matplotlib
#   restart DAEMON      stop one daemon (SIGTERM, then SIGKILL after 5 s) and start it again, for the fault
#                       tier: kube-apiserver, kubelet or containerd. Pods keep running: their shims are not
#                       the daemon's children
# env: GKEXEC_CACHE (default ~/.cache/gkexec), K8S_VERSION, GVISOR_VERSION, DEBIAN_MIRROR
set -Eeuo pipefail

LOCALCLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for lib in common build image containerd controlplane kubelet teardown preflight inspect; do
	# shellcheck source=/dev/null
	source "$LOCALCLUSTER_DIR/lib/$lib.sh"
done

build() {
	# Before anything runs: debootstrap's mounts already create /run/mount.
	record_host_paths
	run_stage apt stage_apt
	# debootstrap waits on the network while the Go builds wait on the CPU: run them side by side.
	run_stage image stage_image &
	local image_pid=$!
	run_stage gvisor stage_gvisor
	run_stage k8s stage_k8s
	wait "$image_pid" || exit 1
}

cmd_up() {
	preflight
	if cluster_healthy; then
		# A checkout whose image recipe changed (a language's interpreter added) brings the running
		# cluster's images up to it; cached and already imported, both stages are no-ops.
		run_stage image stage_image
		run_stage images import_images
		say "cluster already up; kubeconfig: $ADMIN_KUBECONFIG"
		return 0
	fi
	build
	run_stage runtime stage_runtime
	run_stage pki stage_pki
	run_stage controlplane stage_controlplane
	run_stage node stage_node
	run_stage sandbox stage_sandbox
	say "cluster up; export KUBECONFIG=$ADMIN_KUBECONFIG (kubectl: $BIN/kubectl)"
}

cmd_down() {
	[ "$(id -u)" -eq 0 ] || die "must run as root"
	[ -d "$STATE" ] || { say "nothing to stop ($STATE does not exist)"; return 0; }
	run_stage down stage_down
	say "cluster down; host cleaned"
}

cmd_restart() {
	local what=${1:-} since
	cluster_healthy || die "the cluster is not up (cluster.sh up)"
	case $what in
	kube-apiserver)
		stop_daemons 5 kube-apiserver
		start_apiserver
		;;
	kubelet)
		stop_daemons 5 kubelet
		since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
		start_kubelet
		wait_daemon kubelet 120 node_ready "$since"
		;;
	containerd)
		stop_daemons 5 containerd
		start_containerd
		;;
	*) die "restart: want kube-apiserver, kubelet or containerd, not '$what'" ;;
	esac
	say "$what restarted"
}

cmd_image() {
	case ${1:-} in
	datascience)
		cluster_healthy || die "the cluster is not up (cluster.sh up)"
		run_stage datascience-image stage_datascience_image
		run_stage datascience-import import_datascience_image
		say "imported $DATASCIENCE_IMAGE; use it with --image $DATASCIENCE_IMAGE --image-pull-policy Never"
		;;
	*) die "image: want datascience, not '${1:-}'" ;;
	esac
}

cmd_reset() {
	local rc=0
	cmd_status >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 3 ] || die "the cluster is (partly) running: run cluster.sh down first"
	run_stage reset stage_reset
}

# errexit stops on any unhandled failure; say where, rather than exiting silently.
trap 'die "unexpected failure in ${FUNCNAME[0]:-main} (${BASH_SOURCE[0]##*/}:$LINENO): $BASH_COMMAND"' ERR

main() {
	local cmd=${1:-}
	shift || true
	case $cmd in
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status || exit $? ;; # its exit code is the answer, not an error
	smoke) cmd_smoke ;;
	build) build ;;
	kubeconfig) echo "$ADMIN_KUBECONFIG" ;;
	env) cmd_env ;;
	sa-kubeconfig) cmd_sa_kubeconfig "$@" ;;
	reset) cmd_reset ;;
	image) cmd_image "$@" ;;
	restart) cmd_restart "$@" ;;
	*)
		sed -n '/^# usage:/,/^# env:/p' "$0" | sed 's/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
}

main "$@"
