output "email" {
  description = "Email of the Google service account; pass it to the sandbox-namespace module as agent_service_account.gcp_service_account. Known once the Workload Identity binding and the roles exist."
  value       = local.email
  depends_on  = [google_service_account_iam_member.workload_identity, google_project_iam_member.agent]
}

output "kubernetes_member" {
  description = "IAM principal of the Kubernetes ServiceAccount (serviceAccount:POOL[NAMESPACE/NAME]), for further grants."
  value       = local.kubernetes_member
}

output "service_account_annotation" {
  description = "Annotation to put on the Kubernetes ServiceAccount, for clusters managed without the sandbox-namespace module."
  value       = { "iam.gke.io/gcp-service-account" = local.email }
  depends_on  = [google_service_account_iam_member.workload_identity]
}
