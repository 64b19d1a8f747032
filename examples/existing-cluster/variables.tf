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
  description = "Namespace to create for the sandboxes; it admits nothing else."
  type        = string
  default     = "gkexec"
}

variable "agent_namespace" {
  description = "Namespace your agent's Pods run in (it must exist): the agent's ServiceAccount is created there and bound into the sandbox namespace. Null keeps it in the sandbox namespace, for an agent outside the cluster that uses a token of it."
  type        = string
  default     = null
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
  description = "Egress allowed to sandbox Pods on top of the default deny; see the sandbox-namespace module. DNS is not implied (and allow_dns opens a DNS-tunnelling channel); destinations need cluster_ranges."
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

variable "cluster_ranges" {
  description = "The cluster's Pod, Service and control-plane CIDRs, which no sandbox_egress destination opens unless it names them; required with destinations. See the sandbox-namespace module."
  type = object({
    pod_cidrs           = optional(list(string))
    service_cidrs       = optional(list(string))
    control_plane_cidrs = optional(list(string))
  })
  default = {}
}
