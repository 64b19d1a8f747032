output "namespace" {
  description = "Namespace to give the runner (gkexec --namespace, or GKEXEC_NAMESPACE)."
  value       = module.sandbox_namespace.namespace
}

output "kubernetes_host" {
  description = "Where the Kubernetes objects were applied: the cluster's DNS endpoint."
  value       = "https://${local.dns_endpoint}"
}
