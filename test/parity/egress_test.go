package parity

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gkexec/gkexec/gateway"
	"github.com/gkexec/gkexec/internal/egress"
	"github.com/gkexec/gkexec/runner"
)

var (
	gatewaySideOnce sync.Once
	gatewaySideKeys map[string]bool
)

// gatewaySide are the keys of the objects manifests/egress-gateway puts in the gateway's own
// namespace (the rest of an installation is in the sandbox namespace).
func gatewaySide(t *testing.T) map[string]bool {
	t.Helper()
	gatewaySideOnce.Do(func() {
		gatewaySideKeys = map[string]bool{}
		for k := range kustomize(t, "manifests/egress-gateway", "") {
			gatewaySideKeys[k] = true
		}
	})
	return gatewaySideKeys
}

// TestEgressGatewayHonoursItsContract checks both installations of the gateway against the Go
// source: the RBAC of both sides, the labels and ports the sandboxes' NetworkPolicy and the
// runner rely on, the names the gateway publishes to, the sandbox namespace it watches.
func TestEgressGatewayHonoursItsContract(t *testing.T) {
	t.Parallel()
	for source, objs := range map[string]objects{
		"kustomize": kustomize(t, "manifests/overlays/egress-gateway", ""),
		"module":    renderModule(t, map[string]any{"egress_gateway": map[string]any{}}),
	} {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			checkEgressGateway(t, objs, "gkexec", "gkexec-egress", "gkexec", "--advertise-service=gkexec-egress-gateway")
		})
	}
}

func checkEgressGateway(t *testing.T, objs objects, sandboxNS, gatewayNS, agentNS, advertise string) {
	t.Helper()
	role := func(ns, name string) rbacv1.Role {
		for _, o := range objs {
			if o["kind"] == "Role" && o["metadata"].(map[string]any)["name"] == name && o["metadata"].(map[string]any)["namespace"] == ns {
				var r rbacv1.Role
				convert(t, o, &r)
				return r
			}
		}
		t.Fatalf("no Role %s/%s", ns, name)
		return rbacv1.Role{}
	}
	binding := func(ns, name string) rbacv1.RoleBinding {
		for _, o := range objs {
			if o["kind"] == "RoleBinding" && o["metadata"].(map[string]any)["name"] == name && o["metadata"].(map[string]any)["namespace"] == ns {
				var b rbacv1.RoleBinding
				convert(t, o, &b)
				return b
			}
		}
		t.Fatalf("no RoleBinding %s/%s", ns, name)
		return rbacv1.RoleBinding{}
	}
	gatewaySA := []rbacv1.Subject{{Kind: "ServiceAccount", Name: egress.GatewayName, Namespace: gatewayNS}}
	for _, c := range []struct {
		ns, name string
		want     []rbacv1.PolicyRule
		subjects []rbacv1.Subject
	}{
		{sandboxNS, "gkexec-egress-gateway", gateway.SandboxNamespaceRules(), gatewaySA},
		{gatewayNS, "gkexec-egress-gateway", gateway.OwnNamespaceRules(), gatewaySA},
		{gatewayNS, "gkexec-egress-runner", runner.EgressGatewayRules(), []rbacv1.Subject{{Kind: "ServiceAccount", Name: "gkexec-agent", Namespace: agentNS}}},
	} {
		r := role(c.ns, c.name)
		if got, want := normalizeRules(r.Rules), normalizeRules(c.want); !reflect.DeepEqual(got, want) {
			t.Errorf("Role %s/%s grants\n%s\nwant\n%s", c.ns, c.name, indent(got), indent(want))
		}
		b := binding(c.ns, c.name)
		if !reflect.DeepEqual(b.Subjects, c.subjects) || b.RoleRef.Name != c.name {
			t.Errorf("RoleBinding %s/%s binds %s to %+v, want %+v", c.ns, c.name, b.RoleRef.Name, b.Subjects, c.subjects)
		}
	}

	var deploy appsv1.Deployment
	convert(t, objs.named(t, "Deployment", egress.GatewayName), &deploy)
	podLabels := deploy.Spec.Template.Labels
	if podLabels["app.kubernetes.io/name"] != egress.GatewayName || podLabels[runner.LabelComponent] != egress.ComponentGateway {
		t.Errorf("gateway Pods are labelled %v, want the selector %s", podLabels, egress.GatewaySelector)
	}
	c := deploy.Spec.Template.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["proxy"] != egress.ProxyPort || ports["admin"] != egress.AdminPort {
		t.Errorf("gateway ports %v, want proxy %d and admin %d", ports, egress.ProxyPort, egress.AdminPort)
	}
	for _, want := range []string{"gateway", "--namespace=" + sandboxNS, advertise} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("gateway args %q lack %q", c.Args, want)
		}
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("gateway container security context %+v: want a read-only root, no privilege escalation", sc)
	}
	for _, v := range deploy.Spec.Template.Spec.Volumes {
		if v.Secret != nil && (v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o400) {
			t.Errorf("Secret volume %s: mode %v, want 0400 (the CA's key and the secrets, for the gateway alone)", v.Name, v.Secret.DefaultMode)
		}
	}

	// The sandboxes reach the gateway's Pods on the proxy port, and nothing else of them.
	var np networkingv1.NetworkPolicy
	convert(t, objs.named(t, "NetworkPolicy", "gkexec-sandbox-egress-gateway"), &np)
	want := networkingv1.NetworkPolicySpec{
		PodSelector: metav1LabelSelector(map[string]string{runner.LabelManagedBy: runner.ManagedByValue, runner.LabelComponent: runner.ComponentSandbox}),
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: ptrSelector(map[string]string{"kubernetes.io/metadata.name": gatewayNS}),
				PodSelector:       ptrSelector(podLabelsOf(podLabels)),
			}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptrProtocol(corev1.ProtocolTCP), Port: intOrString(egress.ProxyPort)}},
		}},
	}
	if !reflect.DeepEqual(np.Spec, want) {
		t.Errorf("the sandboxes' gateway NetworkPolicy\n%s\nwant\n%s", indent(np.Spec), indent(want))
	}
	for _, name := range []string{egress.ConfigMapProxy, egress.ConfigMapCA} {
		cm := objs.named(t, "ConfigMap", name)
		if ns := cm["metadata"].(map[string]any)["namespace"]; ns != sandboxNS {
			t.Errorf("ConfigMap %s is in %v, want the sandbox namespace %s", name, ns, sandboxNS)
		}
		if _, hasData := cm["data"]; hasData {
			t.Errorf("ConfigMap %s has data: the installation creates it empty, the gateway fills it in", name)
		}
	}
}

