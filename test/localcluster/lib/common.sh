# shellcheck shell=bash
# shellcheck disable=SC2034 # settings are used by the other libraries cluster.sh sources
# Shared settings and helpers for the local GKE-Sandbox stand-in cluster. Sourced by cluster.sh only.
#
# Layout of the cache directory (everything this cluster builds, runs or writes lives here, except the few
# host paths the kubelet hardcodes; see teardown.sh):
#   $CACHE/go/{mod,build}   GOMODCACHE and GOCACHE of our builds (kept apart from the user's own caches)
#   $CACHE/build/           Go build modules (gVisor source copy with its one-line patch, Kubernetes tool module)
#   $CACHE/bin/             final binaries: etcd, kube-*, kubectl, runsc, containerd-shim-runsc-v1 (+ .real)
#   $CACHE/image/           python.tar and pause.tar (docker-archive tarballs imported into containerd)
#   $CACHE/logs/            one log per stage and per daemon
#   $CACHE/cluster/         runtime state: pki, kubeconfigs, etcd data, containerd root/state, kubelet root, pids

# Versions. Kubernetes v1.37.2 needs failCgroupV1: false on this cgroup-v1 host (see kubelet.sh).
K8S_VERSION=${K8S_VERSION:-1.37.2}
# The "go" branch of gVisor as published on the Go proxy (`go list -m gvisor.dev/gvisor@latest`).
GVISOR_VERSION=${GVISOR_VERSION:-v0.0.0-20260905035102-160fafc42237}
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

CACHE=${GKEXEC_CACHE:-$HOME/.cache/gkexec}
BIN=$CACHE/bin
LOGS=$CACHE/logs
STATE=$CACHE/cluster
PKI=$STATE/pki
PIDS=$STATE/pids
CTRD=$STATE/containerd
KUBELET_ROOT=$STATE/kubelet
ADMIN_KUBECONFIG=$STATE/admin.kubeconfig
CTRD_SOCK=$CTRD/containerd.sock

CLUSTER_NAME=gkexec-local
BRIDGE=gkexec0
POD_SUBNET=10.244.0.0/24
SERVICE_RANGE=10.96.0.0/16
API_PORT=6443
# Name the node after the host: the apiserver dials the kubelet by node name (the kubelet refuses a loopback
# node IP), so the name must resolve to 127.0.0.1 via /etc/hosts.
NODE_NAME=$(hostname)

# The control-plane daemons, in start order.
CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager kube-scheduler)

# Debian's containerd/runc/CNI and our builds come first; nothing from the user's PATH that could shadow them.
export PATH=$BIN:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export KUBECONFIG=$ADMIN_KUBECONFIG
# kubectl's discovery cache would otherwise appear in ~/.kube/cache.
export KUBECACHEDIR=$CACHE/kubectl-cache

START_TIME=$(date +%s.%N)

# --- output ------------------------------------------------------------------------------------------------

elapsed() { awk -v a="$START_TIME" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1fs", b - a }'; }
say() { printf '[%s] %s\n' "$(elapsed)" "$*" >&2; }
die() {
	printf '[%s] ERROR: %s\n' "$(elapsed)" "$1" >&2
	[ -n "${2:-}" ] && printf '          read: %s\n' "$2" >&2
	exit 1
}

# run_stage NAME FUNCTION: runs FUNCTION with its output in $LOGS/NAME.log, prints one line with the elapsed
# time, and on failure names the log and shows its tail. Stage functions run in a subshell with errexit so a
# failing command stops the stage without leaving cluster.sh in an unknown state.
run_stage() {
	local name=$1 fn=$2 log=$LOGS/$1.log t0 rc err_trap
	mkdir -p "$LOGS"
	t0=$(date +%s.%N)
	say "$name ..."
	# Not `( ... ) || rc=$?`: bash ignores errexit inside anything on the left of || or &&, even where set -e
	# is turned on again, so a failing command in the stage would go unnoticed. Instead run it as a plain
	# command, with errexit and the ERR trap of this shell off until its status is read.
	err_trap=$(trap -p ERR)
	trap - ERR
	set +e
	(
		set -Eeuo pipefail
		"$fn"
	) >"$log" 2>&1
	rc=$?
	set -e
	eval "$err_trap"
	if [ "$rc" -ne 0 ]; then
		tail -n 15 "$log" | sed 's/^/          | /' >&2
		die "stage $name failed (exit $rc)" "$log"
	fi
	say "$name done in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }')"
}

# poll SECONDS DAEMON COMMAND...: runs COMMAND every 0.2 s until it succeeds. Returns 1 after SECONDS, 2 at once
# if DAEMON (a name, or "" for none) is no longer running. The components have no push signal for readiness,
# so polling their health endpoints is the real check.
poll() {
	local deadline=$(($(date +%s) + $1)) daemon=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		if [ -n "$daemon" ] && ! daemon_pid "$daemon" >/dev/null; then return 2; fi
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

# wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
	local timeout=$1 what=$2
	shift 2
	poll "$timeout" "" "$@" || { echo "timed out after ${timeout}s waiting for $what" >&2; return 1; }
}

# wait_daemon NAME SECONDS COMMAND...: for a daemon we just started; fails at once, with the tail of its log, if
# the daemon exits (a bad flag, a port taken meanwhile).
wait_daemon() {
	local name=$1 timeout=$2 rc=0
	shift 2
	poll "$timeout" "$name" "$@" || rc=$?
	case $rc in
	0) return 0 ;;
	2) echo "$name exited during start-up; the end of $LOGS/$name.log:" ;;
	*) echo "$name not ready after ${timeout}s; the end of $LOGS/$name.log:" ;;
	esac
	tail -n 20 "$LOGS/$name.log"
	return 1
}

