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

output "dns_endpoint" {
  description = "DNS name of the control plane (https://<dns_endpoint>); it serves a publicly trusted certificate, so clients need no CA, and answers only callers with IAM permission on the cluster."
  value       = local.dns_endpoint
}

output "endpoint" {
  description = "IP address of the control plane's IP endpoint (sensitive). Reachable only with access.ip_endpoints set, and then only from the authorized networks."
  value       = google_container_cluster.this.endpoint
  sensitive   = true
}

output "ca_certificate" {
  description = "Base64-encoded CA certificate of the IP endpoint (base64decode it); the DNS endpoint needs none."
  value       = one(google_container_cluster.this.master_auth[*].cluster_ca_certificate)
  sensitive   = true
}

output "node_service_account_email" {
  description = "Service account the nodes run as (created by the module unless node_service_account_email was given); pass it to the node pools."
  value       = local.node_service_account
  depends_on  = [google_project_iam_member.nodes]
}

output "subnetwork" {
  description = "Self link or name of the nodes' subnetwork (created by the module unless network.subnetwork was given)."
  value       = local.subnetwork.name
}

output "workload_identity_pool" {
  description = "Workload Identity pool of the cluster (<project>.svc.id.goog), for IAM bindings of Kubernetes ServiceAccounts."
  value       = google_container_cluster.this.workload_identity_config[0].workload_pool
}

output "get_credentials_command" {
  description = "gcloud command that writes a kubeconfig entry for the cluster's DNS endpoint."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.this.name} --location ${google_container_cluster.this.location} --project ${var.project_id} --dns-endpoint"
}

output "fqdn_network_policy_enabled" {
  description = "Whether the cluster enforces FQDN network policies: Dataplane V2 and enable_fqdn_network_policy, as the cluster has them. Pass it to the sandbox-namespace module's fqdn_network_policy.cluster_enabled, which refuses to emit FQDNNetworkPolicy objects without it."
  value       = google_container_cluster.this.datapath_provider == "ADVANCED_DATAPATH" && google_container_cluster.this.enable_fqdn_network_policy == true
}
