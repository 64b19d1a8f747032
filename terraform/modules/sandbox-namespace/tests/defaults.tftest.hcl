# Plan-only: what the module applies with its defaults, and how its variables change it.
mock_provider "kubectl" {}

run "defaults" {
  command = plan

  # Namespace: Pod Security Admission "restricted", enforced, audited and warned, at "latest"; the
  # label that puts the admission policy in force, naming the RuntimeClass it requires.
  assert {
    condition = yamldecode(kubectl_manifest.namespace.yaml_body).metadata.labels == {
      "app.kubernetes.io/part-of"                  = "gkexec"
      "gkexec.dev/sandbox-runtime-class"           = "gvisor"
      "pod-security.kubernetes.io/enforce"         = "restricted"
      "pod-security.kubernetes.io/enforce-version" = "latest"
      "pod-security.kubernetes.io/audit"           = "restricted"
      "pod-security.kubernetes.io/audit-version"   = "latest"
      "pod-security.kubernetes.io/warn"            = "restricted"
      "pod-security.kubernetes.io/warn-version"    = "latest"
    }
    error_message = "The namespace must carry the Pod Security Admission restricted labels (enforce, audit, warn at latest) and gkexec.dev/sandbox-runtime-class=gvisor."
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
    condition     = toset(keys(kubectl_manifest.object)) == toset(["serviceaccount", "role", "rolebinding", "networkpolicy-default-deny", "resourcequota", "limitrange", "poddisruptionbudget", "validatingadmissionpolicy", "validatingadmissionpolicybinding"])
    error_message = "With defaults the module must create exactly the ServiceAccount, Role, RoleBinding, default-deny NetworkPolicy, ResourceQuota, LimitRange, PodDisruptionBudget and the admission policy with its binding (no egress policy, no RuntimeClass)."
  }
  assert {
    condition = alltrue([for k, o in kubectl_manifest.object :
      (contains(["validatingadmissionpolicy", "validatingadmissionpolicybinding"], k) ? !can(yamldecode(o.yaml_body).metadata.namespace) : yamldecode(o.yaml_body).metadata.namespace == "gkexec")
    && yamldecode(o.yaml_body).metadata.labels["app.kubernetes.io/part-of"] == "gkexec"])
    error_message = "Every object must be in the namespace (the cluster-scoped admission policy and binding in none) and labelled app.kubernetes.io/part-of=gkexec."
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

  # NetworkPolicy: every Pod of the namespace, no ingress and no egress rules at all.
  assert {
    condition = yamldecode(kubectl_manifest.object["networkpolicy-default-deny"].yaml_body).spec == {
      podSelector = {}
      policyTypes = ["Ingress", "Egress"]
    }
    error_message = "The default-deny NetworkPolicy must select every Pod of the namespace (podSelector {}, not only labelled sandboxes) and deny all ingress and egress."
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
    condition     = output.namespace == "gkexec" && output.agent_service_account == "gkexec-agent" && output.agent_namespace == "gkexec" && output.runtime_class_name == "gvisor"
    error_message = "Outputs must name the namespace, the agent ServiceAccount (in the sandbox namespace by default) and the gvisor RuntimeClass."
  }
  assert {
    condition     = length(output.manifests) == 10 && output.manifests.namespace == kubectl_manifest.namespace.yaml_body
    error_message = "The manifests output must hold every applied object, the Namespace included."
  }

  # No warm pool unless asked for.
  assert {
    condition     = length(kubectl_manifest.warm_pool) == 0 && output.warm_pool == null
    error_message = "warm_pool must default to null: no pool Deployment, no warm_pool output."
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
      [for o in kubectl_manifest.object : try(yamldecode(o.yaml_body).metadata.namespace, "team-a-sandbox") == "team-a-sandbox"],
    ))
    error_message = "Every namespaced object must follow var.namespace."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.object["serviceaccount"].yaml_body).metadata.annotations == { "iam.gke.io/gcp-service-account" = "coder-agent@my-project.iam.gserviceaccount.com" }
    error_message = "The ServiceAccount must carry the Workload Identity annotation."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.object["rolebinding"].yaml_body).subjects == [{ kind = "ServiceAccount", name = "coder", namespace = "team-a-sandbox" }]
    error_message = "The RoleBinding must follow the ServiceAccount's name and namespace."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.object["validatingadmissionpolicy"].yaml_body).metadata.name == "gkexec-sandbox-pods-team-a-sandbox" && yamldecode(kubectl_manifest.object["validatingadmissionpolicybinding"].yaml_body).metadata.name == "gkexec-sandbox-pods-team-a-sandbox" && yamldecode(kubectl_manifest.object["validatingadmissionpolicybinding"].yaml_body).spec.policyName == "gkexec-sandbox-pods-team-a-sandbox"
    error_message = "The cluster-scoped admission policy and its binding must be named after the namespace, so that two installations never share them."
  }
}

