// Package parity proves that the two ways of installing gkexec's sandbox namespace cannot drift:
// the kustomize base in manifests/ and the Terraform module terraform/modules/sandbox-namespace
// must declare the same objects, and the Role in both must grant exactly runner.RequiredRules()
// (plus runner.WarmPoolRules() with the warm pool, and runner.PoolAutoscaleRules() with the pool
// sized by demand). The warm pool's Deployment in both must be, field for field, what
// runner.WarmPoolDeployment builds (with autoscale.Deployment's policy when sized by demand), at the
// PriorityClass bench.PoolPriorityClass declares, leaving the quota room for 50 executions, and the
// files hack/gen-manifests writes (the component's deployment.yaml and priorityclass.yaml, the
// module's copy of the entrypoint) must be up to date. Every installation brings the admission
// policy, named after its namespace. The egress gateway's objects must honour the contract the Go
// code defines (RBAC of both sides, labels, ports, the names it publishes to), and its FQDN
// policies (components/fqdn-network-policy, the module's fqdn_network_policy) must be equal too, as
// shipped and as patched by manifests/README.md's recipe, and hold the gateway to named domains
// with no rule left open-ended.
//
// The tests render both for real: `kubectl kustomize` for the manifests, and `terraform console`
// on the module's manifests output, offline through the CLI config that test/terraform/providers.sh
// writes. They skip when kubectl, terraform or that CLI config is missing, unless
// GKEXEC_REQUIRE_TOOLS is set (make tf-test sets it, so CI never skips).
package parity
