# shellcheck shell=bash
# Stopping the cluster and undoing every change it made to the host. Written to work from any state: a healthy
# cluster, a half-finished up, or the debris of a crash (stale PID files, containerd gone, pods still running).
# Processes are only ever found through what this cluster recorded or owns: PID files, containerd's socket
# path in a shim's command line, our runsc and shim binaries, membership of the kubepods cgroups. Never by name.

# Host paths outside the cache that the kubelet or containerd create and cannot be told to put elsewhere.
# up records which of them did not exist before (host-paths file); down removes only those, and only what
# belongs to this cluster inside them.
# /run/mount is util-linux's utab directory, created by the first mount with userspace options (debootstrap's,
# or ours of the kubelet root).
HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/lib/cni /run/containerd /run/mount)
HOST_PATHS_FILE=$STATE/created-host-paths

record_host_paths() {
	local p
	mkdir -p "$STATE"
	touch "$HOST_PATHS_FILE"
	for p in "${HOST_PATHS[@]}"; do
		[ -e "$p" ] || grep -qx "$p" "$HOST_PATHS_FILE" || echo "$p" >>"$HOST_PATHS_FILE"
	done
}

# is_alive PID: running and not a zombie waiting for PID 1 to reap it.
is_alive() { [ -n "$(proc_starttime "$1")" ]; }

# stop_daemons SECONDS NAME...: SIGTERM to each recorded, still-running daemon at once, wait up to SECONDS for
# all of them, then SIGKILL the rest. In parallel because each takes 1-3 s to shut down.
stop_daemons() {
	local timeout=$1 name pid alive
	shift
	declare -A running=()
	for name in "$@"; do
		if pid=$(daemon_pid "$name"); then
			kill -TERM "$pid" 2>/dev/null && running[$name]=$pid
		fi
	done
	for _ in $(seq 1 $((timeout * 5))); do
		alive=0
		for name in "${!running[@]}"; do
			if is_alive "${running[$name]}"; then alive=1; fi
		done
		[ "$alive" -eq 1 ] || break
		sleep 0.2
	done
	for name in "${!running[@]}"; do
		if is_alive "${running[$name]}" && kill -KILL "${running[$name]}" 2>/dev/null; then
			echo "killed $name (pid ${running[$name]}) after ${timeout}s"
		else
			echo "stopped $name (pid ${running[$name]})"
		fi
	done
	for name in "$@"; do rm -f "$PIDS/$name.pid"; done
}

# Pods outlive the kubelet (their shims are children of init); containerd, while it runs, knows all of them.
remove_pod_containers() {
	containerd_up || return 0
	local ids id
	ids=$(ctr_ tasks ls -q 2>/dev/null || true)
	for id in $ids; do ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
	for id in $ids; do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
	for id in $(ctr_ containers ls -q 2>/dev/null || true); do ctr_ containers delete "$id" >/dev/null 2>&1 || true; done
	[ -z "$ids" ] || echo "removed $(echo "$ids" | wc -w) pod containers"
}

