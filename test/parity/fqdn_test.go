package parity

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// gatewayComponent is the app.kubernetes.io/component label of the egress gateway's Pods, which
// the FQDN policy selects (the gateway's contract names it egress-gateway).
const gatewayComponent = "egress-gateway"

// isGatewayPolicy reports whether o is one of the egress gateway's FQDN policies
// (fqdn_network_policy, components/fqdn-network-policy), which live in the gateway's namespace.
func isGatewayPolicy(o object) bool {
	name, _ := o["metadata"].(map[string]any)["name"].(string)
	kind := fmt.Sprint(o["kind"])
	// The gateway's own NetworkPolicy (gkexec-egress-gateway, ingress only) is the gateway
	// installation's, not one of these.
	return kind == "FQDNNetworkPolicy" && name == "gkexec-egress-gateway" ||
		kind == "NetworkPolicy" && name == "gkexec-egress-gateway-cluster"
}

// TestFQDNPolicyHoldsTheGateway: where an installation has them, the gateway's policies hold its
// namespace to the cluster DNS and the API server and its Pods to named domains, with no rule
// left open-ended (an egress rule without peers or ports allows every one); elsewhere there are
// none.
func TestFQDNPolicyHoldsTheGateway(t *testing.T) {
	t.Parallel()
	for _, inst := range installations {
		t.Run(inst.name, func(t *testing.T) {
			t.Parallel()
			for source, objs := range map[string]objects{"kustomize": inst.fromKustomize(t), "module": renderModule(t, inst.module)} {
				gateway := objects{}
				for k, o := range objs {
					if isGatewayPolicy(o) {
						gateway[k] = o
					}
				}
				if inst.gatewayNamespace == "" {
					if len(gateway) != 0 {
						t.Errorf("%s: no FQDN policies asked for, but it declares %v", source, gateway.keys())
					}
					continue
				}
				if len(gateway) != 2 {
					t.Fatalf("%s: want the gateway's FQDNNetworkPolicy and NetworkPolicy, found %v", source, gateway.keys())
				}
				checkFQDNPolicy(t, source, gateway.ofKind(t, "FQDNNetworkPolicy"))
				var np networkingv1.NetworkPolicy
				convert(t, gateway.ofKind(t, "NetworkPolicy"), &np)
				checkGatewayNetworkPolicy(t, source, np)
			}
		})
	}
}

// checkFQDNPolicy: the FQDNNetworkPolicy selects the gateway's Pods and allows named domains
// (exact, or one leading "*." over two labels) on TCP ports, nothing else.
func checkFQDNPolicy(t *testing.T, source string, o object) {
	t.Helper()
	spec := o["spec"].(map[string]any)
	wantSelector := map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/component": gatewayComponent}}
	if !reflect.DeepEqual(spec["podSelector"], wantSelector) {
		t.Errorf("%s: FQDNNetworkPolicy selects %v, want the gateway's Pods %v", source, spec["podSelector"], wantSelector)
	}
	rules, _ := spec["egress"].([]any)
	if len(spec) != 2 || len(rules) == 0 {
		t.Fatalf("%s: FQDNNetworkPolicy spec %v: want exactly podSelector and egress rules", source, indent(spec))
	}
	for i, r := range rules {
		rule := r.(map[string]any)
		matches, _ := rule["matches"].([]any)
		ports, _ := rule["ports"].([]any)
		if len(rule) != 2 || len(matches) == 0 || len(ports) == 0 {
			t.Errorf("%s: egress[%d] %v: want matches and ports, both non-empty (an empty list allows everything)", source, i, rule)
			continue
		}
		for _, m := range matches {
			if err := checkMatch(m.(map[string]any)); err != nil {
				t.Errorf("%s: egress[%d]: %v", source, i, err)
			}
		}
		for _, p := range ports {
			port := p.(map[string]any)
			if n, _ := port["port"].(float64); port["protocol"] != "TCP" || n < 1 || n > 65535 || len(port) != 2 {
				t.Errorf("%s: egress[%d] port %v: want {protocol: TCP, port: 1-65535}", source, i, port)
			}
		}
	}
}

