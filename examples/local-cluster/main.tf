# With host set, only host/token/CA are used; otherwise the kubeconfig (path, context).
provider "kubectl" {
  load_config_file       = var.host == null
  config_path            = var.host == null ? var.kubeconfig_path : null
  config_context         = var.host == null ? var.kubeconfig_context : null
  host                   = var.host
  token                  = var.token
  cluster_ca_certificate = var.cluster_ca_certificate
}

module "sandbox_namespace" {
  source = "../../terraform/modules/sandbox-namespace"

  namespace             = var.namespace
  agent_service_account = { name = var.agent_service_account }
  create_runtime_class  = var.create_runtime_class
  quota                 = var.quota
  warm_pool             = var.warm_pool
}
