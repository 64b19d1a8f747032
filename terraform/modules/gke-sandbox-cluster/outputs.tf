output "cluster_name" {
  description = "Name of the cluster."
  value       = google_container_cluster.this.name
}

output "location" {
  description = "Region or zone of the cluster."
  value       = google_container_cluster.this.location
}

output "project_id" {
  description = "Project of the cluster."
  value       = var.project_id
}

output "endpoint" {
  description = "IP address of the control plane (use https://<endpoint>). Known once both node pools exist, so Kubernetes providers configured from it can schedule Pods."
  value       = google_container_cluster.this.endpoint
  sensitive   = true
  depends_on  = [google_container_node_pool.pool]
}

output "ca_certificate" {
  description = "Base64-encoded CA certificate of the control plane, for provider configuration (base64decode it)."
  value       = one(google_container_cluster.this.master_auth[*].cluster_ca_certificate)
  sensitive   = true
}

output "runtime_class_name" {
  description = "RuntimeClass GKE Sandbox provides for the gVisor pool; the runner's default. Known once the sandbox pool exists."
  value       = "gvisor"
  depends_on  = [google_container_node_pool.pool["sandbox"]]
}

output "sandbox_node_pool" {
  description = "Name of the gVisor node pool."
  value       = google_container_node_pool.pool["sandbox"].name
}

output "node_service_account_email" {
  description = "Service account the nodes run as (created by the module unless node_service_account_email was given)."
  value       = local.node_service_account
  depends_on  = [google_project_iam_member.nodes]
}

output "workload_identity_pool" {
  description = "Workload Identity pool of the cluster (<project>.svc.id.goog), for IAM bindings of Kubernetes ServiceAccounts."
  value       = google_container_cluster.this.workload_identity_config[0].workload_pool
}

output "get_credentials_command" {
  description = "gcloud command that writes a kubeconfig entry for the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.this.name} --location ${google_container_cluster.this.location} --project ${var.project_id}"
}
