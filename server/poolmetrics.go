package server

import (
	"fmt"
	"io"
	"strconv"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/autoscale"
)

// writePoolMetrics writes what this process's warm pool served and missed
// (gkexec_serve_pool_*), and, with an autoscaler, what it saw of the pool across every runner and
// did (gkexec_pool_*). An HorizontalPodAutoscaler where a metrics pipeline exists targets
// gkexec_pool_recommended_replicas (docs/autoscale.md).
func writePoolMetrics(w io.Writer, r *runner.Runner, a *autoscale.Autoscaler) {
	if !r.Options().NoWarmPool {
		ps := r.PoolStats()
		family(w, "gkexec_serve_pool_claims_total", "counter", "Executions and sessions of this process that got a warm pool Pod.")
		fmt.Fprintf(w, "gkexec_serve_pool_claims_total %d\n", ps.Claims)
		family(w, "gkexec_serve_pool_cold_fallbacks_total", "counter",
			"Executions and sessions of this process that asked the warm pool first and ran cold, by reason: empty (no idle ready Pod), raced (others claimed them first), mismatch (none of these options), attach, error.")
		for _, reason := range runner.PoolMissReasons() {
			fmt.Fprintf(w, "gkexec_serve_pool_cold_fallbacks_total{reason=%q} %d\n", reason, ps.ColdFallbacks[reason])
		}
	}
	if a == nil {
		return
	}
	s := a.Stats()
	gauge := func(name, help string, v float64) {
		family(w, name, "gauge", help)
		fmt.Fprintf(w, "%s %s\n", name, strconv.FormatFloat(v, 'g', -1, 64))
	}
	leader := 0.0
	if s.Leader {
		leader = 1
	}
	gauge("gkexec_pool_autoscaler_leader", "1 while this process holds the Lease and writes the warm pool's size.", leader)
	gauge("gkexec_pool_recommended_replicas", "The warm pool's size the demand calls for: the most claims and misses within one refill time plus the spare, within [min, max].", float64(s.Recommended))
	gauge("gkexec_pool_replicas", "The warm pool Deployment's replicas as last read or written by the leader (-1: not yet).", float64(s.Replicas))
	gauge("gkexec_pool_min_replicas", "The policy's minimum.", float64(s.Policy.Min))
	gauge("gkexec_pool_max_replicas", "The policy's maximum.", float64(s.Policy.Max))
	gauge("gkexec_pool_idle_ready", "Idle, ready Pods in the warm pool.", float64(s.IdleReady))
	gauge("gkexec_pool_refill_estimate_seconds", "The refill time the size is planned with: the 90th percentile of the recent refills, or the assumed one.", s.Refill.Seconds())
	family(w, "gkexec_pool_claims_total", "counter", "Claims of the warm pool's Pods that are demand, by every runner, seen since this process started.")
	fmt.Fprintf(w, "gkexec_pool_claims_total %d\n", s.Claims)
	family(w, "gkexec_pool_cold_fallbacks_total", "counter", "Cold sandboxes of every runner that the warm pool missed, by reason, seen since this process started.")
	for _, reason := range runner.PoolMissReasons() {
		fmt.Fprintf(w, "gkexec_pool_cold_fallbacks_total{reason=%q} %d\n", reason, s.Misses[reason])
	}
	family(w, "gkexec_pool_resizes_total", "counter", "Writes of the warm pool's size by this process, by direction.")
	fmt.Fprintf(w, "gkexec_pool_resizes_total{direction=\"up\"} %d\ngkexec_pool_resizes_total{direction=\"down\"} %d\n", s.ScaledUp, s.ScaledDown)
	family(w, "gkexec_pool_refill_seconds", "histogram", "Time to refill the warm pool: a pool Pod's creation to its readiness.")
	var cum uint64
	for i, le := range autoscale.RefillBuckets {
		cum += s.Refills.Counts[i]
		fmt.Fprintf(w, "gkexec_pool_refill_seconds_bucket{le=%q} %d\n", strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	fmt.Fprintf(w, "gkexec_pool_refill_seconds_bucket{le=\"+Inf\"} %d\n", s.Refills.Count)
	fmt.Fprintf(w, "gkexec_pool_refill_seconds_sum %s\ngkexec_pool_refill_seconds_count %d\n", strconv.FormatFloat(s.Refills.Sum, 'g', -1, 64), s.Refills.Count)
}
