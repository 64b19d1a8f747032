# fqdn_network_policy (GKE): the egress gateway's L3/L4 layer. Plan-only, nothing is applied.
mock_provider "kubectl" {}

# What every enabled run needs besides the domains: the cluster enforces FQDN network policies,
# and the API server's address for the gateway's namespace policy.
variables {
  cluster_ranges = { control_plane_cidrs = ["172.16.0.2/32"] }
}

run "disabled_by_default" {
  command = plan

  assert {
    condition     = !contains(keys(kubectl_manifest.object), "fqdnnetworkpolicy-egress-gateway") && !contains(keys(kubectl_manifest.object), "networkpolicy-egress-gateway")
    error_message = "Without fqdn_network_policy.enabled the module must emit neither the FQDNNetworkPolicy nor the gateway namespace's NetworkPolicy."
  }
  assert {
    condition     = alltrue([for o in kubectl_manifest.object : try(yamldecode(o.yaml_body).metadata.namespace, "gkexec") == "gkexec"])
    error_message = "Without fqdn_network_policy nothing may land outside the sandbox namespace."
  }
}

run "enabled" {
  command = plan

  variables {
    fqdn_network_policy = {
      enabled         = true
      allowed_domains = ["pypi.org", "*.pythonhosted.org", "pypi.org"]
      cluster_enabled = true
    }
  }

  assert {
    condition = yamldecode(kubectl_manifest.object["fqdnnetworkpolicy-egress-gateway"].yaml_body) == {
      apiVersion = "networking.gke.io/v1alpha1"
      kind       = "FQDNNetworkPolicy"
      metadata   = { name = "gkexec-egress-gateway", namespace = "gkexec-egress", labels = { "app.kubernetes.io/part-of" = "gkexec" } }
      spec = {
        podSelector = { matchLabels = { "app.kubernetes.io/component" = "egress-gateway" } }
        egress = [{
          matches = [{ name = "pypi.org" }, { pattern = "*.pythonhosted.org" }]
          ports   = [{ protocol = "TCP", port = 80 }, { protocol = "TCP", port = 443 }]
        }]
      }
    }
    error_message = "The FQDNNetworkPolicy must select the gateway's Pods in <namespace>-egress and allow exactly the listed domains (exact names as name, wildcards as pattern, once each) on TCP 80 and 443."
  }
  assert {
    condition = yamldecode(kubectl_manifest.object["networkpolicy-egress-gateway"].yaml_body) == {
      apiVersion = "networking.k8s.io/v1"
      kind       = "NetworkPolicy"
      metadata   = { name = "gkexec-egress-gateway-cluster", namespace = "gkexec-egress", labels = { "app.kubernetes.io/part-of" = "gkexec" } }
      spec = {
        podSelector = {}
        policyTypes = ["Egress"]
        egress = [
          {
            to = [{
              namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = "kube-system" } }
              podSelector       = { matchLabels = { "k8s-app" = "kube-dns" } }
            }]
            ports = [{ protocol = "UDP", port = 53 }, { protocol = "TCP", port = 53 }]
          },
          {
            to    = [{ ipBlock = { cidr = "172.16.0.2/32" } }]
            ports = [{ protocol = "TCP", port = 443 }]
          },
        ]
      }
    }
    error_message = "Every Pod of the gateway's namespace must be held to kube-dns and the API server (control_plane_cidrs, TCP 443), egress only."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.object["networkpolicy-default-deny"].yaml_body).spec == { podSelector = {}, policyTypes = ["Ingress", "Egress"] } && !contains(keys(kubectl_manifest.object), "networkpolicy-egress")
    error_message = "The sandboxes' default deny must not change, and no egress is opened to them."
  }
  assert {
    condition     = output.manifests["fqdnnetworkpolicy-egress-gateway"] == kubectl_manifest.object["fqdnnetworkpolicy-egress-gateway"].yaml_body && output.manifests["networkpolicy-egress-gateway"] == kubectl_manifest.object["networkpolicy-egress-gateway"].yaml_body
    error_message = "The manifests output must hold both objects."
  }
}

run "wildcards_and_idn_accepted" {
  command = plan

  variables {
    fqdn_network_policy = {
      enabled         = true
      allowed_domains = ["*.example.com", "*.eu.api.example.co.uk", "xn--bcher-kva.example", "0x.example.com", "a-b.example"]
      cluster_enabled = true
    }
  }

  assert {
    condition = yamldecode(kubectl_manifest.object["fqdnnetworkpolicy-egress-gateway"].yaml_body).spec.egress[0].matches == [
      { pattern = "*.example.com" }, { pattern = "*.eu.api.example.co.uk" }, { name = "xn--bcher-kva.example" }, { name = "0x.example.com" }, { name = "a-b.example" },
    ]
    error_message = "Wildcards over two labels or more, punycode and digit-led labels are domains."
  }
}

