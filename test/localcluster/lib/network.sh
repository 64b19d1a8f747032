# shellcheck shell=bash
# The pod network and its NetworkPolicy enforcer.
#
# Pods are veth ports of $BRIDGE, a Linux bridge with no address (Debian's CNI `bridge` plugin, no gateway,
# no masquerade, no ip_forward): they reach each other and nothing else. Pod-to-pod frames cross the host's
# bridge, so netfilter sees them (br_netfilter: the bridge's nf_call_iptables), which is what lets a
# NetworkPolicy enforcer judge them. (The earlier macvlan network passed frames between pods inside the
# macvlan driver, where no netfilter hook ever sees them: nothing could have enforced a policy there.)
#
# Host changes, all undone by down (teardown.sh):
#   - the bridge, with nf_call_iptables/ip6tables/arptables on and IPv6 off (its own sysctl; gone with it);
#   - nftables tables: inet and arp "gkexec-host-isolation" (the host neither receives from nor sends to the
#     bridge: a plain bridge would otherwise answer pods for the host's own addresses, and IPv6 link-local
#     would reach the host's listeners on ::), and the enforcer's inet "kube-network-policies" and
#     "gkexec-netpol-gate" (the daemon removes the first when it stops and leaves the gate closed to the
#     Pods that policies select until it starts again; down removes both);
#   - the enforcer daemon, kube-network-policies (sigs.k8s.io/kube-network-policies, see netpol/ and README).

NETPOL_DAEMON=kube-network-policies
NETPOL_PORT=10265
NETPOL_KUBECONFIG=$STATE/kube-network-policies.kubeconfig
ISOLATION_TABLE=gkexec-host-isolation
# The enforcer's tables: the controller's is named after it; the gate's is netpol/gate.go's gateTable.
GATE_TABLE=gkexec-netpol-gate

# --- the network --------------------------------------------------------------------------------------------

write_cni_config() {
	mkdir -p "$STATE/cni/net.d"
	# host-local picks the subnet's first address as the "gateway" it reports; with isGateway false nothing
	# holds it and no route names it: a pod sees only the link route of the subnet.
	cat >"$STATE/cni/net.d/10-$CLUSTER_NAME.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "$CLUSTER_NAME", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "isDefaultGateway": false, "ipMasq": false,
   "hairpinMode": false, "promiscMode": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]], "dataDir": "$STATE/cni/ipam"}}]}
EOF
}

# The bridge must exist before the first pod (the CNI plugin would create it without these settings).
ensure_pod_bridge() {
	# br_netfilter passes bridged packets through the IP hooks; built in here, a module elsewhere.
	if [ ! -d /proc/sys/net/bridge ]; then
		modprobe br_netfilter || {
			echo "br_netfilter is neither built in nor loadable: the NetworkPolicy enforcer cannot see pod-to-pod traffic"
			return 1
		}
	fi
	ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
	# No IPv6 on the bridge: no link-local address for pods to reach the host by, no router solicitations.
	sysctl -qw "net.ipv6.conf.$BRIDGE.disable_ipv6=1"
	# Bridged IPv4/IPv6/ARP through the netfilter hooks, for this bridge alone (the global
	# net.bridge.bridge-nf-call-* sysctls are left as they are).
	ip link set dev "$BRIDGE" type bridge nf_call_iptables 1 nf_call_ip6tables 1 nf_call_arptables 1
	ip link set "$BRIDGE" up
}

# The host is no party to the pod network: nothing from the bridge is delivered to it, nothing it sends goes
# out on it. Only the host's own traffic through the bridge device is matched (iifname/oifname is the bridge
# for delivered and locally sent packets); bridged pod-to-pod traffic takes the forward path.
ensure_host_isolation() {
	nft -f - <<EOF
table inet $ISOLATION_TABLE
delete table inet $ISOLATION_TABLE
table inet $ISOLATION_TABLE {
	chain input { type filter hook input priority filter; policy accept; iifname "$BRIDGE" counter drop; }
	chain output { type filter hook output priority filter; policy accept; oifname "$BRIDGE" counter drop; }
}
table arp $ISOLATION_TABLE
delete table arp $ISOLATION_TABLE
table arp $ISOLATION_TABLE {
	chain input { type filter hook input priority filter; policy accept; iifname "$BRIDGE" counter drop; }
	chain output { type filter hook output priority filter; policy accept; oifname "$BRIDGE" counter drop; }
}
EOF
}

# stage_network: run by every up, the cluster healthy or not, so a running cluster takes a changed recipe.
# containerd watches the CNI directory: pods created from now on get the new network.
stage_network() {
	ensure_pod_bridge
	ensure_host_isolation
	write_cni_config
	nft list table inet "$ISOLATION_TABLE"
	ip -d link show "$BRIDGE"
}

# --- the enforcer -------------------------------------------------------------------------------------------

