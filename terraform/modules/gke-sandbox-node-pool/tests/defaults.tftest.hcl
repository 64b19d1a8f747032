# Plan-only against the real google provider schema (offline: test/tfprovider-replay).
mock_provider "google" {}

variables {
  project_id            = "gkexec-test"
  cluster_name          = "gkexec"
  location              = "europe-west1"
  name                  = "sandbox"
  service_account_email = "gkexec-nodes@gkexec-test.iam.gserviceaccount.com"
}

run "sandbox_pool_defaults" {
  command = plan

  assert {
    condition     = google_container_node_pool.this.node_config[0].sandbox_config[0].type == "GVISOR" && google_container_node_pool.this.node_config[0].image_type == "COS_CONTAINERD"
    error_message = "A pool is gVisor (sandbox_config.type = GVISOR) on COS_CONTAINERD by default."
  }
  assert {
    condition     = length(google_container_node_pool.this.node_config[0].taint) == 0
    error_message = "GKE taints sandbox nodes sandbox.gke.io/runtime=gvisor itself; the module must not add taints of its own."
  }
  assert {
    condition     = google_container_node_pool.this.name_prefix == "sandbox-"
    error_message = "The pool must get a generated name (name_prefix), so that a replacement can be created before the old pool is deleted."
  }
  assert {
    condition     = length(google_container_node_pool.this.node_config[0].labels) == 1 && google_container_node_pool.this.node_config[0].labels["gkexec.dev/node-pool"] == "sandbox" && output.node_labels["gkexec.dev/node-pool"] == "sandbox"
    error_message = "Nodes must carry the stable label gkexec.dev/node-pool=<name>."
  }
  assert {
    condition = (google_container_node_pool.this.autoscaling[0].total_min_node_count == 1 && google_container_node_pool.this.autoscaling[0].total_max_node_count == 5 &&
      google_container_node_pool.this.autoscaling[0].min_node_count == null && google_container_node_pool.this.autoscaling[0].max_node_count == null &&
    google_container_node_pool.this.autoscaling[0].location_policy == "BALANCED")
    error_message = "Default autoscaling: 1-5 nodes for the whole pool (total_*, not per zone), BALANCED over zones."
  }
  assert {
    condition = (google_container_node_pool.this.upgrade_settings[0].strategy == "SURGE" && google_container_node_pool.this.upgrade_settings[0].max_surge == 1 &&
    google_container_node_pool.this.upgrade_settings[0].max_unavailable == 0 && length(google_container_node_pool.this.upgrade_settings[0].blue_green_settings) == 0)
    error_message = "Default upgrades: surge, one new node first, none unavailable, no blue-green settings."
  }
  assert {
    condition     = google_container_node_pool.this.management[0].auto_repair && google_container_node_pool.this.management[0].auto_upgrade
    error_message = "Node auto-repair and auto-upgrade must be on (a release channel requires auto-upgrade)."
  }
  assert {
    condition     = google_container_node_pool.this.node_config[0].gcfs_config[0].enabled == true
    error_message = "Image streaming (gcfs_config) must be on by default."
  }
  assert {
    condition     = google_container_node_pool.this.node_config[0].workload_metadata_config[0].mode == "GKE_METADATA" && google_container_node_pool.this.node_config[0].shielded_instance_config[0].enable_secure_boot && google_container_node_pool.this.node_config[0].shielded_instance_config[0].enable_integrity_monitoring
    error_message = "GKE metadata server, secure boot and integrity monitoring on every node."
  }
  assert {
    condition     = google_container_node_pool.this.node_config[0].service_account == "gkexec-nodes@gkexec-test.iam.gserviceaccount.com" && google_container_node_pool.this.node_config[0].machine_type == "e2-standard-4" && google_container_node_pool.this.node_config[0].disk_size_gb == 100
    error_message = "Nodes run as the given service account, e2-standard-4 with 100 GB by default."
  }
  assert {
    condition     = google_container_node_pool.this.cluster == "gkexec" && google_container_node_pool.this.location == "europe-west1"
    error_message = "The pool joins the given cluster in its location."
  }
  assert {
    condition     = output.runtime_class_name == "gvisor"
    error_message = "A gVisor pool's Pods use the gvisor RuntimeClass."
  }
}

run "system_pool" {
  command = plan

  variables {
    name           = "system"
    gvisor         = false
    node_locations = ["europe-west1-b", "europe-west1-c"]
    node_config    = { machine_type = "e2-standard-2", disk_size_gb = 50, image_type = "UBUNTU_CONTAINERD", image_streaming = false }
    autoscaling    = { total_min_nodes = 2, total_max_nodes = 3, location_policy = "ANY" }
  }

  assert {
    condition     = length(google_container_node_pool.this.node_config[0].sandbox_config) == 0 && output.runtime_class_name == null
    error_message = "gvisor = false must leave sandbox_config out."
  }
  assert {
    condition     = google_container_node_pool.this.node_config[0].gcfs_config[0].enabled == false && google_container_node_pool.this.node_config[0].image_type == "UBUNTU_CONTAINERD"
    error_message = "image_streaming = false must turn GCFS off; image_type must follow node_config."
  }
  assert {
    condition     = google_container_node_pool.this.autoscaling[0].total_min_node_count == 2 && google_container_node_pool.this.autoscaling[0].location_policy == "ANY" && google_container_node_pool.this.node_locations == toset(["europe-west1-b", "europe-west1-c"])
    error_message = "Autoscaling and zones must follow the variables."
  }
}

run "blue_green" {
  command = plan

  variables {
    upgrade = {
      strategy   = "BLUE_GREEN"
      blue_green = { node_pool_soak_duration = "3600s", batch_percentage = 0.5 }
    }
  }

  assert {
    condition     = google_container_node_pool.this.upgrade_settings[0].strategy == "BLUE_GREEN" && length(google_container_node_pool.this.upgrade_settings[0].blue_green_settings) == 1
    error_message = "strategy BLUE_GREEN must come with blue_green_settings."
  }
  assert {
    condition = (google_container_node_pool.this.upgrade_settings[0].blue_green_settings[0].node_pool_soak_duration == "3600s" &&
      google_container_node_pool.this.upgrade_settings[0].blue_green_settings[0].standard_rollout_policy[0].batch_percentage == 0.5 &&
    google_container_node_pool.this.upgrade_settings[0].blue_green_settings[0].standard_rollout_policy[0].batch_soak_duration == "300s")
    error_message = "Blue-green settings must follow var.upgrade.blue_green."
  }
}

run "blue_green_defaults" {
  command = plan

  variables {
    upgrade = { strategy = "BLUE_GREEN" }
  }

  assert {
    condition = (google_container_node_pool.this.upgrade_settings[0].blue_green_settings[0].node_pool_soak_duration == "1800s" &&
      google_container_node_pool.this.upgrade_settings[0].blue_green_settings[0].standard_rollout_policy[0].batch_node_count == 1 &&
    google_container_node_pool.this.upgrade_settings[0].blue_green_settings[0].standard_rollout_policy[0].batch_soak_duration == "300s")
    error_message = "Blue-green defaults: soak the old pool 30 min, drain one node per batch, 5 min between batches."
  }
}
