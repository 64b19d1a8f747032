package server

import (
	"bufio"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/autoscale"
)

// sample is one line of the text format: name{labels} value.
var sample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*)\})? (\S+)$`)

func TestMetricsAreValidPrometheusText(t *testing.T) {
	t.Parallel()
	// An autoscaler that is not running still reports (its zero values), so every family is here.
	fc := newFakeCluster(t, scenario{})
	as, err := autoscale.New(autoscale.Config{Client: fc.client, Namespace: "sandbox", Pool: "default", Identity: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, scenario{steps: ok, log: new(framed).out("1\n").end(0, false)}, runner.Options{}, Options{Autoscaler: as})
	postJSON(t, ts.url, ExecuteRequest{Code: "print(1)"})
	postJSON(t, ts.url, ExecuteRequest{Code: ""})

	a := get(t, ts.url+PathMetrics)
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	typed := map[string]string{}
	values := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(a.body)))
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			if _, dup := typed[name]; dup {
				t.Errorf("TYPE %s twice", name)
			}
			typed[name] = typ
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not a sample line: %q", line)
			continue
		}
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m[1], "_bucket"), "_sum"), "_count")
		if _, ok := typed[family]; !ok {
			t.Errorf("%q before its TYPE line", line)
		}
		v, err := strconv.ParseFloat(m[5], 64)
		if err != nil {
			t.Errorf("value of %q: %v", line, err)
		}
		values[m[1]+m[2]] = v
	}
	for key, want := range map[string]float64{
		`gkexec_serve_executions_total{outcome="success"}`:                       1,
		`gkexec_serve_executions_total{outcome="invalid_request"}`:               1,
		`gkexec_serve_executions_total{outcome="timeout"}`:                       0,
		`gkexec_serve_request_duration_seconds_count`:                            2,
		`gkexec_serve_execution_phase_seconds_count{phase="run"}`:                1,
		`gkexec_serve_execution_phase_seconds_bucket{phase="cleanup",le="+Inf"}`: 1,
		`gkexec_serve_executions_in_flight`:                                      0,
		`gkexec_serve_max_concurrent`:                                            DefaultMaxConcurrent,
		`gkexec_serve_sandboxes_total{sandbox="cold"}`:                           1, // the invalid request got none
		`gkexec_serve_sandboxes_total{sandbox="warm"}`:                           0,
		`gkexec_serve_cleanup_failures_total`:                                    0,
		// Without a REST config to attach with, the runner has no warm source: it asked no pool.
		`gkexec_serve_pool_claims_total`:                            0,
		`gkexec_serve_pool_cold_fallbacks_total{reason="empty"}`:    0,
		`gkexec_serve_pool_cold_fallbacks_total{reason="mismatch"}`: 0,
		`gkexec_pool_autoscaler_leader`:                             0,
		`gkexec_pool_replicas`:                                      -1,
		`gkexec_pool_cold_fallbacks_total{reason="raced"}`:          0,
		`gkexec_pool_resizes_total{direction="up"}`:                 0,
		`gkexec_pool_refill_seconds_bucket{le="+Inf"}`:              0,
		`gkexec_pool_refill_seconds_count`:                          0,
	} {
		if got, ok := values[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if typed["gkexec_serve_execution_phase_seconds"] != "histogram" || typed["gkexec_serve_executions_total"] != "counter" {
		t.Errorf("types %v", typed)
	}
}

func TestHistogramBucketsAreCumulative(t *testing.T) {
	t.Parallel()
	h := newHistogram()
	for _, v := range []float64{0.001, 0.005, 0.2, 7, 1000} {
		h.observe(v)
	}
	var b strings.Builder
	h.write(&b, "x", `phase="run"`)
	for _, want := range []string{
		`x_bucket{phase="run",le="0.005"} 2`, // le is inclusive
		`x_bucket{phase="run",le="0.25"} 3`,
		`x_bucket{phase="run",le="10"} 4`,
		`x_bucket{phase="run",le="300"} 4`,
		`x_bucket{phase="run",le="+Inf"} 5`,
		`x_count{phase="run"} 5`,
		`x_sum{phase="run"} 1007.206`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}

// The gateway's decisions on each execution's requests (Result.Egress) add up in /metrics.
func TestMetricsCountTheExecutionsEgress(t *testing.T) {
	t.Parallel()
	m := newMetrics(1)
	m.observe(runner.Result{Egress: &runner.Egress{
		Allowed: []runner.EgressDestination{{Host: "pypi.org", Port: 443, Count: 3}},
		Denied:  []runner.EgressDestination{{Host: "evil.test", Port: 443, Reason: "not-allowed", Count: 2}, {Host: "10.0.0.1", Port: 80, Reason: "raw-ip", Count: 1}},
	}})
	m.observe(runner.Result{Egress: &runner.Egress{Allowed: []runner.EgressDestination{{Host: "pypi.org", Port: 443, Count: 1}}}})
	m.observe(runner.Result{}) // a namespace without a gateway
	var b strings.Builder
	if err := m.write(&b, 0); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`gkexec_serve_egress_decisions_total{decision="allowed"} 4`,
		`gkexec_serve_egress_decisions_total{decision="denied",reason="not-allowed"} 2`,
		`gkexec_serve_egress_decisions_total{decision="denied",reason="raw-ip"} 1`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("/metrics lacks %s:\n%s", want, b.String())
		}
	}
}
