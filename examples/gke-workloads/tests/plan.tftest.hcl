# Stage 2 plans as a whole against the real provider schemas, without a project or a cluster.
mock_provider "google" {
  # Stage 1's cluster, as the data source reads it.
  mock_data "google_container_cluster" {
    defaults = {
      control_plane_endpoints_config = [{
        dns_endpoint_config = [{
          endpoint                  = "gke-0123456789abcdef-gkexec.us-central1.gke.goog"
          allow_external_traffic    = true
          enable_k8s_tokens_via_dns = false
          enable_k8s_certs_via_dns  = false
        }]
        ip_endpoints_config = [{ enabled = false }]
      }]
    }
  }
}
mock_provider "kubectl" {}

variables {
  project_id                   = "gkexec-example"
  location                     = "us-central1"
  cluster_name                 = "gkexec"
  agent_google_service_account = "gkexec-agent@gkexec-example.iam.gserviceaccount.com"
  agent = {
    image = "us-docker.pkg.dev/gkexec-example/agents/agent:1.0"
    args  = ["--listen", ":8080"]
  }
}

run "plan" {
  command = plan

  assert {
    condition     = output.kubernetes_host == "https://gke-0123456789abcdef-gkexec.us-central1.gke.goog" && data.google_container_cluster.this.name == "gkexec"
    error_message = "The Kubernetes objects must go to stage 1's cluster through its DNS endpoint."
  }
  assert {
    condition     = output.namespace == "gkexec" && output.agent_namespace == "agent"
    error_message = "The example must create the gkexec sandbox namespace and the agent namespace."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.agent.yaml_body).metadata.namespace == "agent" && yamldecode(kubectl_manifest.agent_namespace.yaml_body).metadata.name == "agent" && yamldecode(kubectl_manifest.agent_namespace.yaml_body).metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    error_message = "The agent must run in its own namespace (restricted Pod Security), never in the sandbox namespace, which admits only sandboxes."
  }
  assert {
    condition     = yamldecode(module.sandbox_namespace.manifests.serviceaccount).metadata.namespace == "agent" && yamldecode(module.sandbox_namespace.manifests.serviceaccount).metadata.annotations["iam.gke.io/gcp-service-account"] == "gkexec-agent@gkexec-example.iam.gserviceaccount.com" && yamldecode(module.sandbox_namespace.manifests.rolebinding).metadata.namespace == "gkexec" && yamldecode(module.sandbox_namespace.manifests.rolebinding).subjects == [{ kind = "ServiceAccount", name = "gkexec-agent", namespace = "agent" }]
    error_message = "The agent's ServiceAccount (with its Workload Identity) must live in the agent's namespace, bound into the sandbox namespace by the RoleBinding."
  }
  assert {
    condition = yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.serviceAccountName == "gkexec-agent" && yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.containers[0].env == [
      { name = "GKEXEC_NAMESPACE", value = "gkexec" },
    ]
    error_message = "The agent must run as gkexec-agent with GKEXEC_NAMESPACE set to the sandbox namespace."
  }
  assert {
    condition     = !can(yamldecode(kubectl_manifest.agent.yaml_body).spec.template.metadata.labels["app.kubernetes.io/component"]) && !can(yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.runtimeClassName)
    error_message = "The agent is not a sandbox: no component=sandbox label (the NetworkPolicy would cut it off) and no RuntimeClass."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.containers[0].args == ["--listen", ":8080"] && !can(yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.containers[0].command)
    error_message = "Only the given command and args may be rendered."
  }
}

run "plan_with_gkexec_sidecar" {
  command = plan

  variables {
    agent = {
      image         = "us-docker.pkg.dev/gkexec-example/agents/agent:1.0"
      sidecar_image = "us-docker.pkg.dev/gkexec-example/agents/gkexec:dev"
    }
  }

  assert {
    condition     = yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.initContainers[0].restartPolicy == "Always" && yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.initContainers[0].args == ["serve", "--namespace=gkexec", "--listen=127.0.0.1:8080", "--probe-listen=:8081"]
    error_message = "The gkexec sidecar must be a native sidecar serving the sandbox namespace on the Pod's loopback."
  }
  assert {
    condition     = yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.automountServiceAccountToken == false && !can(yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.containers[0].volumeMounts)
    error_message = "With a sidecar only the sidecar may hold the Kubernetes token."
  }
  assert {
    condition     = contains(yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.containers[0].env, { name = "GKEXEC_URL", value = "http://127.0.0.1:8080" })
    error_message = "The agent must be told where the sidecar listens."
  }
}

run "agent_namespace_must_not_be_the_sandbox_namespace" {
  command = plan
  variables { agent_namespace = "gkexec" }
  expect_failures = [var.agent_namespace]
}
