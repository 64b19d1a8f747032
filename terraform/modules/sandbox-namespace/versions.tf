terraform {
  required_version = ">= 1.9"

  required_providers {
    # gavinbunney/kubectl applies plain YAML with server-side apply. It builds from the Go module
    # proxy, so the same module is applied for real in offline CI and by users on GKE.
    kubectl = {
      source  = "gavinbunney/kubectl"
      version = ">= 1.19.0, < 2.0.0"
    }
  }
}
