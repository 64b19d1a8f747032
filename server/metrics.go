package server

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// The metrics are written by hand in the Prometheus text format (version 0.0.4): one counter,
// two histograms and two gauges do not justify a client library and its dependencies.

// latencyBuckets span a warm create (milliseconds) to the default timeout (300 s).
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// resultOutcomes are always exported, at zero if need be, so that rate() works from the start.
var resultOutcomes = []string{"success", "error", "timeout", "oom"}

type metrics struct {
	inFlight      atomic.Int64
	maxConcurrent int

	mu         sync.Mutex
	executions map[string]uint64 // by outcome
	sandboxes  map[string]uint64 // by source: warm or cold
	duration   *histogram        // whole request
	phases     map[string]*histogram
	// egress counts the egress gateway's decisions on executions' requests, by [decision, reason].
	egress map[[2]string]uint64
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

func newHistogram() *histogram { return &histogram{counts: make([]uint64, len(latencyBuckets)+1)} }

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(latencyBuckets, v) // first bucket with le >= v
	h.counts[i]++
	h.sum += v
	h.count++
}

func newMetrics(maxConcurrent int) *metrics {
	m := &metrics{maxConcurrent: maxConcurrent, executions: map[string]uint64{},
		sandboxes: map[string]uint64{runner.SandboxWarm: 0, runner.SandboxCold: 0},
		duration:  newHistogram(), phases: map[string]*histogram{}, egress: map[[2]string]uint64{}}
	for _, o := range resultOutcomes {
		m.executions[o] = 0
	}
	for _, p := range runner.PhaseNames {
		m.phases[p] = newHistogram()
	}
	return m
}

// count records one execution request and how long it took to answer.
func (m *metrics) count(outcome string, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.executions[outcome]++
	m.duration.observe(took.Seconds())
}

// observe records where an execution ran and how long each of its phases took.
func (m *metrics) observe(res runner.Result) {
	phases := res.Timings.Phases()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sandboxes[res.Sandbox]; ok {
		m.sandboxes[res.Sandbox]++
	}
	for name, d := range phases {
		if h, ok := m.phases[name]; ok {
			h.observe(d.Seconds())
		}
	}
	if e := res.Egress; e != nil {
		for _, d := range e.Allowed {
			m.egress[[2]string{"allowed", ""}] += d.Count
		}
		for _, d := range e.Denied {
			m.egress[[2]string{"denied", string(d.Reason)}] += d.Count
		}
	}
}

// write writes every metric in the Prometheus text format; cleanupFailures is the runner's count.
func (m *metrics) write(w io.Writer, cleanupFailures int64) error {
	bw := bufio.NewWriter(w)
	m.mu.Lock()
	family(bw, "gkexec_serve_executions_total", "counter",
		"Execution requests answered, by outcome: success, error (non-zero exit), timeout and oom for results; the error code (busy, invalid_request, forbidden, ...) otherwise.")
	for _, o := range slices.Sorted(maps.Keys(m.executions)) {
		fmt.Fprintf(bw, "gkexec_serve_executions_total{outcome=%q} %d\n", o, m.executions[o])
	}
	family(bw, "gkexec_serve_request_duration_seconds", "histogram",
		"Time to answer an execution request, from its arrival to the answer, cleanup included.")
	m.duration.write(bw, "gkexec_serve_request_duration_seconds", "")
	family(bw, "gkexec_serve_execution_phase_seconds", "histogram",
		"Duration of each phase of an execution: queue, create, claim, schedule, attach, start, run, read_logs, cleanup (runner.Timings.Phases).")
	for _, p := range runner.PhaseNames {
		m.phases[p].write(bw, "gkexec_serve_execution_phase_seconds", fmt.Sprintf("phase=%q", p))
	}
	family(bw, "gkexec_serve_sandboxes_total", "counter",
		"Executions that got a sandbox, by where it came from: warm (a pre-started pool Pod) or cold (a Job made for it).")
	for _, k := range slices.Sorted(maps.Keys(m.sandboxes)) {
		fmt.Fprintf(bw, "gkexec_serve_sandboxes_total{sandbox=%q} %d\n", k, m.sandboxes[k])
	}
	family(bw, "gkexec_serve_egress_decisions_total", "counter",
		"The egress gateway's decisions on the executions' requests (Result.egress), by decision and, for refusals, reason.")
	for _, k := range slices.SortedFunc(maps.Keys(m.egress), func(a, b [2]string) int { return slices.Compare(a[:], b[:]) }) {
		if k[1] == "" {
			fmt.Fprintf(bw, "gkexec_serve_egress_decisions_total{decision=%q} %d\n", k[0], m.egress[k])
		} else {
			fmt.Fprintf(bw, "gkexec_serve_egress_decisions_total{decision=%q,reason=%q} %d\n", k[0], k[1], m.egress[k])
		}
	}
	m.mu.Unlock()
	family(bw, "gkexec_serve_cleanup_failures_total", "counter",
		"Objects the runner could not delete after retrying (Result.left_behind, and used warm Pods deleted after the answer); run `gkexec gc`.")
	fmt.Fprintf(bw, "gkexec_serve_cleanup_failures_total %d\n", cleanupFailures)
	family(bw, "gkexec_serve_executions_in_flight", "gauge", "Executions running now.")
	fmt.Fprintf(bw, "gkexec_serve_executions_in_flight %d\n", m.inFlight.Load())
	family(bw, "gkexec_serve_max_concurrent", "gauge", "The bound on executions in flight (--max-concurrent); past it requests get 429.")
	fmt.Fprintf(bw, "gkexec_serve_max_concurrent %d\n", m.maxConcurrent)
	return bw.Flush()
}

func family(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (h *histogram) write(w io.Writer, name, labels string) {
	sep := ""
	if labels != "" {
		sep = ","
	}
	var cum uint64
	for i, le := range latencyBuckets {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{%s%sle=%q} %d\n", name, labels, sep, strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, h.count)
	braces := ""
	if labels != "" {
		braces = "{" + labels + "}"
	}
	fmt.Fprintf(w, "%s_sum%s %s\n", name, braces, strconv.FormatFloat(h.sum, 'g', -1, 64))
	fmt.Fprintf(w, "%s_count%s %d\n", name, braces, h.count)
}
