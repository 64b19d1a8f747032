variable "project_id" {
  description = "Project to create the cluster in. The container, compute, iam and containerfilesystem APIs must be enabled."
  type        = string
}

variable "location" {
  description = "Region (regional cluster) or zone (zonal cluster)."
  type        = string
  default     = "us-central1"
}

variable "cluster_name" {
  description = "Name of the GKE cluster."
  type        = string
  default     = "gkexec"
}

variable "namespace" {
  description = "Sandbox namespace stage 2 creates: it holds the sandboxes and nothing else."
  type        = string
  default     = "gkexec"
}

variable "agent_namespace" {
  description = "Namespace stage 2 creates for the agent, apart from the sandboxes; the agent's Google identity is bound to its gkexec-agent ServiceAccount."
  type        = string
  default     = "agent"

  validation {
    condition     = var.agent_namespace != var.namespace
    error_message = "agent_namespace must differ from namespace: the sandbox namespace admits only sandbox Pods, so the agent (and its Google identity) lives in a namespace of its own."
  }
}

variable "sandbox_pool" {
  description = "The gVisor pool: machine type and node counts for the whole pool (all zones together)."
  type = object({
    machine_type    = optional(string, "e2-standard-4")
    total_min_nodes = optional(number, 1)
    total_max_nodes = optional(number, 5)
  })
  default  = {}
  nullable = false
}

variable "agent_project_roles" {
  description = "What the agent may do in Google Cloud through Workload Identity, for example [\"roles/aiplatform.user\"] to call Gemini."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "kubernetes_tokens_via_dns" {
  description = "Also accept Kubernetes ServiceAccount tokens on the control plane's DNS endpoint, for clients outside the cluster that act as a ServiceAccount (the GKE e2e tier). The agent runs inside the cluster and does not need it."
  type        = bool
  default     = false
  nullable    = false
}
