provider "google" {
  project = var.project_id
}

# 1. The cluster: a system pool and a gVisor pool, Dataplane V2, Workload Identity.
module "cluster" {
  source = "../../terraform/modules/gke-sandbox-cluster"

  project_id = var.project_id
  name       = var.cluster_name
  location   = var.location
  # An example is meant to be destroyed; keep the default (true) for real clusters.
  deletion_protection = false
}

# 2. The agent's Google identity, usable only by the Kubernetes ServiceAccount namespace/gkexec-agent.
module "agent_identity" {
  source = "../../terraform/modules/workload-identity"

  project_id                 = var.project_id
  workload_identity_pool     = module.cluster.workload_identity_pool
  namespace                  = var.namespace
  kubernetes_service_account = "gkexec-agent"
  project_roles              = var.agent.project_roles
}

# 3. Kubernetes objects go through the cluster's endpoint with the caller's Google credentials.
data "google_client_config" "current" {}

provider "kubectl" {
  host                   = "https://${module.cluster.endpoint}"
  cluster_ca_certificate = base64decode(module.cluster.ca_certificate)
  token                  = data.google_client_config.current.access_token
  load_config_file       = false
}

module "sandbox_namespace" {
  source = "../../terraform/modules/sandbox-namespace"

  namespace = var.namespace
  agent_service_account = {
    name                = "gkexec-agent"
    gcp_service_account = module.agent_identity.email
  }
}

# 4. The agent. It needs no RuntimeClass: only the sandboxes it starts run under gVisor.
resource "kubectl_manifest" "agent" {
  yaml_body = templatefile("${path.module}/templates/agent-deployment.yaml.tftpl", {
    namespace       = module.sandbox_namespace.namespace
    service_account = module.sandbox_namespace.agent_service_account
    agent           = var.agent
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
