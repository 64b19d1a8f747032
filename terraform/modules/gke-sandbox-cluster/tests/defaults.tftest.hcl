# Plan-only against the real google provider schema (offline: test/tfprovider-replay).
mock_provider "google" {}

variables {
  project_id = "gkexec-test"
  location   = "europe-west1"
}

run "defaults" {
  command = plan

  assert {
    condition     = google_container_node_pool.pool["sandbox"].node_config[0].sandbox_config[0].type == "GVISOR"
    error_message = "The sandbox pool must run gVisor (node_config.sandbox_config.type = GVISOR)."
  }
  assert {
    condition     = length(google_container_node_pool.pool["system"].node_config[0].sandbox_config) == 0
    error_message = "The system pool must not run gVisor: GKE Sandbox needs a pool for system Pods."
  }
  assert {
    condition     = google_container_node_pool.pool["sandbox"].node_config[0].image_type == "COS_CONTAINERD"
    error_message = "The sandbox pool must use COS_CONTAINERD."
  }
  assert {
    condition     = length(google_container_node_pool.pool["sandbox"].node_config[0].taint) == 0
    error_message = "GKE taints sandbox nodes sandbox.gke.io/runtime=gvisor itself; the module must not add taints of its own."
  }
  assert {
    condition     = google_container_cluster.this.workload_identity_config[0].workload_pool == "gkexec-test.svc.id.goog"
    error_message = "Workload Identity must be on, with the project's pool."
  }
  assert {
    condition     = alltrue([for p in google_container_node_pool.pool : p.node_config[0].workload_metadata_config[0].mode == "GKE_METADATA"])
    error_message = "Every pool must use the GKE metadata server (Workload Identity), hiding the node's credentials."
  }
  assert {
    condition     = google_container_cluster.this.datapath_provider == "ADVANCED_DATAPATH" && google_container_cluster.this.networking_mode == "VPC_NATIVE"
    error_message = "Dataplane V2 (ADVANCED_DATAPATH, VPC-native) must be on so NetworkPolicy is enforced."
  }
  assert {
    condition     = google_container_cluster.this.deletion_protection == true
    error_message = "deletion_protection must default to true."
  }
  assert {
    condition     = google_container_cluster.this.release_channel[0].channel == "REGULAR"
    error_message = "The release channel must default to REGULAR."
  }
  assert {
    condition     = google_container_cluster.this.enable_shielded_nodes && alltrue([for p in google_container_node_pool.pool : p.node_config[0].shielded_instance_config[0].enable_secure_boot && p.node_config[0].shielded_instance_config[0].enable_integrity_monitoring])
    error_message = "Shielded nodes with secure boot and integrity monitoring must be on for every pool."
  }
  assert {
    condition     = google_container_cluster.this.remove_default_node_pool && google_container_cluster.this.enable_legacy_abac == false
    error_message = "The default node pool must be removed and legacy ABAC off."
  }
  assert {
    condition     = length(google_container_cluster.this.private_cluster_config) == 0 && length(google_container_cluster.this.master_authorized_networks_config) == 0
    error_message = "Private nodes and authorized networks are off unless asked for."
  }
  assert {
    condition = (google_container_node_pool.pool["sandbox"].autoscaling[0].min_node_count == 1 && google_container_node_pool.pool["sandbox"].autoscaling[0].max_node_count == 5 &&
    google_container_node_pool.pool["system"].autoscaling[0].min_node_count == 1 && google_container_node_pool.pool["system"].autoscaling[0].max_node_count == 3)
    error_message = "Default autoscaling: system 1-3, sandbox 1-5 nodes per zone."
  }
  assert {
    condition     = alltrue([for p in google_container_node_pool.pool : p.management[0].auto_repair && p.management[0].auto_upgrade])
    error_message = "Node auto-repair and auto-upgrade must be on."
  }

  # A dedicated node service account with the minimal roles, and nothing else.
  assert {
    condition     = length(google_service_account.nodes) == 1 && google_service_account.nodes[0].account_id == "gkexec-nodes"
    error_message = "The module must create the node service account gkexec-nodes."
  }
  assert {
    condition = toset([for m in google_project_iam_member.nodes : m.role]) == toset([
      "roles/logging.logWriter",
      "roles/monitoring.metricWriter",
      "roles/monitoring.viewer",
      "roles/stackdriver.resourceMetadata.writer",
    ])
    error_message = "The node service account must get exactly logWriter, metricWriter, monitoring.viewer and resourceMetadata.writer."
  }
  assert {
    condition     = length(google_artifact_registry_repository_iam_member.nodes) == 0
    error_message = "No Artifact Registry grants unless image_repositories lists some."
  }

  assert {
    condition     = output.runtime_class_name == "gvisor" && output.sandbox_node_pool == "sandbox" && output.cluster_name == "gkexec" && output.location == "europe-west1"
    error_message = "Outputs must name the gvisor RuntimeClass, the sandbox pool, the cluster and its location."
  }
  assert {
    condition     = output.get_credentials_command == "gcloud container clusters get-credentials gkexec --location europe-west1 --project gkexec-test"
    error_message = "get_credentials_command must be the gcloud command for this cluster."
  }
}

