# shellcheck shell=bash
# Read-only and user-facing commands: status, smoke (a pod under gVisor) and kubeconfigs for ServiceAccounts.

ALL_DAEMONS=(containerd "${CONTROL_PLANE[@]}" "$NETPOL_DAEMON" kubelet)

# cluster_healthy: every daemon we started is alive and answering, and the node is Ready.
cluster_healthy() {
	local d
	for d in "${ALL_DAEMONS[@]}"; do daemon_pid "$d" >/dev/null || return 1; done
	containerd_up && etcd_healthy && apiserver_ready && netpol_healthy && kubelet_healthy && node_ready
}

# status: exit 0 when running and healthy, 3 when nothing runs, 1 when partly running.
cmd_status() {
	local d pid running=0
	printf '%-24s %s\n' "cache" "$CACHE"
	for d in "${ALL_DAEMONS[@]}"; do
		if pid=$(daemon_pid "$d"); then
			running=$((running + 1))
			printf '%-24s running  pid %-7s rss %s MB\n' "$d" "$pid" \
				"$(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$pid/status" 2>/dev/null)"
		else
			printf '%-24s stopped\n' "$d"
		fi
	done
	if [ "$running" -eq 0 ]; then
		echo "cluster: down"
		return 3
	fi
	if cluster_healthy; then
		printf '%-24s %s\n' "kubeconfig" "$ADMIN_KUBECONFIG" "kubectl" "$BIN/kubectl"
		kubectl get node -o wide --show-labels=false
		# Taints and the conditions that are not as they should be: a node under disk, memory or PID pressure
		# (or not ready) carries a taint that keeps every sandbox Pending, which reads as "unschedulable".
		kubectl get node -o jsonpath='{range .items[*]}{range .spec.taints[*]}taint {.key}={.value}:{.effect}{"\n"}{end}{range .status.conditions[*]}{.type} {.status} {.message}{"\n"}{end}{end}' |
			awk '/^taint / || ($1 != "Ready" && $2 == "True") || ($1 == "Ready" && $2 != "True")'
		echo "pods running: $(kubectl get pods -A --field-selector=status.phase=Running --no-headers 2>/dev/null | wc -l)"
		echo "cluster: up"
		return 0
	fi
	echo "cluster: partly running or unhealthy; see $LOGS/ (run: cluster.sh down && cluster.sh up)"
	return 1
}

pod_phase() { kubectl -n "$1" get pod "$2" -o jsonpath='{.status.phase}'; }
pod_finished() { case "$(pod_phase "$1" "$2")" in Succeeded | Failed) return 0 ;; *) return 1 ;; esac; }

# smoke: a pod in RuntimeClass gvisor with the default image, exactly as the runner will create it
# (imagePullPolicy IfNotPresent), printing the kernel gVisor reports and the pod's network view.
cmd_smoke() {
	local ns=gkexec-smoke pod=smoke-$$ t0 out
	t0=$(date +%s.%N)
	kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
	wait_for 30 "serviceaccount $ns/default" kubectl -n "$ns" get serviceaccount default
	kubectl -n "$ns" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $pod}
spec:
  runtimeClassName: gvisor
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext: {runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534}
  containers:
  - name: main
    image: $PYTHON_IMAGE
    imagePullPolicy: IfNotPresent
    command:
    - python3
    - -c
    - |
      import ipaddress, socket
      def ip(h): return str(ipaddress.IPv4Address(socket.ntohl(int(h, 16))))
      print("kernel:", open("/proc/version").read().strip())
      print("interfaces:", " ".join(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]))
      for l in open("/proc/net/route").read().splitlines()[1:]:
          f = l.split()
          print("route: %s/%s via %s dev %s" % (ip(f[1]), ip(f[7]), ip(f[2]), f[0]))
      print("resolv.conf:", " ".join(open("/etc/resolv.conf").read().split()))
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: ["ALL"]}}
EOF
	if ! wait_for 120 "smoke pod to finish" pod_finished "$ns" "$pod" || [ "$(pod_phase "$ns" "$pod")" != Succeeded ]; then
		kubectl -n "$ns" describe pod "$pod" >&2
		kubectl -n "$ns" delete pod "$pod" --wait=false >/dev/null 2>&1
		die "smoke pod did not succeed" "$LOGS/kubelet.log"
	fi
	out=$(kubectl -n "$ns" logs "$pod")
	kubectl -n "$ns" delete pod "$pod" --wait=false >/dev/null
	echo "$out"
	grep -q gvisor <<<"$out" || die "the smoke pod did not run under gVisor" "$LOGS/containerd.log"
	say "smoke pod ran under gVisor in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }')"
}

# sa-kubeconfig NS SA OUT [DURATION]: a self-contained kubeconfig (CA embedded) authenticating as the
# ServiceAccount with a token from the TokenRequest API (kubectl create token).
cmd_sa_kubeconfig() {
	[ $# -ge 3 ] || die "usage: cluster.sh sa-kubeconfig NAMESPACE SERVICEACCOUNT OUTFILE [DURATION, default 1h]"
	local ns=$1 sa=$2 out=$3 duration=${4:-1h} token
	token=$(kubectl -n "$ns" create token "$sa" --duration="$duration") ||
		die "could not mint a token for serviceaccount $ns/$sa (does it exist?)"
	(
		umask 077
		cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: $CLUSTER_NAME, cluster: {certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt"), server: "https://127.0.0.1:$API_PORT"}}]
users: [{name: $ns-$sa, user: {token: $token}}]
contexts: [{name: $ns-$sa, context: {cluster: $CLUSTER_NAME, user: $ns-$sa, namespace: $ns}}]
current-context: $ns-$sa
EOF
	)
	echo "$out"
}

# env: shell assignments for scripts and Makefiles: eval "$(test/localcluster/cluster.sh env)".
cmd_env() {
	printf 'export GKEXEC_CACHE=%q\nexport KUBECONFIG=%q\nexport KUBECTL=%q\nexport KUBECACHEDIR=%q\n' \
		"$CACHE" "$ADMIN_KUBECONFIG" "$BIN/kubectl" "$KUBECACHEDIR"
}