# After a crash containerd may be gone while shims, runsc sandboxes and pod processes live on. Ours are the
# processes in the kubepods cgroups, gVisor processes running our runsc/shim binaries, and shims whose command
# line names our containerd socket. (Not every binary in $BIN: a user's `kubectl get -w` is not ours to kill.)
kill_leftover_processes() {
	local pids=() d pid cmd
	for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[ -d "$d" ] || continue
		while read -r pid; do pids+=("$pid"); done < <(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null)
	done
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		case "$(readlink "$d/exe" 2>/dev/null)" in
		"$BIN/runsc" | "$BIN/containerd-shim-runsc-v1.real") pids+=("$pid"); continue ;;
		esac
		cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
		case "$cmd" in *"-address $CTRD_SOCK "*) pids+=("$pid") ;; esac
	done
	[ ${#pids[@]} -eq 0 ] && return 0
	# Each v1 hierarchy lists the same processes.
	mapfile -t pids < <(printf '%s\n' "${pids[@]}" | sort -un)
	echo "killing ${#pids[@]} leftover pod/shim processes: ${pids[*]}"
	kill -KILL "${pids[@]}" 2>/dev/null || true
	sleep 0.5
}

# Every mount below $STATE (kubelet root bind mount, volumes, pod netns files, container rootfs overlays),
# deepest first. Lazy unmount as the fallback: a mount still busy must not make down fail half-way.
unmount_state() {
	local m
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "could not unmount $m"
	done < <(awk -v s="$STATE/" 'index($5, s) == 1 || $5 == substr(s, 1, length(s) - 1) { print $5 }' /proc/self/mountinfo |
		sed 's/\\040/ /g' | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
}

remove_cgroups() {
	local d
	for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[ -d "$d" ] || continue
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
		[ -d "$d" ] && echo "could not remove cgroup $d (processes left?)"
	done
	return 0
}

remove_host_paths() {
	# Pod log symlinks point into our pod-logs dir; device-plugins holds only the kubelet's own socket/checkpoint.
	find /var/log/containers -maxdepth 1 -lname "$STATE/*" -delete 2>/dev/null || true
	rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint \
		/var/lib/kubelet/device-plugins/DEPRECATION
	rmdir /var/lib/kubelet/device-plugins 2>/dev/null || true
	# libcni's result cache (containerd 1.6 cannot move it): entries of our network, and of containerd's
	# built-in loopback network for our sandboxes. Pods removed without a CNI DEL leave them behind.
	find /var/lib/cni/results -name "$CLUSTER_NAME-*" -delete 2>/dev/null || true
	local id
	for id in "${SANDBOX_IDS[@]}"; do rm -f /var/lib/cni/results/cni-loopback-"$id"-*; done
	# Directories we created (e.g. containerd 1.6's hardcoded shim socket dir /run/containerd/s): removed once
	# empty. A path that existed before up is never removed, only cleaned of our files above.
	local p kept=()
	[ -f "$HOST_PATHS_FILE" ] || return 0
	while read -r p; do
		[ -e "$p" ] || continue
		# Created by us, these hold only our cluster's files: libcni's cache, and the shim sockets killed shims
		# leave in /run/containerd/s (unless a system containerd has started there since).
		case $p in
		/var/lib/cni) rm -rf "$p" ;;
		/run/containerd) [ -S /run/containerd/containerd.sock ] || rm -rf "$p" ;;
		esac
		find "$p" -depth \( -type d -o -type f \) -empty -delete 2>/dev/null || true
		if [ -e "$p" ]; then
			echo "left $p: not empty"
			kept+=("$p")
		else
			echo "removed $p"
		fi
	done <"$HOST_PATHS_FILE"
	if [ ${#kept[@]} -eq 0 ]; then rm -f "$HOST_PATHS_FILE"; else printf '%s\n' "${kept[@]}" >"$HOST_PATHS_FILE"; fi
}

# The CRI keeps a directory per pod sandbox until the sandbox is removed through it; what is left there after
# a crash or our ctr-based removal names the sandboxes whose host leftovers (CNI cache) we must remove.
sandbox_ids() {
	local d
	for d in "$CTRD"/{root,state}/io.containerd.grpc.v1.cri/sandboxes/*/; do
		[ -d "$d" ] && basename "$d"
	done | sort -u
}

stage_down() {
	mapfile -t SANDBOX_IDS < <(sandbox_ids)
	# The kubelet first, or it restarts the pods we remove; containerd must still run to remove them.
	stop_daemons 15 kubelet
	remove_pod_containers
	# The enforcer only once the pods are gone (stopping, it removes its rules).
	stop_daemons 15 containerd kube-scheduler kube-controller-manager "$NETPOL_DAEMON"
	# The apiserver waits up to 60 s for its clients' watches to end; ours are gone now, a test's informer may
	# not be. It holds no state, so it gets 5 s. etcd goes last: the apiserver hangs if etcd vanishes first.
	stop_daemons 5 kube-apiserver
	stop_daemons 15 etcd
	kill_leftover_processes
	unmount_state
	remove_cgroups
	remove_netpol_tables
	ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE" && echo "deleted bridge $BRIDGE"
	# Allocations of pods that no longer exist.
	rm -rf "$STATE/cni/ipam"
	remove_host_paths
	# Lingering runsc sandbox state under our roots belongs to the processes killed above.
	rm -rf "$CTRD/run"
}

# reset: forget the cluster's state (etcd, PKI, kubelet, containerd's image store); builds and image tarballs stay.
stage_reset() {
	rm -rf "$STATE"
}
