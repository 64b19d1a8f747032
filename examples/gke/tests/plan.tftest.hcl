# Stage 1 plans as a whole against the real google provider schema, without a project.
mock_provider "google" {
  # OpenTofu's mocks invent values for computed attributes during plan; make the email a real
  # one so the modules' validations accept it (Terraform leaves it unknown).
  mock_resource "google_service_account" {
    defaults = {
      email = "gkexec-nodes@gkexec-example.iam.gserviceaccount.com"
    }
  }
}

variables {
  project_id          = "gkexec-example"
  agent_project_roles = ["roles/aiplatform.user"]
}

run "plan" {
  command = plan

  assert {
    condition     = module.cluster.cluster_name == "gkexec" && output.namespace == "gkexec" && output.location == "us-central1"
    error_message = "Stage 1 must create the gkexec cluster in us-central1 for the gkexec namespace."
  }
  assert {
    condition     = output.agent_namespace == "agent" && output.agent_namespace != output.namespace && module.agent_identity.kubernetes_member == "serviceAccount:gkexec-example.svc.id.goog[agent/gkexec-agent]"
    error_message = "The agent's Google identity must be bound to gkexec-agent in the agent's own namespace, not the sandbox namespace."
  }
  assert {
    condition     = output.runtime_class_name == "gvisor" && output.sandbox_node_labels["gkexec.dev/node-pool"] == "sandbox"
    error_message = "The sandbox pool must provide the gvisor RuntimeClass and its stable node label."
  }
  assert {
    condition     = output.get_credentials_command == "gcloud container clusters get-credentials gkexec --location us-central1 --project gkexec-example --dns-endpoint"
    error_message = "Credentials go through the DNS endpoint."
  }
}

run "agent_namespace_must_not_be_the_sandbox_namespace" {
  command = plan
  variables { agent_namespace = "gkexec" }
  expect_failures = [var.agent_namespace]
}
