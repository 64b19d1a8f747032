// Package gc finds and deletes what runners left behind in a namespace — the Jobs and ConfigMaps
// of executions whose caller died, the warm pool Pods claimed and never released, and the
// sandboxes of sessions over by their own terms — for `gkexec gc`.
package gc