# An agent Pod runs in a namespace of its own; the Role in the sandbox namespace is bound to it there.
run "agent_in_its_own_namespace" {
  command = plan

  variables {
    agent_service_account = {
      namespace           = "agents"
      gcp_service_account = "gkexec-agent@my-project.iam.gserviceaccount.com"
    }
  }

  assert {
    condition     = yamldecode(kubectl_manifest.object["serviceaccount"].yaml_body).metadata.namespace == "agents" && yamldecode(kubectl_manifest.object["serviceaccount"].yaml_body).metadata.annotations == { "iam.gke.io/gcp-service-account" = "gkexec-agent@my-project.iam.gserviceaccount.com" }
    error_message = "The agent's ServiceAccount, with its Workload Identity annotation, must be created in agent_service_account.namespace."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.object["rolebinding"].yaml_body).metadata.namespace == "gkexec" && yamldecode(kubectl_manifest.object["rolebinding"].yaml_body).subjects == [{ kind = "ServiceAccount", name = "gkexec-agent", namespace = "agents" }]
    error_message = "The RoleBinding stays in the sandbox namespace and binds the ServiceAccount of the agent's namespace."
  }
  assert {
    condition     = output.agent_namespace == "agents" && output.agent_service_account == "gkexec-agent"
    error_message = "The outputs must say where the agent's ServiceAccount is."
  }
}

# Only gkexec sandbox Pods are admitted in the namespace: the policy and its binding.
run "admission_policy" {
  command = plan

  assert {
    condition = yamldecode(kubectl_manifest.object["validatingadmissionpolicybinding"].yaml_body).spec == {
      policyName        = "gkexec-sandbox-pods-gkexec"
      validationActions = ["Deny"]
      matchResources    = { namespaceSelector = { matchExpressions = [{ key = "gkexec.dev/sandbox-runtime-class", operator = "Exists" }] } }
    }
    error_message = "The binding must deny what the policy refuses in every namespace labelled gkexec.dev/sandbox-runtime-class."
  }
  assert {
    condition = yamldecode(kubectl_manifest.object["validatingadmissionpolicy"].yaml_body).spec.matchConstraints == {
      resourceRules = [{ apiGroups = [""], apiVersions = ["v1"], operations = ["CREATE", "UPDATE"], resources = ["pods"] }]
    } && yamldecode(kubectl_manifest.object["validatingadmissionpolicy"].yaml_body).spec.failurePolicy == "Fail"
    error_message = "The policy must check Pods created and updated (not their status subresource), and fail closed."
  }
  assert {
    condition     = [for c in yamldecode(kubectl_manifest.object["validatingadmissionpolicy"].yaml_body).spec.matchConditions : c.name] == ["not-break-glass", "created-or-was-a-sandbox"]
    error_message = "The policy must skip only system:masters and updates of Pods that never were sandboxes."
  }
  assert {
    condition     = length(yamldecode(kubectl_manifest.object["validatingadmissionpolicy"].yaml_body).spec.validations) == 11 && alltrue([for v in yamldecode(kubectl_manifest.object["validatingadmissionpolicy"].yaml_body).spec.validations : length(v.message) > 0])
    error_message = "Every rule of the policy (labels, RuntimeClass, no identity, no host namespaces, volumes, Secrets, non-root, no escalation, capabilities, read-only root, seccomp) must carry a message."
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
    cluster_ranges = { pod_cidrs = ["10.12.0.0/14"], service_cidrs = ["10.16.0.0/20"], control_plane_cidrs = ["172.16.0.2/32"] }
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
    error_message = "The egress policy must allow kube-dns and exactly the listed destinations and ports, leaving out empty fields (no cluster range lies inside these destinations, so no except is added)."
  }
}

