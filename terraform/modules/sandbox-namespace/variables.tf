variable "namespace" {
  description = "Namespace the runner creates its ConfigMaps, Jobs and Pods in. The module creates it and deletes it on destroy, so it must be dedicated to gkexec: it admits only gkexec sandbox Pods."
  type        = string
  default     = "gkexec"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace \"${var.namespace}\" is not a valid Kubernetes namespace name: use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit."
  }
  validation {
    condition     = !contains(["default", "kube-system", "kube-public", "kube-node-lease"], var.namespace)
    error_message = "namespace \"${var.namespace}\" is a system namespace; this module deletes its namespace on destroy, so give gkexec a dedicated one such as \"gkexec\"."
  }
}

variable "agent_service_account" {
  description = <<-EOT
    The Kubernetes ServiceAccount the agent (the process that calls the runner) runs as: the module
    creates it and binds the Role to it. namespace is where it lives: null (the default) means the
    sandbox namespace, which suits an agent outside the cluster that uses a token of it (gkexec on a
    workstation, CI); an agent Pod runs in a namespace of its own, never among the sandboxes (the
    namespace's admission policy refuses it there), so give that namespace, which must exist.
    gcp_service_account, when set, is the Google service account it impersonates through GKE
    Workload Identity (annotation iam.gke.io/gcp-service-account); see the workload-identity module.
  EOT
  type = object({
    name                = optional(string, "gkexec-agent")
    namespace           = optional(string)
    gcp_service_account = optional(string)
  })
  default  = {}
  nullable = false

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.agent_service_account.name))
    error_message = "agent_service_account.name \"${var.agent_service_account.name}\" is not a valid ServiceAccount name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit."
  }
  validation {
    condition     = var.agent_service_account.namespace == null || can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.agent_service_account.namespace))
    error_message = "agent_service_account.namespace must be the name of the namespace the agent's Pods run in (at most 63 lower-case letters, digits and '-'), or null for the sandbox namespace."
  }
  validation {
    condition     = var.agent_service_account.gcp_service_account == null || can(regex("^[a-z][-a-z0-9]{4,28}[a-z0-9]@[-a-z0-9.]+\\.gserviceaccount\\.com$", var.agent_service_account.gcp_service_account))
    error_message = "agent_service_account.gcp_service_account must be a Google service account email such as gkexec-agent@PROJECT_ID.iam.gserviceaccount.com (the workload-identity module outputs it), or null for no Workload Identity."
  }
}

variable "sandbox_egress" {
  description = <<-EOT
    Egress allowed to sandbox Pods on top of the default deny (which blocks all ingress and egress).
    DNS is NOT implied: allow_dns lets sandbox Pods query kube-dns (Pods labelled k8s-app=kube-dns in
    kube-system, port 53), and with it open a DNS-tunnelling channel: code can send data out encoded
    in the names it looks up, which kube-dns forwards to their domains' servers on the internet, and
    read answers back, even with no destination allowed. destinations are CIDRs (with optional
    exceptions), each with optional ports; no ports means every port. A destination never opens the
    metadata server (169.254.169.254/32, fd20:ce::254/128) or the ranges of cluster_ranges (the
    cluster's Pods, Services and control plane), which it must then be given, unless the destination
    names one (equals it or lies inside it): they are added to its except list. With Dataplane V2,
    Service IPs are translated before the policy applies: allow the backends' Pod or external IPs,
    not a ClusterIP.
  EOT
  type = object({
    allow_dns = optional(bool, false)
    destinations = optional(list(object({
      cidr   = string
      except = optional(list(string), [])
      ports = optional(list(object({
        port     = number
        end_port = optional(number)
        protocol = optional(string, "TCP")
      })), [])
    })), [])
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for d in var.sandbox_egress.destinations : can(cidrhost(d.cidr, 0)) && alltrue([for e in d.except : can(cidrhost(e, 0))])])
    error_message = "sandbox_egress.destinations: every cidr and except entry must be a CIDR block such as 203.0.113.0/24 or 2001:db8::/32."
  }
  validation {
    condition = alltrue(flatten([for d in var.sandbox_egress.destinations : [
      for p in d.ports : contains(["TCP", "UDP", "SCTP"], p.protocol) && p.port >= 1 && p.port <= 65535 && floor(p.port) == p.port &&
      (p.end_port == null || try(p.end_port >= p.port && p.end_port <= 65535 && floor(p.end_port) == p.end_port, false))
    ]]))
    error_message = "sandbox_egress.destinations[*].ports: protocol must be TCP, UDP or SCTP, port a whole number from 1 to 65535, and end_port (for a range) at least port and at most 65535."
  }
}

