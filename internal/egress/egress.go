// Package egress is the contract between the egress gateway (package gateway, `gkexec gateway`),
// the sandboxes and the runner, defined once for the three: the names of the objects the gateway
// publishes in the sandbox namespace, what sandboxes read from them, the annotation by which a
// sandbox Pod narrows the namespace's allow-list, and the ports.
//
// The gateway runs in a namespace of its own (the sandbox namespace admits only sandboxes, and
// its agent may patch and delete every Pod there). At start it publishes two ConfigMaps in the
// sandbox namespace, which the installation creates empty:
//
//   - ConfigMapProxy: the proxy environment (HTTP_PROXY, HTTPS_PROXY, ..., and the CA variables
//     when it intercepts), which every sandbox Pod takes with an optional envFrom; and, in its
//     annotations, where the runner finds the gateway's admin API.
//   - ConfigMapCA: the namespace CA's certificate and a bundle of it with the roots the gateway
//     trusts, which every sandbox Pod mounts, optionally, at CAMountPath.
//
// A namespace without the gateway has neither (or empty ones): its sandboxes get no proxy
// settings and no extra roots, and nothing changes for them.
package egress

import (
	"fmt"
	"net"
	"strconv"
)

// Names of the objects and labels of an installation.
const (
	// ComponentGateway is the app.kubernetes.io/component label of the gateway's Pods: the
	// sandboxes' NetworkPolicy lets them reach Pods so labelled, on ProxyPort only.
	ComponentGateway = "egress-gateway"
	// GatewayName names the gateway's Deployment, Service and ServiceAccount
	// (app.kubernetes.io/name of its Pods).
	GatewayName = "gkexec-egress-gateway"
	// ConfigMapProxy holds the proxy environment of the namespace's sandboxes.
	ConfigMapProxy = "gkexec-egress-proxy"
	// ConfigMapCA holds CAFile and CABundleFile.
	ConfigMapCA = "gkexec-egress-ca"
)

// Ports of the gateway.
const (
	// ProxyPort is where sandboxes send their HTTP and HTTPS (CONNECT).
	ProxyPort = 3128
	// AdminPort serves the admin API (health, metrics, per-sandbox counts): never reachable from
	// sandboxes, read by the runner through a port-forward.
	AdminPort = 9090
)

// What a sandbox sees.
const (
	// CAMountPath is where a sandbox finds the CA files (read-only).
	CAMountPath = "/etc/gkexec-egress"
	// CAFile is the namespace CA's certificate alone (PEM): NODE_EXTRA_CA_CERTS adds it to
	// Node.js's own roots.
	CAFile = "ca.crt"
	// CABundleFile is the CA's certificate followed by the roots the gateway itself trusts: what
	// OpenSSL (Python's ssl, curl) and requests read instead of the image's roots, since a
	// variable can only replace them.
	CABundleFile = "ca-bundle.crt"
	// NoProxy is what never goes through the gateway: the sandbox's own loopback.
	NoProxy = "localhost,127.0.0.1,::1"
)

// The Pod annotations the gateway reads.
const (
	// AnnotationAllow narrows the namespace's allow-list for one sandbox Pod: entries "host" or
	// "host:port" separated by spaces or commas, hosts exact or "*.domain". Absent: the Pod gets
	// the namespace's list; AllowNone or empty: nothing; unparsable: nothing. A narrowing can
	// never widen: the gateway allows what both lists allow. It is set when the Pod is created:
	// a Pod whose narrowing changed later would, until the gateway saw the change, get the old one.
	AnnotationAllow = "gkexec.dev/egress-allow"
	// AllowNone is the AnnotationAllow value that allows nothing.
	AllowNone = "none"
	// AnnotationTokenSHA256 is the hex SHA-256 of the proxy token a sandbox sends, where source
	// addresses do not identify Pods.
	AnnotationTokenSHA256 = "gkexec.dev/egress-token-sha256"
)

// Annotations of ConfigMapProxy, written by the gateway: where the runner finds its admin API.
const (
	AnnotationGatewayNamespace = "gkexec.dev/egress-gateway-namespace"
	// AnnotationGatewaySelector is the label selector of the gateway's Pods.
	AnnotationGatewaySelector = "gkexec.dev/egress-gateway-selector"
	AnnotationAdminPort       = "gkexec.dev/egress-gateway-admin-port"
	// AnnotationProxy is the address sandboxes reach the gateway at (host:port).
	AnnotationProxy = "gkexec.dev/egress-gateway-proxy"
)

// GatewaySelector selects the gateway's Pods in its namespace.
const GatewaySelector = "app.kubernetes.io/name=" + GatewayName + ",app.kubernetes.io/component=" + ComponentGateway

// ProxyVariables are every variable ProxyEnv may set, for removing the ones it no longer sets.
var ProxyVariables = []string{
	"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy",
	"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT", "NODE_EXTRA_CA_CERTS",
}

// ProxyEnv is the environment of a sandbox whose gateway listens at proxy (host:port, an IP
// address: sandboxes have no DNS). withCA adds the variables that make the usual clients trust
// the gateway's CA: without them, intercepted HTTPS fails verification, which is safe but useless.
func ProxyEnv(proxy string, withCA bool) (map[string]string, error) {
	host, port, err := net.SplitHostPort(proxy)
	if err != nil {
		return nil, fmt.Errorf("proxy address %q: want host:port: %w", proxy, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("proxy address %q: port not from 1 to 65535", proxy)
	}
	if host == "" {
		return nil, fmt.Errorf("proxy address %q: no host", proxy)
	}
	url := "http://" + net.JoinHostPort(host, port)
	env := map[string]string{
		// Both spellings: curl reads only the lower-case http_proxy, other tools the upper case.
		"HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
		"NO_PROXY": NoProxy, "no_proxy": NoProxy,
	}
	if withCA {
		bundle := CAMountPath + "/" + CABundleFile
		env["SSL_CERT_FILE"] = bundle      // OpenSSL: Python's ssl, curl, git
		env["REQUESTS_CA_BUNDLE"] = bundle // requests (and pip)
		env["CURL_CA_BUNDLE"] = bundle
		env["PIP_CERT"] = bundle
		env["NODE_EXTRA_CA_CERTS"] = CAMountPath + "/" + CAFile // added to Node.js's own roots
	}
	return env, nil
}
