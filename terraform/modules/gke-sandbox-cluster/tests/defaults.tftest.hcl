# Plan-only against the real google provider schema (offline: test/tfprovider-replay).
mock_provider "google" {
  mock_data "google_compute_subnetwork" {
    defaults = {
      private_ip_google_access = true
    }
  }
}

variables {
  project_id = "gkexec-test"
  location   = "europe-west1"
}

run "defaults" {
  command = plan

  assert {
    condition     = google_container_cluster.this.workload_identity_config[0].workload_pool == "gkexec-test.svc.id.goog"
    error_message = "Workload Identity must be on, with the project's pool."
  }
  assert {
    condition     = google_container_cluster.this.datapath_provider == "ADVANCED_DATAPATH" && google_container_cluster.this.networking_mode == "VPC_NATIVE"
    error_message = "Dataplane V2 (ADVANCED_DATAPATH, VPC-native) must be on so NetworkPolicy is enforced."
  }
  assert {
    condition     = google_container_cluster.this.enable_fqdn_network_policy == false && output.fqdn_network_policy_enabled == false
    error_message = "FQDN network policies must be off by default (GKE bills them), and the output must say so."
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
    condition     = google_container_cluster.this.enable_shielded_nodes && google_container_cluster.this.remove_default_node_pool && google_container_cluster.this.enable_legacy_abac == false
    error_message = "Shielded nodes on, the default node pool removed, legacy ABAC off."
  }

  # Exposure: private nodes, the DNS endpoint only.
  assert {
    condition     = google_container_cluster.this.private_cluster_config[0].enable_private_nodes == true
    error_message = "Nodes must be private (no external addresses) by default."
  }
  assert {
    condition = (google_container_cluster.this.control_plane_endpoints_config[0].ip_endpoints_config[0].enabled == false &&
      google_container_cluster.this.control_plane_endpoints_config[0].dns_endpoint_config[0].allow_external_traffic == true &&
    google_container_cluster.this.control_plane_endpoints_config[0].dns_endpoint_config[0].enable_k8s_tokens_via_dns == false)
    error_message = "By default the control plane answers on its IAM-checked DNS endpoint only: IP endpoints off, no Kubernetes tokens via DNS."
  }
  assert {
    condition     = length(google_container_cluster.this.master_authorized_networks_config) == 0
    error_message = "No authorized networks without IP endpoints."
  }

  # The network the default needs end to end: subnetwork with Private Google Access, NAT.
  assert {
    condition = (google_compute_subnetwork.nodes[0].name == "gkexec-nodes" && google_compute_subnetwork.nodes[0].region == "europe-west1" &&
      google_compute_subnetwork.nodes[0].network == "default" && google_compute_subnetwork.nodes[0].private_ip_google_access == true &&
    google_compute_subnetwork.nodes[0].ip_cidr_range == "10.10.0.0/20")
    error_message = "The module must create the subnetwork gkexec-nodes (10.10.0.0/20) with Private Google Access in the cluster's region."
  }
  assert {
    condition     = { for r in google_compute_subnetwork.nodes[0].secondary_ip_range : r.range_name => r.ip_cidr_range } == { pods = "10.12.0.0/14", services = "10.16.0.0/20" }
    error_message = "The subnetwork's secondary ranges must be pods 10.12.0.0/14 and services 10.16.0.0/20."
  }
  assert {
    condition = (google_container_cluster.this.subnetwork == "projects/gkexec-test/regions/europe-west1/subnetworks/gkexec-nodes" &&
      google_container_cluster.this.ip_allocation_policy[0].cluster_secondary_range_name == "pods" &&
    google_container_cluster.this.ip_allocation_policy[0].services_secondary_range_name == "services")
    error_message = "The cluster must use the created subnetwork and its ranges."
  }
  assert {
    condition = (length(google_compute_router_nat.nat) == 1 && google_compute_router.nat[0].region == "europe-west1" &&
      google_compute_router_nat.nat[0].source_subnetwork_ip_ranges_to_nat == "LIST_OF_SUBNETWORKS" &&
    [for s in google_compute_router_nat.nat[0].subnetwork : s.name] == ["projects/gkexec-test/regions/europe-west1/subnetworks/gkexec-nodes"] && output.subnetwork == "projects/gkexec-test/regions/europe-west1/subnetworks/gkexec-nodes")
    error_message = "Cloud NAT must be on for the created subnetwork (and only it), so private nodes can pull from Docker Hub."
  }
  assert {
    condition     = length(data.google_compute_subnetwork.given) == 0
    error_message = "No subnetwork to check when the module creates it."
  }

  # Upgrades: a weekend window, no exclusions.
  assert {
    condition = (google_container_cluster.this.maintenance_policy[0].recurring_window[0].recurrence == "FREQ=WEEKLY;BYDAY=SA,SU" &&
      google_container_cluster.this.maintenance_policy[0].recurring_window[0].start_time == "2026-01-03T01:00:00Z" &&
      google_container_cluster.this.maintenance_policy[0].recurring_window[0].end_time == "2026-01-03T09:00:00Z" &&
    length(google_container_cluster.this.maintenance_policy[0].maintenance_exclusion) == 0)
    error_message = "The default maintenance window is Saturday and Sunday 01:00-09:00 UTC, with no exclusions."
  }

  # A dedicated node service account with GKE's node role, and nothing else.
  assert {
    condition     = length(google_service_account.nodes) == 1 && google_service_account.nodes[0].account_id == "gkexec-nodes"
    error_message = "The module must create the node service account gkexec-nodes."
  }
  assert {
    condition     = [for m in google_project_iam_member.nodes : m.role] == ["roles/container.defaultNodeServiceAccount"]
    error_message = "The node service account must get exactly roles/container.defaultNodeServiceAccount."
  }
  assert {
    condition     = length(google_artifact_registry_repository_iam_member.nodes) == 0
    error_message = "No Artifact Registry grants unless image_repositories lists some."
  }
  assert {
    condition     = google_container_cluster.this.node_config[0].workload_metadata_config[0].mode == "GKE_METADATA" && google_container_cluster.this.node_config[0].shielded_instance_config[0].enable_secure_boot
    error_message = "Even the removed default pool must be hardened."
  }

  assert {
    condition     = output.cluster_name == "gkexec" && output.location == "europe-west1" && output.project_id == "gkexec-test"
    error_message = "Outputs must name the cluster, its location and project."
  }
  assert {
    condition     = output.get_credentials_command == "gcloud container clusters get-credentials gkexec --location europe-west1 --project gkexec-test --dns-endpoint"
    error_message = "get_credentials_command must use the DNS endpoint."
  }
}

