output "namespace" {
  description = "Sandbox namespace to give the runner (gkexec --namespace, or GKEXEC_NAMESPACE)."
  value       = module.sandbox_namespace.namespace
}

output "agent_namespace" {
  description = "Namespace the agent runs in, with its ServiceAccount gkexec-agent."
  value       = module.sandbox_namespace.agent_namespace
}

output "kubernetes_host" {
  description = "Where the Kubernetes objects were applied: the cluster's DNS endpoint."
  value       = "https://${local.dns_endpoint}"
}
