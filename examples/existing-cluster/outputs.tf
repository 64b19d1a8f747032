output "namespace" {
  description = "Namespace to give the runner (gkexec --namespace, or GKEXEC_NAMESPACE)."
  value       = module.sandbox_namespace.namespace
}

output "agent_service_account" {
  description = "ServiceAccount the agent must run as (serviceAccountName of its Pod)."
  value       = module.sandbox_namespace.agent_service_account
}

output "runtime_class_name" {
  description = "RuntimeClass of the sandbox Pods (the runner's default)."
  value       = module.sandbox_namespace.runtime_class_name
}
