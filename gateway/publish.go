package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/internal/egress"
)

// Publication is what the gateway tells the sandbox namespace at start: how its sandboxes
// reach it and what they trust, and where the runner reads their counts. Publish writes it into
// the two ConfigMaps of package egress, which the installation creates empty; the gateway may
// only get and patch those two (RBAC resourceNames), never create anything there.
type Publication struct {
	// Namespace is the sandbox namespace.
	Namespace string
	// Proxy is the address sandboxes reach the gateway at: an IP address and port (sandboxes
	// have no DNS). On GKE the Service's ClusterIP (ServiceAddress); where Service addresses
	// route nowhere (the local test cluster has no kube-proxy), the gateway Pod's own IP.
	Proxy string
	// GatewayNamespace is the gateway's own namespace, where the runner finds its Pods.
	GatewayNamespace string
	// AdminPort is the admin API's port.
	AdminPort int
	// CA, if set, is the CA whose certificate sandboxes trust; nil when nothing is intercepted.
	CA *CA
	// Roots are the PEM roots the gateway verifies destinations with, appended to the CA's
	// certificate in the bundle sandboxes read instead of their image's roots.
	Roots []byte
}

// Publish patches the two ConfigMaps. Variables and files it no longer sets (a CA removed) are
// removed, so a stale CA never stays trusted.
func Publish(ctx context.Context, client kubernetes.Interface, p Publication) error {
	env, err := egress.ProxyEnv(p.Proxy, p.CA != nil)
	if err != nil {
		return err
	}
	data := map[string]any{}
	for _, k := range egress.ProxyVariables {
		data[k] = nil // removed unless set below
	}
	for k, v := range env {
		data[k] = v
	}
	proxyPatch := map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{
			egress.AnnotationGatewayNamespace: p.GatewayNamespace,
			egress.AnnotationGatewaySelector:  egress.GatewaySelector,
			egress.AnnotationAdminPort:        strconv.Itoa(p.AdminPort),
			egress.AnnotationProxy:            p.Proxy,
		}},
		"data": data,
	}
	caData := map[string]any{egress.CAFile: nil, egress.CABundleFile: nil}
	if p.CA != nil {
		cert := p.CA.CertificatePEM()
		caData[egress.CAFile] = string(cert)
		caData[egress.CABundleFile] = string(bundle(cert, p.Roots))
	}
	for _, cm := range []struct {
		name  string
		patch map[string]any
	}{{egress.ConfigMapCA, map[string]any{"data": caData}}, {egress.ConfigMapProxy, proxyPatch}} {
		// The CA first: a sandbox never gets the variables that name its files before they exist.
		name := cm.name
		body, _ := json.Marshal(cm.patch)
		_, err := client.CoreV1().ConfigMaps(p.Namespace).Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: "gkexec-gateway"})
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Errorf("publishing to namespace %s: ConfigMap %s does not exist: install the egress-gateway component in the sandbox namespace (it creates it empty)", p.Namespace, name)
		case apierrors.IsForbidden(err):
			return fmt.Errorf("publishing to namespace %s: the gateway may not patch ConfigMap %s (its Role there grants get and patch on it): %w", p.Namespace, name, err)
		case err != nil:
			return fmt.Errorf("publishing to namespace %s: ConfigMap %s: %w", p.Namespace, name, err)
		}
	}
	return nil
}

// bundle is the CA's certificate, then the roots, each ending in a line break.
func bundle(cert, roots []byte) []byte {
	var b bytes.Buffer
	b.Write(bytes.TrimSpace(cert))
	b.WriteByte('\n')
	if r := bytes.TrimSpace(roots); len(r) > 0 {
		b.Write(r)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ServiceAddress is the ClusterIP and port of a Service's port named portName (or its only
// port): where sandboxes reach the gateway on a cluster whose Service addresses route.
func ServiceAddress(ctx context.Context, client kubernetes.Interface, namespace, name, portName string) (string, error) {
	svc, err := client.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading Service %s/%s for the address sandboxes reach the gateway at: %w", namespace, name, err)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		return "", fmt.Errorf("Service %s/%s has no cluster IP (%q): sandboxes have no DNS and need an address", namespace, name, svc.Spec.ClusterIP)
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == portName || len(svc.Spec.Ports) == 1 {
			return net.JoinHostPort(ip.String(), strconv.Itoa(int(p.Port))), nil
		}
	}
	return "", fmt.Errorf("Service %s/%s has no port named %q", namespace, name, portName)
}
