locals {
  pool  = coalesce(var.workload_identity_pool, "${var.project_id}.svc.id.goog")
  email = coalesce(var.google_service_account.email, one(google_service_account.agent[*].email))
  # The principal GKE presents for Pods running as the Kubernetes ServiceAccount.
  kubernetes_member = "serviceAccount:${local.pool}[${var.namespace}/${var.kubernetes_service_account}]"
}

resource "google_service_account" "agent" {
  count = var.google_service_account.email == null ? 1 : 0

  project      = var.project_id
  account_id   = var.google_service_account.account_id
  display_name = "gkexec agent (${var.namespace}/${var.kubernetes_service_account})"
  description  = "Google identity of the Kubernetes ServiceAccount ${var.namespace}/${var.kubernetes_service_account} through Workload Identity."
}

# Lets exactly one Kubernetes ServiceAccount act as the Google service account.
resource "google_service_account_iam_member" "workload_identity" {
  service_account_id = "projects/${var.project_id}/serviceAccounts/${local.email}"
  role               = "roles/iam.workloadIdentityUser"
  member             = local.kubernetes_member
}

resource "google_project_iam_member" "agent" {
  for_each = toset(var.project_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${local.email}"
}
