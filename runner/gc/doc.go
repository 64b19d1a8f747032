// Package gc finds and deletes what runners left behind in a namespace — the Jobs, ConfigMaps and
// claimed warm pool Pods of one-shot executions whose caller died, the markers of sessions that
// never got a sandbox, and the sandboxes that ended by themselves (their Pod's status says so) —
// for `gkexec gc`.
package gc
