# Connection: a kubeconfig (path and context), or host + token + CA certificate. When host is set
# the kubeconfig is not read at all.

variable "kubeconfig_path" {
  description = "kubeconfig of the local cluster (test/localcluster/cluster.sh kubeconfig prints it); null uses $KUBECONFIG, then ~/.kube/config."
  type        = string
  default     = null
}

variable "kubeconfig_context" {
  description = "Context in the kubeconfig; null uses its current context."
  type        = string
  default     = null
}

variable "host" {
  description = "API server URL, such as https://127.0.0.1:6443. Set it (with token and cluster_ca_certificate) to connect without a kubeconfig."
  type        = string
  default     = null

  validation {
    condition     = var.host == null || can(regex("^https://", var.host))
    error_message = "host must be an https:// URL such as https://127.0.0.1:6443."
  }
}

variable "token" {
  description = "Bearer token for host (for example from `kubectl create token`)."
  type        = string
  default     = null
  sensitive   = true
}

variable "cluster_ca_certificate" {
  description = "PEM CA certificate of the API server at host."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Namespace to create; tests use a fresh one per run."
  type        = string
  default     = "gkexec"
}

variable "agent_service_account" {
  description = "Name of the agent's ServiceAccount, in the sandbox namespace: the agent (the e2e tests) acts as it from outside the cluster, with a token."
  type        = string
  default     = "gkexec-agent"
}

variable "create_runtime_class" {
  description = "Create the gvisor RuntimeClass. The local cluster already has one (test/localcluster/manifests), and destroy would delete it, so leave this false there."
  type        = bool
  default     = false
}

variable "quota" {
  description = "ResourceQuota overrides (see the sandbox-namespace module); unset fields keep the module's defaults."
  type = object({
    jobs                     = optional(number)
    pods                     = optional(number)
    configmaps               = optional(number)
    requests_cpu             = optional(string)
    requests_memory          = optional(string)
    limits_cpu               = optional(string)
    limits_memory            = optional(string)
    limits_ephemeral_storage = optional(string)
  })
  default = {}
}

variable "warm_pool" {
  description = "A warm pool of pre-started sandboxes (see the sandbox-namespace module's warm_pool); null for none."
  type = object({
    name     = optional(string, "default")
    replicas = optional(number, 2)
  })
  default = null
}