// TestModuleEgressGatewayFollowsItsSettings: every egress_gateway setting lands where the gateway
// reads it, and the policy the module writes is one the gateway loads.
func TestModuleEgressGatewayFollowsItsSettings(t *testing.T) {
	t.Parallel()
	objs := renderModule(t, map[string]any{
		"namespace":             "team-b",
		"agent_service_account": map[string]any{"namespace": "agents"},
		"egress_gateway": map[string]any{
			"namespace": "team-b-gw", "image": "registry.example.com/gkexec:v1", "advertise": "pod",
			"allow": []any{
				map[string]any{"host": "pypi.org"},
				map[string]any{"host": "*.pythonhosted.org", "ports": []any{443}},
				map[string]any{"host": "mirror.internal.example", "ports": []any{8080}, "allow_private": true},
			},
			"secrets":         []any{map[string]any{"name": "api-key", "hosts": []any{"pypi.org"}, "query": true}},
			"denied_prefixes": []any{"34.118.224.0/20"},
		},
	})
	checkEgressGateway(t, objs, "team-b", "team-b-gw", "agents", "--advertise=$(POD_IP)")

	var deploy appsv1.Deployment
	convert(t, objs.named(t, "Deployment", egress.GatewayName), &deploy)
	c := deploy.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example.com/gkexec:v1" {
		t.Errorf("image %q", c.Image)
	}
	var podIP bool
	for _, e := range c.Env {
		podIP = podIP || (e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP")
	}
	if !podIP {
		t.Errorf("advertise = pod without POD_IP from the downward API: %+v", c.Env)
	}

	policy := objs.named(t, "ConfigMap", "gkexec-egress-gateway-policy")["data"].(map[string]any)["policy.yaml"].(string)
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.LoadConfig(file)
	if err != nil {
		t.Fatalf("the gateway cannot load the module's policy:\n%s\n%v", policy, err)
	}
	wantCfg := gateway.Config{
		Allow:          []gateway.Rule{{Host: "pypi.org"}, {Host: "*.pythonhosted.org", Ports: []int{443}}, {Host: "mirror.internal.example", Ports: []int{8080}, AllowPrivate: true}},
		Secrets:        []gateway.SecretBinding{{Name: "api-key", Hosts: []string{"pypi.org"}, Query: true}},
		DeniedPrefixes: []string{"34.118.224.0/20"},
	}
	if !reflect.DeepEqual(cfg, wantCfg) {
		t.Errorf("policy\n%s\nloads as %+v, want %+v", policy, cfg, wantCfg)
	}
	if _, err := cfg.Options(); err != nil {
		t.Errorf("the policy's options: %v", err)
	}
	// The defaults' policy, which manifests/ carries too, loads as nothing allowed.
	def := kustomize(t, "manifests/egress-gateway", "").named(t, "ConfigMap", "gkexec-egress-gateway-policy")["data"].(map[string]any)["policy.yaml"].(string)
	if err := os.WriteFile(file, []byte(def), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := gateway.LoadConfig(file); err != nil || len(cfg.Allow) != 0 || strings.TrimSpace(def) == "" {
		t.Errorf("the default policy %q: %+v, %v; want one that allows nothing", def, cfg, err)
	}
}

func metav1LabelSelector(labels map[string]string) metav1.LabelSelector {
	return metav1.LabelSelector{MatchLabels: labels}
}

func ptrSelector(labels map[string]string) *metav1.LabelSelector {
	s := metav1LabelSelector(labels)
	return &s
}

// podLabelsOf are the labels the sandboxes' policy selects the gateway's Pods by: its name and
// component, not part-of (which every gkexec object carries).
func podLabelsOf(l map[string]string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": l["app.kubernetes.io/name"], runner.LabelComponent: l[runner.LabelComponent]}
}

func ptrProtocol(p corev1.Protocol) *corev1.Protocol { return &p }

func intOrString(port int) *intstr.IntOrString {
	v := intstr.FromInt32(int32(port))
	return &v
}