# A broad destination gets the metadata server and the cluster's ranges as exceptions; one that
# names a cluster range (equals it or lies inside it) opens it on purpose.
run "egress_keeps_cluster_and_metadata_out" {
  command = plan

  variables {
    sandbox_egress = {
      destinations = [
        { cidr = "0.0.0.0/0", except = ["10.12.0.0/14", "192.168.0.0/16"], ports = [{ port = 443 }] },
        { cidr = "10.0.0.0/8" },
        { cidr = "10.12.4.0/24", ports = [{ port = 8080 }] },
        { cidr = "10.16.0.0/20", ports = [{ port = 53, protocol = "UDP" }] },
        { cidr = "::/0" },
      ]
    }
    cluster_ranges = { pod_cidrs = ["10.12.0.0/14"], service_cidrs = ["10.16.0.0/20"], control_plane_cidrs = ["172.16.0.2/32", "34.1.2.3/32"] }
  }

  assert {
    condition = [for r in yamldecode(kubectl_manifest.object["networkpolicy-egress"].yaml_body).spec.egress : r.to[0].ipBlock] == [
      { cidr = "0.0.0.0/0", except = ["10.12.0.0/14", "192.168.0.0/16", "169.254.169.254/32", "10.16.0.0/20", "172.16.0.2/32", "34.1.2.3/32"] },
      { cidr = "10.0.0.0/8", except = ["10.12.0.0/14", "10.16.0.0/20"] },
      { cidr = "10.12.4.0/24" },
      { cidr = "10.16.0.0/20" },
      { cidr = "::/0", except = ["fd20:ce::254/128"] },
    ]
    error_message = "Every destination must except the metadata server and the cluster's Pod, Service and control-plane ranges it contains (once each, after the user's own), and none that it names."
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

# The warm pool at its defaults: runner.WarmPoolDeployment(runner.Options{Namespace: "gkexec"}, 2).
# test/parity compares the whole object with the Go builder; these pin each default here.
run "warm_pool_defaults" {
  command = plan

  variables {
    warm_pool = {}
  }

  assert {
    condition     = length(kubectl_manifest.warm_pool) == 1 && kubectl_manifest.warm_pool[0].server_side_apply && kubectl_manifest.warm_pool[0].force_conflicts && !kubectl_manifest.warm_pool[0].wait_for_rollout
    error_message = "The pool's Deployment must be applied server-side with force_conflicts, without waiting for its Pods (executions run cold until they are ready)."
  }
  assert {
    condition = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).metadata == {
      name      = "gkexec-pool-default"
      namespace = "gkexec"
      labels    = { "app.kubernetes.io/managed-by" = "gkexec", "app.kubernetes.io/component" = "warm-pool", "gkexec.dev/pool" = "default" }
    }
    error_message = "The default pool is Deployment gkexec/gkexec-pool-default, labelled managed-by=gkexec, component=warm-pool, gkexec.dev/pool=default."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.replicas == 2
    error_message = "warm_pool.replicas must default to 2."
  }
  assert {
    condition = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.selector.matchLabels == {
      "app.kubernetes.io/managed-by" = "gkexec", "app.kubernetes.io/component" = "sandbox", "gkexec.dev/pool" = "default", "gkexec.dev/pool-state" = "idle"
    } && yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.metadata.labels == yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.selector.matchLabels
    error_message = "The Deployment must select, and label its Pods, as sandboxes of pool default in state idle: a claim relabels a Pod out of it."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.strategy == { type = "RollingUpdate", rollingUpdate = { maxUnavailable = 0, maxSurge = "25%" } } && yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.revisionHistoryLimit == 2
    error_message = "A rollout must surge 25% and never take an idle Pod away first; two old ReplicaSets are kept."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.containers[0].image == "python:3.11-slim"
    error_message = "warm_pool.image must default to the runner's image, python:3.11-slim."
  }
  assert {
    condition = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.containers[0].resources == {
      requests = { cpu = "200m", memory = "256Mi" }
      limits   = { cpu = "500m", memory = "512Mi", "ephemeral-storage" = "1Gi" }
    }
    error_message = "The pool's resources must default to the runner's: requests 200m / 256Mi, limits 500m / 512Mi / 1Gi ephemeral storage."
  }
  assert {
    condition = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.volumes == [
      { name = "code", emptyDir = { medium = "Memory", sizeLimit = "2Mi" } },
      { name = "tmp", emptyDir = { medium = "Memory", sizeLimit = "128Mi" } },
      { name = "workspace", emptyDir = { medium = "Memory", sizeLimit = "128Mi" } },
      { name = "egress-ca", configMap = { name = "gkexec-egress-ca", optional = true, defaultMode = 292 } },
    ]
    error_message = "The scratch volumes must default to the runner's 128Mi (memory-backed), and the code volume to 2Mi."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.containers[0].command == ["python3", "-I", "-S", "-c", file("sandbox/entrypoint.py")]
    error_message = "The pool's container must run the module's copy of the runner's entrypoint inline, byte for byte: python3 -I -S -c SOURCE."
  }
  assert {
    condition     = alltrue([for c in yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.containers : c.stdin && !try(c.stdinOnce, false) && c.securityContext.runAsNonRoot && c.securityContext.readOnlyRootFilesystem && !c.securityContext.allowPrivilegeEscalation && c.securityContext.capabilities.drop == ["ALL"]]) && yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.runtimeClassName == "gvisor" && !yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.automountServiceAccountToken && !yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.enableServiceLinks
    error_message = "Pool Pods must be the hardened gVisor sandbox (non-root, read-only root, no capabilities, no token, no service links) with stdin open across attaches (requests and sessions arrive on it)."
  }

  # RBAC: runner.RequiredRules() + runner.WarmPoolRules(), still namespaced, still no pods/exec or secrets.
  assert {
    condition = yamldecode(kubectl_manifest.object["role"].yaml_body).rules == [
      { apiGroups = [""], resources = ["configmaps"], verbs = ["create", "delete", "list", "patch"] },
      { apiGroups = [""], resources = ["events"], verbs = ["list", "watch"] },
      { apiGroups = [""], resources = ["pods"], verbs = ["list", "watch"] },
      { apiGroups = [""], resources = ["pods/log"], verbs = ["get"] },
      { apiGroups = [""], resources = ["resourcequotas"], verbs = ["list"] },
      { apiGroups = ["batch"], resources = ["jobs"], verbs = ["create", "delete", "list"] },
      { apiGroups = [""], resources = ["pods"], verbs = ["delete", "patch"] },
      { apiGroups = [""], resources = ["pods/attach"], verbs = ["create", "get"] },
    ]
    error_message = "With the pool the Role must grant exactly runner.RequiredRules() followed by runner.WarmPoolRules()."
  }
  assert {
    condition = !anytrue([for r in yamldecode(kubectl_manifest.object["role"].yaml_body).rules :
    anytrue([for res in r.resources : contains(["secrets", "pods/exec", "pods/portforward", "*"], res)]) || contains(r.verbs, "*")])
    error_message = "The pool adds pods/attach only: the Role must still not reach secrets, pods/exec, pods/portforward or wildcards."
  }

  # The quota is the user's, unchanged; the warm_pool validations make sure it fits the pool.
  assert {
    condition     = yamldecode(kubectl_manifest.object["resourcequota"].yaml_body).spec.hard.pods == "55" && yamldecode(kubectl_manifest.object["resourcequota"].yaml_body).spec.hard["count/jobs.batch"] == "50"
    error_message = "The pool must not change the quota behind the user's back."
  }
  assert {
    condition     = output.warm_pool == "default" && length(output.manifests) == 12 && output.manifests["warm-pool"] == kubectl_manifest.warm_pool[0].yaml_body && output.manifests["priorityclass"] == kubectl_manifest.object["priorityclass"].yaml_body
    error_message = "The warm_pool output must name the pool, and the manifests output hold its Deployment and its PriorityClass."
  }

  # The pool's Pods run below executions' sandboxes (the default, 0): on a full node the scheduler
  # evicts an idle pool Pod to place an execution's; the class itself never evicts anything.
  assert {
    condition = yamldecode(kubectl_manifest.object["priorityclass"].yaml_body).apiVersion == "scheduling.k8s.io/v1" && yamldecode(kubectl_manifest.object["priorityclass"].yaml_body).kind == "PriorityClass" && yamldecode(kubectl_manifest.object["priorityclass"].yaml_body).metadata == {
      name   = "gkexec-warm-pool-gkexec"
      labels = { "app.kubernetes.io/part-of" = "gkexec" }
    }
    error_message = "With the pool the module must create the cluster-scoped PriorityClass gkexec-warm-pool-<namespace>, labelled part-of=gkexec."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.object["priorityclass"].yaml_body).value == -1 && yamldecode(kubectl_manifest.object["priorityclass"].yaml_body).preemptionPolicy == "Never" && !try(yamldecode(kubectl_manifest.object["priorityclass"].yaml_body).globalDefault, false)
    error_message = "The pool's PriorityClass must default to value -1, never preempt, and not be the cluster's global default (executions keep the default priority)."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.priorityClassName == "gkexec-warm-pool-gkexec"
    error_message = "The pool's Pods must run at the pool's PriorityClass."
  }
}

