terraform {
  required_version = ">= 1.9"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 7.22 introduced node_config.sandbox_config.type = "GVISOR" (sandbox_type is rejected).
      version = ">= 7.22, < 8.0"
    }
  }
}
