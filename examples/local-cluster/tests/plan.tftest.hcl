# The example plans against the real kubectl provider's schema, without a cluster. The e2e tests
# apply it for real to the local cluster.
mock_provider "kubectl" {}

run "defaults" {
  command = plan

  assert {
    condition     = output.namespace == "gkexec" && output.agent_service_account == "gkexec-agent" && output.runtime_class_name == "gvisor"
    error_message = "Defaults: namespace gkexec, ServiceAccount gkexec-agent, RuntimeClass gvisor."
  }
  assert {
    condition     = !contains(keys(module.sandbox_namespace.manifests), "runtimeclass")
    error_message = "The local cluster has its own RuntimeClass; the example must not manage it by default."
  }
}

run "fresh_namespace_with_token_and_small_quota" {
  command = plan

  variables {
    host                   = "https://127.0.0.1:6443"
    token                  = "not-a-real-token"
    cluster_ca_certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    namespace              = "e2e-abc123"
    agent_service_account  = "e2e-agent"
    quota                  = { jobs = 2, pods = 3, configmaps = 3 }
  }

  assert {
    condition     = yamldecode(module.sandbox_namespace.manifests.rolebinding).subjects[0] == { kind = "ServiceAccount", name = "e2e-agent", namespace = "e2e-abc123" }
    error_message = "namespace and agent_service_account must reach the RoleBinding."
  }
  assert {
    condition     = yamldecode(module.sandbox_namespace.manifests.resourcequota).spec.hard["count/jobs.batch"] == "2" && yamldecode(module.sandbox_namespace.manifests.resourcequota).spec.hard["requests.cpu"] == "12"
    error_message = "quota overrides must pass through, unset fields keeping the module's defaults."
  }
}

run "host_must_be_https" {
  command = plan
  variables { host = "127.0.0.1:6443" }
  expect_failures = [var.host]
}

run "warm_pool_passes_through" {
  command = plan

  variables {
    warm_pool = { replicas = 1 }
  }

  assert {
    condition     = yamldecode(module.sandbox_namespace.manifests["warm-pool"]).spec.replicas == 1
    error_message = "warm_pool must reach the module: a Deployment of 1 idle sandbox Pod."
  }
}
