// Package podspec builds the Kubernetes objects gkexec makes — the one hardened sandbox Pod, a
// cold execution's ConfigMap and Job, the warm pool's Deployment, a cold session's Job — and
// names the labels and annotations that tie them together; egress.go gives a sandbox Pod the
// egress gateway's settings. Its builders are pure: they take a
// Shape (what the runner's options say a sandbox looks like) and a request, and touch no cluster.
package podspec