run "zonal_private_with_existing_service_account" {
  command = plan

  variables {
    name                       = "sandbox-a"
    location                   = "europe-west1-b"
    node_locations             = ["europe-west1-b", "europe-west1-c"]
    release_channel            = "STABLE"
    private_nodes              = true
    master_authorized_networks = [{ cidr_block = "203.0.113.0/24", display_name = "office" }]
    node_service_account_email = "nodes@gkexec-test.iam.gserviceaccount.com"
    image_repositories         = [{ location = "europe-west1", repository = "sandbox-images" }, { project = "shared-images", location = "europe", repository = "base" }]
    sandbox_pool               = { min_nodes = 0, max_nodes = 10, machine_type = "n2-standard-8" }
    network = {
      network                       = "vpc"
      subnetwork                    = "gke"
      pods_secondary_range_name     = "pods"
      services_secondary_range_name = "services"
    }
    deletion_protection = false
  }

  assert {
    condition     = google_container_cluster.this.location == "europe-west1-b" && google_container_cluster.this.release_channel[0].channel == "STABLE" && google_container_cluster.this.deletion_protection == false
    error_message = "Location, release channel and deletion protection must follow the variables."
  }
  assert {
    condition     = google_container_cluster.this.private_cluster_config[0].enable_private_nodes && !google_container_cluster.this.private_cluster_config[0].enable_private_endpoint
    error_message = "private_nodes must give nodes private IPs and keep the control plane's public endpoint."
  }
  assert {
    condition     = [for b in google_container_cluster.this.master_authorized_networks_config[0].cidr_blocks : b.cidr_block] == ["203.0.113.0/24"]
    error_message = "master_authorized_networks must restrict the control plane endpoint."
  }
  assert {
    condition     = google_container_cluster.this.ip_allocation_policy[0].cluster_secondary_range_name == "pods" && google_container_cluster.this.subnetwork == "gke"
    error_message = "The named secondary ranges must be used."
  }
  assert {
    condition     = length(google_service_account.nodes) == 0 && alltrue([for p in google_container_node_pool.pool : p.node_config[0].service_account == "nodes@gkexec-test.iam.gserviceaccount.com"])
    error_message = "With node_service_account_email no service account is created and every pool runs as the given one."
  }
  assert {
    condition = toset(keys(google_artifact_registry_repository_iam_member.nodes)) == toset(["gkexec-test/europe-west1/sandbox-images", "shared-images/europe/base"]) && alltrue([
    for m in google_artifact_registry_repository_iam_member.nodes : m.role == "roles/artifactregistry.reader" && m.member == "serviceAccount:nodes@gkexec-test.iam.gserviceaccount.com"])
    error_message = "Each image repository must grant artifactregistry.reader to the node service account, and nothing wider."
  }
  assert {
    condition     = google_container_node_pool.pool["sandbox"].autoscaling[0].min_node_count == 0 && google_container_node_pool.pool["sandbox"].node_config[0].machine_type == "n2-standard-8" && google_container_node_pool.pool["sandbox"].node_config[0].sandbox_config[0].type == "GVISOR"
    error_message = "The sandbox pool's size and machine type must follow var.sandbox_pool and keep gVisor."
  }
}
