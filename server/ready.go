package server

import (
	"context"
	"sync"
	"time"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/doctor"
)

// readyStatus is the body of /readyz.
type readyStatus struct {
	Ready bool `json:"ready"`
	// Reason names the first required check that failed, or "shutting down".
	Reason string `json:"reason,omitempty"`
	// Checks are the doctor's checks without the smoke execution. Only the required ones decide
	// readiness; the rest (RuntimeClass, gVisor nodes, quota) are reported for information.
	Checks    []doctor.Check `json:"checks,omitempty"`
	CheckedAt time.Time      `json:"checked_at,omitzero"`
}

// readiness answers /readyz from doctor.Run, cached for ttl. Ready means: the API server
// answers, the namespace exists, and RBAC allows every call the runner makes — what this
// identity needs and can verify. RuntimeClass, gVisor nodes and quota headroom do not count:
// the agent may not read cluster-scoped objects, a node pool that scales from zero has no node
// until the first execution, and a full quota is transient. Taking the Pod out of service for
// those would not help anyone.
type readiness struct {
	run     *runner.Runner
	ttl     time.Duration
	timeout time.Duration

	mu   sync.Mutex // held during a refresh, so concurrent probes share one
	last readyStatus
}

// requiredChecks are the doctor checks readiness rests on, by name; a unit test keeps these in
// step with doctor.Run.
func requiredChecks(namespace string) []string {
	return []string{
		"API server reachable",
		"namespace " + namespace + " exists",
		"RBAC allows every call the runner makes",
	}
}

func (r *readiness) get(ctx context.Context) readyStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.CheckedAt.IsZero() && time.Since(r.last.CheckedAt) < r.ttl {
		return r.last
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	checks := doctor.Run(ctx, r.run, doctor.Options{})
	r.last = evaluate(checks, requiredChecks(r.run.Options().Namespace))
	r.last.CheckedAt = time.Now()
	if ctx.Err() != nil {
		// A probe that gave up says nothing about the cluster; do not keep its answer.
		r.last.CheckedAt = time.Time{}
	}
	return r.last
}

func evaluate(checks []doctor.Check, required []string) readyStatus {
	byName := make(map[string]doctor.Check, len(checks))
	for _, c := range checks {
		byName[c.Name] = c
	}
	for _, name := range required {
		c, ok := byName[name]
		if !ok {
			return readyStatus{Reason: name + ": not checked (an earlier check failed)", Checks: checks}
		}
		if c.Status != doctor.Pass {
			return readyStatus{Reason: name + ": " + c.Detail, Checks: checks}
		}
	}
	return readyStatus{Ready: true, Checks: checks}
}
