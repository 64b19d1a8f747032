output "namespace" {
  description = "Namespace to give the runner (runner.Options.Namespace, gkexec --namespace). Known once the Namespace and every object in it exist."
  value       = var.namespace
  depends_on  = [kubectl_manifest.namespace, kubectl_manifest.object, kubectl_manifest.warm_pool, kubectl_manifest.egress_gateway]
}

output "agent_service_account" {
  description = "Name of the agent's ServiceAccount (in agent_namespace); the agent may use the runner as it once this output is known (the Role and RoleBinding exist)."
  value       = var.agent_service_account.name
  depends_on  = [kubectl_manifest.object]
}

output "agent_namespace" {
  description = "Namespace of the agent's ServiceAccount: agent_service_account.namespace, or the sandbox namespace when that is null (an agent outside the cluster). An agent Pod runs there, never in the sandbox namespace."
  value       = local.agent_namespace
  depends_on  = [kubectl_manifest.object]
}

output "runtime_class_name" {
  description = "RuntimeClass sandbox Pods run with: gvisor, provided by GKE Sandbox or, with create_runtime_class, by this module. The namespace admits no Pod without it."
  value       = local.runtime_class_name
  depends_on  = [kubectl_manifest.object]
}

output "warm_pool" {
  description = "Name of the warm pool to give the runner (runner.Options.WarmPool), or null without one. Known once its Deployment and the Role that lets the runner claim its Pods exist; the Pods themselves may still be starting."
  value       = try(var.warm_pool.name, null)
  depends_on  = [kubectl_manifest.object, kubectl_manifest.warm_pool]
}

output "manifests" {
  description = "The YAML this module applies, keyed by object (namespace, serviceaccount, role, rolebinding, networkpolicy-default-deny, resourcequota, limitrange, poddisruptionbudget, validatingadmissionpolicy, validatingadmissionpolicybinding and, when enabled, networkpolicy-egress, runtimeclass, warm-pool, the egress-gateway-* objects, and networkpolicy-egress-gateway and fqdnnetworkpolicy-egress-gateway in the gateway's namespace, and priorityclass). For review; test/parity compares it with manifests/ and with the runner's Go builders."
  value = merge({ namespace = local.namespace_manifest }, local.manifests, var.warm_pool == null ? {} : { warm-pool = local.warm_pool_manifest },
  var.egress_gateway == null ? {} : { egress-gateway-namespace = local.egress_gateway_namespace_manifest }, local.egress_gateway_manifests)
}

output "egress_gateway_namespace" {
  description = "Namespace of the egress gateway, or null without one: create Secrets gkexec-egress-ca (ca.crt, ca.key) and gkexec-egress-secrets there when secrets are bound. Known once the gateway's objects, and its side of the sandbox namespace, exist."
  value       = local.egress_gateway_namespace
  depends_on  = [kubectl_manifest.egress_gateway_namespace, kubectl_manifest.egress_gateway]
}