run "zonal_existing_subnetwork_ip_endpoints" {
  command = plan

  variables {
    name                       = "sandbox-a"
    location                   = "europe-west1-b"
    node_locations             = ["europe-west1-b", "europe-west1-c"]
    release_channel            = "STABLE"
    node_service_account_email = "nodes@gkexec-test.iam.gserviceaccount.com"
    image_repositories         = [{ location = "europe-west1", repository = "sandbox-images" }, { project = "shared-images", location = "europe", repository = "base" }]
    network = {
      network    = "projects/host/global/networks/vpc"
      subnetwork = { name = "projects/host/regions/europe-west1/subnetworks/gke", pods_range_name = "pods", services_range_name = "services" }
    }
    access = {
      dns_endpoint = { allow_external_traffic = false, kubernetes_tokens = true }
      ip_endpoints = { authorized_networks = [{ cidr_block = "203.0.113.0/24", display_name = "office" }] }
    }
    maintenance = {
      window     = { start_time = "2026-01-05T22:00:00Z", end_time = "2026-01-06T04:00:00Z", recurrence = "FREQ=DAILY" }
      exclusions = [{ name = "launch", start_time = "2026-03-01T00:00:00Z", end_time = "2026-03-15T00:00:00Z" }, { name = "q2", start_time = "2026-04-01T00:00:00Z", end_time = "2026-07-01T00:00:00Z", scope = "NO_MINOR_UPGRADES" }]
    }
    deletion_protection = false
  }

  assert {
    condition     = google_container_cluster.this.location == "europe-west1-b" && google_container_cluster.this.release_channel[0].channel == "STABLE" && google_container_cluster.this.deletion_protection == false
    error_message = "Location, release channel and deletion protection must follow the variables."
  }
  assert {
    condition = (length(google_compute_subnetwork.nodes) == 0 && length(google_compute_router_nat.nat) == 0 && length(google_compute_router.nat) == 0 &&
    google_container_cluster.this.subnetwork == "projects/host/regions/europe-west1/subnetworks/gke" && google_container_cluster.this.ip_allocation_policy[0].cluster_secondary_range_name == "pods")
    error_message = "A given subnetwork is used as is: no subnetwork, router or NAT created (cloud_nat defaults off)."
  }
  assert {
    condition     = data.google_compute_subnetwork.given[0].self_link == "projects/host/regions/europe-west1/subnetworks/gke" && data.google_compute_subnetwork.given[0].region == "europe-west1"
    error_message = "A given subnetwork of private nodes must be looked up (by self link) to check Private Google Access."
  }
  assert {
    condition     = google_container_cluster.this.control_plane_endpoints_config[0].ip_endpoints_config[0].enabled && [for b in google_container_cluster.this.master_authorized_networks_config[0].cidr_blocks : b.cidr_block] == ["203.0.113.0/24"]
    error_message = "ip_endpoints must turn the IP endpoints on, restricted to the authorized networks."
  }
  assert {
    condition     = !google_container_cluster.this.control_plane_endpoints_config[0].dns_endpoint_config[0].allow_external_traffic && google_container_cluster.this.control_plane_endpoints_config[0].dns_endpoint_config[0].enable_k8s_tokens_via_dns
    error_message = "dns_endpoint settings must follow var.access."
  }
  assert {
    condition = (google_container_cluster.this.maintenance_policy[0].recurring_window[0].recurrence == "FREQ=DAILY" &&
    toset([for e in google_container_cluster.this.maintenance_policy[0].maintenance_exclusion : "${e.exclusion_name}:${e.exclusion_options[0].scope}"]) == toset(["launch:NO_UPGRADES", "q2:NO_MINOR_UPGRADES"]))
    error_message = "The maintenance window and exclusions (scope NO_UPGRADES by default) must follow var.maintenance."
  }
  assert {
    condition     = length(google_service_account.nodes) == 0 && google_container_cluster.this.node_config[0].service_account == "nodes@gkexec-test.iam.gserviceaccount.com" && output.node_service_account_email == "nodes@gkexec-test.iam.gserviceaccount.com"
    error_message = "With node_service_account_email no service account is created and the cluster uses the given one."
  }
  assert {
    condition = toset(keys(google_artifact_registry_repository_iam_member.nodes)) == toset(["gkexec-test/europe-west1/sandbox-images", "shared-images/europe/base"]) && alltrue([
    for m in google_artifact_registry_repository_iam_member.nodes : m.role == "roles/artifactregistry.reader" && m.member == "serviceAccount:nodes@gkexec-test.iam.gserviceaccount.com"])
    error_message = "Each image repository must grant artifactregistry.reader to the node service account, and nothing wider."
  }
}

