output "namespace" {
  description = "Namespace to give the runner (gkexec --namespace, or GKEXEC_NAMESPACE)."
  value       = module.sandbox_namespace.namespace
}

output "agent_service_account" {
  description = "ServiceAccount the agent runs as: serviceAccountName of an agent Pod in agent_namespace, or a token of it for an agent outside the cluster."
  value       = module.sandbox_namespace.agent_service_account
}

output "agent_namespace" {
  description = "Namespace of the agent's ServiceAccount (the sandbox namespace unless agent_namespace was set)."
  value       = module.sandbox_namespace.agent_namespace
}

output "runtime_class_name" {
  description = "RuntimeClass of the sandbox Pods (the runner's default)."
  value       = module.sandbox_namespace.runtime_class_name
}
