package gateway

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gkexec/gkexec/internal/egress"
)

func emptyConfigMaps(ns string) []corev1.ConfigMap {
	return []corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: egress.ConfigMapProxy, Namespace: ns}},
		{ObjectMeta: metav1.ObjectMeta{Name: egress.ConfigMapCA, Namespace: ns}},
	}
}

func TestPublishWritesWhatSandboxesAndTheRunnerRead(t *testing.T) {
	t.Parallel()
	cms := emptyConfigMaps("sbx")
	client := fake.NewClientset(&cms[0], &cms[1])
	certPEM, keyPEM, err := GenerateCA(CAOptions{}, time.Now())
	must(t, err)
	ca, err := LoadCA(certPEM, keyPEM, time.Now())
	must(t, err)
	roots := []byte("-----BEGIN CERTIFICATE-----\nroots\n-----END CERTIFICATE-----\n")
	ctx := context.Background()
	pub := Publication{Namespace: "sbx", Proxy: "10.244.0.9:3128", GatewayNamespace: "sbx-egress", AdminPort: 9090, CA: ca, Roots: roots}
	must(t, Publish(ctx, client, pub))

	proxy, err := client.CoreV1().ConfigMaps("sbx").Get(ctx, egress.ConfigMapProxy, metav1.GetOptions{})
	must(t, err)
	for k, want := range map[string]string{
		"HTTP_PROXY": "http://10.244.0.9:3128", "https_proxy": "http://10.244.0.9:3128", "NO_PROXY": egress.NoProxy,
		"SSL_CERT_FILE": egress.CAMountPath + "/" + egress.CABundleFile, "NODE_EXTRA_CA_CERTS": egress.CAMountPath + "/" + egress.CAFile,
	} {
		if got := proxy.Data[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for k, want := range map[string]string{
		egress.AnnotationGatewayNamespace: "sbx-egress", egress.AnnotationAdminPort: "9090",
		egress.AnnotationGatewaySelector: egress.GatewaySelector, egress.AnnotationProxy: "10.244.0.9:3128",
	} {
		if got := proxy.Annotations[k]; got != want {
			t.Errorf("annotation %s = %q, want %q", k, got, want)
		}
	}
	caMap, err := client.CoreV1().ConfigMaps("sbx").Get(ctx, egress.ConfigMapCA, metav1.GetOptions{})
	must(t, err)
	if caMap.Data[egress.CAFile] != string(certPEM) {
		t.Errorf("ca.crt is not the CA's certificate:\n%s", caMap.Data[egress.CAFile])
	}
	if b := caMap.Data[egress.CABundleFile]; !strings.HasPrefix(b, strings.TrimSpace(string(certPEM))+"\n") || !strings.HasSuffix(b, string(roots)) {
		t.Errorf("the bundle is not the CA then the roots:\n%s", b)
	}
	for _, cm := range []*corev1.ConfigMap{proxy, caMap} {
		if strings.Contains(strings.Join(slices.Collect(maps.Values(cm.Data)), ""), string(keyPEM)) {
			t.Fatalf("ConfigMap %s holds the CA's key", cm.Name)
		}
	}

	// Published again without a CA (interception turned off): the CA's variables and files go.
	pub.CA = nil
	must(t, Publish(ctx, client, pub))
	proxy, _ = client.CoreV1().ConfigMaps("sbx").Get(ctx, egress.ConfigMapProxy, metav1.GetOptions{})
	caMap, _ = client.CoreV1().ConfigMaps("sbx").Get(ctx, egress.ConfigMapCA, metav1.GetOptions{})
	if _, ok := proxy.Data["SSL_CERT_FILE"]; ok || len(caMap.Data) != 0 || proxy.Data["HTTPS_PROXY"] == "" {
		t.Errorf("without a CA: proxy %v, CA files %v; want the proxy only", proxy.Data, caMap.Data)
	}
}

func TestPublishNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	err := Publish(context.Background(), fake.NewClientset(), Publication{Namespace: "sbx", Proxy: "10.0.0.1:3128"})
	if err == nil || !strings.Contains(err.Error(), egress.ConfigMapCA) || !strings.Contains(err.Error(), "component") {
		t.Errorf("no ConfigMaps: %v; want an error naming the ConfigMap and the component that creates it", err)
	}
	cms := emptyConfigMaps("sbx")
	if err := Publish(context.Background(), fake.NewClientset(&cms[0], &cms[1]), Publication{Namespace: "sbx", Proxy: "gateway.svc"}); err == nil {
		t.Error("a proxy address without a port was published")
	}
}

func TestServiceAddress(t *testing.T) {
	t.Parallel()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: egress.GatewayName, Namespace: "gw"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.4.4", Ports: []corev1.ServicePort{
			{Name: "proxy", Port: 3128}, {Name: "admin", Port: 9090},
		}},
	}
	got, err := ServiceAddress(context.Background(), fake.NewClientset(svc), "gw", egress.GatewayName, "proxy")
	if err != nil || got != "10.96.4.4:3128" {
		t.Errorf("ServiceAddress = %q, %v", got, err)
	}
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	if _, err := ServiceAddress(context.Background(), fake.NewClientset(svc), "gw", egress.GatewayName, "proxy"); err == nil {
		t.Error("a headless Service gave an address")
	}
}