// checkMatch: a match is {name: exact name} or {pattern: "*.suffix"}, the suffix two labels or more.
func checkMatch(m map[string]any) error {
	if len(m) != 1 {
		return fmt.Errorf("match %v: want exactly one of name and pattern", m)
	}
	if name, ok := m["name"].(string); ok {
		if strings.Contains(name, "*") || strings.Count(name, ".") < 1 {
			return fmt.Errorf("name %q: want an exact name of two labels or more", name)
		}
		return nil
	}
	pattern, _ := m["pattern"].(string)
	suffix, ok := strings.CutPrefix(pattern, "*.")
	if !ok || strings.Contains(suffix, "*") || strings.Count(suffix, ".") < 1 {
		return fmt.Errorf("match %v: want a name, or a pattern *.<suffix of two labels or more>", m)
	}
	return nil
}

// checkGatewayNetworkPolicy: every Pod of the gateway's namespace may reach kube-dns on port 53
// and single addresses (the API server) on TCP 443, and nothing else.
func checkGatewayNetworkPolicy(t *testing.T, source string, np networkingv1.NetworkPolicy) {
	t.Helper()
	if len(np.Spec.PodSelector.MatchLabels)+len(np.Spec.PodSelector.MatchExpressions) != 0 {
		t.Errorf("%s: NetworkPolicy %s selects %v, want every Pod of the gateway's namespace (fail closed)", source, np.Name, np.Spec.PodSelector)
	}
	if !reflect.DeepEqual(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}) || len(np.Spec.Ingress) != 0 {
		t.Errorf("%s: NetworkPolicy %s has policy types %v and %d ingress rules, want Egress only", source, np.Name, np.Spec.PolicyTypes, len(np.Spec.Ingress))
	}
	kubeDNS := networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
	}
	var dns, apiServer bool
	for i, rule := range np.Spec.Egress {
		if len(rule.To) == 0 || len(rule.Ports) == 0 {
			t.Errorf("%s: egress[%d] has no peers or no ports, so allows every one", source, i)
			continue
		}
		for _, peer := range rule.To {
			switch {
			case reflect.DeepEqual(peer, kubeDNS):
				dns = true
				for _, p := range rule.Ports {
					if p.Port == nil || p.Port.IntValue() != 53 || p.EndPort != nil {
						t.Errorf("%s: egress[%d] opens %s to kube-dns, want port 53 only", source, i, portString(p))
					}
				}
			case peer.IPBlock != nil:
				apiServer = true
				prefix, err := netip.ParsePrefix(peer.IPBlock.CIDR)
				if err != nil || !prefix.IsSingleIP() || len(peer.IPBlock.Except) != 0 {
					t.Errorf("%s: egress[%d] opens %v, want single addresses (the API server)", source, i, peer.IPBlock)
				}
				for _, p := range rule.Ports {
					if p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP || p.Port == nil || p.Port.IntValue() != 443 || p.EndPort != nil {
						t.Errorf("%s: egress[%d] opens %s to the API server, want TCP 443 only", source, i, portString(p))
					}
				}
			default:
				t.Errorf("%s: egress[%d] opens %+v, want kube-dns or the API server only", source, i, peer)
			}
		}
	}
	if !dns || !apiServer {
		t.Errorf("%s: NetworkPolicy %s: reaches kube-dns %v, the API server %v; the gateway needs both", source, np.Name, dns, apiServer)
	}
}

// portString prints a NetworkPolicyPort as protocol/port[-endPort].
func portString(p networkingv1.NetworkPolicyPort) string {
	s := "any"
	if p.Protocol != nil {
		s = string(*p.Protocol)
	}
	if p.Port == nil {
		return s + "/every port"
	}
	s += "/" + p.Port.String()
	if p.EndPort != nil {
		s += fmt.Sprintf("-%d", *p.EndPort)
	}
	return s
}
