output "namespace" {
  description = "Namespace to give the runner (gkexec --namespace, or GKEXEC_NAMESPACE)."
  value       = module.sandbox_namespace.namespace
}

output "agent_service_account" {
  description = "ServiceAccount in the sandbox namespace that an agent outside the cluster acts as, with a token of it (kubectl create token; the e2e tests do this). An agent Pod runs in a namespace of its own instead (the sandbox-namespace module's agent_service_account.namespace)."
  value       = module.sandbox_namespace.agent_service_account
}

output "runtime_class_name" {
  description = "RuntimeClass of the sandbox Pods (the runner's default)."
  value       = module.sandbox_namespace.runtime_class_name
}