run "warm_pool_priority_class_custom" {
  command = plan

  variables {
    namespace                = "team-b"
    warm_pool                = {}
    warm_pool_priority_class = { name = "sandbox-pool-low", value = -5 }
  }

  assert {
    condition     = yamldecode(kubectl_manifest.object["priorityclass"].yaml_body).metadata.name == "sandbox-pool-low" && yamldecode(kubectl_manifest.object["priorityclass"].yaml_body).value == -5 && yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.priorityClassName == "sandbox-pool-low"
    error_message = "warm_pool_priority_class.name and .value must name the class the module creates and the pool's Pods run at."
  }
}

run "warm_pool_existing_priority_class" {
  command = plan

  variables {
    warm_pool                = {}
    warm_pool_priority_class = { name = "platform-low", create = false }
  }

  assert {
    condition     = !contains(keys(kubectl_manifest.object), "priorityclass") && yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.priorityClassName == "platform-low"
    error_message = "With create = false the module must create no PriorityClass and give the pool the existing one."
  }
}

run "warm_pool_without_priority_class" {
  command = plan

  variables {
    warm_pool                = {}
    warm_pool_priority_class = null
  }

  assert {
    condition     = !contains(keys(kubectl_manifest.object), "priorityclass") && !can(yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.priorityClassName)
    error_message = "warm_pool_priority_class = null must leave the pool's Pods at the default priority, with no PriorityClass."
  }
}

