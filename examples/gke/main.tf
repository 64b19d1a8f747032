# Stage 1 of 2: everything Google Cloud. Stage 2 (../gke-workloads) applies the Kubernetes
# objects through the cluster this stage creates. Two root modules, so that no provider is ever
# configured from a resource of its own root module: replacing or destroying the cluster here never
# leaves a Kubernetes provider pointing at a cluster that is not there yet, or any more.
provider "google" {
  project = var.project_id
}

# 1. The cluster: private nodes in its own subnetwork (Private Google Access, Cloud NAT), the
#    control plane on its DNS endpoint only, Dataplane V2, Workload Identity, maintenance window.
module "cluster" {
  source = "../../terraform/modules/gke-sandbox-cluster"

  project_id = var.project_id
  name       = var.cluster_name
  location   = var.location
  access = {
    dns_endpoint = { kubernetes_tokens = var.kubernetes_tokens_via_dns }
  }
  # An example is meant to be destroyed; keep the default (true) for real clusters.
  deletion_protection = false
}

# 2. The node pools: one for system Pods and the agent, one gVisor pool for the sandboxes. A
#    second sandbox pool (another machine type) is one more module block.
module "system_pool" {
  source = "../../terraform/modules/gke-sandbox-node-pool"

  project_id            = module.cluster.project_id
  cluster_name          = module.cluster.cluster_name
  location              = module.cluster.location
  service_account_email = module.cluster.node_service_account_email

  name        = "system"
  gvisor      = false
  node_config = { machine_type = "e2-standard-2", disk_size_gb = 50 }
  autoscaling = { total_min_nodes = 1, total_max_nodes = 3 }
}

module "sandbox_pool" {
  source = "../../terraform/modules/gke-sandbox-node-pool"

  project_id            = module.cluster.project_id
  cluster_name          = module.cluster.cluster_name
  location              = module.cluster.location
  service_account_email = module.cluster.node_service_account_email

  name        = "sandbox"
  node_config = { machine_type = var.sandbox_pool.machine_type }
  autoscaling = { total_min_nodes = var.sandbox_pool.total_min_nodes, total_max_nodes = var.sandbox_pool.total_max_nodes }
}

# 3. The agent's Google identity, usable only by the Kubernetes ServiceAccount
#    agent_namespace/gkexec-agent that stage 2 creates (the agent runs in a namespace of its own, never
#    among the sandboxes).
module "agent_identity" {
  source = "../../terraform/modules/workload-identity"

  project_id                 = var.project_id
  workload_identity_pool     = module.cluster.workload_identity_pool
  namespace                  = var.agent_namespace
  kubernetes_service_account = "gkexec-agent"
  project_roles              = var.agent_project_roles
}
