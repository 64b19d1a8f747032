variable "kubeconfig_path" {
  description = "kubeconfig file to use; null uses $KUBECONFIG, then ~/.kube/config. For GKE, write one with `gcloud container clusters get-credentials`."
  type        = string
  default     = null
}

variable "kubeconfig_context" {
  description = "Context in the kubeconfig; null uses its current context."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Namespace to create for the agent and the sandboxes."
  type        = string
  default     = "gkexec"
}

variable "gcp_service_account" {
  description = "GKE only: Google service account the agent's ServiceAccount acts as through Workload Identity (see terraform/modules/workload-identity). Null for none."
  type        = string
  default     = null
}

variable "gke_sandbox" {
  description = "Whether the cluster is GKE with GKE Sandbox, which provides the gvisor RuntimeClass. Set false on other clusters to have the module create it (their gVisor nodes must carry the label and taint sandbox.gke.io/runtime=gvisor, and containerd a gvisor handler)."
  type        = bool
  default     = true
}

variable "sandbox_egress" {
  description = "Egress allowed to sandbox Pods on top of the default deny; see the sandbox-namespace module. DNS is not implied."
  type = object({
    allow_dns = optional(bool)
    destinations = optional(list(object({
      cidr   = string
      except = optional(list(string))
      ports = optional(list(object({
        port     = number
        end_port = optional(number)
        protocol = optional(string)
      })))
    })))
  })
  default = {}
}