run "no_priority_class_without_a_pool" {
  command = plan

  variables {
    warm_pool_priority_class = { name = "platform-low", value = -2 }
  }

  assert {
    condition     = !contains(keys(kubectl_manifest.object), "priorityclass") && length(kubectl_manifest.warm_pool) == 0
    error_message = "Without warm_pool there is nothing to give a priority: no PriorityClass."
  }
}

run "warm_pool_custom" {
  command = plan

  variables {
    namespace = "team-b"
    quota     = { jobs = 10, pods = 20, configmaps = 11, requests_cpu = "20", requests_memory = "20Gi", limits_cpu = "40", limits_memory = "40Gi", limits_ephemeral_storage = "40Gi" }
    warm_pool = {
      name                    = "big"
      replicas                = 5
      image                   = "registry.example.com/py:3.12"
      cpu_request             = "1"
      memory_request          = "1Gi"
      cpu_limit               = "1500m"
      memory_limit            = "2Gi"
      ephemeral_storage_limit = "2Gi"
      scratch_size            = "256Mi"
    }
  }

  assert {
    condition     = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).metadata.name == "gkexec-pool-big" && yamldecode(kubectl_manifest.warm_pool[0].yaml_body).metadata.namespace == "team-b" && yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.selector.matchLabels["gkexec.dev/pool"] == "big" && yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.replicas == 5
    error_message = "The pool's name, namespace and replicas must follow var.namespace and var.warm_pool."
  }
  assert {
    condition = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.containers[0].image == "registry.example.com/py:3.12" && yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.containers[0].resources == {
      requests = { cpu = "1", memory = "1Gi" }
      limits   = { cpu = "1500m", memory = "2Gi", "ephemeral-storage" = "2Gi" }
    } && [for v in yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.template.spec.volumes : v.emptyDir.sizeLimit if can(v.emptyDir)] == ["2Mi", "256Mi", "256Mi"]
    error_message = "The pool's image, resources and scratch sizes must follow var.warm_pool."
  }
  assert {
    condition     = output.warm_pool == "big"
    error_message = "The warm_pool output must name the pool."
  }
}