# --- processes ---------------------------------------------------------------------------------------------

# start_daemon NAME COMMAND...: starts COMMAND detached (own session, so a Ctrl-C of `make` does not kill the
# cluster), logging to $LOGS/NAME.log, and records "PID STARTTIME". Teardown only ever signals recorded PIDs.
# The daemon inherits no descriptor beyond stdin, stdout and stderr: run under `flock /tmp/gkexec-cluster.lock`
# (as every command that touches the cluster is), it would otherwise keep the lock's descriptor, and with it the
# lock, for as long as the cluster runs, and every later `flock` would wait forever.
start_daemon() {
	local name=$1 pid
	shift
	mkdir -p "$PIDS" "$LOGS"
	# The subshell becomes the daemon (setsid execs in place: a background job leads no process group),
	# with no descriptor but stdin, stdout and stderr.
	(
		close_inherited_fds
		exec setsid "$@"
	) >"$LOGS/$name.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid $(proc_starttime "$pid")" >"$PIDS/$name.pid"
}

# close_inherited_fds: closes every descriptor of this shell above 2. A daemon outlives the script that
# started it and would keep what it inherited open for as long as it runs: above all the lock of
# `flock /tmp/gkexec-cluster.lock cluster.sh up` (flock(1) hands its descriptor to the command), which a
# daemon would then hold for everyone, forever.
close_inherited_fds() {
	local fd
	for fd in /proc/"$BASHPID"/fd/*; do
		fd=${fd##*/}
		if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
	done
}

# proc_starttime PID: the process start time in clock ticks since boot (/proc/PID/stat field 22). Together with
# the PID it identifies a process uniquely, so a stale PID file never makes us signal an unrelated process.
# Prints nothing for a zombie: PID 1 in this VM may take a while to reap a killed daemon.
proc_starttime() { awk '{ sub(/^.*\) /, ""); if ($1 != "Z") print $20 }' "/proc/$1/stat" 2>/dev/null; }

# daemon_pid NAME: prints the recorded PID if that very process is still alive, else fails.
daemon_pid() {
	local f=$PIDS/$1.pid pid start
	[ -f "$f" ] || return 1
	read -r pid start <"$f" || return 1
	[ -n "$pid" ] && [ -n "$start" ] && [ "$(proc_starttime "$pid")" = "$start" ] || return 1
	echo "$pid"
}

ctr_() { ctr --address "$CTRD_SOCK" --namespace k8s.io "$@"; }

# --- readiness probes (also used by status) ------------------------------------------------------------------

etcd_healthy() { curl -sf --max-time 2 http://127.0.0.1:2379/health | grep -q '"health":"true"'; }
apiserver_ready() {
	curl -sf --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
		"https://127.0.0.1:$API_PORT/readyz" >/dev/null
}
containerd_up() { [ -S "$CTRD_SOCK" ] && ctr_ version >/dev/null 2>&1; }
kubelet_healthy() { curl -sf --max-time 2 http://127.0.0.1:10248/healthz >/dev/null; }
# node_ready [SINCE]: the node reports Ready, in a heartbeat not older than SINCE (RFC 3339, UTC) if given.
node_ready() {
	local status heartbeat
	read -r status heartbeat < <(kubectl get node "$NODE_NAME" -o \
		jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}' 2>/dev/null)
	[ "$status" = True ] && [[ ! "$heartbeat" < "${1:-}" ]]
}