netpol_dir() { echo "$LOCALCLUSTER_DIR/netpol"; }
# The upstream version is the one netpol/go.mod requires (its go.sum pins every dependency).
knp_version() { awk '$1 == "sigs.k8s.io/kube-network-policies" { print $2 }' "$(netpol_dir)/go.mod"; }
netpol_key() {
	local d
	d=$(netpol_dir)
	echo "kube-network-policies $(knp_version) $(cat "$d/go.mod" "$d/go.sum" "$d/main.go" "$d/gate.go" "$d/gate_test.go" "$d/upstream.patch" |
		sha256sum | cut -c1-16)"
}

# kube-network-policies from the Go proxy with one patch (netpol/upstream.patch: the xtables NFQUEUE
# target, since this kernel has no nftables "queue" expression, CONFIG_NFT_QUEUE, but has xt_NFQUEUE
# through nft_compat; and a nil guard that lets NRI be off), built into netpol/'s command (kubeconfig,
# health endpoint, start-up gate), whose unit tests must pass before it is installed.
stage_netpol_build() {
	local key
	key=$(netpol_key)
	if stamp_ok netpol "$key" && all_in_bin "$NETPOL_DAEMON"; then
		echo "cached: $key"
		return
	fi
	go_env
	local dir=$CACHE/build/netpol src version
	version=$(knp_version)
	[ -n "$version" ] || { echo "no sigs.k8s.io/kube-network-policies in $(netpol_dir)/go.mod"; return 1; }
	rm -rf "$dir"
	mkdir -p "$dir" "$BIN"
	cd "$dir" || return
	cp "$(netpol_dir)"/{go.mod,go.sum,main.go,gate.go,gate_test.go} .
	go mod download sigs.k8s.io/kube-network-policies@"$version"
	src=$dir/kube-network-policies-src
	cp -r "$GOMODCACHE/sigs.k8s.io/kube-network-policies@$version" "$src"
	chmod -R u+w "$src"
	patch -d "$src" -p1 --forward --no-backup-if-mismatch <"$(netpol_dir)/upstream.patch" || {
		echo "netpol/upstream.patch no longer applies to kube-network-policies $version"
		return 1
	}
	go mod edit -replace=sigs.k8s.io/kube-network-policies=./kube-network-policies-src
	timed netpol-build go build -trimpath -ldflags "-s -w" -o out/ .
	go vet . && go test -count=1 .
	install -m 0755 out/netpol "$BIN/$NETPOL_DAEMON"
	stamp_write netpol "$key"
}

netpol_healthy() { curl -sf --max-time 2 "http://127.0.0.1:$NETPOL_PORT/healthz" >/dev/null; }

start_netpol() {
	# -v=2: one log line per judged connection (source and destination Pod, verdict).
	start_daemon "$NETPOL_DAEMON" "$NETPOL_DAEMON" -kubeconfig="$NETPOL_KUBECONFIG" -hostname-override="$NODE_NAME" \
		-bridge="$BRIDGE" -health-bind-address="127.0.0.1:$NETPOL_PORT" -v=2
	wait_daemon "$NETPOL_DAEMON" 60 netpol_healthy
	# Which build runs: a rebuilt binary (a changed recipe) is restarted by the next up.
	cat "$BIN/.netpol.stamp" >"$PIDS/$NETPOL_DAEMON.build"
}

# stage_netpol: its own identity (a client certificate for system:kube-network-policies with read access
# to Pods, Namespaces and NetworkPolicies), then the daemon, started after the API server and before the
# kubelet so that no pod runs unenforced.
stage_netpol() {
	[ -f "$PKI/kube-network-policies.crt" ] || cert kube-network-policies system:kube-network-policies "" "" clientAuth
	[ -f "$NETPOL_KUBECONFIG" ] || kubeconfig "$NETPOL_KUBECONFIG" kube-network-policies
	kubectl apply -f "$LOCALCLUSTER_DIR/manifests/kube-network-policies-rbac.yaml"
	if daemon_pid "$NETPOL_DAEMON" >/dev/null; then
		if ! netpol_healthy; then
			echo "$NETPOL_DAEMON runs but is not healthy: restarting it"
		elif [ "$(cat "$PIDS/$NETPOL_DAEMON.build" 2>/dev/null)" != "$(cat "$BIN/.netpol.stamp")" ]; then
			echo "$NETPOL_DAEMON was built anew: restarting it"
		else
			echo "$NETPOL_DAEMON already running"
			return
		fi
		# Stopping removes the controller's rules but closes the gate to the Pods that policies select:
		# they open no connection until the new process has judged them again (within a second).
		stop_daemons 15 "$NETPOL_DAEMON"
	fi
	start_netpol
	nft list table inet "$NETPOL_DAEMON"
}

# remove_netpol_tables: once the daemon is stopped (which leaves the gate's table, and both after a crash).
remove_netpol_tables() {
	command -v nft >/dev/null || return 0 # without nft, none of them was ever made
	local table
	for table in "inet $NETPOL_DAEMON" "inet $GATE_TABLE" "inet $ISOLATION_TABLE" "arp $ISOLATION_TABLE"; do
		# shellcheck disable=SC2086 # "family name"
		if nft list table $table >/dev/null 2>&1; then
			nft delete table $table
			echo "deleted nftables table $table"
		fi
	done
}
