# Plan-only against the real google provider schema (offline: test/tfprovider-replay).
mock_provider "google" {}

variables {
  project_id = "gkexec-test"
  namespace  = "gkexec"
}

run "defaults" {
  command = plan

  assert {
    condition     = length(google_service_account.agent) == 1 && google_service_account.agent[0].account_id == "gkexec-agent"
    error_message = "The module must create the Google service account gkexec-agent."
  }
  assert {
    condition     = google_service_account_iam_member.workload_identity.role == "roles/iam.workloadIdentityUser" && google_service_account_iam_member.workload_identity.member == "serviceAccount:gkexec-test.svc.id.goog[gkexec/gkexec-agent]"
    error_message = "Only the Kubernetes ServiceAccount gkexec/gkexec-agent may act as the Google service account (roles/iam.workloadIdentityUser)."
  }
  assert {
    condition     = length(google_project_iam_member.agent) == 0
    error_message = "No project roles unless project_roles lists some."
  }
  assert {
    condition     = output.kubernetes_member == "serviceAccount:gkexec-test.svc.id.goog[gkexec/gkexec-agent]"
    error_message = "kubernetes_member must be the Workload Identity principal."
  }
}

run "existing_account_other_pool_and_roles" {
  command = plan

  variables {
    workload_identity_pool     = "cluster-project.svc.id.goog"
    kubernetes_service_account = "coder"
    google_service_account     = { email = "coder@gkexec-test.iam.gserviceaccount.com" }
    project_roles              = ["roles/aiplatform.user"]
  }

  assert {
    condition     = length(google_service_account.agent) == 0 && google_service_account_iam_member.workload_identity.service_account_id == "projects/gkexec-test/serviceAccounts/coder@gkexec-test.iam.gserviceaccount.com"
    error_message = "With an email given, no account is created and the binding is on the given one."
  }
  assert {
    condition     = google_service_account_iam_member.workload_identity.member == "serviceAccount:cluster-project.svc.id.goog[gkexec/coder]"
    error_message = "The binding must use the given pool and ServiceAccount name."
  }
  assert {
    condition     = [for m in google_project_iam_member.agent : "${m.role} ${m.member}"] == ["roles/aiplatform.user serviceAccount:coder@gkexec-test.iam.gserviceaccount.com"]
    error_message = "project_roles must be granted to the Google service account."
  }
  assert {
    condition     = output.email == "coder@gkexec-test.iam.gserviceaccount.com" && output.service_account_annotation == { "iam.gke.io/gcp-service-account" = "coder@gkexec-test.iam.gserviceaccount.com" }
    error_message = "email and service_account_annotation must name the Google service account."
  }
}

run "project_id_invalid" {
  command = plan
  variables { project_id = "My Project" }
  expect_failures = [var.project_id]
}

run "pool_invalid" {
  command = plan
  variables { workload_identity_pool = "gkexec-test" }
  expect_failures = [var.workload_identity_pool]
}

run "namespace_invalid" {
  command = plan
  variables { namespace = "GKEXEC" }
  expect_failures = [var.namespace]
}

run "kubernetes_service_account_invalid" {
  command = plan
  variables { kubernetes_service_account = "agent_1" }
  expect_failures = [var.kubernetes_service_account]
}

run "account_id_too_short" {
  command = plan
  variables { google_service_account = { account_id = "gk" } }
  expect_failures = [var.google_service_account]
}

run "email_invalid" {
  command = plan
  variables { google_service_account = { email = "coder" } }
  expect_failures = [var.google_service_account]
}

run "role_without_prefix" {
  command = plan
  variables { project_roles = ["aiplatform.user"] }
  expect_failures = [var.project_roles]
}

run "role_too_broad" {
  command = plan
  variables { project_roles = ["roles/editor"] }
  expect_failures = [var.project_roles]
}
