package podspec

import (
	"maps"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Labels on every object the runner creates. gc, the shared Pod watch and the sandbox
// NetworkPolicy all select on them, so they are part of the kit's contract (runner re-exports
// them with their documentation).
const (
	LabelManagedBy    = "app.kubernetes.io/managed-by"
	ManagedByValue    = "gkexec"
	LabelComponent    = "app.kubernetes.io/component"
	ComponentSandbox  = "sandbox"
	ComponentWarmPool = "warm-pool"
	// ComponentSession marks a session's marker ConfigMap (SessionMarker).
	ComponentSession = "session"
	LabelExecutionID = "gkexec.dev/execution-id"

	LabelPool           = "gkexec.dev/pool"
	LabelPoolState      = "gkexec.dev/pool-state"
	PoolStateIdle       = "idle"
	PoolStateClaimed    = "claimed"
	AnnotationClaimedAt = "gkexec.dev/claimed-at"
	AnnotationClaimedBy = "gkexec.dev/claimed-by"
	// AnnotationClaimedFor says what a pool Pod was claimed for: ClaimedForExecution (on
	// request), ClaimedForSession, ClaimedForReady (held ready to replace a held sandbox an
	// execution took) or ClaimedForRenewal (held ready at a runner's start, or replacing one held
	// past its time). All but renewals are demand on the pool.
	AnnotationClaimedFor = "gkexec.dev/claimed-for"
	ClaimedForExecution  = "execution"
	ClaimedForSession    = "session"
	ClaimedForReady      = "ready"
	ClaimedForRenewal    = "renewal"
	// AnnotationPoolMiss is on a cold sandbox (its Job and Pod) that the warm pool could not
	// serve: "<pool>/<reason>". Whatever sizes the pool counts them as demand, across runners.
	AnnotationPoolMiss = "gkexec.dev/pool-miss"

	LabelSession                 = "gkexec.dev/session"
	AnnotationSessionExpiresAt   = "gkexec.dev/session-expires-at"
	AnnotationSessionIdleTimeout = "gkexec.dev/session-idle-timeout"
	AnnotationSessionLastUsed    = "gkexec.dev/session-last-used"
	// AnnotationSessionLanguage is the session's interpreter's language: any process that resumes
	// the session learns it here.
	AnnotationSessionLanguage = "gkexec.dev/session-language"
	AnnotationSessionLease    = "gkexec.dev/session-lease"

	// AnnotationSafeToEvict tells the cluster autoscaler whether it may evict a Pod to scale its
	// node down. A running execution must not be evicted: its Pod says "false" (a warm Pod from
	// its claim on; an idle one may go, its Deployment replaces it).
	AnnotationSafeToEvict = "cluster-autoscaler.kubernetes.io/safe-to-evict"
)

// ObjectName is the name of an execution's ConfigMap and Job.
func ObjectName(executionID string) string { return "gkexec-" + executionID }

// SessionSandboxID is the execution ID a cold session's Job is labelled and named with
// (gkexec-s-<session>): the shared watches route its Pod and events by it.
func SessionSandboxID(session string) string { return "s-" + session }

// SessionMarkerName is the name of session id's marker ConfigMap.
func SessionMarkerName(id string) string { return "gkexec-session-" + id }

// WarmPoolName is the name of the Deployment of warm pool pool.
func WarmPoolName(pool string) string { return "gkexec-pool-" + pool }

// ExecutionIDOf maps an event's object to an execution: Jobs are named gkexec-<id>, and their
// Pods gkexec-<id>-<suffix>.
func ExecutionIDOf(ref corev1.ObjectReference) string {
	name, ok := strings.CutPrefix(ref.Name, "gkexec-")
	if !ok {
		return ""
	}
	switch ref.Kind {
	case "Job":
		return name
	case "Pod":
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			return name[:i]
		}
	}
	return ""
}

// labels are an execution's objects' labels: the caller's, then gkexec's.
func (s *Shape) labels(executionID string) map[string]string {
	l := make(map[string]string, len(s.Labels)+3)
	maps.Copy(l, s.Labels)
	l[LabelManagedBy] = ManagedByValue
	l[LabelComponent] = ComponentSandbox
	l[LabelExecutionID] = executionID
	return l
}

// MarkPoolMiss notes on a cold sandbox's Job and Pod that warm pool pool could not serve it, and
// why (AnnotationPoolMiss).
func MarkPoolMiss(job *batchv1.Job, pool, reason string) {
	for _, meta := range []*map[string]string{&job.Annotations, &job.Spec.Template.Annotations} {
		if *meta == nil {
			*meta = map[string]string{}
		}
		(*meta)[AnnotationPoolMiss] = pool + "/" + reason
	}
}

// PoolMissOf is the pool and reason of a Pod's AnnotationPoolMiss; ok false without one.
func PoolMissOf(annotations map[string]string) (pool, reason string, ok bool) {
	v, found := annotations[AnnotationPoolMiss]
	if !found {
		return "", "", false
	}
	pool, reason, ok = strings.Cut(v, "/")
	return pool, reason, ok
}
