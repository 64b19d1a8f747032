variable "project_id" {
  description = "Project of the cluster."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id \"${var.project_id}\" is not a project ID: 6-30 lower-case letters, digits and '-', starting with a letter."
  }
}

variable "cluster_name" {
  description = "Name of the cluster the pool joins (the gke-sandbox-cluster module's cluster_name output)."
  type        = string
  nullable    = false
}

variable "location" {
  description = "Location of the cluster: its region (regional cluster) or zone (zonal cluster)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+(-[a-z])?$", var.location))
    error_message = "location \"${var.location}\" is neither a region such as us-central1 nor a zone such as us-central1-a."
  }
}

variable "name" {
  description = <<-EOT
    Name of the pool, used as the prefix of its generated name (<name>-<timestamp>) so that a
    replacement is created before the old pool is deleted, and as the value of the node label
    gkexec.dev/node-pool, which does not change on replacement.
  EOT
  type        = string
  nullable    = false

  validation {
    # GKE node pool names are at most 40 characters; the generated suffix takes 26 of them.
    condition     = can(regex("^[a-z]([-a-z0-9]{0,11}[a-z0-9])?$", var.name))
    error_message = "name \"${var.name}\" must be 1-13 lower-case letters, digits and '-', starting with a letter and not ending with '-' (GKE allows 40 characters; the generated suffix takes 27)."
  }
}

variable "gvisor" {
  description = "Run the pool's Pods under GKE Sandbox (gVisor). A cluster also needs at least one pool without it, for system Pods and the agent."
  type        = bool
  default     = true
  nullable    = false
}

variable "node_locations" {
  description = "Zones of the pool; empty means the cluster's."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for z in var.node_locations : can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", z))])
    error_message = "node_locations must be zones such as us-central1-a."
  }
}

variable "service_account_email" {
  description = "Service account the nodes run as (the gke-sandbox-cluster module's node_service_account_email output)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[^@\\s]+@[-a-z0-9.]+\\.gserviceaccount\\.com$", var.service_account_email))
    error_message = "service_account_email must be a service account email such as nodes@PROJECT_ID.iam.gserviceaccount.com."
  }
}

variable "node_config" {
  description = <<-EOT
    The nodes. gVisor requires COS_CONTAINERD. image_streaming turns on GKE image streaming (GCFS):
    containers from Artifact Registry images start before the whole image is on the node; it needs
    COS_CONTAINERD and the containerfilesystem.googleapis.com API.
  EOT
  type = object({
    machine_type    = optional(string, "e2-standard-4")
    image_type      = optional(string, "COS_CONTAINERD")
    disk_size_gb    = optional(number, 100)
    disk_type       = optional(string, "pd-balanced")
    image_streaming = optional(bool, true)
  })
  default  = {}
  nullable = false

  validation {
    condition     = contains(["COS_CONTAINERD", "UBUNTU_CONTAINERD"], var.node_config.image_type)
    error_message = "node_config.image_type \"${var.node_config.image_type}\" must be COS_CONTAINERD or UBUNTU_CONTAINERD."
  }
  validation {
    condition     = var.node_config.disk_size_gb >= 10 && contains(["pd-standard", "pd-balanced", "pd-ssd", "hyperdisk-balanced"], var.node_config.disk_type)
    error_message = "node_config: disk_size_gb must be at least 10 and disk_type one of pd-standard, pd-balanced, pd-ssd or hyperdisk-balanced."
  }
  validation {
    condition     = var.node_config.machine_type != ""
    error_message = "node_config.machine_type must name a Compute Engine machine type such as e2-standard-4."
  }
  validation {
    condition     = !var.gvisor || var.node_config.image_type == "COS_CONTAINERD"
    error_message = "node_config.image_type \"${var.node_config.image_type}\" is not supported with gvisor = true: GKE Sandbox (gVisor) requires COS_CONTAINERD."
  }
  validation {
    # Image streaming runs on Container-Optimized OS only.
    condition     = !var.node_config.image_streaming || var.node_config.image_type == "COS_CONTAINERD"
    error_message = "node_config: image_streaming needs image_type COS_CONTAINERD; set image_streaming = false for UBUNTU_CONTAINERD."
  }
}