variable "cluster_ranges" {
  description = <<-EOT
    The cluster's own address ranges, which sandbox_egress.destinations never open unless a
    destination names one: pod_cidrs (Pod IPs; GKE: the cluster's Pod range, clusterIpv4Cidr),
    service_cidrs (ClusterIPs; GKE: servicesIpv4Cidr) and control_plane_cidrs (the API server's
    addresses, e.g. GKE's privateClusterConfig.privateEndpoint/32 and public endpoint/32; `kubectl get
    endpoints kubernetes -n default` lists them). Each is added to the except list of every destination
    that contains it. Required once there are destinations: a destination such as 0.0.0.0/0 would
    otherwise reach every Pod, Service and the control plane. Unused without destinations.
  EOT
  type = object({
    pod_cidrs           = optional(list(string), [])
    service_cidrs       = optional(list(string), [])
    control_plane_cidrs = optional(list(string), [])
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for c in concat(var.cluster_ranges.pod_cidrs, var.cluster_ranges.service_cidrs, var.cluster_ranges.control_plane_cidrs) : can(cidrhost(c, 0))])
    error_message = "cluster_ranges: every entry of pod_cidrs, service_cidrs and control_plane_cidrs must be a CIDR block such as 10.12.0.0/14, 34.118.224.0/20 or 172.16.0.2/32."
  }
  validation {
    condition     = length(var.sandbox_egress.destinations) == 0 || (length(var.cluster_ranges.pod_cidrs) > 0 && length(var.cluster_ranges.service_cidrs) > 0 && length(var.cluster_ranges.control_plane_cidrs) > 0)
    error_message = "cluster_ranges: sandbox_egress.destinations is set, so give the cluster's pod_cidrs, service_cidrs and control_plane_cidrs (GKE: gcloud container clusters describe CLUSTER --format='value(clusterIpv4Cidr,servicesIpv4Cidr,privateClusterConfig.privateEndpoint,endpoint)'): the module keeps them out of every destination that contains them, so that allowing, say, 0.0.0.0/0 does not open the other Pods, the Services or the API server to sandboxed code."
  }
}

variable "fqdn_network_policy" {
  description = <<-EOT
    GKE only: the L3/L4 layer under the egress gateway, enforced by Dataplane V2, so that even a
    compromised or misconfigured gateway reaches nothing but the allowed domains. With enabled,
    the module puts two objects in gateway_namespace, the gateway's own namespace (null means
    "<namespace>-egress"), which must exist and hold nothing but the gateway:
    - NetworkPolicy gkexec-egress-gateway-cluster: every Pod there may reach kube-dns (port 53)
      and the API server (cluster_ranges.control_plane_cidrs, TCP 443: the gateway watches the
      sandbox Pods) and nothing else;
    - FQDNNetworkPolicy gkexec-egress-gateway: the gateway's Pods (label
      app.kubernetes.io/component: egress-gateway) may also reach allowed_domains on ports (TCP).
    allowed_domains: lower-case DNS names of two labels or more, exact ("pypi.org") or a wildcard
    ("*.pythonhosted.org") that, as GKE matches it, covers exactly one more label
    (files.pythonhosted.org, but neither pythonhosted.org nor a.b.pythonhosted.org): list each
    level you need. Give the gateway's allow-list, or a wider one. ports: default 80 and 443.
    cluster_enabled: whether the cluster enforces FQDN network policies (Dataplane V2 with
    enable_fqdn_network_policy), i.e. the gke-sandbox-cluster module's fqdn_network_policy_enabled
    output; enabled requires it.
  EOT
  type = object({
    enabled           = optional(bool, false)
    allowed_domains   = optional(list(string), [])
    ports             = optional(list(number), [80, 443])
    gateway_namespace = optional(string)
    cluster_enabled   = optional(bool, false)
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for d in var.fqdn_network_policy.allowed_domains : length(d) <= 253 && can(regex(local.domain_pattern, d))])
    error_message = "fqdn_network_policy.allowed_domains must be domains, and ${join(", ", [for d in var.fqdn_network_policy.allowed_domains : jsonencode(d) if !(length(d) <= 253 && can(regex(local.domain_pattern, d)))])} are not: give lower-case DNS names of two labels or more, such as pypi.org, or a wildcard such as *.pythonhosted.org (one leading '*.' only, over a name of two labels or more); no IP addresses, ports, schemes or trailing dots."
  }
  validation {
    condition     = !anytrue([for d in var.fqdn_network_policy.allowed_domains : anytrue([for s in local.internal_domains : d == s || endswith(d, ".${s}")])])
    error_message = "fqdn_network_policy.allowed_domains may name neither the cluster's Services (cluster.local), which FQDN network policies cannot allow (Dataplane V2 sees a Service's Pods, not its address), nor the metadata server (google.internal), which hands out credentials; remove ${join(", ", [for d in var.fqdn_network_policy.allowed_domains : jsonencode(d) if anytrue([for s in local.internal_domains : d == s || endswith(d, ".${s}")])])}."
  }
  validation {
    condition     = !var.fqdn_network_policy.enabled || length(var.fqdn_network_policy.allowed_domains) > 0
    error_message = "fqdn_network_policy: enabled with no allowed_domains would let the gateway reach no domain at all; list the domains its allow-list names, or set enabled = false."
  }
  validation {
    condition     = alltrue([for p in var.fqdn_network_policy.ports : p >= 1 && p <= 65535 && floor(p) == p]) && (!var.fqdn_network_policy.enabled || length(var.fqdn_network_policy.ports) > 0)
    error_message = "fqdn_network_policy.ports must be whole numbers from 1 to 65535, at least one when enabled (the default is [80, 443]): an FQDNNetworkPolicy rule without ports would allow every port."
  }
  validation {
    # The name the module uses: the given one, or <namespace>-egress.
    condition = !var.fqdn_network_policy.enabled || alltrue([for ns in [coalesce(var.fqdn_network_policy.gateway_namespace, "${var.namespace}-egress")] :
      can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", ns)) && !contains(["default", "kube-system", "kube-public", "kube-node-lease", var.namespace, coalesce(var.agent_service_account.namespace, var.namespace)], ns)
    ])
    error_message = "fqdn_network_policy.gateway_namespace \"${coalesce(var.fqdn_network_policy.gateway_namespace, "${var.namespace}-egress")}\" must be a namespace name (at most 63 lower-case letters, digits and '-'; the default <namespace>-egress needs a namespace of at most 56) dedicated to the egress gateway: not a system namespace, the sandbox namespace or the agent's, whose Pods its NetworkPolicy would cut off from the network."
  }
  validation {
    # With the module installing the gateway too, both must name one namespace: the FQDN policies
    # hold the gateway's Pods where they run.
    condition     = !var.fqdn_network_policy.enabled || var.egress_gateway == null || coalesce(var.fqdn_network_policy.gateway_namespace, "${var.namespace}-egress") == coalesce(try(var.egress_gateway.namespace, null), "${var.namespace}-egress")
    error_message = "fqdn_network_policy.gateway_namespace \"${coalesce(var.fqdn_network_policy.gateway_namespace, "${var.namespace}-egress")}\" is not the egress gateway's namespace \"${coalesce(try(var.egress_gateway.namespace, null), "${var.namespace}-egress")}\" (egress_gateway.namespace; both default to <namespace>-egress): the FQDN policies must hold the gateway's Pods where they run. Give the same name to both, or leave both unset."
  }

  validation {
    condition     = !var.fqdn_network_policy.enabled || var.fqdn_network_policy.cluster_enabled
    error_message = "fqdn_network_policy: FQDN network policies need GKE Dataplane V2 with FQDN network policy turned on (gke-sandbox-cluster: enable_fqdn_network_policy = true; gcloud: --enable-fqdn-network-policy). Pass the cluster module's fqdn_network_policy_enabled output as cluster_enabled; without the feature GKE has no FQDNNetworkPolicy kind and the apply fails, or the policy is stored and not enforced."
  }
  validation {
    condition     = !var.fqdn_network_policy.enabled || length(var.cluster_ranges.control_plane_cidrs) > 0
    error_message = "fqdn_network_policy: give cluster_ranges.control_plane_cidrs (GKE: the private endpoint, gcloud container clusters describe CLUSTER --format='value(privateClusterConfig.privateEndpoint)', as a /32): the gateway's namespace may reach only what its policies allow, and the gateway must reach the API server to watch the sandbox Pods."
  }
}

variable "quota" {
  description = <<-EOT
    ResourceQuota of the namespace. Each execution holds one Job, one Pod and one ConfigMap while it
    runs, so jobs caps concurrent executions. The defaults fit 50 executions at the runner's default
    resources (request 200m CPU / 256Mi, limit 500m / 512Mi / 1Gi ephemeral storage) beside the
    default warm pool at its largest (2 Pods and 1 surged in a rollout). Nothing else runs here: the
    agent runs in a namespace of its own. CPU and memory are Kubernetes quantities ("12", "500m",
    "16Gi").
  EOT
  type = object({
    jobs                     = optional(number, 50)
    pods                     = optional(number, 55)
    configmaps               = optional(number, 55)
    requests_cpu             = optional(string, "12")
    requests_memory          = optional(string, "16Gi")
    limits_cpu               = optional(string, "30")
    limits_memory            = optional(string, "32Gi")
    limits_ephemeral_storage = optional(string, "64Gi")
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for n in [var.quota.jobs, var.quota.pods, var.quota.configmaps] : n >= 1 && floor(n) == n])
    error_message = "quota.jobs, quota.pods and quota.configmaps must be whole numbers of at least 1."
  }
  validation {
    condition     = var.quota.pods >= var.quota.jobs
    error_message = "quota.pods (${var.quota.pods}) must be at least quota.jobs (${var.quota.jobs}): every running Job has a Pod, and warm pool Pods count too."
  }
  validation {
    condition     = var.quota.configmaps >= var.quota.jobs + 1
    error_message = "quota.configmaps (${var.quota.configmaps}) must be at least quota.jobs + 1 (${var.quota.jobs + 1}): every execution holds a ConfigMap, and kube-root-ca.crt counts too."
  }
  validation {
    condition = alltrue([for q in [var.quota.requests_cpu, var.quota.requests_memory, var.quota.limits_cpu, var.quota.limits_memory, var.quota.limits_ephemeral_storage] :
    can(regex(local.quantity_pattern, q))])
    error_message = "quota: requests_cpu, requests_memory, limits_cpu, limits_memory and limits_ephemeral_storage must be Kubernetes quantities such as \"12\", \"500m\" or \"16Gi\"."
  }
  validation {
    # `for v in [...]` binds v to the quota's quantities as numbers.
    condition = try(alltrue([for v in [{ for k, q in var.quota : k => tonumber(regex(local.quantity_pattern, q)[0]) * local.quantity_multiplier[regex(local.quantity_pattern, q)[1]] if endswith(k, "_cpu") || endswith(k, "_memory") }] :
      v.requests_cpu <= v.limits_cpu && v.requests_memory <= v.limits_memory
    ]), true)
    error_message = "quota: requests_cpu must not exceed limits_cpu, nor requests_memory limits_memory: every container's request is at most its limit."
  }
}

variable "container_resources" {
  description = <<-EOT
    LimitRange for containers in the namespace: the request and limit given to containers that set
    none (equal to the runner's defaults), and the largest limit a container may ask for. Values are
    Kubernetes quantities.
  EOT
  type = object({
    request_cpu               = optional(string, "200m")
    request_memory            = optional(string, "256Mi")
    request_ephemeral_storage = optional(string, "256Mi")
    limit_cpu                 = optional(string, "500m")
    limit_memory              = optional(string, "512Mi")
    limit_ephemeral_storage   = optional(string, "1Gi")
    max_cpu                   = optional(string, "2")
    max_memory                = optional(string, "4Gi")
    max_ephemeral_storage     = optional(string, "4Gi")
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for k, q in var.container_resources : can(regex(local.quantity_pattern, q))])
    error_message = "container_resources: every value must be a Kubernetes quantity such as \"500m\", \"2\" or \"512Mi\"."
  }
  validation {
    # v binds the values as numbers.
    condition = try(alltrue([for v in [{ for k, q in var.container_resources : k => tonumber(regex(local.quantity_pattern, q)[0]) * local.quantity_multiplier[regex(local.quantity_pattern, q)[1]] }] :
      alltrue([for r in ["cpu", "memory", "ephemeral_storage"] : v["request_${r}"] <= v["limit_${r}"] && v["limit_${r}"] <= v["max_${r}"]])
    ]), true)
    error_message = "container_resources: for cpu, memory and ephemeral_storage, request_* <= limit_* <= max_* must hold, or the API server rejects the LimitRange."
  }
  validation {
    # For each resource, v = [default limit, quota limit] as numbers.
    condition = try(alltrue([for r in ["cpu", "memory", "ephemeral_storage"] :
      alltrue([for v in [[for q in [var.container_resources["limit_${r}"], var.quota["limits_${r}"]] : tonumber(regex(local.quantity_pattern, q)[0]) * local.quantity_multiplier[regex(local.quantity_pattern, q)[1]]]] : v[0] <= v[1]])
    ]), true)
    error_message = "container_resources: the default limits exceed the namespace quota, so not even one execution would fit; raise quota.limits_* or lower container_resources.limit_*."
  }
}

variable "create_runtime_class" {
  description = "Create the cluster-wide RuntimeClass gvisor (handler gvisor, scheduled onto nodes labelled and tainted sandbox.gke.io/runtime=gvisor), for clusters that are not GKE Sandbox. Leave false on GKE, which provides it; note that destroy deletes it."
  type        = bool
  default     = false
  nullable    = false
}

variable "warm_pool" {
  description = <<-EOT
    A warm pool of pre-started sandboxes (null, the default, for none): a Deployment of idle gVisor
    sandbox Pods, exactly what runner.WarmPoolDeployment builds for these settings, which a runner
    with the same options (runner.Options.WarmPool = name, and the same image and
    resources) claims instead of starting a cold Job. Also adds runner.WarmPoolRules() to the Role:
    pods patch/delete and pods/attach create/get. replicas is about the peak number of concurrent
    executions you want to start warm; a burst beyond it runs cold. Each idle Pod holds its requests
    and, on the node, about 145 MB of gVisor overhead. The pool's Pods count against the quota: the
    quota must still fit quota.jobs executions beside replicas + 25% (the rollout surge) pool Pods,
    at the pool's resources. Sessions (runner.OpenSession, gkexec session, serve's /v1/sessions)
    need the same rules, warm or cold: set warm_pool with replicas = 0 to grant them without idle Pods.

    autoscale (null, the default, for a fixed size) sizes the pool by demand instead of replicas
    (runner/autoscale): between min (0 allowed) and max idle Pods, the most claims and cold
    fallbacks seen within one refill time plus spare, down once the demand stayed lower for
    cooldown (a Go duration). The policy goes on the Deployment's annotations and replicas off it
    (the autoscaler owns them; Terraform would take them back at every apply), and the Role gains
    runner.PoolAutoscaleRules() (deployments get, deployments/scale get/update, leases
    get/create/update). gkexec serve sizes the pool (one process at a time, elected through a
    Lease), or gkexec pool autoscale run on its own. The quota must then fit max where it fits
    replicas otherwise.
  EOT
  type = object({
    name                    = optional(string, "default")
    replicas                = optional(number, 2)
    image                   = optional(string, "python:3.11-slim")
    cpu_request             = optional(string, "200m")
    memory_request          = optional(string, "256Mi")
    cpu_limit               = optional(string, "500m")
    memory_limit            = optional(string, "512Mi")
    ephemeral_storage_limit = optional(string, "1Gi")
    scratch_size            = optional(string, "128Mi")
    autoscale = optional(object({
      min      = optional(number, 1)
      max      = optional(number, 4)
      spare    = optional(number, 1)
      cooldown = optional(string, "5m0s")
    }))
  })
  default = null

  validation {
    condition     = var.warm_pool == null || can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.warm_pool.name))
    error_message = "warm_pool.name must be at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit: it is the gkexec.dev/pool label value and part of the Deployment's name (gkexec-pool-NAME)."
  }
  validation {
    condition     = var.warm_pool == null || try(var.warm_pool.replicas >= 0 && floor(var.warm_pool.replicas) == var.warm_pool.replicas, false)
    error_message = "warm_pool.replicas must be a whole number of at least 0 (0 keeps the Deployment and the RBAC but no idle Pods)."
  }
  validation {
    condition = try(var.warm_pool.autoscale == null, true) || try(
      var.warm_pool.autoscale.min >= 0 && floor(var.warm_pool.autoscale.min) == var.warm_pool.autoscale.min &&
      var.warm_pool.autoscale.max >= max(1, var.warm_pool.autoscale.min) && floor(var.warm_pool.autoscale.max) == var.warm_pool.autoscale.max &&
    var.warm_pool.autoscale.spare >= 0 && floor(var.warm_pool.autoscale.spare) == var.warm_pool.autoscale.spare, false)
    error_message = "warm_pool.autoscale: min, max and spare must be whole numbers, min and spare at least 0, max at least 1 and at least min."
  }
  validation {
    condition     = try(var.warm_pool.autoscale == null, true) || can(regex("^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$", var.warm_pool.autoscale.cooldown))
    error_message = "warm_pool.autoscale.cooldown must be a Go duration such as 5m0s, 90s or 1h."
  }
  validation {
    condition     = var.warm_pool == null || can(regex("^[^[:space:]]+$", var.warm_pool.image))
    error_message = "warm_pool.image must be a container image reference such as python:3.11-slim, without spaces; it must have python3 on its PATH."
  }
  validation {
    condition     = var.warm_pool == null || try(alltrue([for k, q in var.warm_pool : can(regex(local.quantity_pattern, q)) && tonumber(regex(local.quantity_pattern, q)[0]) > 0 if !contains(["name", "replicas", "image", "autoscale"], k)]), false)
    error_message = "warm_pool: cpu_request, memory_request, cpu_limit, memory_limit, ephemeral_storage_limit and scratch_size must be positive Kubernetes quantities such as \"500m\", \"1\" or \"256Mi\"."
  }
  validation {
    # v binds the pool's quantities as numbers.
    condition = var.warm_pool == null || try(alltrue([for v in [{ for k, q in var.warm_pool : k => tonumber(regex(local.quantity_pattern, q)[0]) * local.quantity_multiplier[regex(local.quantity_pattern, q)[1]] if !contains(["name", "replicas", "image", "autoscale"], k) }] :
      v.cpu_request <= v.cpu_limit && v.memory_request <= v.memory_limit
    ]), true)
    error_message = "warm_pool: cpu_request must not exceed cpu_limit, nor memory_request memory_limit: a request cannot be above its limit."
  }
  validation {
    # pods = replicas plus the rollout's 25% surge, rounded up as the Deployment controller does.
    # The pool at its largest: replicas, or autoscale.max when it is sized by demand.
    condition     = var.warm_pool == null || try(var.quota.pods >= var.quota.jobs + coalesce(try(var.warm_pool.autoscale.max, null), var.warm_pool.replicas) + ceil(coalesce(try(var.warm_pool.autoscale.max, null), var.warm_pool.replicas) / 4), true)
    error_message = "warm_pool: quota.pods must be at least quota.jobs + replicas + ceil(replicas / 4) (${try(var.quota.jobs + coalesce(try(var.warm_pool.autoscale.max, null), var.warm_pool.replicas) + ceil(coalesce(try(var.warm_pool.autoscale.max, null), var.warm_pool.replicas) / 4), "?")}), with autoscale.max for replicas when the pool is sized by demand: idle pool Pods, and the 25% more a rollout surges, count against the quota next to every execution's Pod. Raise quota.pods or lower replicas (or autoscale.max)."
  }
  validation {
    # For each quota resource, v = [quota, the pool's value per Pod] as numbers; the quota must hold
    # quota.jobs executions and the surged pool, all at the pool's resources.
    condition = var.warm_pool == null || try(alltrue([for r, p in { requests_cpu = "cpu_request", requests_memory = "memory_request", limits_cpu = "cpu_limit", limits_memory = "memory_limit", limits_ephemeral_storage = "ephemeral_storage_limit" } :
      alltrue([for v in [[for q in [var.quota[r], var.warm_pool[p]] : tonumber(regex(local.quantity_pattern, q)[0]) * local.quantity_multiplier[regex(local.quantity_pattern, q)[1]]]] :
      v[0] >= v[1] * (var.quota.jobs + coalesce(try(var.warm_pool.autoscale.max, null), var.warm_pool.replicas) + ceil(coalesce(try(var.warm_pool.autoscale.max, null), var.warm_pool.replicas) / 4))])
    ]), true)
    error_message = "warm_pool: the quota's requests_cpu, requests_memory, limits_cpu, limits_memory and limits_ephemeral_storage must each hold quota.jobs executions plus replicas + ceil(replicas / 4) pool Pods, all at the pool's resources; otherwise the idle pool eats the room executions need. Raise the quota or shrink the pool."
  }
}

variable "egress_gateway" {
  description = <<-EOT
    The egress gateway (null, the default, for none): `gkexec gateway`, a forward proxy in a
    namespace of its own (namespace; null means "<namespace>-egress") through which the sandboxes
    reach the hosts allow lists, and nothing else: a NetworkPolicy lets them reach the gateway's
    proxy port only. allow is the widest list any sandbox gets (runner Request.AllowDomains may
    narrow it per execution, never widen it): host is an exact name, "*.domain" (every name below
    domain) or an IP address; ports default to 80 and 443; allow_private lets the host resolve to a
    private address (an in-cluster mirror). secrets bind credentials to hosts: a sandbox sends the
    placeholder gkexec-secret:NAME, and the gateway puts the value of key NAME of Secret
    gkexec-egress-secrets (in the gateway's namespace; create it yourself, its values never pass
    through Terraform) into requests to those hosts only, intercepting their HTTPS with the CA in
    Secret gkexec-egress-ca (ca.crt and ca.key: `gkexec gateway ca`). advertise is how sandboxes
    reach the gateway: "service" (its Service's cluster IP; GKE) or "pod" (its Pod IP, for clusters
    whose Service addresses route nowhere; one replica). denied_prefixes are ranges the gateway
    never connects to whatever the rules say (the cluster's ranges when they are not private).
  EOT
  type = object({
    namespace = optional(string)
    image     = optional(string, "ghcr.io/gkexec/gkexec:dev")
    replicas  = optional(number, 1)
    advertise = optional(string, "service")
    allow = optional(list(object({
      host          = string
      ports         = optional(list(number), [])
      allow_private = optional(bool, false)
    })), [])
    secrets = optional(list(object({
      name  = string
      hosts = list(string)
      query = optional(bool, false)
    })), [])
    denied_prefixes = optional(list(string), [])
  })
  default = null

  validation {
    condition     = try(var.egress_gateway.namespace == null, true) || try(can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.egress_gateway.namespace)) && var.egress_gateway.namespace != var.namespace, false)
    error_message = "egress_gateway.namespace must be a namespace name (at most 63 lower-case letters, digits and '-') other than the sandbox namespace, which admits only sandboxes; or null for \"<namespace>-egress\"."
  }
  validation {
    condition     = var.egress_gateway == null || try(var.egress_gateway.replicas >= 1 && floor(var.egress_gateway.replicas) == var.egress_gateway.replicas, false)
    error_message = "egress_gateway.replicas must be a whole number of at least 1."
  }
  validation {
    condition     = var.egress_gateway == null || try(contains(["service", "pod"], var.egress_gateway.advertise) && (var.egress_gateway.advertise == "service" || var.egress_gateway.replicas == 1), false)
    error_message = "egress_gateway.advertise must be \"service\" (sandboxes reach the gateway at its Service's cluster IP) or \"pod\" (at its Pod IP, with replicas = 1: every replica would publish its own)."
  }
  validation {
    condition     = var.egress_gateway == null || can(regex("^[^[:space:]]+$", var.egress_gateway.image))
    error_message = "egress_gateway.image must be a container image reference of gkexec (test/images/build.sh builds ghcr.io/gkexec/gkexec:dev), without spaces."
  }
  validation {
    condition = var.egress_gateway == null || try(alltrue([for r in var.egress_gateway.allow :
      (can(regex("^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$", lower(r.host))) || can(cidrhost("${r.host}/32", 0)) || can(cidrhost("${r.host}/128", 0))) &&
      alltrue([for p in r.ports : p >= 1 && p <= 65535 && floor(p) == p])
    ]), false)
    error_message = "egress_gateway.allow: each host must be a DNS name with a dot (pypi.org), a wildcard of subdomains keeping two labels (*.pythonhosted.org, not *.com or *) or an IP address; each port a whole number from 1 to 65535."
  }
  validation {
    condition = var.egress_gateway == null || try(alltrue([for s in var.egress_gateway.secrets :
      can(regex("^[-._a-zA-Z0-9]{1,253}$", s.name)) && length(s.hosts) > 0
      ]) && length(distinct([for s in var.egress_gateway.secrets : s.name])) == length(var.egress_gateway.secrets) &&
    alltrue(flatten([for s in var.egress_gateway.secrets : [for h in s.hosts : contains([for r in var.egress_gateway.allow : lower(r.host)], lower(h)) || anytrue([for r in var.egress_gateway.allow : startswith(r.host, "*.") && endswith(lower(h), lower(substr(r.host, 1, -1)))])]])), false)
    error_message = "egress_gateway.secrets: each name (a key of Secret gkexec-egress-secrets: letters, digits, '.', '_', '-') once, bound to at least one host, and every bound host on the allow list (a secret bound to a host no sandbox may reach could never be sent)."
  }
  validation {
    condition     = var.egress_gateway == null || try(alltrue([for c in var.egress_gateway.denied_prefixes : can(cidrhost(c, 0))]), false)
    error_message = "egress_gateway.denied_prefixes: every entry must be a CIDR block such as 34.118.224.0/20."
  }
}

variable "warm_pool_priority_class" {
  description = <<-EOT
    The PriorityClass of the warm pool's Pods (used only with warm_pool). Idle pool Pods run below an
    execution's own sandbox (a cold fallback, a session's Job), which keeps the cluster's default
    priority (0, unless a globalDefault PriorityClass says otherwise): when the nodes are full, the
    scheduler evicts an idle pool Pod to place the execution's sandbox rather than leave the execution
    Pending, and the pool's Deployment replaces the evicted Pod once there is room again. name defaults
    to gkexec-warm-pool-<namespace>: a PriorityClass is cluster-wide, so two installations never share
    (or delete) one. With create (the default) the module creates it with value (default -1) and
    preemptionPolicy Never: a pool Pod takes free room only, it never evicts anything. create = false
    gives the pool an existing class of that name instead. null: no PriorityClass, pool Pods at the
    default priority, like executions.
  EOT
  type = object({
    name   = optional(string)
    value  = optional(number, -1)
    create = optional(bool, true)
  })
  default = {}

  validation {
    condition     = try(var.warm_pool_priority_class.name == null, true) || try(can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.warm_pool_priority_class.name)) && !startswith(var.warm_pool_priority_class.name, "system-"), false)
    error_message = "warm_pool_priority_class.name must be a PriorityClass name: at most 253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, and not starting with \"system-\" (reserved by Kubernetes); or null for gkexec-warm-pool-<namespace>."
  }
  validation {
    condition     = var.warm_pool_priority_class == null || try(var.warm_pool_priority_class.value >= -10 && var.warm_pool_priority_class.value <= -1 && floor(var.warm_pool_priority_class.value) == var.warm_pool_priority_class.value, false)
    error_message = "warm_pool_priority_class.value must be a whole number from -10 to -1: below 0, the priority executions' sandboxes get, so that they can evict idle pool Pods; not below -10, under which GKE's cluster autoscaler counts Pods as expendable, adds no node for them and may remove the nodes they run on."
  }
  validation {
    condition     = var.warm_pool_priority_class == null || try(var.warm_pool_priority_class.create || var.warm_pool_priority_class.name != null, false)
    error_message = "warm_pool_priority_class: with create = false the pool uses an existing PriorityClass: give its name (warm_pool_priority_class.name), or leave create at true to have the module make gkexec-warm-pool-<namespace>."
  }
}
