package runner

import rbacv1 "k8s.io/api/rbac/v1"

// RequiredRules are the namespaced RBAC rules the runner needs, and nothing more.
// They are derived from the API calls the runner and the gkexec binary make:
//
//   - configmaps create/patch/delete: the code and input files travel in a ConfigMap; after the Job
//     exists the ConfigMap is patched to be owned by it, so deleting the Job (or its TTL) removes both.
//   - configmaps list, jobs list: `gkexec gc` finds leftovers of crashed callers by label.
//   - jobs create/delete: one Job per execution, deleted with background propagation (its Pod goes too).
//   - pods list/watch: one shared, label-filtered watch follows every execution's Pod.
//   - pods/log get: stdout, stderr and the result record are read from the container log.
//   - events list/watch: failures before a Pod exists (quota, missing RuntimeClass, admission) are only
//     reported as events on the Job, so the runner fails fast instead of waiting for the timeout.
//   - resourcequotas list: `gkexec doctor` reports quota headroom.
//
// The Terraform namespace module and manifests/ grant exactly these; a test keeps them in step.
func RequiredRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create", "delete", "list", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"resourcequotas"}, Verbs: []string{"list"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"create", "delete", "list"}},
	}
}

// WarmPoolRules are the rules the warm path adds to RequiredRules when the namespace has a warm
// pool:
//
//   - pods patch: a claim is one patch of the Pod's pool-state label (guarded by its
//     resourceVersion) and of its activeDeadlineSeconds.
//   - pods delete: a warm sandbox is deleted after its one execution; idle Pods past their age
//     are recycled.
//   - pods/attach create, get: the request reaches the waiting entrypoint over the Pod's stdin
//     and the framed output comes back on its stdout; no network path into the sandbox. An attach
//     over WebSocket (a GET upgraded) is authorized as get and, since Kubernetes 1.31, also as
//     create; SPDY (a POST) as create.
//
// pods/attach lets its holder write to the stdin and read the stdout of every container in the
// namespace that has stdin open: that is why the sandbox namespace must hold nothing but sandboxes.
func WarmPoolRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"delete", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/attach"}, Verbs: []string{"create", "get"}},
	}
}

// EgressGatewayRules are the rules the runner needs in the egress gateway's namespace, when the
// sandbox namespace has one, to read what the gateway allowed and refused for each execution
// (Result.Egress):
//
//   - pods list: find the gateway's Pods (their names change with every rollout).
//   - pods/portforward create, get: read each one's admin API through the API server, which works
//     wherever the runner runs; the admin port is never reachable from sandboxes. Over WebSocket
//     (a GET upgraded) a port-forward is authorized as get and, since Kubernetes 1.31, create;
//     over SPDY (a POST) as create.
//
// The gateway's namespace holds only the gateway: these reach nothing else. Without them the
// executions run as before, and Result.Egress says why it has no counts.
func EgressGatewayRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
		{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"create", "get"}},
	}
}

// PoolAutoscaleRules are the rules that sizing the warm pool by demand (runner/autoscale: gkexec
// serve, gkexec pool autoscale) adds to WarmPoolRules, where the installation asks for it:
//
//   - deployments get: the pool's policy is on its Deployment's annotations.
//   - deployments/scale get, update: the size is written through the scale subresource, which
//     can change the number of replicas and nothing else (not the Pod template).
//   - leases get, create, update (coordination.k8s.io): the processes that size the pool elect
//     one writer through a Lease.
//
// Namespaced like the rest: the sandbox namespace holds only the pools' Deployments and the
// autoscaler's Lease, so the rules name no objects (a Role cannot limit create to one name).
func PoolAutoscaleRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale"}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create", "get", "update"}},
	}
}
