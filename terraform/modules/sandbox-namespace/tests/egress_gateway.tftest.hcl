# Plan-only: the egress gateway (var.egress_gateway), off by default, and its validations.
mock_provider "kubectl" {}

run "off_by_default" {
  command = plan

  assert {
    condition     = length(kubectl_manifest.egress_gateway) == 0 && length(kubectl_manifest.egress_gateway_namespace) == 0 && output.egress_gateway_namespace == null
    error_message = "Without egress_gateway the module must install no gateway."
  }
}

run "on_with_defaults" {
  command = plan
  variables { egress_gateway = {} }

  assert {
    condition     = yamldecode(kubectl_manifest.egress_gateway_namespace[0].yaml_body).metadata.name == "gkexec-egress" && output.egress_gateway_namespace == "gkexec-egress"
    error_message = "The gateway's namespace must default to <namespace>-egress."
  }
  assert {
    condition = toset(keys(kubectl_manifest.egress_gateway)) == toset([for k in [
      "serviceaccount", "role", "rolebinding", "role-runner", "rolebinding-runner", "configmap-policy", "deployment", "service", "networkpolicy",
      "networkpolicy-egress-gateway", "configmap-egress-proxy", "configmap-egress-ca", "role-egress-gateway", "rolebinding-egress-gateway",
    ] : "egress-gateway-${k}"])
    error_message = "The gateway's objects and its side of the sandbox namespace must all be installed."
  }
  assert {
    condition = alltrue([for k, o in kubectl_manifest.egress_gateway : yamldecode(o.yaml_body).metadata.namespace == (
      contains(["egress-gateway-networkpolicy-egress-gateway", "egress-gateway-configmap-egress-proxy", "egress-gateway-configmap-egress-ca", "egress-gateway-role-egress-gateway", "egress-gateway-rolebinding-egress-gateway"], k) ? "gkexec" : "gkexec-egress"
    )])
    error_message = "The gateway's objects must be in its namespace, and its side of the sandbox namespace in the sandbox namespace."
  }
  assert {
    condition     = yamldecode(yamldecode(kubectl_manifest.egress_gateway["egress-gateway-configmap-policy"].yaml_body).data["policy.yaml"]) == { allow = [], secrets = [], denied_prefixes = [] }
    error_message = "The default policy must allow nothing."
  }
  assert {
    condition     = contains(yamldecode(kubectl_manifest.egress_gateway["egress-gateway-deployment"].yaml_body).spec.template.spec.containers[0].args, "--advertise-service=gkexec-egress-gateway")
    error_message = "By default the gateway must publish its Service's cluster IP."
  }
  # The sandboxes reach the gateway's proxy port, and no other port of it.
  assert {
    condition = yamldecode(kubectl_manifest.egress_gateway["egress-gateway-networkpolicy-egress-gateway"].yaml_body).spec.egress == [{
      to = [{
        namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = "gkexec-egress" } }
        podSelector       = { matchLabels = { "app.kubernetes.io/name" = "gkexec-egress-gateway", "app.kubernetes.io/component" = "egress-gateway" } }
      }]
      ports = [{ protocol = "TCP", port = 3128 }]
    }]
    error_message = "The sandboxes' NetworkPolicy must open the gateway's proxy port only."
  }
}

run "on_with_a_policy" {
  command = plan
  variables {
    namespace = "team-a"
    egress_gateway = {
      namespace = "team-a-gw"
      advertise = "pod"
      allow     = [{ host = "pypi.org" }, { host = "*.pythonhosted.org", ports = [443] }, { host = "api.example.com", ports = [443, 8443] }]
      secrets   = [{ name = "example-api-key", hosts = ["api.example.com"] }, { name = "files", hosts = ["cdn.pythonhosted.org"], query = true }]
    }
  }

  assert {
    condition = yamldecode(yamldecode(kubectl_manifest.egress_gateway["egress-gateway-configmap-policy"].yaml_body).data["policy.yaml"]) == {
      allow           = [{ host = "pypi.org" }, { host = "*.pythonhosted.org", ports = [443] }, { host = "api.example.com", ports = [443, 8443] }]
      secrets         = [{ name = "example-api-key", hosts = ["api.example.com"] }, { name = "files", hosts = ["cdn.pythonhosted.org"], query = true }]
      denied_prefixes = []
    }
    error_message = "The policy must carry the allow-list and the secrets' bindings."
  }
  assert {
    condition = alltrue([for a in ["gateway", "--namespace=team-a", "--advertise=$(POD_IP)"] :
    contains(yamldecode(kubectl_manifest.egress_gateway["egress-gateway-deployment"].yaml_body).spec.template.spec.containers[0].args, a)])
    error_message = "The gateway must watch the sandbox namespace and publish its Pod IP with advertise = pod."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.egress_gateway["egress-gateway-rolebinding-egress-gateway"].yaml_body).subjects == [{ kind = "ServiceAccount", name = "gkexec-egress-gateway", namespace = "team-a-gw" }]
    error_message = "The gateway's Role in the sandbox namespace must be bound to its ServiceAccount in its own namespace."
  }
}

run "egress_gateway_bad_namespace" {
  command = plan
  variables { egress_gateway = { namespace = "Gateway_NS" } }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_in_the_sandbox_namespace" {
  command = plan
  variables { egress_gateway = { namespace = "gkexec" } }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_no_replicas" {
  command = plan
  variables { egress_gateway = { replicas = 0 } }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_unknown_advertise" {
  command = plan
  variables { egress_gateway = { advertise = "node" } }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_pod_advertise_with_replicas" {
  command = plan
  variables { egress_gateway = { advertise = "pod", replicas = 2 } }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_image_with_space" {
  command = plan
  variables { egress_gateway = { image = "ghcr.io/gkexec/gkexec dev" } }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_allow_everything" {
  command = plan
  variables { egress_gateway = { allow = [{ host = "*" }] } }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_allow_a_top_level_domain" {
  command = plan
  variables { egress_gateway = { allow = [{ host = "*.com" }] } }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_bad_port" {
  command = plan
  variables { egress_gateway = { allow = [{ host = "pypi.org", ports = [0] }] } }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_secret_to_an_unallowed_host" {
  command = plan
  variables { egress_gateway = { allow = [{ host = "pypi.org" }], secrets = [{ name = "key", hosts = ["api.example.com"] }] } }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_secret_twice" {
  command = plan
  variables {
    egress_gateway = {
      allow   = [{ host = "api.example.com" }]
      secrets = [{ name = "key", hosts = ["api.example.com"] }, { name = "key", hosts = ["api.example.com"] }]
    }
  }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_bad_secret_name" {
  command = plan
  variables { egress_gateway = { allow = [{ host = "api.example.com" }], secrets = [{ name = "my key", hosts = ["api.example.com"] }] } }
  expect_failures = [var.egress_gateway]
}

run "egress_gateway_bad_denied_prefix" {
  command = plan
  variables { egress_gateway = { denied_prefixes = ["34.118.224.0"] } }
  expect_failures = [var.egress_gateway]
}
