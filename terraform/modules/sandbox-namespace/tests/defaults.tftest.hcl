# Plan-only: what the module applies with its defaults, and how its variables change it.
mock_provider "kubectl" {}

run "defaults" {
  command = plan

  # Namespace: Pod Security Admission "restricted", enforced, audited and warned, at "latest".
  assert {
    condition = yamldecode(kubectl_manifest.namespace.yaml_body).metadata.labels == {
      "app.kubernetes.io/part-of"                  = "gkexec"
      "pod-security.kubernetes.io/enforce"         = "restricted"
      "pod-security.kubernetes.io/enforce-version" = "latest"
      "pod-security.kubernetes.io/audit"           = "restricted"
      "pod-security.kubernetes.io/audit-version"   = "latest"
      "pod-security.kubernetes.io/warn"            = "restricted"
      "pod-security.kubernetes.io/warn-version"    = "latest"
    }
    error_message = "The namespace must carry the Pod Security Admission restricted labels (enforce, audit, warn at latest)."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.namespace.yaml_body).metadata.name == "gkexec"
    error_message = "The default namespace must be gkexec."
  }
  assert {
    condition     = kubectl_manifest.namespace.wait && kubectl_manifest.namespace.server_side_apply && kubectl_manifest.namespace.force_conflicts
    error_message = "The namespace must be applied server-side with force_conflicts, and waited for on destroy."
  }
  assert {
    condition     = alltrue([for o in kubectl_manifest.object : o.server_side_apply && o.force_conflicts])
    error_message = "Every object must be applied server-side with force_conflicts, so out-of-band drift is repaired."
  }

  # Exactly these objects, none of the optional ones.
  assert {
    condition     = toset(keys(kubectl_manifest.object)) == toset(["serviceaccount", "role", "rolebinding", "networkpolicy-default-deny", "resourcequota", "limitrange"])
    error_message = "With defaults the module must create exactly the ServiceAccount, Role, RoleBinding, default-deny NetworkPolicy, ResourceQuota and LimitRange (no egress policy, no RuntimeClass)."
  }
  assert {
    condition = alltrue([for k, o in kubectl_manifest.object :
    yamldecode(o.yaml_body).metadata.namespace == "gkexec" && yamldecode(o.yaml_body).metadata.labels["app.kubernetes.io/part-of"] == "gkexec"])
    error_message = "Every object must be in the namespace and labelled app.kubernetes.io/part-of=gkexec."
  }

  # RBAC: runner.RequiredRules(), namespaced, nothing more (test/parity checks the same against the Go source).
  assert {
    condition     = yamldecode(kubectl_manifest.object["role"].yaml_body).kind == "Role"
    error_message = "RBAC must be a namespaced Role, not a ClusterRole."
  }
  assert {
    condition = yamldecode(kubectl_manifest.object["role"].yaml_body).rules == [
      { apiGroups = [""], resources = ["configmaps"], verbs = ["create", "delete", "list", "patch"] },
      { apiGroups = [""], resources = ["events"], verbs = ["list", "watch"] },
      { apiGroups = [""], resources = ["pods"], verbs = ["list", "watch"] },
      { apiGroups = [""], resources = ["pods/log"], verbs = ["get"] },
      { apiGroups = [""], resources = ["resourcequotas"], verbs = ["list"] },
      { apiGroups = ["batch"], resources = ["jobs"], verbs = ["create", "delete", "list"] },
    ]
    error_message = "The Role must grant exactly runner.RequiredRules()."
  }
  assert {
    condition = !anytrue([for r in yamldecode(kubectl_manifest.object["role"].yaml_body).rules :
    anytrue([for res in r.resources : contains(["secrets", "pods/exec", "pods/attach", "pods/portforward", "*"], res)]) || contains(r.verbs, "*")])
    error_message = "The Role must not reach secrets, pods/exec, pods/attach, pods/portforward or wildcards."
  }
  assert {
    condition = yamldecode(kubectl_manifest.object["rolebinding"].yaml_body).subjects == [
      { kind = "ServiceAccount", name = "gkexec-agent", namespace = "gkexec" },
    ] && yamldecode(kubectl_manifest.object["rolebinding"].yaml_body).roleRef == { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = "gkexec-runner" }
    error_message = "The RoleBinding must bind Role gkexec-runner to ServiceAccount gkexec/gkexec-agent only."
  }
  assert {
    condition     = !can(yamldecode(kubectl_manifest.object["serviceaccount"].yaml_body).metadata.annotations) && !can(yamldecode(kubectl_manifest.object["serviceaccount"].yaml_body).automountServiceAccountToken)
    error_message = "Without Workload Identity the ServiceAccount has no annotation, and keeps the default token mount (the agent needs it)."
  }

  # NetworkPolicy: the runner's sandbox Pods, no ingress and no egress rules at all.
  assert {
    condition = yamldecode(kubectl_manifest.object["networkpolicy-default-deny"].yaml_body).spec == {
      podSelector = { matchLabels = { "app.kubernetes.io/managed-by" = "gkexec", "app.kubernetes.io/component" = "sandbox" } }
      policyTypes = ["Ingress", "Egress"]
    }
    error_message = "The default-deny NetworkPolicy must select managed-by=gkexec, component=sandbox Pods and deny all ingress and egress."
  }

  # Quota and LimitRange: 50 executions at the runner's defaults.
  assert {
    condition = yamldecode(kubectl_manifest.object["resourcequota"].yaml_body).spec.hard == {
      "count/jobs.batch"         = "50"
      "pods"                     = "55"
      "configmaps"               = "55"
      "requests.cpu"             = "12"
      "requests.memory"          = "16Gi"
      "limits.cpu"               = "30"
      "limits.memory"            = "32Gi"
      "limits.ephemeral-storage" = "64Gi"
    }
    error_message = "The default ResourceQuota must bound jobs, pods, configmaps, CPU, memory and ephemeral storage for 50 executions."
  }
  assert {
    condition = yamldecode(kubectl_manifest.object["limitrange"].yaml_body).spec.limits == [{
      type           = "Container"
      defaultRequest = { cpu = "200m", memory = "256Mi", "ephemeral-storage" = "256Mi" }
      default        = { cpu = "500m", memory = "512Mi", "ephemeral-storage" = "1Gi" }
      max            = { cpu = "2", memory = "4Gi", "ephemeral-storage" = "4Gi" }
    }]
    error_message = "The LimitRange defaults must equal the runner's defaults (200m/256Mi requests, 500m/512Mi/1Gi limits)."
  }

  assert {
    condition     = output.namespace == "gkexec" && output.agent_service_account == "gkexec-agent" && output.runtime_class_name == "gvisor"
    error_message = "Outputs must name the namespace, the agent ServiceAccount and the gvisor RuntimeClass."
  }
  assert {
    condition     = length(output.manifests) == 7 && output.manifests.namespace == kubectl_manifest.namespace.yaml_body
    error_message = "The manifests output must hold every applied object, the Namespace included."
  }
}

