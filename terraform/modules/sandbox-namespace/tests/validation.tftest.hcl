# Every validation block rejects what it should (plan-only, nothing is applied).
mock_provider "kubectl" {}

run "namespace_invalid_name" {
  command = plan
  variables { namespace = "Sandbox_1" }
  expect_failures = [var.namespace]
}

run "namespace_system" {
  command = plan
  variables { namespace = "kube-system" }
  expect_failures = [var.namespace]
}

run "service_account_invalid_name" {
  command = plan
  variables { agent_service_account = { name = "Agent!" } }
  expect_failures = [var.agent_service_account]
}

run "agent_namespace_invalid_name" {
  command = plan
  variables { agent_service_account = { namespace = "Agents_1" } }
  expect_failures = [var.agent_service_account]
}

run "gcp_service_account_not_an_email" {
  command = plan
  variables { agent_service_account = { gcp_service_account = "gkexec-agent" } }
  expect_failures = [var.agent_service_account]
}

# The egress runs give cluster_ranges, which destinations require, so that only sandbox_egress fails.
run "egress_invalid_cidr" {
  command = plan
  variables {
    sandbox_egress = { destinations = [{ cidr = "10.0.0.0/33" }] }
    cluster_ranges = { pod_cidrs = ["10.12.0.0/14"], service_cidrs = ["10.16.0.0/20"], control_plane_cidrs = ["172.16.0.2/32"] }
  }
  expect_failures = [var.sandbox_egress]
}

run "egress_invalid_except" {
  command = plan
  variables {
    sandbox_egress = { destinations = [{ cidr = "10.0.0.0/8", except = ["example.com"] }] }
    cluster_ranges = { pod_cidrs = ["10.12.0.0/14"], service_cidrs = ["10.16.0.0/20"], control_plane_cidrs = ["172.16.0.2/32"] }
  }
  expect_failures = [var.sandbox_egress]
}

run "egress_invalid_protocol" {
  command = plan
  variables {
    sandbox_egress = { destinations = [{ cidr = "10.0.0.0/8", ports = [{ port = 53, protocol = "ICMP" }] }] }
    cluster_ranges = { pod_cidrs = ["10.12.0.0/14"], service_cidrs = ["10.16.0.0/20"], control_plane_cidrs = ["172.16.0.2/32"] }
  }
  expect_failures = [var.sandbox_egress]
}

run "egress_invalid_port_range" {
  command = plan
  variables {
    sandbox_egress = { destinations = [{ cidr = "10.0.0.0/8", ports = [{ port = 443, end_port = 80 }] }] }
    cluster_ranges = { pod_cidrs = ["10.12.0.0/14"], service_cidrs = ["10.16.0.0/20"], control_plane_cidrs = ["172.16.0.2/32"] }
  }
  expect_failures = [var.sandbox_egress]
}

run "cluster_ranges_invalid_cidr" {
  command = plan
  variables { cluster_ranges = { pod_cidrs = ["10.12.0.0/14"], service_cidrs = ["services"] } }
  expect_failures = [var.cluster_ranges]
}

# 0.0.0.0/0 without the cluster's ranges would open every Pod, Service and the API server.
run "cluster_ranges_missing_with_destinations" {
  command = plan
  variables {
    sandbox_egress = { destinations = [{ cidr = "0.0.0.0/0", ports = [{ port = 443 }] }] }
    cluster_ranges = { pod_cidrs = ["10.12.0.0/14"], service_cidrs = ["10.16.0.0/20"] }
  }
  expect_failures = [var.cluster_ranges]
}

run "quota_fractional_count" {
  command = plan
  variables { quota = { jobs = 2.5 } }
  expect_failures = [var.quota]
}

run "quota_fewer_pods_than_jobs" {
  command = plan
  variables { quota = { jobs = 50, pods = 40 } }
  expect_failures = [var.quota]
}

run "quota_configmaps_without_root_ca_room" {
  command = plan
  variables { quota = { jobs = 50, configmaps = 50 } }
  expect_failures = [var.quota]
}

run "quota_invalid_quantity" {
  command = plan
  variables { quota = { requests_memory = "16 GB" } }
  expect_failures = [var.quota]
}

run "quota_requests_above_limits" {
  command = plan
  variables { quota = { requests_cpu = "40", limits_cpu = "30" } }
  expect_failures = [var.quota]
}

run "container_invalid_quantity" {
  command = plan
  variables { container_resources = { limit_memory = "lots" } }
  expect_failures = [var.container_resources]
}

run "container_request_above_limit" {
  command = plan
  variables { container_resources = { request_memory = "1Gi", limit_memory = "512Mi" } }
  expect_failures = [var.container_resources]
}

run "container_limit_above_max" {
  command = plan
  variables { container_resources = { limit_cpu = "4", max_cpu = "2" } }
  expect_failures = [var.container_resources]
}

