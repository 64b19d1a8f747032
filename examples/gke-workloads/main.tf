# Stage 2 of 2: the Kubernetes objects, in a cluster that stage 1 (../gke) created. The kubectl
# provider is configured from a data source read at plan time, never from a resource of this root
# module, so plan, apply and destroy here always talk to a cluster that exists.
provider "google" {
  project = var.project_id
}

data "google_container_cluster" "this" {
  project  = var.project_id
  location = var.location
  name     = var.cluster_name
}

data "google_client_config" "current" {}

locals {
  dns_endpoint = data.google_container_cluster.this.control_plane_endpoints_config[0].dns_endpoint_config[0].endpoint
}

# The DNS endpoint serves a publicly trusted certificate and checks the caller's IAM permission on
# the cluster before Kubernetes RBAC applies: no CA certificate, no IP allow list.
provider "kubectl" {
  host             = "https://${local.dns_endpoint}"
  token            = data.google_client_config.current.access_token
  load_config_file = false
}

# The agent's own namespace: the sandbox namespace admits nothing but sandboxes, and what the agent
# may do there (pods/attach, pods patch and delete) must never reach the agent itself.
resource "kubectl_manifest" "agent_namespace" {
  yaml_body         = templatefile("${path.module}/templates/agent-namespace.yaml.tftpl", { namespace = var.agent_namespace })
  server_side_apply = true
  force_conflicts   = true
  wait              = true
}

module "sandbox_namespace" {
  source = "../../terraform/modules/sandbox-namespace"

  namespace = var.namespace
  # Created in the agent's namespace and bound into the sandbox namespace.
  agent_service_account = {
    name                = "gkexec-agent"
    namespace           = var.agent_namespace
    gcp_service_account = var.agent_google_service_account
  }

  # The agent's ServiceAccount goes into the agent's namespace, which must exist first.
  depends_on = [kubectl_manifest.agent_namespace]
}

# The agent. It needs no RuntimeClass: only the sandboxes it starts run under gVisor.
resource "kubectl_manifest" "agent" {
  yaml_body = templatefile("${path.module}/templates/agent-deployment.yaml.tftpl", {
    namespace         = module.sandbox_namespace.agent_namespace
    sandbox_namespace = module.sandbox_namespace.namespace
    service_account   = module.sandbox_namespace.agent_service_account
    agent             = var.agent
    env = merge(
      { GKEXEC_NAMESPACE = module.sandbox_namespace.namespace },
      var.agent.sidecar_image == null ? {} : { GKEXEC_URL = "http://127.0.0.1:8080" },
      var.agent.env,
    )
  })
  server_side_apply = true
  force_conflicts   = true
  wait_for_rollout  = true
}