run "another_namespace_and_workload_identity" {
  command = plan

  variables {
    namespace = "team-a-sandbox"
    agent_service_account = {
      name                = "coder"
      gcp_service_account = "coder-agent@my-project.iam.gserviceaccount.com"
    }
  }

  assert {
    condition = alltrue(concat(
      [yamldecode(kubectl_manifest.namespace.yaml_body).metadata.name == "team-a-sandbox"],
      [for o in kubectl_manifest.object : yamldecode(o.yaml_body).metadata.namespace == "team-a-sandbox"],
    ))
    error_message = "Every object must follow var.namespace."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.object["serviceaccount"].yaml_body).metadata.annotations == { "iam.gke.io/gcp-service-account" = "coder-agent@my-project.iam.gserviceaccount.com" }
    error_message = "The ServiceAccount must carry the Workload Identity annotation."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.object["rolebinding"].yaml_body).subjects == [{ kind = "ServiceAccount", name = "coder", namespace = "team-a-sandbox" }]
    error_message = "The RoleBinding must follow the ServiceAccount's name and namespace."
  }
}

run "egress_allow_list" {
  command = plan

  variables {
    sandbox_egress = {
      allow_dns = true
      destinations = [
        { cidr = "10.20.0.0/16", except = ["10.20.99.0/24"], ports = [{ port = 443 }, { port = 8000, end_port = 8100, protocol = "UDP" }] },
        { cidr = "2001:db8::/32" },
      ]
    }
  }

  assert {
    condition     = yamldecode(kubectl_manifest.object["networkpolicy-default-deny"].yaml_body).spec.policyTypes == ["Ingress", "Egress"]
    error_message = "The default deny must stay in place; egress is allowed by a second policy."
  }
  assert {
    condition = yamldecode(kubectl_manifest.object["networkpolicy-egress"].yaml_body).spec == {
      podSelector = { matchLabels = { "app.kubernetes.io/managed-by" = "gkexec", "app.kubernetes.io/component" = "sandbox" } }
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
          to    = [{ ipBlock = { cidr = "10.20.0.0/16", except = ["10.20.99.0/24"] } }]
          ports = [{ protocol = "TCP", port = 443 }, { protocol = "UDP", port = 8000, endPort = 8100 }]
        },
        { to = [{ ipBlock = { cidr = "2001:db8::/32" } }] },
      ]
    }
    error_message = "The egress policy must allow kube-dns and exactly the listed destinations and ports, leaving out empty fields."
  }
}

