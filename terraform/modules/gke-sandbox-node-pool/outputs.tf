output "name" {
  description = "Generated name of the node pool (<name>-<timestamp>); it changes when the pool is replaced."
  value       = google_container_node_pool.this.name
}

output "node_labels" {
  description = "Kubernetes labels on every node of the pool that survive its replacement, for node selectors (gkexec --node-selector)."
  value       = local.node_labels
}

output "runtime_class_name" {
  description = "RuntimeClass whose Pods run on this pool: gvisor for a gVisor pool (GKE installs it with the first one), null otherwise. Known once the pool exists."
  value       = var.gvisor ? "gvisor" : null
  depends_on  = [google_container_node_pool.this]
}
