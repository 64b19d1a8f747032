output "get_credentials_command" {
  description = "Run this to point kubectl and gkexec at the cluster."
  value       = module.cluster.get_credentials_command
}

output "namespace" {
  description = "Namespace to give the runner (gkexec --namespace, or GKEXEC_NAMESPACE)."
  value       = module.sandbox_namespace.namespace
}

output "agent_google_service_account" {
  description = "Google service account the agent acts as through Workload Identity."
  value       = module.agent_identity.email
}

output "runtime_class_name" {
  description = "RuntimeClass of the sandbox Pods (the runner's default)."
  value       = module.cluster.runtime_class_name
}
