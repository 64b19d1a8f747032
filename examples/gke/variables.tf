variable "project_id" {
  description = "Project to create the cluster in. The container, iam and compute APIs must be enabled."
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
  description = "Namespace for the agent and the sandboxes."
  type        = string
  default     = "gkexec"
}

variable "agent" {
  description = <<-EOT
    The agent Deployment: your application, which runs code through the gkexec runner (the Go
    library github.com/gkexec/gkexec/runner or the gkexec binary). It runs as the agent
    ServiceAccount in the namespace, on the system pool, with GKEXEC_NAMESPACE set.
    project_roles are what the agent itself may do in Google Cloud through Workload Identity, for
    example roles/aiplatform.user to call Gemini.
  EOT
  type = object({
    image         = string
    command       = optional(list(string))
    args          = optional(list(string))
    env           = optional(map(string), {})
    replicas      = optional(number, 1)
    run_as_user   = optional(number, 65532)
    project_roles = optional(list(string), [])
    # sidecar_image runs `gkexec serve` beside the agent (test/images builds ghcr.io/gkexec/gkexec:dev;
    # push it to your registry): the agent calls GKEXEC_URL=http://127.0.0.1:8080 and only the sidecar
    # holds the ServiceAccount token. Null: the agent runs the runner in-process with its own token.
    sidecar_image = optional(string)
  })
}
