//go:build integration || gke

package e2e

import "testing"

// runStage runs one stage of the suite against a target as a named subtest, then asserts that
// the stage left none of the runner's objects in the namespace.
func runStage(t *testing.T, name string, tg *target, stage func(*testing.T, *target)) bool {
	t.Helper()
	return t.Run(name, func(t *testing.T) {
		t.Cleanup(func() { tg.assertNoLeftovers(t) })
		stage(t, tg)
	})
}

// step runs one case of a stage as a subtest and asserts afterwards that it left nothing behind.
// Not for parallel cases: the check covers the whole namespace.
func (tg *target) step(t *testing.T, name string, fn func(*testing.T)) bool {
	t.Helper()
	return t.Run(name, func(t *testing.T) {
		t.Cleanup(func() { tg.assertNoLeftovers(t) })
		fn(t)
	})
}

// parallelStep runs a parallel case whose executions use the given IDs, and asserts afterwards
// that none of their objects remain.
func (tg *target) parallelStep(t *testing.T, name string, ids []string, fn func(*testing.T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		t.Cleanup(func() { tg.assertNoLeftovers(t, ids...) })
		fn(t)
	})
}
