# The example plans against the real kubectl provider's schema, without a cluster.
mock_provider "kubectl" {}

run "gke_with_workload_identity" {
  command = plan

  variables {
    agent_namespace     = "agents"
    gcp_service_account = "gkexec-agent@my-project.iam.gserviceaccount.com"
  }

  assert {
    condition     = output.namespace == "gkexec" && output.agent_service_account == "gkexec-agent" && output.agent_namespace == "agents"
    error_message = "The example must create namespace gkexec, and ServiceAccount gkexec-agent in the agent's namespace."
  }
  assert {
    condition     = yamldecode(module.sandbox_namespace.manifests.rolebinding).subjects == [{ kind = "ServiceAccount", name = "gkexec-agent", namespace = "agents" }]
    error_message = "agent_namespace must reach the module: the RoleBinding binds the ServiceAccount of the agent's namespace."
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
    cluster_ranges = { pod_cidrs = ["10.12.0.0/14"], service_cidrs = ["10.16.0.0/20"], control_plane_cidrs = ["172.16.0.2/32"] }
  }

  assert {
    condition     = contains(keys(module.sandbox_namespace.manifests), "runtimeclass")
    error_message = "gke_sandbox = false must create the gvisor RuntimeClass."
  }
  assert {
    condition     = length(yamldecode(module.sandbox_namespace.manifests["networkpolicy-egress"]).spec.egress) == 2 && yamldecode(module.sandbox_namespace.manifests["networkpolicy-egress"]).spec.egress[1].to[0].ipBlock.except == ["10.12.0.0/14", "10.16.0.0/20"]
    error_message = "sandbox_egress and cluster_ranges must pass through to the module (DNS plus one destination, without the cluster's Pod and Service ranges inside it)."
  }
}
