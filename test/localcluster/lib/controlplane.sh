# shellcheck shell=bash
# PKI, kubeconfigs and the control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.
# All listen on 127.0.0.1 only.

# cert NAME CN O SANS EKU: an ECDSA P-256 key and a certificate signed by our CA.
cert() {
	local name=$1 cn=$2 org=$3 sans=$4 eku=$5
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key"
	openssl req -new -key "$PKI/$name.key" -subj "${org:+/O=$org}/CN=$cn" -out "$PKI/$name.csr"
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$eku"
		[ -n "$sans" ] && echo "subjectAltName=$sans"
	} >"$PKI/$name.ext"
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 3650 \
		-extfile "$PKI/$name.ext" -out "$PKI/$name.crt"
	rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

# kubeconfig FILE USER: a kubeconfig for one of our client certificates.
kubeconfig() {
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: $CLUSTER_NAME, cluster: {certificate-authority: $PKI/ca.crt, server: "https://127.0.0.1:$API_PORT"}}]
users: [{name: $2, user: {client-certificate: $PKI/$2.crt, client-key: $PKI/$2.key}}]
contexts: [{name: $CLUSTER_NAME, context: {cluster: $CLUSTER_NAME, user: $2}}]
current-context: $CLUSTER_NAME
EOF
}

# The PKI is made once and kept with the etcd data (tokens and the stored state depend on it). The kubelet's
# certificates name the node; a renamed host needs `cluster.sh reset`.
stage_pki() {
	if [ -f "$PKI/ca.crt" ]; then
		[ "$(cat "$PKI/node-name")" = "$NODE_NAME" ] || {
			echo "the PKI was made for node $(cat "$PKI/node-name"), this host is $NODE_NAME: run cluster.sh reset"
			return 1
		}
		echo "PKI exists"
		return
	fi
	local tmp=$PKI.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	PKI=$tmp
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key"
	openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=$CLUSTER_NAME-ca" -days 3650 -out "$PKI/ca.crt"
	cert apiserver kube-apiserver "" \
		"IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
		serverAuth
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" clientAuth
	cert admin kubernetes-admin system:masters "" clientAuth
	cert controller-manager system:kube-controller-manager "" "" clientAuth
	cert scheduler system:kube-scheduler "" "" clientAuth
	cert kubelet system:node:"$NODE_NAME" system:nodes "" clientAuth
	cert kubelet-serving "$NODE_NAME" "" "IP:127.0.0.1,DNS:$NODE_NAME,DNS:localhost" serverAuth
	# Service-account tokens are signed with RSA (the apiserver's most portable choice).
	openssl genrsa -out "$PKI/sa.key" 2048
	openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
	echo "$NODE_NAME" >"$PKI/node-name"
	chmod 0600 "$PKI"/*.key
	PKI=$STATE/pki
	mv "$tmp" "$PKI"
	local u
	for u in admin controller-manager scheduler kubelet; do kubeconfig "$STATE/$u.kubeconfig" "$u"; done
}

start_etcd() {
	daemon_pid etcd >/dev/null && etcd_healthy && { echo "etcd already running"; return; }
	start_daemon etcd etcd --name "$CLUSTER_NAME" --data-dir "$STATE/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster "$CLUSTER_NAME=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381
	wait_daemon etcd 60 etcd_healthy
}

start_apiserver() {
	daemon_pid kube-apiserver >/dev/null && apiserver_ready && { echo "kube-apiserver already running"; return; }
	# The kubelet refuses a loopback node IP, so the node's InternalIP is eth0's; the apiserver must dial the
	# kubelet by hostname (which resolves to 127.0.0.1) instead. A loopback advertise address is invalid in the
	# `kubernetes` Endpoints object, and without kube-proxy nothing routes the service IP anyway: no reconciler.
	start_daemon kube-apiserver kube-apiserver --etcd-servers=http://127.0.0.1:2379 \
		--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
		--endpoint-reconciler-type=none --service-cluster-ip-range="$SERVICE_RANGE" \
		--client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
		--kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=Hostname \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
		--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
		--allow-privileged=true --profiling=false
	wait_daemon kube-apiserver 120 apiserver_ready
}

start_controller_manager() {
	daemon_pid kube-controller-manager >/dev/null && { echo "kube-controller-manager already running"; return; }
	local kc=$STATE/controller-manager.kubeconfig
	# --flex-volume-plugin-dir: otherwise it creates /usr/libexec/kubernetes/kubelet-plugins on the host.
	start_daemon kube-controller-manager kube-controller-manager --kubeconfig="$kc" \
		--authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
		--bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
		--service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
		--cluster-name="$CLUSTER_NAME" --flex-volume-plugin-dir="$STATE/kcm-flexvolume"
	wait_daemon kube-controller-manager 60 curl -skf --max-time 2 https://127.0.0.1:10257/healthz
}

start_scheduler() {
	daemon_pid kube-scheduler >/dev/null && { echo "kube-scheduler already running"; return; }
	local kc=$STATE/scheduler.kubeconfig
	start_daemon kube-scheduler kube-scheduler --kubeconfig="$kc" \
		--authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
		--bind-address=127.0.0.1 --leader-elect=false
	wait_daemon kube-scheduler 60 curl -skf --max-time 2 https://127.0.0.1:10259/healthz
}

stage_controlplane() {
	start_etcd
	start_apiserver
	start_controller_manager
	start_scheduler
}
