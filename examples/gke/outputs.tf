# Stage 2 (../gke-workloads) takes project_id, location, cluster_name, namespace, agent_namespace
# and agent_google_service_account as its variables.

output "project_id" {
  description = "Project of the cluster."
  value       = module.cluster.project_id
}

output "location" {
  description = "Region or zone of the cluster."
  value       = module.cluster.location
}

output "cluster_name" {
  description = "Name of the cluster. Known once both node pools exist, so stage 2 can schedule Pods as soon as it can read it."
  value       = module.cluster.cluster_name
  depends_on  = [module.system_pool, module.sandbox_pool]
}

output "namespace" {
  description = "Sandbox namespace stage 2 must create."
  value       = var.namespace
}

output "agent_namespace" {
  description = "Namespace stage 2 must create for the agent (the agent identity is bound to its gkexec-agent ServiceAccount)."
  value       = var.agent_namespace
}

output "agent_google_service_account" {
  description = "Google service account the agent acts as through Workload Identity."
  value       = module.agent_identity.email
}

output "dns_endpoint" {
  description = "DNS name of the control plane."
  value       = module.cluster.dns_endpoint
}

output "get_credentials_command" {
  description = "Run this to point kubectl and gkexec at the cluster (through its DNS endpoint)."
  value       = module.cluster.get_credentials_command
}

output "runtime_class_name" {
  description = "RuntimeClass of the sandbox Pods (the runner's default)."
  value       = module.sandbox_pool.runtime_class_name
}

output "sandbox_node_labels" {
  description = "Node labels of the gVisor pool, stable across its replacement (gkexec --node-selector to pin sandboxes to it)."
  value       = module.sandbox_pool.node_labels
}
