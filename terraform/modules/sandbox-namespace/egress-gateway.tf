# The egress gateway (var.egress_gateway): its own namespace with the gateway, and its side of the
# sandbox namespace. The same objects as manifests/egress-gateway and
# manifests/components/egress-gateway (test/parity compares them).
locals {
  egress_gateway_namespace = var.egress_gateway == null ? null : coalesce(var.egress_gateway.namespace, "${var.namespace}-egress")
  egress_gateway_vars = var.egress_gateway == null ? null : {
    namespace             = var.namespace
    gateway_namespace     = local.egress_gateway_namespace
    agent_service_account = var.agent_service_account.name
    agent_namespace       = local.agent_namespace
    image                 = var.egress_gateway.image
    replicas              = var.egress_gateway.replicas
    advertise             = var.egress_gateway.advertise
    policy = templatefile("${path.module}/templates/egress-gateway/policy.yaml.tftpl", {
      allow           = var.egress_gateway.allow
      secrets         = var.egress_gateway.secrets
      denied_prefixes = var.egress_gateway.denied_prefixes
    })
  }
  egress_gateway_namespace_manifest = var.egress_gateway == null ? null : templatefile("${path.module}/templates/egress-gateway/namespace.yaml.tftpl", local.egress_gateway_vars)
  # Keyed by what each object is, as local.manifests.
  egress_gateway_manifests = var.egress_gateway == null ? {} : {
    for k in [
      # In the gateway's namespace.
      "serviceaccount", "role", "rolebinding", "role-runner", "rolebinding-runner", "configmap-policy", "deployment", "service", "networkpolicy",
      # In the sandbox namespace.
      "networkpolicy-egress-gateway", "configmap-egress-proxy", "configmap-egress-ca", "role-egress-gateway", "rolebinding-egress-gateway",
    ] : "egress-gateway-${k}" => templatefile("${path.module}/templates/egress-gateway/${k}.yaml.tftpl", local.egress_gateway_vars)
  }
}

resource "kubectl_manifest" "egress_gateway_namespace" {
  count = var.egress_gateway == null ? 0 : 1

  yaml_body         = local.egress_gateway_namespace_manifest
  server_side_apply = true
  force_conflicts   = true
  wait              = true
}

resource "kubectl_manifest" "egress_gateway" {
  for_each = local.egress_gateway_manifests

  yaml_body         = each.value
  server_side_apply = true
  force_conflicts   = true
  # The gateway's Pod may wait for its image; the sandboxes work without it (they reach nothing).
  wait_for_rollout = false

  depends_on = [kubectl_manifest.namespace, kubectl_manifest.egress_gateway_namespace]
}
