locals {
  # A label that survives replacement: GKE's own cloud.google.com/gke-nodepool carries the
  # generated name, which changes whenever the pool is replaced (create before destroy).
  node_labels = { "gkexec.dev/node-pool" = var.name }

  surge = var.upgrade.strategy == "SURGE"
}

resource "google_container_node_pool" "this" {
  project  = var.project_id
  cluster  = var.cluster_name
  location = var.location
  # A generated name (<name>-<timestamp>) so that a change that forces replacement can create the
  # new pool before it deletes the old one.
  name_prefix    = "${var.name}-"
  node_locations = length(var.node_locations) > 0 ? var.node_locations : null

  # Totals over all the pool's zones, not per zone: a regional pool with min 1 gets one node, not
  # one per zone. BALANCED spreads them across zones.
  autoscaling {
    total_min_node_count = var.autoscaling.total_min_nodes
    total_max_node_count = var.autoscaling.total_max_nodes
    location_policy      = var.autoscaling.location_policy
  }

  # A release channel upgrades nodes; auto_upgrade cannot be turned off on one. When it happens
  # is the cluster's maintenance policy, how is upgrade_settings.
  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    strategy        = var.upgrade.strategy
    max_surge       = local.surge ? var.upgrade.max_surge : null
    max_unavailable = local.surge ? var.upgrade.max_unavailable : null

    dynamic "blue_green_settings" {
      for_each = local.surge ? [] : [var.upgrade.blue_green]
      content {
        node_pool_soak_duration = blue_green_settings.value.node_pool_soak_duration
        standard_rollout_policy {
          batch_node_count    = blue_green_settings.value.batch_percentage == null ? blue_green_settings.value.batch_node_count : null
          batch_percentage    = blue_green_settings.value.batch_percentage
          batch_soak_duration = blue_green_settings.value.batch_soak_duration
        }
      }
    }
  }

  node_config {
    machine_type    = var.node_config.machine_type
    image_type      = var.node_config.image_type
    disk_size_gb    = var.node_config.disk_size_gb
    disk_type       = var.node_config.disk_type
    service_account = var.service_account_email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    labels          = local.node_labels
    resource_labels = var.resource_labels

    # GKE Sandbox. GKE itself labels and taints these nodes sandbox.gke.io/runtime=gvisor and
    # installs the gvisor RuntimeClass that selects and tolerates them: do not add them here.
    dynamic "sandbox_config" {
      for_each = var.gvisor ? [1] : []
      content {
        type = "GVISOR"
      }
    }

    # Image streaming: containers start while their image is still being fetched, from Artifact
    # Registry only; other registries are pulled as before.
    gcfs_config {
      enabled = var.node_config.image_streaming
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    # Workload Identity's metadata server: Pods never see the node's credentials.
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}