run "fqdn_network_policy" {
  command = plan

  variables {
    enable_fqdn_network_policy = true
  }

  assert {
    condition     = google_container_cluster.this.enable_fqdn_network_policy == true && google_container_cluster.this.datapath_provider == "ADVANCED_DATAPATH"
    error_message = "enable_fqdn_network_policy must turn FQDN network policies on, on Dataplane V2."
  }
  assert {
    condition     = output.fqdn_network_policy_enabled == true
    error_message = "fqdn_network_policy_enabled must be true (and known at plan, for the sandbox-namespace module's check) once the cluster enforces them."
  }
}

run "public_nodes_opt_out" {
  command = plan

  variables {
    access  = { private_nodes = false }
    network = { subnetwork = { name = "gke", pods_range_name = "pods", services_range_name = "services" }, cloud_nat = true }
  }

  assert {
    condition     = google_container_cluster.this.private_cluster_config[0].enable_private_nodes == false && length(data.google_compute_subnetwork.given) == 0
    error_message = "private_nodes = false gives nodes external addresses, and no Private Google Access check is needed."
  }
  assert {
    condition     = [for s in google_compute_router_nat.nat[0].subnetwork : s.name] == ["gke"]
    error_message = "cloud_nat = true must put the given subnetwork behind NAT."
  }
}

run "given_subnetwork_without_private_google_access" {
  command = plan

  variables {
    network = { subnetwork = { name = "gke", pods_range_name = "pods", services_range_name = "services" } }
  }

  override_data {
    target = data.google_compute_subnetwork.given[0]
    values = { private_ip_google_access = false }
  }

  expect_failures = [google_container_cluster.this]
}