run "running_sandboxes_are_not_evicted" {
  command = plan

  assert {
    condition = yamldecode(kubectl_manifest.object["poddisruptionbudget"].yaml_body).spec == {
      minAvailable = 1000000
      selector = {
        matchLabels = { "app.kubernetes.io/managed-by" = "gkexec", "app.kubernetes.io/component" = "sandbox" }
        matchExpressions = [
          { key = "gkexec.dev/pool-state", operator = "NotIn", values = ["idle"] },
          { key = "gkexec.dev/session", operator = "DoesNotExist" },
        ]
      }
      unhealthyPodEvictionPolicy = "AlwaysAllow"
    }
    error_message = "A PodDisruptionBudget must forbid evicting sandbox Pods that run a one-shot execution (cold ones and claimed warm ones), and leave idle pool Pods and session Pods (which may live for hours) alone."
  }
}

# Sized by demand: the policy on the Deployment, no replicas (the autoscaler's), and the Role gains
# runner.PoolAutoscaleRules(); the defaults are manifests/components/warm-pool-autoscale's.
run "warm_pool_autoscale_defaults" {
  command = plan

  variables {
    warm_pool = { autoscale = {} }
  }

  assert {
    condition = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).metadata.annotations == {
      "gkexec.dev/autoscale-min" = "1", "gkexec.dev/autoscale-max" = "4", "gkexec.dev/autoscale-spare" = "1", "gkexec.dev/autoscale-cooldown" = "5m0s"
    }
    error_message = "An autoscaled pool's Deployment must carry the policy: min 1, max 4, spare 1, cooldown 5m0s by default."
  }
  assert {
    condition     = !can(yamldecode(kubectl_manifest.warm_pool[0].yaml_body).spec.replicas)
    error_message = "An autoscaled pool's Deployment must not set replicas: Terraform would take the autoscaler's size back at every apply."
  }
  assert {
    condition = length([for r in yamldecode(kubectl_manifest.object["role"].yaml_body).rules : r if
      (r.apiGroups == ["apps"] && r.resources == ["deployments"] && r.verbs == ["get"]) ||
      (r.apiGroups == ["apps"] && r.resources == ["deployments/scale"] && r.verbs == ["get", "update"]) ||
    (r.apiGroups == ["coordination.k8s.io"] && r.resources == ["leases"] && r.verbs == ["create", "get", "update"])]) == 3
    error_message = "The Role must grant runner.PoolAutoscaleRules(): deployments get, deployments/scale get/update, leases create/get/update."
  }
}

run "warm_pool_autoscale_custom" {
  command = plan

  variables {
    warm_pool = { autoscale = { min = 0, max = 3, spare = 2, cooldown = "90s" } }
  }

  assert {
    condition = yamldecode(kubectl_manifest.warm_pool[0].yaml_body).metadata.annotations == {
      "gkexec.dev/autoscale-min" = "0", "gkexec.dev/autoscale-max" = "3", "gkexec.dev/autoscale-spare" = "2", "gkexec.dev/autoscale-cooldown" = "90s"
    }
    error_message = "The policy must be the one given: min 0 (an empty pool until demand comes), max 3, spare 2, cooldown 90s."
  }
}

run "warm_pool_fixed_grants_no_scaling" {
  command = plan

  variables {
    warm_pool = {}
  }

  assert {
    condition     = !anytrue([for r in yamldecode(kubectl_manifest.object["role"].yaml_body).rules : contains(r.resources, "deployments/scale") || contains(r.resources, "leases")]) && !can(yamldecode(kubectl_manifest.warm_pool[0].yaml_body).metadata.annotations)
    error_message = "A pool of fixed size must neither carry a policy nor grant scaling: the installation chose its size."
  }
}