variable "autoscaling" {
  description = <<-EOT
    Cluster autoscaler bounds for the WHOLE pool, summed over its zones (GKE's total_min/total_max
    node counts), so a regional pool does not multiply them by three. For a gVisor pool,
    total_min_nodes must hold the sandbox namespace's warm pool (its idle Pods never leave); 0 lets
    an idle pool scale to zero, and the first execution then waits a minute or more for a node.
    location_policy: BALANCED spreads nodes over the zones, ANY takes capacity wherever it is.
  EOT
  type = object({
    total_min_nodes = optional(number, 1)
    total_max_nodes = optional(number, 5)
    location_policy = optional(string, "BALANCED")
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.autoscaling.total_min_nodes >= 0 && var.autoscaling.total_max_nodes >= 1 && var.autoscaling.total_min_nodes <= var.autoscaling.total_max_nodes && floor(var.autoscaling.total_min_nodes) == var.autoscaling.total_min_nodes && floor(var.autoscaling.total_max_nodes) == var.autoscaling.total_max_nodes
    error_message = "autoscaling: total_min_nodes (${var.autoscaling.total_min_nodes}) and total_max_nodes (${var.autoscaling.total_max_nodes}) must be whole numbers with 0 <= total_min_nodes <= total_max_nodes and total_max_nodes >= 1. They count the whole pool, not nodes per zone."
  }
  validation {
    # The enum lives in the provider's code, not its schema.
    condition     = contains(["BALANCED", "ANY"], var.autoscaling.location_policy)
    error_message = "autoscaling.location_policy \"${var.autoscaling.location_policy}\" must be BALANCED or ANY."
  }
}

variable "upgrade" {
  description = <<-EOT
    How GKE replaces nodes on an upgrade (when is the cluster's maintenance policy).
    SURGE (default): max_surge new nodes are created before old ones are cordoned and drained, and
    max_unavailable = 0 keeps capacity from dropping. A drain evicts Pods respecting
    PodDisruptionBudgets for up to one hour, then deletes what is left.
    BLUE_GREEN: a whole new pool is created, every old node is cordoned at once (no new execution
    lands on it), drained batch by batch, and kept for node_pool_soak_duration so that the upgrade
    can be rolled back; needs quota for twice the pool. Durations are in seconds ("3600s").
  EOT
  type = object({
    strategy        = optional(string, "SURGE")
    max_surge       = optional(number, 1)
    max_unavailable = optional(number, 0)
    blue_green = optional(object({
      node_pool_soak_duration = optional(string, "1800s")
      batch_node_count        = optional(number, 1)
      batch_percentage        = optional(number)
      batch_soak_duration     = optional(string, "300s")
    }), {})
  })
  default  = {}
  nullable = false

  validation {
    # The enum lives in the provider's code, not its schema.
    condition     = contains(["SURGE", "BLUE_GREEN"], var.upgrade.strategy)
    error_message = "upgrade.strategy \"${var.upgrade.strategy}\" must be SURGE or BLUE_GREEN."
  }
  validation {
    # GKE rejects a surge upgrade that can neither add nor remove a node.
    condition     = var.upgrade.max_surge >= 0 && var.upgrade.max_unavailable >= 0 && var.upgrade.max_surge + var.upgrade.max_unavailable >= 1 && floor(var.upgrade.max_surge) == var.upgrade.max_surge && floor(var.upgrade.max_unavailable) == var.upgrade.max_unavailable
    error_message = "upgrade: max_surge (${var.upgrade.max_surge}) and max_unavailable (${var.upgrade.max_unavailable}) must be whole numbers >= 0, and at least one of them >= 1."
  }
  validation {
    # Durations are google.protobuf.Duration strings; GKE caps the soak at 7 days.
    condition = (can(regex("^[0-9]+s$", var.upgrade.blue_green.node_pool_soak_duration)) && can(regex("^[0-9]+s$", var.upgrade.blue_green.batch_soak_duration)) &&
    try(tonumber(trimsuffix(var.upgrade.blue_green.node_pool_soak_duration, "s")) <= 604800, false))
    error_message = "upgrade.blue_green: node_pool_soak_duration and batch_soak_duration must be whole seconds such as \"1800s\", the soak at most \"604800s\" (7 days)."
  }
  validation {
    # batch_percentage and batch_node_count conflict in the provider's code.
    condition     = var.upgrade.blue_green.batch_percentage == null ? var.upgrade.blue_green.batch_node_count >= 1 : (var.upgrade.blue_green.batch_percentage > 0 && var.upgrade.blue_green.batch_percentage <= 1)
    error_message = "upgrade.blue_green: batch_percentage must be a fraction in (0, 1] (it replaces batch_node_count), or null and batch_node_count at least 1."
  }
}

variable "resource_labels" {
  description = "Google Cloud labels on the pool's VMs."
  type        = map(string)
  default     = {}
  nullable    = false
}
