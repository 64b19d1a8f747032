locals {
  # What nodes need and nothing more: write logs and metrics, read monitoring config, write
  # resource metadata. (GKE's roles/container.defaultNodeServiceAccount bundles the same.)
  node_roles = [
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ]
  node_service_account = coalesce(var.node_service_account_email, one(google_service_account.nodes[*].email))

  # The two pools differ only in size and in sandbox_config: gVisor on one, not the other.
  node_pools = {
    system  = merge(var.system_pool, { gvisor = false })
    sandbox = merge(var.sandbox_pool, { gvisor = true })
  }

  # Every node: shielded, Workload Identity's metadata server instead of the node's credentials.
  oauth_scopes = ["https://www.googleapis.com/auth/cloud-platform"]
}

resource "google_service_account" "nodes" {
  count = var.node_service_account_email == null ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name}-nodes"
  display_name = "GKE nodes of ${var.name} (gkexec)"
  description  = "Least-privilege identity of the nodes of GKE cluster ${var.name}: logs and metrics only."
}

resource "google_project_iam_member" "nodes" {
  for_each = toset(local.node_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${local.node_service_account}"
}

resource "google_artifact_registry_repository_iam_member" "nodes" {
  for_each = { for r in var.image_repositories : "${coalesce(r.project, var.project_id)}/${r.location}/${r.repository}" => r }

  project    = coalesce(each.value.project, var.project_id)
  location   = each.value.location
  repository = each.value.repository
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${local.node_service_account}"
}

resource "google_container_cluster" "this" {
  project        = var.project_id
  name           = var.name
  location       = var.location
  node_locations = length(var.node_locations) > 0 ? var.node_locations : null

  deletion_protection = var.deletion_protection
  resource_labels     = var.resource_labels

  release_channel {
    channel = var.release_channel
  }

  # Workload Identity: Pods get Google credentials only through a Kubernetes ServiceAccount bound
  # to a Google service account, never the node's.
  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  # Dataplane V2 enforces NetworkPolicy, which keeps sandbox Pods off the network.
  datapath_provider = "ADVANCED_DATAPATH"
  networking_mode   = "VPC_NATIVE"
  network           = var.network.network
  subnetwork        = var.network.subnetwork
  ip_allocation_policy {
    cluster_secondary_range_name  = var.network.pods_secondary_range_name
    services_secondary_range_name = var.network.services_secondary_range_name
  }

  dynamic "private_cluster_config" {
    for_each = var.private_nodes ? [1] : []
    content {
      enable_private_nodes    = true
      enable_private_endpoint = false
    }
  }

  dynamic "master_authorized_networks_config" {
    for_each = length(var.master_authorized_networks) > 0 ? [1] : []
    content {
      dynamic "cidr_blocks" {
        for_each = var.master_authorized_networks
        content {
          cidr_block   = cidr_blocks.value.cidr_block
          display_name = cidr_blocks.value.display_name
        }
      }
    }
  }

  enable_shielded_nodes = true
  enable_legacy_abac    = false

  # The node pools are separate resources. GKE still creates a default pool first; it is removed
  # at once, but give it the same identity and hardening so it never runs as the default compute SA.
  remove_default_node_pool = true
  initial_node_count       = 1
  node_config {
    service_account = local.node_service_account
    oauth_scopes    = local.oauth_scopes
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  lifecycle {
    # node_config above only describes the removed default pool; changing it would recreate the cluster.
    ignore_changes = [node_config, initial_node_count]
  }

  depends_on = [google_project_iam_member.nodes]
}

resource "google_container_node_pool" "pool" {
  for_each = local.node_pools

  project        = var.project_id
  cluster        = google_container_cluster.this.name
  location       = var.location
  name           = each.key
  node_locations = length(var.node_locations) > 0 ? var.node_locations : null

  autoscaling {
    min_node_count = each.value.min_nodes
    max_node_count = each.value.max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = each.value.machine_type
    image_type      = each.value.image_type
    disk_size_gb    = each.value.disk_size_gb
    disk_type       = each.value.disk_type
    service_account = local.node_service_account
    oauth_scopes    = local.oauth_scopes
    resource_labels = var.resource_labels

    # GKE Sandbox. GKE itself labels and taints these nodes sandbox.gke.io/runtime=gvisor and
    # installs the gvisor RuntimeClass that selects and tolerates them: do not add them here.
    dynamic "sandbox_config" {
      for_each = each.value.gvisor ? [1] : []
      content {
        type = "GVISOR"
      }
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}