run "dns_only" {
  command = plan

  variables {
    sandbox_egress = { allow_dns = true }
  }

  assert {
    condition     = length(yamldecode(kubectl_manifest.object["networkpolicy-egress"].yaml_body).spec.egress) == 1
    error_message = "allow_dns alone must add one egress rule, to kube-dns."
  }
}

run "runtime_class_for_non_gke" {
  command = plan

  variables {
    create_runtime_class = true
  }

  assert {
    condition = yamldecode(kubectl_manifest.object["runtimeclass"].yaml_body) == {
      apiVersion = "node.k8s.io/v1"
      kind       = "RuntimeClass"
      metadata   = { name = "gvisor", labels = { "app.kubernetes.io/part-of" = "gkexec" } }
      handler    = "gvisor"
      scheduling = {
        nodeSelector = { "sandbox.gke.io/runtime" = "gvisor" }
        tolerations  = [{ key = "sandbox.gke.io/runtime", operator = "Equal", value = "gvisor", effect = "NoSchedule" }]
      }
    }
    error_message = "The RuntimeClass must equal GKE Sandbox's: gvisor, handler gvisor, node selector and toleration sandbox.gke.io/runtime=gvisor."
  }
}

run "custom_quota_and_limits" {
  command = plan

  variables {
    quota               = { jobs = 10, pods = 12, configmaps = 11, requests_cpu = "2500m", requests_memory = "4Gi", limits_memory = "8Gi" }
    container_resources = { limit_cpu = "1", max_cpu = "1500m" }
  }

  assert {
    condition     = yamldecode(kubectl_manifest.object["resourcequota"].yaml_body).spec.hard["count/jobs.batch"] == "10" && yamldecode(kubectl_manifest.object["resourcequota"].yaml_body).spec.hard["requests.cpu"] == "2500m" && yamldecode(kubectl_manifest.object["resourcequota"].yaml_body).spec.hard["limits.cpu"] == "30"
    error_message = "Quota fields must be taken from var.quota, defaults kept for the rest."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.object["limitrange"].yaml_body).spec.limits[0].default.cpu == "1" && yamldecode(kubectl_manifest.object["limitrange"].yaml_body).spec.limits[0].max.cpu == "1500m"
    error_message = "LimitRange fields must be taken from var.container_resources."
  }
}
