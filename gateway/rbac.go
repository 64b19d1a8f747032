package gateway

import (
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/gkexec/gkexec/internal/egress"
)

// SandboxNamespaceRules are what the gateway may do in the sandbox namespace, and nothing more:
//
//   - pods get, list, watch: the Pod watch that tells which sandbox is asking (PodDirectory).
//   - configmaps get, patch on the two it publishes (Publish): it never creates anything there,
//     and reads or changes no other ConfigMap (the executions' code travels in ConfigMaps).
//
// The installations grant exactly these (test/parity).
func SandboxNamespaceRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "patch"},
			ResourceNames: []string{egress.ConfigMapCA, egress.ConfigMapProxy}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
	}
}

// OwnNamespaceRules are what the gateway may do in its own namespace: read its Service's cluster
// IP, to publish it (--advertise-service).
func OwnNamespaceRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get"}, ResourceNames: []string{egress.GatewayName}},
	}
}
