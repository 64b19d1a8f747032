variable "project_id" {
  description = "Google Cloud project the cluster and its node service account live in."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id \"${var.project_id}\" is not a project ID: 6-30 lower-case letters, digits and '-', starting with a letter (the ID, not the project number or display name)."
  }
}

variable "name" {
  description = "Cluster name. Also prefixes the node service account (<name>-nodes)."
  type        = string
  default     = "gkexec"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,22}[a-z0-9])?$", var.name))
    error_message = "name \"${var.name}\" must be 1-24 lower-case letters, digits and '-', starting with a letter and not ending with '-' (24, so that <name>-nodes is a valid service account ID)."
  }
}

variable "location" {
  description = "A region (us-central1) for a regional cluster, whose control plane and nodes span the region's zones, or a zone (us-central1-a) for a zonal one."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+(-[a-z])?$", var.location))
    error_message = "location \"${var.location}\" is neither a region such as us-central1 nor a zone such as us-central1-a."
  }
}

variable "node_locations" {
  description = "Default zones of the cluster's node pools (a pool may set its own); empty means all zones of a regional cluster, the cluster's zone for a zonal one."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for z in var.node_locations : can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", z))])
    error_message = "node_locations must be zones such as us-central1-a."
  }
}

variable "release_channel" {
  description = "GKE release channel, which picks and upgrades the control plane and node versions: RAPID, REGULAR, STABLE or EXTENDED."
  type        = string
  default     = "REGULAR"
  nullable    = false

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE", "EXTENDED"], var.release_channel)
    error_message = "release_channel \"${var.release_channel}\" must be one of RAPID, REGULAR, STABLE or EXTENDED (upper case)."
  }
}

variable "network" {
  description = <<-EOT
    Where the nodes live. The cluster is VPC-native (Dataplane V2 requires it).
    By default the module creates the subnetwork <name>-nodes in network (nodes_cidr, with secondary
    ranges pods_cidr and services_cidr and Private Google Access on), plus a Cloud Router and Cloud
    NAT for it. Or name an existing subnetwork (name or self link, for example in a Shared VPC host
    project) and its two secondary ranges; it must have Private Google Access when nodes are private.
    cloud_nat: null means on when the module creates the subnetwork and off for a given one (one
    NAT per subnetwork: yours may already have one). Without NAT private nodes pull only from
    Google's registries (Artifact Registry), not from Docker Hub.
  EOT
  type = object({
    network = optional(string, "default")
    subnetwork = optional(object({
      name                = string
      pods_range_name     = string
      services_range_name = string
    }))
    nodes_cidr    = optional(string, "10.10.0.0/20")
    pods_cidr     = optional(string, "10.12.0.0/14")
    services_cidr = optional(string, "10.16.0.0/20")
    cloud_nat     = optional(bool)
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for c in [var.network.nodes_cidr, var.network.pods_cidr, var.network.services_cidr] : can(cidrnetmask(c))])
    error_message = "network: nodes_cidr, pods_cidr and services_cidr must be IPv4 CIDR blocks such as 10.10.0.0/20."
  }
  validation {
    # Pods get a /24 per node from pods_cidr (110 Pods per node); fewer than 16 nodes' worth is a trap.
    condition     = try(tonumber(split("/", var.network.pods_cidr)[1]) <= 20 && tonumber(split("/", var.network.nodes_cidr)[1]) <= 26, false)
    error_message = "network: pods_cidr must be /20 or larger (GKE takes a /24 of it per node) and nodes_cidr /26 or larger."
  }
  validation {
    condition     = var.network.subnetwork == null || try(var.network.subnetwork.name != "" && var.network.subnetwork.pods_range_name != "" && var.network.subnetwork.services_range_name != "", false)
    error_message = "network.subnetwork needs name, pods_range_name and services_range_name (the subnetwork's two secondary ranges), or null to let the module create one."
  }
}

