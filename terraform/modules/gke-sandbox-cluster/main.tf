locals {
  # GKE's own role for node service accounts: write logs and metrics, read monitoring config,
  # write resource metadata, and nothing else.
  node_roles           = ["roles/container.defaultNodeServiceAccount"]
  node_service_account = coalesce(var.node_service_account_email, one(google_service_account.nodes[*].email))

  # A zone (us-central1-a) or a region (us-central1): the subnetwork and NAT live in the region.
  region = regex("^[a-z]+-[a-z]+[0-9]+", var.location)

  create_subnetwork = var.network.subnetwork == null
  cloud_nat         = coalesce(var.network.cloud_nat, local.create_subnetwork)
  # The created subnetwork by its path, built from known values (a self link would be unknown
  # until apply); referencing its name keeps the dependency.
  subnetwork = local.create_subnetwork ? {
    name                = "projects/${var.project_id}/regions/${local.region}/subnetworks/${google_compute_subnetwork.nodes[0].name}"
    pods_range_name     = "pods"
    services_range_name = "services"
  } : var.network.subnetwork

  dns_endpoint = one(google_container_cluster.this.control_plane_endpoints_config[0].dns_endpoint_config[*].endpoint)
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

# The nodes' subnetwork, unless one is given: Private Google Access lets nodes without external
# addresses reach Google APIs and Artifact Registry; the secondary ranges hold Pods and Services.
resource "google_compute_subnetwork" "nodes" {
  count = local.create_subnetwork ? 1 : 0

  project                  = var.project_id
  region                   = local.region
  name                     = "${var.name}-nodes"
  network                  = var.network.network
  ip_cidr_range            = var.network.nodes_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.network.pods_cidr
  }
  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.network.services_cidr
  }
}

# A given subnetwork must have Private Google Access when nodes have no external addresses.
data "google_compute_subnetwork" "given" {
  count = !local.create_subnetwork && var.access.private_nodes ? 1 : 0

  project   = var.project_id
  region    = local.region
  self_link = startswith(var.network.subnetwork.name, "https://") || startswith(var.network.subnetwork.name, "projects/") ? var.network.subnetwork.name : null
  name      = startswith(var.network.subnetwork.name, "https://") || startswith(var.network.subnetwork.name, "projects/") ? null : var.network.subnetwork.name
}

# Cloud NAT: the nodes' only way to registries outside Google (Docker Hub) without external
# addresses. Sandbox Pods gain nothing from it: their default-deny NetworkPolicy still applies.
resource "google_compute_router" "nat" {
  count = local.cloud_nat ? 1 : 0

  project = var.project_id
  region  = local.region
  name    = "${var.name}-nat"
  network = var.network.network
}

resource "google_compute_router_nat" "nat" {
  count = local.cloud_nat ? 1 : 0

  project                            = var.project_id
  region                             = local.region
  name                               = "${var.name}-nat"
  router                             = google_compute_router.nat[0].name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = local.subnetwork.name
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
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

  # When GKE may upgrade the control plane and the nodes; how is each pool's upgrade_settings.
  maintenance_policy {
    recurring_window {
      start_time = var.maintenance.window.start_time
      end_time   = var.maintenance.window.end_time
      recurrence = var.maintenance.window.recurrence
    }
    dynamic "maintenance_exclusion" {
      for_each = var.maintenance.exclusions
      content {
        exclusion_name = maintenance_exclusion.value.name
        start_time     = maintenance_exclusion.value.start_time
        end_time       = maintenance_exclusion.value.end_time
        exclusion_options {
          scope = maintenance_exclusion.value.scope
        }
      }
    }
  }

  # Workload Identity: Pods get Google credentials only through a Kubernetes ServiceAccount bound
  # to a Google service account, never the node's.
  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  # Dataplane V2 enforces NetworkPolicy, which keeps sandbox Pods off the network; with
  # enable_fqdn_network_policy it also enforces FQDNNetworkPolicy (networking.gke.io), which the
  # sandbox-namespace module uses to hold the egress gateway to the domains it allows.
  datapath_provider          = "ADVANCED_DATAPATH"
  enable_fqdn_network_policy = var.enable_fqdn_network_policy
  networking_mode            = "VPC_NATIVE"
  network                    = var.network.network
  subnetwork                 = local.subnetwork.name
  ip_allocation_policy {
    cluster_secondary_range_name  = local.subnetwork.pods_range_name
    services_secondary_range_name = local.subnetwork.services_range_name
  }

  # Nodes without external addresses.
  private_cluster_config {
    enable_private_nodes = var.access.private_nodes
  }

  # The control plane: a DNS name that answers only callers with IAM permission on the cluster
  # (container.clusters.connect), and IP endpoints only if asked for, then only from listed CIDRs.
  control_plane_endpoints_config {
    dns_endpoint_config {
      allow_external_traffic    = var.access.dns_endpoint.allow_external_traffic
      enable_k8s_tokens_via_dns = var.access.dns_endpoint.kubernetes_tokens
    }
    ip_endpoints_config {
      enabled = var.access.ip_endpoints != null
    }
  }

  dynamic "master_authorized_networks_config" {
    for_each = var.access.ip_endpoints == null ? [] : [var.access.ip_endpoints]
    content {
      dynamic "cidr_blocks" {
        for_each = master_authorized_networks_config.value.authorized_networks
        content {
          cidr_block   = cidr_blocks.value.cidr_block
          display_name = cidr_blocks.value.display_name
        }
      }
    }
  }

  enable_shielded_nodes = true
  enable_legacy_abac    = false

  # Node pools are separate (the gke-sandbox-node-pool module). GKE still creates a default pool
  # first; it is removed at once, but give it the same identity and hardening so it never runs as
  # the default compute service account.
  remove_default_node_pool = true
  initial_node_count       = 1
  node_config {
    service_account = local.node_service_account
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
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

    precondition {
      condition     = length(data.google_compute_subnetwork.given) == 0 || one(data.google_compute_subnetwork.given[*].private_ip_google_access) == true
      error_message = "network.subnetwork ${try(var.network.subnetwork.name, "")} has Private Google Access off: private nodes could not reach Google APIs or pull from Artifact Registry. Turn it on (gcloud compute networks subnets update ... --enable-private-ip-google-access) or let the module create the subnetwork."
    }
  }

  depends_on = [google_project_iam_member.nodes, google_compute_router_nat.nat]
}
