# Every validation block rejects what it should (plan-only, nothing is created).
mock_provider "google" {}

variables {
  project_id            = "gkexec-test"
  cluster_name          = "gkexec"
  location              = "europe-west1"
  name                  = "sandbox"
  service_account_email = "gkexec-nodes@gkexec-test.iam.gserviceaccount.com"
}

run "project_id_is_a_number" {
  command = plan
  variables { project_id = "123456789012" }
  expect_failures = [var.project_id]
}

run "location_invalid" {
  command = plan
  variables { location = "europe" }
  expect_failures = [var.location]
}

run "name_too_long_for_the_generated_suffix" {
  command = plan
  variables { name = "sandbox-n2-std8" }
  expect_failures = [var.name]
}

run "node_locations_not_zones" {
  command = plan
  variables { node_locations = ["europe-west1"] }
  expect_failures = [var.node_locations]
}

run "service_account_not_an_email" {
  command = plan
  variables { service_account_email = "gke-nodes" }
  expect_failures = [var.service_account_email]
}

run "image_type_windows" {
  command = plan
  variables {
    gvisor      = false
    node_config = { image_type = "WINDOWS_LTSC_CONTAINERD", image_streaming = false }
  }
  expect_failures = [var.node_config]
}

run "disk_type" {
  command = plan
  variables { node_config = { disk_type = "local-ssd" } }
  expect_failures = [var.node_config]
}

run "machine_type_empty" {
  command = plan
  variables { node_config = { machine_type = "" } }
  expect_failures = [var.node_config]
}

run "gvisor_requires_cos_containerd" {
  command = plan
  variables { node_config = { image_type = "UBUNTU_CONTAINERD", image_streaming = false } }
  expect_failures = [var.node_config]
}

run "image_streaming_requires_cos" {
  command = plan
  variables {
    gvisor      = false
    node_config = { image_type = "UBUNTU_CONTAINERD" }
  }
  expect_failures = [var.node_config]
}

run "autoscaling_min_above_max" {
  command = plan
  variables { autoscaling = { total_min_nodes = 6, total_max_nodes = 5 } }
  expect_failures = [var.autoscaling]
}

run "autoscaling_location_policy_lower_case" {
  command = plan
  variables { autoscaling = { location_policy = "balanced" } }
  expect_failures = [var.autoscaling]
}

run "upgrade_strategy_unknown" {
  command = plan
  variables { upgrade = { strategy = "ROLLING" } }
  expect_failures = [var.upgrade]
}

run "upgrade_surge_that_cannot_move" {
  command = plan
  variables { upgrade = { max_surge = 0, max_unavailable = 0 } }
  expect_failures = [var.upgrade]
}

run "upgrade_soak_longer_than_a_week" {
  command = plan
  variables {
    upgrade = { strategy = "BLUE_GREEN", blue_green = { node_pool_soak_duration = "8d" } }
  }
  expect_failures = [var.upgrade]
}

run "upgrade_batch_percentage_above_one" {
  command = plan
  variables {
    upgrade = { strategy = "BLUE_GREEN", blue_green = { batch_percentage = 50 } }
  }
  expect_failures = [var.upgrade]
}
