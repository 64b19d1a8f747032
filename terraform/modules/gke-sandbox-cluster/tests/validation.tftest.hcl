# Every validation block rejects what it should (plan-only, nothing is created).
mock_provider "google" {}

variables {
  project_id = "gkexec-test"
  location   = "europe-west1"
}

run "project_id_is_a_number" {
  command = plan
  variables { project_id = "123456789012" }
  expect_failures = [var.project_id]
}

run "name_too_long" {
  command = plan
  variables { name = "a-cluster-name-longer-than-24" }
  expect_failures = [var.name]
}

run "location_invalid" {
  command = plan
  variables { location = "europe" }
  expect_failures = [var.location]
}

run "node_locations_not_zones" {
  command = plan
  variables { node_locations = ["europe-west1"] }
  expect_failures = [var.node_locations]
}

run "release_channel_lower_case" {
  command = plan
  variables { release_channel = "regular" }
  expect_failures = [var.release_channel]
}

run "network_one_secondary_range" {
  command = plan
  variables { network = { subnetwork = "gke", pods_secondary_range_name = "pods" } }
  expect_failures = [var.network]
}

run "network_ranges_without_subnetwork" {
  command = plan
  variables { network = { pods_secondary_range_name = "pods", services_secondary_range_name = "services" } }
  expect_failures = [var.network]
}

run "master_authorized_network_not_a_cidr" {
  command = plan
  variables { master_authorized_networks = [{ cidr_block = "203.0.113.7" }] }
  expect_failures = [var.master_authorized_networks]
}

run "system_pool_image_type" {
  command = plan
  variables { system_pool = { image_type = "WINDOWS_LTSC_CONTAINERD" } }
  expect_failures = [var.system_pool]
}

run "system_pool_scales_to_zero" {
  command = plan
  variables { system_pool = { min_nodes = 0 } }
  expect_failures = [var.system_pool]
}

run "system_pool_disk" {
  command = plan
  variables { system_pool = { disk_size_gb = 5 } }
  expect_failures = [var.system_pool]
}

run "system_pool_machine_type_empty" {
  command = plan
  variables { system_pool = { machine_type = "" } }
  expect_failures = [var.system_pool]
}

run "sandbox_pool_requires_cos_containerd" {
  command = plan
  variables { sandbox_pool = { image_type = "UBUNTU_CONTAINERD" } }
  expect_failures = [var.sandbox_pool]
}

run "sandbox_pool_min_above_max" {
  command = plan
  variables { sandbox_pool = { min_nodes = 6, max_nodes = 5 } }
  expect_failures = [var.sandbox_pool]
}

run "sandbox_pool_no_nodes" {
  command = plan
  variables { sandbox_pool = { min_nodes = 0, max_nodes = 0 } }
  expect_failures = [var.sandbox_pool]
}

run "sandbox_pool_disk_type" {
  command = plan
  variables { sandbox_pool = { disk_type = "local-ssd" } }
  expect_failures = [var.sandbox_pool]
}

run "sandbox_pool_machine_type_empty" {
  command = plan
  variables { sandbox_pool = { machine_type = "" } }
  expect_failures = [var.sandbox_pool]
}

run "node_service_account_not_an_email" {
  command = plan
  variables { node_service_account_email = "gke-nodes" }
  expect_failures = [var.node_service_account_email]
}

run "image_repository_full_path" {
  command = plan
  variables { image_repositories = [{ location = "europe-west1", repository = "europe-west1-docker.pkg.dev/p/repo" }] }
  expect_failures = [var.image_repositories]
}
