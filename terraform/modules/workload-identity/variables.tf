variable "project_id" {
  description = "Project the Google service account lives in (and where project_roles are granted)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id \"${var.project_id}\" is not a project ID: 6-30 lower-case letters, digits and '-', starting with a letter."
  }
}

variable "workload_identity_pool" {
  description = "Workload Identity pool of the cluster (the gke-sandbox-cluster module's workload_identity_pool output). Null means <project_id>.svc.id.goog, right when the cluster is in project_id."
  type        = string
  default     = null

  validation {
    condition     = var.workload_identity_pool == null || can(regex("^[-a-z0-9]+\\.svc\\.id\\.goog$", var.workload_identity_pool))
    error_message = "workload_identity_pool must look like PROJECT_ID.svc.id.goog."
  }
}

variable "namespace" {
  description = "Namespace of the agent's Kubernetes ServiceAccount: where the agent's Pods run, apart from the sandboxes (the sandbox-namespace module's agent_namespace output), never the sandbox namespace."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace \"${var.namespace}\" is not a valid Kubernetes namespace name."
  }
}

variable "kubernetes_service_account" {
  description = "Name of the agent's Kubernetes ServiceAccount."
  type        = string
  default     = "gkexec-agent"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.kubernetes_service_account))
    error_message = "kubernetes_service_account \"${var.kubernetes_service_account}\" is not a valid ServiceAccount name."
  }
}

variable "google_service_account" {
  description = "The Google service account the agent acts as: created with account_id, or an existing one given by email (then account_id is ignored)."
  type = object({
    account_id = optional(string, "gkexec-agent")
    email      = optional(string)
  })
  default  = {}
  nullable = false

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]$", var.google_service_account.account_id))
    error_message = "google_service_account.account_id \"${var.google_service_account.account_id}\" must be 6-30 lower-case letters, digits and '-', starting with a letter."
  }
  validation {
    condition     = var.google_service_account.email == null || can(regex("^[^@\\s]+@[-a-z0-9.]+\\.gserviceaccount\\.com$", var.google_service_account.email))
    error_message = "google_service_account.email must be a service account email such as agent@PROJECT_ID.iam.gserviceaccount.com, or null to create one."
  }
}

variable "project_roles" {
  description = "Roles the Google service account gets on project_id, for what the agent itself calls (for example roles/aiplatform.user for Gemini on Vertex AI). Sandbox Pods never get these: they mount no token and have no network."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for r in var.project_roles : can(regex("^(roles/|projects/[^/]+/roles/|organizations/[0-9]+/roles/)[A-Za-z0-9_.]+$", r))])
    error_message = "project_roles must be role names such as roles/aiplatform.user or projects/PROJECT_ID/roles/CUSTOM."
  }
  validation {
    condition     = !anytrue([for r in var.project_roles : contains(["roles/owner", "roles/editor"], r)])
    error_message = "project_roles: roles/owner and roles/editor are far more than an agent needs; grant the specific roles it uses."
  }
}
