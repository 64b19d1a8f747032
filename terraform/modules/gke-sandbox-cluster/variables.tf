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
  description = "Zones the node pools run in; empty means the default (all zones of a regional cluster, the cluster's zone for a zonal one). Node counts are per zone."
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
    VPC for the cluster, which is VPC-native (required by Dataplane V2). With no secondary range names
    GKE creates the Pod and Service ranges itself; otherwise name both ranges of the subnetwork.
  EOT
  type = object({
    network                       = optional(string, "default")
    subnetwork                    = optional(string)
    pods_secondary_range_name     = optional(string)
    services_secondary_range_name = optional(string)
  })
  default  = {}
  nullable = false

  validation {
    condition     = (var.network.pods_secondary_range_name == null) == (var.network.services_secondary_range_name == null)
    error_message = "network: set both pods_secondary_range_name and services_secondary_range_name, or neither (GKE then creates the ranges)."
  }
  validation {
    condition     = var.network.pods_secondary_range_name == null || var.network.subnetwork != null
    error_message = "network: secondary ranges belong to a subnetwork; set network.subnetwork too."
  }
}

variable "private_nodes" {
  description = "Give nodes internal IP addresses only. They then reach the internet (for example Docker Hub images) only through Cloud NAT; Google APIs and Artifact Registry through Private Google Access on the subnetwork."
  type        = bool
  default     = false
  nullable    = false
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the control plane's public endpoint; empty leaves it open to any address (authentication still applies)."
  type = list(object({
    cidr_block   = string
    display_name = optional(string)
  }))
  default  = []
  nullable = false

  validation {
    condition     = alltrue([for n in var.master_authorized_networks : can(cidrnetmask(n.cidr_block))])
    error_message = "master_authorized_networks: every cidr_block must be an IPv4 CIDR block such as 203.0.113.0/24."
  }
}

variable "system_pool" {
  description = "The small pool for system Pods and the agent; GKE Sandbox needs at least one pool without gVisor. Node counts are per zone."
  type = object({
    machine_type = optional(string, "e2-standard-2")
    image_type   = optional(string, "COS_CONTAINERD")
    min_nodes    = optional(number, 1)
    max_nodes    = optional(number, 3)
    disk_size_gb = optional(number, 50)
    disk_type    = optional(string, "pd-balanced")
  })
  default  = {}
  nullable = false

  validation {
    condition     = contains(["COS_CONTAINERD", "UBUNTU_CONTAINERD"], var.system_pool.image_type)
    error_message = "system_pool.image_type \"${var.system_pool.image_type}\" must be COS_CONTAINERD or UBUNTU_CONTAINERD."
  }
  validation {
    condition     = var.system_pool.min_nodes >= 1 && var.system_pool.min_nodes <= var.system_pool.max_nodes && floor(var.system_pool.min_nodes) == var.system_pool.min_nodes && floor(var.system_pool.max_nodes) == var.system_pool.max_nodes
    error_message = "system_pool: min_nodes (${var.system_pool.min_nodes}) must be a whole number of at least 1 (system Pods cannot run on gVisor nodes) and at most max_nodes (${var.system_pool.max_nodes})."
  }
  validation {
    condition     = var.system_pool.disk_size_gb >= 10 && contains(["pd-standard", "pd-balanced", "pd-ssd", "hyperdisk-balanced"], var.system_pool.disk_type)
    error_message = "system_pool: disk_size_gb must be at least 10 and disk_type one of pd-standard, pd-balanced, pd-ssd or hyperdisk-balanced."
  }
  validation {
    condition     = var.system_pool.machine_type != ""
    error_message = "system_pool.machine_type must name a Compute Engine machine type such as e2-standard-2."
  }
}

variable "sandbox_pool" {
  description = <<-EOT
    The gVisor pool sandbox Pods run on. GKE labels and taints its nodes sandbox.gke.io/runtime=gvisor
    and the gvisor RuntimeClass selects and tolerates that, so only sandboxed Pods land there. Node
    counts are per zone; min_nodes 0 lets it scale to zero (the first execution then waits for a node).
  EOT
  type = object({
    machine_type = optional(string, "e2-standard-4")
    image_type   = optional(string, "COS_CONTAINERD")
    min_nodes    = optional(number, 1)
    max_nodes    = optional(number, 5)
    disk_size_gb = optional(number, 100)
    disk_type    = optional(string, "pd-balanced")
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.sandbox_pool.image_type == "COS_CONTAINERD"
    error_message = "sandbox_pool.image_type \"${var.sandbox_pool.image_type}\" is not supported: GKE Sandbox (gVisor) requires COS_CONTAINERD."
  }
  validation {
    condition     = var.sandbox_pool.min_nodes >= 0 && var.sandbox_pool.max_nodes >= 1 && var.sandbox_pool.min_nodes <= var.sandbox_pool.max_nodes && floor(var.sandbox_pool.min_nodes) == var.sandbox_pool.min_nodes && floor(var.sandbox_pool.max_nodes) == var.sandbox_pool.max_nodes
    error_message = "sandbox_pool: min_nodes (${var.sandbox_pool.min_nodes}) and max_nodes (${var.sandbox_pool.max_nodes}) must be whole numbers with 0 <= min_nodes <= max_nodes and max_nodes >= 1."
  }
  validation {
    condition     = var.sandbox_pool.disk_size_gb >= 10 && contains(["pd-standard", "pd-balanced", "pd-ssd", "hyperdisk-balanced"], var.sandbox_pool.disk_type)
    error_message = "sandbox_pool: disk_size_gb must be at least 10 and disk_type one of pd-standard, pd-balanced, pd-ssd or hyperdisk-balanced."
  }
  validation {
    condition     = var.sandbox_pool.machine_type != ""
    error_message = "sandbox_pool.machine_type must name a Compute Engine machine type such as e2-standard-4."
  }
}

variable "node_service_account_email" {
  description = "An existing service account for the nodes. Null (the default) creates <name>-nodes with only the roles nodes need to write logs and metrics."
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
