// Package e2e holds gkexec's end-to-end suites. They stand the kit up on a real cluster with
// terratest and prove, from the agent's own ServiceAccount and from inside the sandbox, what the
// kit promises: least-privilege RBAC, real gVisor sandboxing, limits, timeouts, and no leftovers.
//
// Two tiers, each behind a build tag (see README.md):
//
//	integration  the local gVisor cluster (make test, make e2e)
//	gke          a real GKE project (GKEXEC_GKE_PROJECT, GKEXEC_GKE_REGION)
//
// Without a tag the package is empty.
package e2e