run "container_limit_above_quota" {
  command = plan
  variables {
    quota               = { requests_memory = "2Gi", limits_memory = "4Gi" }
    container_resources = { limit_memory = "6Gi", max_memory = "8Gi" }
  }
  expect_failures = [var.container_resources]
}

run "warm_pool_invalid_name" {
  command = plan
  variables { warm_pool = { name = "Big_Pool" } }
  expect_failures = [var.warm_pool]
}

run "warm_pool_negative_replicas" {
  command = plan
  variables { warm_pool = { replicas = -1 } }
  expect_failures = [var.warm_pool]
}

run "warm_pool_fractional_replicas" {
  command = plan
  variables { warm_pool = { replicas = 1.5 } }
  expect_failures = [var.warm_pool]
}

run "warm_pool_image_with_spaces" {
  command = plan
  variables { warm_pool = { image = "python 3.11" } }
  expect_failures = [var.warm_pool]
}

run "warm_pool_invalid_quantity" {
  command = plan
  variables { warm_pool = { memory_limit = "512 MB" } }
  expect_failures = [var.warm_pool]
}

run "warm_pool_zero_quantity" {
  command = plan
  variables { warm_pool = { scratch_size = "0" } }
  expect_failures = [var.warm_pool]
}

# The quota is raised so that 53 Pods at 550m of requests fit (29.15 of 30 CPU): only request > limit fails.
run "warm_pool_request_above_limit" {
  command = plan
  variables {
    quota     = { requests_cpu = "30" }
    warm_pool = { cpu_request = "550m", cpu_limit = "500m" }
  }
  expect_failures = [var.warm_pool]
}

# 50 jobs + 5 replicas + 2 surged = 57 Pods > 55; every resource of the default quota still fits 57.
run "warm_pool_too_many_pods_for_quota" {
  command = plan
  variables { warm_pool = { replicas = 5 } }
  expect_failures = [var.warm_pool]
}

# 53 Pods (50 jobs, 2 replicas, 1 surged) of 1 CPU each need 53 CPU of requests; the quota has 12.
run "warm_pool_resources_beyond_quota" {
  command = plan
  variables { warm_pool = { cpu_request = "1", cpu_limit = "1" } }
  expect_failures = [var.warm_pool]
}

run "warm_pool_autoscale_max_below_min" {
  command = plan
  variables { warm_pool = { autoscale = { min = 3, max = 2 } } }
  expect_failures = [var.warm_pool]
}

run "warm_pool_autoscale_max_zero" {
  command = plan
  variables { warm_pool = { autoscale = { min = 0, max = 0 } } }
  expect_failures = [var.warm_pool]
}

run "warm_pool_autoscale_fractional_spare" {
  command = plan
  variables { warm_pool = { autoscale = { spare = 0.5 } } }
  expect_failures = [var.warm_pool]
}

run "warm_pool_autoscale_cooldown_not_a_duration" {
  command = plan
  variables { warm_pool = { autoscale = { cooldown = "5 minutes" } } }
  expect_failures = [var.warm_pool]
}

# Sized by demand, the pool at its largest is max: 50 jobs + 5 + 2 surged = 57 Pods > 55, although
# replicas (2) would fit.
run "warm_pool_autoscale_max_beyond_quota" {
  command = plan
  variables { warm_pool = { autoscale = { max = 5 } } }
  expect_failures = [var.warm_pool]
}

run "warm_pool_priority_class_invalid_name" {
  command = plan
  variables { warm_pool_priority_class = { name = "Low_Priority" } }
  expect_failures = [var.warm_pool_priority_class]
}

run "warm_pool_priority_class_reserved_name" {
  command = plan
  variables { warm_pool_priority_class = { name = "system-pool" } }
  expect_failures = [var.warm_pool_priority_class]
}

# 0 would tie with executions' sandboxes: they could not evict an idle pool Pod.
run "warm_pool_priority_class_not_below_executions" {
  command = plan
  variables { warm_pool_priority_class = { value = 0 } }
  expect_failures = [var.warm_pool_priority_class]
}

# Below -10 GKE's cluster autoscaler counts the pool's Pods as expendable.
run "warm_pool_priority_class_expendable" {
  command = plan
  variables { warm_pool_priority_class = { value = -11 } }
  expect_failures = [var.warm_pool_priority_class]
}

run "warm_pool_priority_class_fractional" {
  command = plan
  variables { warm_pool_priority_class = { value = -1.5 } }
  expect_failures = [var.warm_pool_priority_class]
}

run "warm_pool_priority_class_existing_without_name" {
  command = plan
  variables { warm_pool_priority_class = { create = false } }
  expect_failures = [var.warm_pool_priority_class]
}
