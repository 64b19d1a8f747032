provider "kubectl" {
  config_path    = var.kubeconfig_path
  config_context = var.kubeconfig_context
}

module "sandbox_namespace" {
  source = "../../terraform/modules/sandbox-namespace"

  namespace             = var.namespace
  agent_service_account = { namespace = var.agent_namespace, gcp_service_account = var.gcp_service_account }
  sandbox_egress        = var.sandbox_egress
  cluster_ranges        = var.cluster_ranges
  create_runtime_class  = !var.gke_sandbox
}
