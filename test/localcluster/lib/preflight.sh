# shellcheck shell=bash
# Prerequisite checks, run before anything is built or started. Each failure says what to do.

# Ports of the components, so a clash with another program is reported before a daemon fails to bind.
declare -A COMPONENT_PORTS=(
	[etcd]="2379 2380 2381"
	[kube-apiserver]="$API_PORT"
	[kube-controller-manager]="10257"
	[kube-scheduler]="10259"
	[kubelet]="10250 10248"
	[kube-network-policies]="$NETPOL_PORT"
)

# listener_pids PORT: PIDs listening on 127.0.0.1/any TCP PORT (from ss), empty if free.
listener_pids() {
	ss -Hltnp "sport = :$1" 2>/dev/null | grep -oE 'pid=[0-9]+' | cut -d= -f2 | sort -u || true
}

preflight() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (it starts containerd and the kubelet, mounts and creates cgroups)"
	[ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] ||
		die "no cgroups: neither a cgroup v1 memory hierarchy nor cgroup v2 is mounted under /sys/fs/cgroup"
	# The apiserver reaches the kubelet by node name; resolving it through DNS would send a query off the machine
	# (and reach the wrong address), so it must be in /etc/hosts as a loopback address.
	awk -v h="$NODE_NAME" '$1 ~ /^127\./ { for (i = 2; i <= NF; i++) if ($i == h) found = 1 } END { exit !found }' /etc/hosts ||
		die "hostname '$NODE_NAME' is not mapped to 127.0.0.1 in /etc/hosts (the node is named after the host and \
the apiserver dials the kubelet by that name); add: 127.0.0.1 $NODE_NAME"
	command -v ss >/dev/null || die "ss (iproute2) not found; install iproute2"
	# The kubelet taints the node disk-pressure (and no sandbox schedules) below 1 GiB free (kubelet.sh); the
	# images, builds and pod logs need a few more.
	local free_kib need_gib=4
	mkdir -p "$CACHE"
	free_kib=$(df -Pk "$CACHE" | awk 'NR == 2 { print $4 }')
	[ "${free_kib:-0}" -ge $((need_gib * 1024 * 1024)) ] ||
		die "only $((${free_kib:-0} / 1024 / 1024)) GiB free under $CACHE; the local cluster needs at least $need_gib GiB \
(its node stops scheduling below 1 GiB); free some space (go clean -cache empties Go's build cache)"
	local c port pid
	for c in "${!COMPONENT_PORTS[@]}"; do
		daemon_pid "$c" >/dev/null && continue # ours, already running
		for port in ${COMPONENT_PORTS[$c]}; do
			pid=$(listener_pids "$port" | head -n1)
			[ -z "$pid" ] || die "port $port (needed by $c) is in use by pid $pid ($(tr '\0' ' ' </proc/"$pid"/cmdline | cut -c1-80)); stop it first"
		done
	done
}
