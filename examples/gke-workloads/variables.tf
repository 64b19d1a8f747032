# project_id, location, cluster_name, namespace, agent_namespace and agent_google_service_account
# are stage 1's outputs of the same names (../gke).

variable "project_id" {
  description = "Project of the cluster (stage 1 output project_id)."
  type        = string
}

variable "location" {
  description = "Region or zone of the cluster (stage 1 output location)."
  type        = string
}

variable "cluster_name" {
  description = "Name of the cluster (stage 1 output cluster_name)."
  type        = string
}

variable "namespace" {
  description = "Namespace for the sandboxes, and nothing else (stage 1 output namespace)."
  type        = string
  default     = "gkexec"
}

variable "agent_namespace" {
  description = "Namespace for the agent, apart from the sandboxes (stage 1 output agent_namespace); created here."
  type        = string
  default     = "agent"

  validation {
    condition     = var.agent_namespace != var.namespace
    error_message = "agent_namespace must differ from namespace: the sandbox namespace admits only sandbox Pods, and the agent's rights there (pods/attach, pods patch and delete) must not reach the agent itself."
  }
}

variable "agent_google_service_account" {
  description = "Google service account the agent's Kubernetes ServiceAccount acts as (stage 1 output agent_google_service_account)."
  type        = string
}

variable "agent" {
  description = <<-EOT
    The agent Deployment: your application, which runs code through the gkexec runner (the Go
    library github.com/gkexec/gkexec/runner or the gkexec binary). It runs as the agent
    ServiceAccount in agent_namespace, on the system pool, with GKEXEC_NAMESPACE set to the sandbox
    namespace, which its RoleBinding opens to it. What it may do in Google Cloud is stage 1's
    agent_project_roles.
  EOT
  type = object({
    image       = string
    command     = optional(list(string))
    args        = optional(list(string))
    env         = optional(map(string), {})
    replicas    = optional(number, 1)
    run_as_user = optional(number, 65532)
    # sidecar_image runs `gkexec serve` beside the agent (test/images builds ghcr.io/gkexec/gkexec:dev;
    # push it to your registry): the agent calls GKEXEC_URL=http://127.0.0.1:8080 and only the sidecar
    # holds the ServiceAccount token. Null: the agent runs the runner in-process with its own token.
    sidecar_image = optional(string)
  })
}