variable "access" {
  description = <<-EOT
    Who reaches the nodes and the control plane.
    private_nodes (default true): nodes have internal addresses only.
    dns_endpoint: the control plane's DNS name (gke-....gke.goog), which answers only callers with
    IAM permission on the cluster (container.clusters.connect) before Kubernetes RBAC applies.
    allow_external_traffic = false limits it to the VPC (and networks connected to it).
    kubernetes_tokens = true also accepts Kubernetes ServiceAccount tokens there, for clients
    outside the cluster that authenticate as a ServiceAccount (the GKE e2e tier does).
    ip_endpoints: null (default) turns the control plane's IP endpoints off entirely. To turn them
    on, list the CIDR blocks that may reach them; 0.0.0.0/0 is the explicit opt-out of the
    restriction.
  EOT
  type = object({
    private_nodes = optional(bool, true)
    dns_endpoint = optional(object({
      allow_external_traffic = optional(bool, true)
      kubernetes_tokens      = optional(bool, false)
    }), {})
    ip_endpoints = optional(object({
      authorized_networks = list(object({
        cidr_block   = string
        display_name = optional(string)
      }))
    }))
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.access.ip_endpoints == null || try(length(var.access.ip_endpoints.authorized_networks) > 0, false)
    error_message = "access.ip_endpoints: list at least one authorized network (0.0.0.0/0 if the IP endpoints must answer any address), or set ip_endpoints = null and use the DNS endpoint."
  }
  validation {
    condition     = var.access.ip_endpoints == null || alltrue([for n in try(var.access.ip_endpoints.authorized_networks, []) : can(cidrnetmask(n.cidr_block))])
    error_message = "access.ip_endpoints.authorized_networks: every cidr_block must be an IPv4 CIDR block such as 203.0.113.0/24."
  }
}

variable "maintenance" {
  description = <<-EOT
    When GKE may upgrade the control plane and the nodes (auto-upgrades of the release channel).
    window: a recurring window, RFC 3339 start_time and end_time of its first occurrence and an
    RFC 5545 RRULE; GKE requires at least 48 hours of windows in any 32 days, and at least 4 hours
    in a row. The default, Saturday and Sunday 01:00-09:00 UTC, gives about 72.
    exclusions: up to 20 periods without upgrades, for example a launch. scope NO_UPGRADES (at
    most 30 days, also stops patches), NO_MINOR_UPGRADES or NO_MINOR_OR_NODE_UPGRADES (up to the
    version's end of support).
  EOT
  type = object({
    window = optional(object({
      start_time = string
      end_time   = string
      recurrence = string
      }), {
      start_time = "2026-01-03T01:00:00Z"
      end_time   = "2026-01-03T09:00:00Z"
      recurrence = "FREQ=WEEKLY;BYDAY=SA,SU"
    })
    exclusions = optional(list(object({
      name       = string
      start_time = string
      end_time   = string
      scope      = optional(string, "NO_UPGRADES")
    })), [])
  })
  default  = {}
  nullable = false

  validation {
    condition = (can(timecmp(var.maintenance.window.start_time, var.maintenance.window.end_time)) &&
      try(timecmp(var.maintenance.window.start_time, var.maintenance.window.end_time) < 0, false) &&
    try(timecmp(timeadd(var.maintenance.window.start_time, "4h"), var.maintenance.window.end_time) <= 0, false))
    error_message = "maintenance.window: start_time and end_time must be RFC 3339 times such as 2026-01-03T01:00:00Z, end_time at least 4 hours after start_time (GKE's shortest window)."
  }
  validation {
    condition     = can(regex("^FREQ=(DAILY|WEEKLY|MONTHLY)(;[A-Z]+=[-+A-Z0-9,]+)*$", var.maintenance.window.recurrence))
    error_message = "maintenance.window.recurrence must be an RFC 5545 RRULE such as FREQ=WEEKLY;BYDAY=SA,SU or FREQ=DAILY (no RRULE: prefix)."
  }
  validation {
    # The scope enum lives in the provider's code, not its schema.
    condition     = alltrue([for e in var.maintenance.exclusions : contains(["NO_UPGRADES", "NO_MINOR_UPGRADES", "NO_MINOR_OR_NODE_UPGRADES"], e.scope)])
    error_message = "maintenance.exclusions: scope must be NO_UPGRADES, NO_MINOR_UPGRADES or NO_MINOR_OR_NODE_UPGRADES."
  }
  validation {
    condition = alltrue([for e in var.maintenance.exclusions :
      can(timecmp(e.start_time, e.end_time)) && try(timecmp(e.start_time, e.end_time) < 0, false) &&
    (e.scope != "NO_UPGRADES" || try(timecmp(e.end_time, timeadd(e.start_time, "720h")) <= 0, false))])
    error_message = "maintenance.exclusions: start_time and end_time must be RFC 3339 times with end after start, and a NO_UPGRADES exclusion may last at most 30 days (GKE's limit)."
  }
  validation {
    condition     = length(var.maintenance.exclusions) <= 20 && length(distinct([for e in var.maintenance.exclusions : e.name])) == length(var.maintenance.exclusions)
    error_message = "maintenance.exclusions: at most 20, each with its own name."
  }
}

variable "enable_fqdn_network_policy" {
  description = <<-EOT
    Turn on GKE FQDN network policies: Dataplane V2 (always on here) then enforces
    FQDNNetworkPolicy objects (networking.gke.io/v1alpha1), egress allow-lists by domain name.
    The sandbox-namespace module's fqdn_network_policy uses them to hold the egress gateway, at
    L3/L4, to the domains it allows; pass this module's fqdn_network_policy_enabled output to it.
    Needs GKE 1.26.4-gke.500 / 1.27.1-gke.400 or later and kube-dns or Cloud DNS. On an existing
    Standard cluster, restart Dataplane V2 after turning it on
    (kubectl -n kube-system rollout restart ds anetd). GKE bills it as a paid feature: see its
    pricing before turning it on.
  EOT
  type        = bool
  default     = false
  nullable    = false
}

variable "node_service_account_email" {
  description = "An existing service account for the nodes. Null (the default) creates <name>-nodes with only roles/container.defaultNodeServiceAccount (write logs and metrics, read monitoring configuration)."
  type        = string
  default     = null

  validation {
    condition     = var.node_service_account_email == null || can(regex("^[^@\\s]+@[-a-z0-9.]+\\.gserviceaccount\\.com$", var.node_service_account_email))
    error_message = "node_service_account_email must be a service account email such as nodes@PROJECT_ID.iam.gserviceaccount.com, or null to create one."
  }
}

variable "image_repositories" {
  description = "Artifact Registry repositories the nodes pull images from (the sandbox image, the agent). The node service account gets roles/artifactregistry.reader on each, rather than on the whole project."
  type = list(object({
    project    = optional(string)
    location   = string
    repository = string
  }))
  default  = []
  nullable = false

  validation {
    condition     = alltrue([for r in var.image_repositories : can(regex("^[a-z]+(-[a-z]+[0-9]+)?$", r.location)) && can(regex("^[a-z][-a-z0-9]*$", r.repository))])
    error_message = "image_repositories: location must be a region or multi-region (us-central1, us) and repository a repository ID (not a full path)."
  }
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster. Set false (and apply) before a destroy that should delete it."
  type        = bool
  default     = true
  nullable    = false
}

variable "resource_labels" {
  description = "Google Cloud labels on the cluster and its nodes."
  type        = map(string)
  default     = {}
  nullable    = false
}
