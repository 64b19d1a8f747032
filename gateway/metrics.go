package gateway

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// The metrics are written by hand in the Prometheus text format (0.0.4), as server/ does:
// a few counters and gauges do not justify a client library. Labels have bounded values only
// (kinds, reasons, secret names from the configuration): per sandbox and per destination
// counts are on the admin API's /v1/sandboxes.

// Kinds of traffic, the kind label.
const (
	kindHTTP   = "http"   // an absolute-URI request (plain HTTP, or HTTPS the gateway makes)
	kindTunnel = "tunnel" // a CONNECT tunnel passed through untouched
	kindMITM   = "mitm"   // a CONNECT tunnel to a bound host, intercepted; and each request in it
)

type metrics struct {
	mu          sync.Mutex
	decisions   map[[3]string]uint64 // kind, decision, reason
	upstream    map[string]uint64    // upstream failures by kind
	substituted map[string]uint64    // requests a secret was put in, by secret name

	connsOpen, tunnelsOpen   atomic.Int64
	connsTotal, connsRefused atomic.Uint64
	bytesUp, bytesDown       atomic.Uint64
}

func newMetrics() *metrics {
	m := &metrics{decisions: map[[3]string]uint64{}, upstream: map[string]uint64{}, substituted: map[string]uint64{}}
	for _, k := range []string{kindHTTP, kindTunnel, kindMITM} {
		m.decisions[[3]string{k, "allowed", ""}] = 0
	}
	return m
}

func (m *metrics) decision(kind string, reason Reason) {
	d := "allowed"
	if reason != "" {
		d = "denied"
	}
	m.mu.Lock()
	m.decisions[[3]string{kind, d, string(reason)}]++
	m.mu.Unlock()
}

func (m *metrics) upstreamFailure(kind string) {
	m.mu.Lock()
	m.upstream[kind]++
	m.mu.Unlock()
}

func (m *metrics) substitutions(names []string) {
	m.mu.Lock()
	for _, n := range names {
		m.substituted[n]++
	}
	m.mu.Unlock()
}

// write writes every metric; extra gauges come from the gateway (sandboxes tracked, leaves).
func (m *metrics) write(w io.Writer, sandboxesTracked int, leavesCached int, leavesMinted uint64) error {
	bw := bufio.NewWriter(w)
	family(bw, "gkexec_gateway_decisions_total", "counter",
		"Destinations judged, by kind (http: absolute-URI request; tunnel: CONNECT passed through; mitm: CONNECT to a host secrets are bound to, and each request inside it), decision and refusal reason.")
	m.mu.Lock()
	keys := slices.SortedFunc(maps.Keys(m.decisions), func(a, b [3]string) int {
		return slices.Compare(a[:], b[:])
	})
	for _, k := range keys {
		if k[2] == "" {
			fmt.Fprintf(bw, "gkexec_gateway_decisions_total{kind=%q,decision=%q} %d\n", k[0], k[1], m.decisions[k])
		} else {
			fmt.Fprintf(bw, "gkexec_gateway_decisions_total{kind=%q,decision=%q,reason=%q} %d\n", k[0], k[1], k[2], m.decisions[k])
		}
	}
	family(bw, "gkexec_gateway_upstream_failures_total", "counter",
		"Allowed destinations that could not be reached, by failure: resolve-failed, connect-failed, upstream-timeout, upstream-tls, unscrubbable-response, upstream-error.")
	for _, k := range slices.Sorted(maps.Keys(m.upstream)) {
		fmt.Fprintf(bw, "gkexec_gateway_upstream_failures_total{failure=%q} %d\n", k, m.upstream[k])
	}
	family(bw, "gkexec_gateway_secret_substitutions_total", "counter", "Requests into which the gateway put a secret's value, by secret name.")
	for _, k := range slices.Sorted(maps.Keys(m.substituted)) {
		fmt.Fprintf(bw, "gkexec_gateway_secret_substitutions_total{secret=%q} %d\n", k, m.substituted[k])
	}
	m.mu.Unlock()
	family(bw, "gkexec_gateway_connections_open", "gauge", "Connections from sandboxes open now (tunnels included).")
	fmt.Fprintf(bw, "gkexec_gateway_connections_open %d\n", m.connsOpen.Load())
	family(bw, "gkexec_gateway_connections_total", "counter", "Connections accepted from sandboxes.")
	fmt.Fprintf(bw, "gkexec_gateway_connections_total %d\n", m.connsTotal.Load())
	family(bw, "gkexec_gateway_connections_refused_total", "counter", "Connections refused at MaxConns or MaxConnsPerSource (answered 503 too-many-connections).")
	fmt.Fprintf(bw, "gkexec_gateway_connections_refused_total %d\n", m.connsRefused.Load())
	family(bw, "gkexec_gateway_tunnels_open", "gauge", "CONNECT tunnels open now, passed through or intercepted.")
	fmt.Fprintf(bw, "gkexec_gateway_tunnels_open %d\n", m.tunnelsOpen.Load())
	family(bw, "gkexec_gateway_tunnel_bytes_total", "counter", "Bytes through tunnels passed through untouched: up (sandbox to destination) and down.")
	fmt.Fprintf(bw, "gkexec_gateway_tunnel_bytes_total{direction=\"up\"} %d\n", m.bytesUp.Load())
	fmt.Fprintf(bw, "gkexec_gateway_tunnel_bytes_total{direction=\"down\"} %d\n", m.bytesDown.Load())
	family(bw, "gkexec_gateway_sandboxes_tracked", "gauge", "Sandboxes whose stats the gateway keeps (bounded by MaxStatsSandboxes).")
	fmt.Fprintf(bw, "gkexec_gateway_sandboxes_tracked %d\n", sandboxesTracked)
	family(bw, "gkexec_gateway_leaf_certificates_cached", "gauge", "Leaf certificates held for intercepted hosts.")
	fmt.Fprintf(bw, "gkexec_gateway_leaf_certificates_cached %d\n", leavesCached)
	family(bw, "gkexec_gateway_leaf_certificates_minted_total", "counter", "Leaf certificates signed by the namespace's CA.")
	fmt.Fprintf(bw, "gkexec_gateway_leaf_certificates_minted_total %d\n", leavesMinted)
	return bw.Flush()
}

func family(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}
