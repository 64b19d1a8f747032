# The example plans against the real kubectl provider's schema, without a cluster.
mock_provider "kubectl" {}

run "gke_with_workload_identity" {
  command = plan

  variables {
    gcp_service_account = "gkexec-agent@my-project.iam.gserviceaccount.com"
  }

  assert {
    condition     = output.namespace == "gkexec" && output.agent_service_account == "gkexec-agent"
    error_message = "The example must create namespace gkexec with ServiceAccount gkexec-agent."
  }
  assert {
    condition     = yamldecode(module.sandbox_namespace.manifests.serviceaccount).metadata.annotations["iam.gke.io/gcp-service-account"] == "gkexec-agent@my-project.iam.gserviceaccount.com"
    error_message = "gcp_service_account must reach the ServiceAccount's Workload Identity annotation."
  }
  assert {
    condition     = !contains(keys(module.sandbox_namespace.manifests), "runtimeclass") && !contains(keys(module.sandbox_namespace.manifests), "networkpolicy-egress")
    error_message = "On GKE Sandbox the example must not create a RuntimeClass, nor allow egress unless asked."
  }
}

run "other_cluster_with_egress" {
  command = plan

  variables {
    gke_sandbox    = false
    sandbox_egress = { allow_dns = true, destinations = [{ cidr = "10.0.0.0/8", ports = [{ port = 443 }] }] }
  }

  assert {
    condition     = contains(keys(module.sandbox_namespace.manifests), "runtimeclass")
    error_message = "gke_sandbox = false must create the gvisor RuntimeClass."
  }
  assert {
    condition     = length(yamldecode(module.sandbox_namespace.manifests["networkpolicy-egress"]).spec.egress) == 2
    error_message = "sandbox_egress must pass through to the module (DNS plus one destination)."
  }
}
