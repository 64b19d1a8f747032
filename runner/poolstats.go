package runner

import (
	"maps"
	"sync"

	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
)

// Why the warm pool did not serve an execution or a session (PoolStats.ColdFallbacks, and the
// reason in a cold sandbox's AnnotationPoolMiss). Empty and raced say the pool was too small for
// the demand; the others, that a larger pool would not have helped.
const (
	PoolMissEmpty    = sandbox.MissEmpty    // "empty": no idle, ready Pod in the pool
	PoolMissMismatch = sandbox.MissMismatch // "mismatch": idle Pods, none of the options' sandbox
	PoolMissRaced    = sandbox.MissRaced    // "raced": others claimed the idle Pods first
	PoolMissAttach   = sandbox.MissAttach   // "attach": claimed, but the attach or its ping failed
	PoolMissError    = sandbox.MissError    // "error": the API server refused or failed the claim
)

// PoolMissReasons are the reasons in a stable order.
func PoolMissReasons() []string { return append([]string(nil), sandbox.MissReasons...) }

// PoolStats is what this runner's warm pool served since New: Claims counts executions and
// sessions that got a pool Pod; ColdFallbacks, those that asked the pool first and ran cold, by
// reason (every reason present, at zero if need be). A runner without a pool counts nothing.
type PoolStats struct {
	Claims        uint64
	ColdFallbacks map[string]uint64
}

// PoolStats returns the counts so far.
func (r *Runner) PoolStats() PoolStats { return r.pool.stats() }

type poolCounter struct {
	mu     sync.Mutex
	claims uint64
	misses map[string]uint64
}

func (c *poolCounter) claimed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.claims++
}

// missed counts a cold fallback and returns its reason (MissError when err says none).
func (c *poolCounter) missed(err error) string {
	reason := sandbox.MissReason(err)
	if reason == "" {
		reason = sandbox.MissError
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.misses == nil {
		c.misses = map[string]uint64{}
	}
	c.misses[reason]++
	return reason
}

func (c *poolCounter) stats() PoolStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := PoolStats{Claims: c.claims, ColdFallbacks: maps.Clone(c.misses)}
	if s.ColdFallbacks == nil {
		s.ColdFallbacks = map[string]uint64{}
	}
	for _, r := range sandbox.MissReasons {
		s.ColdFallbacks[r] += 0
	}
	return s
}

// PoolMissOf reads a cold sandbox's AnnotationPoolMiss: the pool that missed it and why; ok false
// without one.
func PoolMissOf(annotations map[string]string) (pool, reason string, ok bool) {
	return podspec.PoolMissOf(annotations)
}
