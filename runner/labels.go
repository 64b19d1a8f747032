package runner

import "github.com/gkexec/gkexec/runner/internal/podspec"

// Labels on every object the runner creates. gc, the shared Pod watch and the sandbox
// NetworkPolicy all select on them, so they are part of the kit's contract.
const (
	// LabelManagedBy marks objects made by gkexec; its value is ManagedByValue.
	LabelManagedBy = podspec.LabelManagedBy // "app.kubernetes.io/managed-by"
	ManagedByValue = podspec.ManagedByValue // "gkexec"
	// LabelComponent distinguishes sandbox Pods (ComponentSandbox) from anything else in the namespace,
	// such as the agent itself.
	LabelComponent   = podspec.LabelComponent   // "app.kubernetes.io/component"
	ComponentSandbox = podspec.ComponentSandbox // "sandbox"
	// ComponentWarmPool marks the warm pool's Deployment.
	ComponentWarmPool = podspec.ComponentWarmPool // "warm-pool"
	// ComponentSession marks a session's marker ConfigMap, gkexec-session-<ID>: its existence is
	// what makes the ID taken, for every process at once.
	ComponentSession = podspec.ComponentSession // "session"
	// LabelExecutionID carries the execution ID, shared by the ConfigMap, the Job and its Pod.
	LabelExecutionID = podspec.LabelExecutionID // "gkexec.dev/execution-id"

	// LabelPool names the warm pool a pre-started sandbox Pod belongs to.
	LabelPool = podspec.LabelPool // "gkexec.dev/pool"
	// LabelPoolState is PoolStateIdle while the Pod waits in the pool: the pool's Deployment
	// selects on it. A claim changes it to PoolStateClaimed, which takes the Pod out of the
	// Deployment (its controller creates a replacement at once) and out of every other runner's
	// reach.
	LabelPoolState   = podspec.LabelPoolState   // "gkexec.dev/pool-state"
	PoolStateIdle    = podspec.PoolStateIdle    // "idle"
	PoolStateClaimed = podspec.PoolStateClaimed // "claimed"
	// AnnotationClaimedAt is when a warm sandbox was claimed (RFC 3339), for `gkexec gc`;
	// AnnotationClaimedBy names the runner process that claimed it.
	AnnotationClaimedAt = podspec.AnnotationClaimedAt // "gkexec.dev/claimed-at"
	AnnotationClaimedBy = podspec.AnnotationClaimedBy // "gkexec.dev/claimed-by"
	// AnnotationClaimedFor says what a pool Pod was claimed for: an execution on request, a
	// session, held ready to replace a held sandbox an execution took, or held ready at a
	// runner's start or in place of one held past its time (a renewal). All but renewals are
	// demand on the pool (runner/autoscale).
	AnnotationClaimedFor = podspec.AnnotationClaimedFor // "gkexec.dev/claimed-for"
	ClaimedForExecution  = podspec.ClaimedForExecution  // "execution"
	ClaimedForSession    = podspec.ClaimedForSession    // "session"
	ClaimedForReady      = podspec.ClaimedForReady      // "ready"
	ClaimedForRenewal    = podspec.ClaimedForRenewal    // "renewal"
	// AnnotationPoolMiss is on a cold sandbox (Job and Pod) that the warm pool could not serve,
	// "<pool>/<reason>" (the reasons of PoolStats.ColdFallbacks): demand the pool missed, which
	// runner/autoscale counts across every runner process.
	AnnotationPoolMiss = podspec.AnnotationPoolMiss // "gkexec.dev/pool-miss"

	// LabelSession carries a session's ID on its sandbox Pod (and, when cold, its Job): a runner
	// process that did not open the session finds it by this label.
	LabelSession = podspec.LabelSession // "gkexec.dev/session"
	// A session's terms, on its Pod: when it ends at the latest (RFC 3339) and how long it may
	// sit idle (a Go duration); AnnotationSessionLastUsed is when its last execution ended.
	AnnotationSessionExpiresAt   = podspec.AnnotationSessionExpiresAt   // "gkexec.dev/session-expires-at"
	AnnotationSessionIdleTimeout = podspec.AnnotationSessionIdleTimeout // "gkexec.dev/session-idle-timeout"
	AnnotationSessionLastUsed    = podspec.AnnotationSessionLastUsed    // "gkexec.dev/session-last-used"
	// AnnotationSessionLease names the runner process and execution that hold a session's stdin,
	// and until when ("<holder> <execution ID> <RFC 3339>"): a runner writes a request only while
	// it holds the lease, taken with a patch guarded by the Pod's resourceVersion, so two callers
	// in different processes are never interleaved.
	AnnotationSessionLease = podspec.AnnotationSessionLease // "gkexec.dev/session-lease"

	// AnnotationSafeToEvict tells the cluster autoscaler whether it may evict a Pod to scale its
	// node down. A running execution must not be evicted: its Pod says "false" (a warm Pod from
	// its claim on; an idle one may go, its Deployment replaces it).
	AnnotationSafeToEvict = podspec.AnnotationSafeToEvict // "cluster-autoscaler.kubernetes.io/safe-to-evict"
)
