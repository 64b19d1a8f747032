# The example plans as a whole against the real provider schemas, without a project or a cluster.
mock_provider "google" {
  # OpenTofu's mocks invent values for computed attributes during plan; make the email a real
  # one so the namespace module's validation accepts it (Terraform leaves it unknown).
  mock_resource "google_service_account" {
    defaults = {
      email = "gkexec-agent@gkexec-example.iam.gserviceaccount.com"
    }
  }
}
mock_provider "kubectl" {}

variables {
  project_id = "gkexec-example"
  agent = {
    image         = "us-docker.pkg.dev/gkexec-example/agents/agent:1.0"
    args          = ["--listen", ":8080"]
    project_roles = ["roles/aiplatform.user"]
  }
}

run "plan" {
  command = plan

  assert {
    condition     = module.cluster.runtime_class_name == "gvisor"
    error_message = "The cluster must provide the gvisor RuntimeClass."
  }
  assert {
    condition     = output.namespace == "gkexec"
    error_message = "The example must create the gkexec namespace."
  }
  assert {
    condition = yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.serviceAccountName == "gkexec-agent" && yamldecode(kubectl_manifest.agent.yaml_body).spec.template.spec.containers[0].env == [
      { name = "GKEXEC_NAMESPACE", value = "gkexec" },
    ]
    error_message = "The agent must run as gkexec-agent with GKEXEC_NAMESPACE set."
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
    error_message = "The gkexec sidecar must be a native sidecar serving the namespace on the Pod's loopback."
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
