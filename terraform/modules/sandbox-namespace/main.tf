locals {
  # Kubernetes quantities without exponents: digits, optional fraction, optional suffix. The
  # validations in variables.tf turn them into numbers with these two constants (validations may
  # only refer to locals that do not depend on the variable they check).
  quantity_pattern = "^([0-9]+(?:\\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|)$"
  quantity_multiplier = {
    "" = 1, m = 0.001, k = 1e3, M = 1e6, G = 1e9, T = 1e12, P = 1e15, E = 1e18,
    Ki = pow(2, 10), Mi = pow(2, 20), Gi = pow(2, 30), Ti = pow(2, 40), Pi = pow(2, 50), Ei = pow(2, 60)
  }
  dns_egress = [{
    to = [{
      namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = "kube-system" } }
      podSelector       = { matchLabels = { "k8s-app" = "kube-dns" } }
    }]
    ports = [{ protocol = "UDP", port = 53 }, { protocol = "TCP", port = 53 }]
  }]
  # What no destination opens unless it names it (equals it or lies inside it): the metadata server
  # (169.254.169.254, and fd20:ce::254 on IPv6), which hands out the node's credentials, and the
  # cluster's own Pod, Service and control-plane ranges. Each goes into the `except` of every
  # destination that strictly contains it (the API requires an except to be a strict subset of
  # its cidr), written canonically.
  protected_cidrs = distinct([for c in concat(["169.254.169.254/32", "fd20:ce::254/128"], var.cluster_ranges.pod_cidrs, var.cluster_ranges.service_cidrs, var.cluster_ranges.control_plane_cidrs) :
  try("${cidrhost(c, 0)}/${split("/", c)[1]}", c)])
  destination_except = [for d in var.sandbox_egress.destinations : distinct(concat(d.except, [
    # p lies strictly inside d: a longer prefix, and p's address cut to d's prefix is d's network
    # (false across IPv4 and IPv6, whose addresses never compare equal).
    for p in local.protected_cidrs : p if try(tonumber(split("/", p)[1]) > tonumber(split("/", d.cidr)[1]) &&
    cidrhost("${cidrhost(p, 0)}/${split("/", d.cidr)[1]}", 0) == cidrhost(d.cidr, 0), false)
  ]))]
  # Keys with empty values are left out rather than rendered as [] or null, so the applied objects
  # match what the API server stores.
  destination_egress = [for i, d in var.sandbox_egress.destinations : merge(
    { to = [{ ipBlock = merge({ cidr = d.cidr }, { for k, v in { except = local.destination_except[i] } : k => v if length(v) > 0 }) }] },
    { for k, v in { ports = [for p in d.ports : merge({ protocol = p.protocol, port = p.port }, { for k, v in { endPort = p.end_port } : k => v if v != null })] } : k => v if length(v) > 0 },
  )]
  egress = concat(var.sandbox_egress.allow_dns ? local.dns_egress : [], local.destination_egress)

  # fqdn_network_policy. A domain: lower-case labels of 1-63 letters, digits and inner '-', two
  # at least, the last starting with a letter (so never an IP address); a wildcard is one leading
  # '*.' on top. Names below internal_domains are refused.
  domain_pattern    = "^(\\*\\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
  internal_domains  = ["cluster.local", "google.internal"]
  gateway_namespace = coalesce(var.fqdn_network_policy.gateway_namespace, "${var.namespace}-egress")
  # What every Pod of the gateway's namespace may reach besides the allowed domains: the cluster
  # DNS (the gateway resolves names, and Dataplane V2 learns the domains' addresses from those
  # answers) and the API server (the gateway watches the sandbox Pods).
  gateway_cluster_egress = concat(local.dns_egress, [{
    to    = [for c in var.cluster_ranges.control_plane_cidrs : { ipBlock = { cidr = c } }]
    ports = [{ protocol = "TCP", port = 443 }]
  }])
  # Exact names go into `name`, wildcards into `pattern`.
  gateway_fqdn_egress = [{
    matches = [for d in distinct(var.fqdn_network_policy.allowed_domains) : startswith(d, "*.") ? { pattern = d } : { name = d }]
    ports   = [for p in distinct(var.fqdn_network_policy.ports) : { protocol = "TCP", port = p }]
  }]

  # The RuntimeClass sandbox Pods run under: GKE Sandbox's, or the one create_runtime_class makes.
  # The namespace's label carries it to the admission policy.
  runtime_class_name = "gvisor"
  # Where the agent's ServiceAccount lives: the sandbox namespace unless it is given another.
  agent_namespace = coalesce(var.agent_service_account.namespace, var.namespace)

  namespace_manifest = templatefile("${path.module}/templates/namespace.yaml.tftpl", { namespace = var.namespace, runtime_class = local.runtime_class_name })

  # Every object but the Namespace, keyed by what it is rather than by its name, so that renaming
  # the ServiceAccount replaces that one object at the same address.
  manifests = merge(
    {
      serviceaccount = templatefile("${path.module}/templates/serviceaccount.yaml.tftpl", {
        namespace           = local.agent_namespace
        name                = var.agent_service_account.name
        gcp_service_account = var.agent_service_account.gcp_service_account
      })
      role = templatefile("${path.module}/templates/role.yaml.tftpl", {
        namespace = var.namespace
        warm_pool = var.warm_pool != null
        autoscale = try(var.warm_pool.autoscale != null, false)
      })
      rolebinding = templatefile("${path.module}/templates/rolebinding.yaml.tftpl", {
        namespace                 = var.namespace
        service_account           = var.agent_service_account.name
        service_account_namespace = local.agent_namespace
      })
      networkpolicy-default-deny       = templatefile("${path.module}/templates/networkpolicy-default-deny.yaml.tftpl", { namespace = var.namespace })
      resourcequota                    = templatefile("${path.module}/templates/resourcequota.yaml.tftpl", { namespace = var.namespace, quota = var.quota })
      limitrange                       = templatefile("${path.module}/templates/limitrange.yaml.tftpl", { namespace = var.namespace, limits = var.container_resources })
      poddisruptionbudget              = templatefile("${path.module}/templates/poddisruptionbudget.yaml.tftpl", { namespace = var.namespace })
      validatingadmissionpolicy        = templatefile("${path.module}/templates/validatingadmissionpolicy.yaml.tftpl", { namespace = var.namespace })
      validatingadmissionpolicybinding = templatefile("${path.module}/templates/validatingadmissionpolicybinding.yaml.tftpl", { namespace = var.namespace })
    },
    length(local.egress) == 0 ? {} : {
      networkpolicy-egress = templatefile("${path.module}/templates/networkpolicy-egress.yaml.tftpl", { namespace = var.namespace, egress = local.egress })
    },
    var.create_runtime_class ? { runtimeclass = file("${path.module}/templates/runtimeclass.yaml.tftpl") } : {},
    var.fqdn_network_policy.enabled ? {
      networkpolicy-egress-gateway     = templatefile("${path.module}/templates/networkpolicy-egress-gateway.yaml.tftpl", { namespace = local.gateway_namespace, egress = local.gateway_cluster_egress })
      fqdnnetworkpolicy-egress-gateway = templatefile("${path.module}/templates/fqdnnetworkpolicy-egress-gateway.yaml.tftpl", { namespace = local.gateway_namespace, egress = local.gateway_fqdn_egress })
    } : {},
    local.priorityclass_manifest,
  )

  # The PriorityClass of the pool's Pods, null for none; the module makes it unless told to use an
  # existing one.
  warm_pool_priority_class = var.warm_pool == null || var.warm_pool_priority_class == null ? null : coalesce(var.warm_pool_priority_class.name, "gkexec-warm-pool-${var.namespace}")
  priorityclass_manifest = local.warm_pool_priority_class == null || !try(var.warm_pool_priority_class.create, false) ? {} : {
    priorityclass = templatefile("${path.module}/templates/priorityclass.yaml.tftpl", {
      name        = local.warm_pool_priority_class
      value       = var.warm_pool_priority_class.value
      description = "Idle gkexec warm pool Pods: below the sandboxes of executions, which the scheduler places by evicting them; never evicts anything itself."
    })
  }

  # The warm pool's Deployment: what runner.WarmPoolDeployment builds for these settings, with the
  # runner's entrypoint inline and the pool's PriorityClass. sandbox/entrypoint.py is a copy of internal/wire/entrypoint.py (a
  # module cannot read outside its folder); test/parity fails when the two differ.
  warm_pool_manifest = var.warm_pool == null ? null : templatefile("${path.module}/templates/warm-pool-deployment.yaml.tftpl", {
    namespace      = var.namespace
    pool           = var.warm_pool
    priority_class = local.warm_pool_priority_class
    entrypoint     = file("${path.module}/sandbox/entrypoint.py")
  })
}

# The Namespace first, and waited for on destroy, so everything in it is gone when destroy returns.
resource "kubectl_manifest" "namespace" {
  yaml_body         = local.namespace_manifest
  server_side_apply = true
  # Take back fields someone changed out of band instead of failing on a field-manager conflict.
  force_conflicts = true
  wait            = true
}

resource "kubectl_manifest" "object" {
  for_each = local.manifests

  yaml_body         = each.value
  server_side_apply = true
  force_conflicts   = true

  depends_on = [kubectl_manifest.namespace]
}

# Separate from the other objects because it is the one that waits on nodes: apply does not wait
# for the pool to fill (a missing gVisor node or a slow image pull would hold it for minutes), and
# until it does, executions simply run cold. After the other objects: its Pods need the
# PriorityClass (admission refuses a Pod naming a class that does not exist) and are admitted by the
# policy; destroy deletes it first.
resource "kubectl_manifest" "warm_pool" {
  count = var.warm_pool == null ? 0 : 1

  yaml_body         = local.warm_pool_manifest
  server_side_apply = true
  force_conflicts   = true
  wait_for_rollout  = false

  depends_on = [kubectl_manifest.namespace, kubectl_manifest.object]
}
