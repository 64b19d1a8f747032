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

run "network_cidr_invalid" {
  command = plan
  variables { network = { nodes_cidr = "10.10.0.0/33" } }
  expect_failures = [var.network]
}

run "network_pods_range_too_small" {
  command = plan
  variables { network = { pods_cidr = "10.12.0.0/24" } }
  expect_failures = [var.network]
}

run "network_subnetwork_without_ranges" {
  command = plan
  variables { network = { subnetwork = { name = "gke", pods_range_name = "", services_range_name = "services" } } }
  expect_failures = [var.network]
}

run "ip_endpoints_open_to_any_address_implicitly" {
  command = plan
  variables { access = { ip_endpoints = { authorized_networks = [] } } }
  expect_failures = [var.access]
}

run "authorized_network_not_a_cidr" {
  command = plan
  variables { access = { ip_endpoints = { authorized_networks = [{ cidr_block = "203.0.113.7" }] } } }
  expect_failures = [var.access]
}

run "maintenance_window_shorter_than_4_hours" {
  command = plan
  variables {
    maintenance = { window = { start_time = "2026-01-03T01:00:00Z", end_time = "2026-01-03T03:00:00Z", recurrence = "FREQ=DAILY" } }
  }
  expect_failures = [var.maintenance]
}

run "maintenance_recurrence_with_prefix" {
  command = plan
  variables {
    maintenance = { window = { start_time = "2026-01-03T01:00:00Z", end_time = "2026-01-03T09:00:00Z", recurrence = "RRULE:FREQ=WEEKLY;BYDAY=SA" } }
  }
  expect_failures = [var.maintenance]
}

run "maintenance_exclusion_scope" {
  command = plan
  variables {
    maintenance = { exclusions = [{ name = "x", start_time = "2026-03-01T00:00:00Z", end_time = "2026-03-02T00:00:00Z", scope = "no_upgrades" }] }
  }
  expect_failures = [var.maintenance]
}

run "maintenance_no_upgrades_longer_than_30_days" {
  command = plan
  variables {
    maintenance = { exclusions = [{ name = "x", start_time = "2026-03-01T00:00:00Z", end_time = "2026-04-15T00:00:00Z" }] }
  }
  expect_failures = [var.maintenance]
}

run "maintenance_exclusions_same_name" {
  command = plan
  variables {
    maintenance = { exclusions = [
      { name = "x", start_time = "2026-03-01T00:00:00Z", end_time = "2026-03-02T00:00:00Z" },
      { name = "x", start_time = "2026-04-01T00:00:00Z", end_time = "2026-04-02T00:00:00Z" },
    ] }
  }
  expect_failures = [var.maintenance]
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