run "custom_ports_and_gateway_namespace" {
  command = plan

  variables {
    namespace = "team-a"
    fqdn_network_policy = {
      enabled           = true
      allowed_domains   = ["api.example.com"]
      ports             = [443, 8443, 443]
      gateway_namespace = "team-a-gateway"
      cluster_enabled   = true
    }
    cluster_ranges = { control_plane_cidrs = ["172.16.0.2/32", "34.34.34.34/32"] }
  }

  assert {
    condition     = yamldecode(kubectl_manifest.object["fqdnnetworkpolicy-egress-gateway"].yaml_body).spec.egress[0].ports == [{ protocol = "TCP", port = 443 }, { protocol = "TCP", port = 8443 }]
    error_message = "ports must replace 80 and 443, once each."
  }
  assert {
    condition = (yamldecode(kubectl_manifest.object["fqdnnetworkpolicy-egress-gateway"].yaml_body).metadata.namespace == "team-a-gateway" &&
    yamldecode(kubectl_manifest.object["networkpolicy-egress-gateway"].yaml_body).metadata.namespace == "team-a-gateway")
    error_message = "Both objects must go into gateway_namespace."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.object["networkpolicy-egress-gateway"].yaml_body).spec.egress[1].to == [{ ipBlock = { cidr = "172.16.0.2/32" } }, { ipBlock = { cidr = "34.34.34.34/32" } }]
    error_message = "Every control-plane address must be reachable from the gateway's namespace."
  }
}

# Every validation of fqdn_network_policy rejects what it should. Each run breaks one rule only.

run "domain_ip_address" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["10.0.0.1"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "domain_url" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["https://pypi.org"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "domain_with_port" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["pypi.org:443"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "domain_single_label" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["pypi"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "domain_upper_case" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["PyPI.org"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "domain_trailing_dot" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["pypi.org."] } }
  expect_failures = [var.fqdn_network_policy]
}

run "domain_label_too_long" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["${join("", [for i in range(64) : "a"])}.example.com"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "wildcard_over_a_top_level_domain" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["*.com"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "wildcard_alone" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["*"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "wildcard_inside_a_name" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["api.*.example.com"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "domain_metadata_server" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["metadata.google.internal"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "domain_cluster_service" {
  command = plan
  variables { fqdn_network_policy = { allowed_domains = ["*.svc.cluster.local"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "enabled_without_domains" {
  command = plan
  variables { fqdn_network_policy = { enabled = true, cluster_enabled = true } }
  expect_failures = [var.fqdn_network_policy]
}

run "port_out_of_range" {
  command = plan
  variables { fqdn_network_policy = { enabled = true, cluster_enabled = true, allowed_domains = ["pypi.org"], ports = [443, 70000] } }
  expect_failures = [var.fqdn_network_policy]
}

run "enabled_without_ports" {
  command = plan
  variables { fqdn_network_policy = { enabled = true, cluster_enabled = true, allowed_domains = ["pypi.org"], ports = [] } }
  expect_failures = [var.fqdn_network_policy]
}

run "gateway_namespace_is_the_sandbox_namespace" {
  command = plan
  variables { fqdn_network_policy = { enabled = true, cluster_enabled = true, allowed_domains = ["pypi.org"], gateway_namespace = "gkexec" } }
  expect_failures = [var.fqdn_network_policy]
}

run "gateway_namespace_is_the_agents" {
  command = plan
  variables {
    agent_service_account = { namespace = "agents" }
    fqdn_network_policy   = { enabled = true, cluster_enabled = true, allowed_domains = ["pypi.org"], gateway_namespace = "agents" }
  }
  expect_failures = [var.fqdn_network_policy]
}

run "gateway_namespace_default_too_long" {
  command = plan
  variables {
    namespace           = "a-sandbox-namespace-whose-name-leaves-no-room-for-egress-x"
    fqdn_network_policy = { enabled = true, cluster_enabled = true, allowed_domains = ["pypi.org"] }
  }
  expect_failures = [var.fqdn_network_policy]
}

run "cluster_without_fqdn_network_policy" {
  command = plan
  variables { fqdn_network_policy = { enabled = true, allowed_domains = ["pypi.org"] } }
  expect_failures = [var.fqdn_network_policy]
}

run "enabled_without_control_plane" {
  command = plan
  variables {
    fqdn_network_policy = { enabled = true, cluster_enabled = true, allowed_domains = ["pypi.org"] }
    cluster_ranges      = {}
  }
  expect_failures = [var.fqdn_network_policy]
}

# With the gateway installed by the module as well, both name one namespace.

run "gateway_namespace_other_than_the_gateways" {
  command = plan
  variables {
    namespace      = "team-a"
    egress_gateway = { namespace = "team-a-gw" }
    fqdn_network_policy = {
      enabled         = true
      allowed_domains = ["api.example.com"]
      cluster_enabled = true
    }
    cluster_ranges = { control_plane_cidrs = ["172.16.0.2/32"] }
  }
  expect_failures = [var.fqdn_network_policy]
}

run "gateway_namespace_the_gateways" {
  command = plan
  variables {
    namespace      = "team-a"
    egress_gateway = { namespace = "team-a-gw" }
    fqdn_network_policy = {
      enabled = true, allowed_domains = ["api.example.com"], cluster_enabled = true, gateway_namespace = "team-a-gw"
    }
    cluster_ranges = { control_plane_cidrs = ["172.16.0.2/32"] }
  }
  assert {
    condition     = yamldecode(kubectl_manifest.object["fqdnnetworkpolicy-egress-gateway"].yaml_body).metadata.namespace == output.egress_gateway_namespace
    error_message = "The FQDN policies must go where the module installs the gateway."
  }
}
