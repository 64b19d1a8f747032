package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
)

// Admin API paths. The admin listener is for the runner and Prometheus, never for sandboxes:
// give it its own port, which the sandboxes' NetworkPolicy does not open, and the gateway
// refuses to proxy to its own listeners (ReasonGatewayItself).
const (
	PathHealthz   = "/healthz"
	PathMetrics   = "/metrics"
	PathSandboxes = "/v1/sandboxes"
	PathCA        = "/v1/ca.crt"
)

// SandboxView is the answer of GET /v1/sandboxes/{id} and GET /v1/sandboxes?addr=IP: what the
// gateway knows of the sandbox and what it did.
type SandboxView struct {
	// Known is whether the Directory knows the sandbox now.
	Known bool   `json:"known"`
	ID    string `json:"id"`
	Addr  string `json:"addr,omitempty"`
	// Allow is the sandbox's narrowing in ParseRules' syntax; absent when it keeps the
	// namespace's list, empty when it allows nothing.
	Allow   *string `json:"allow,omitempty"`
	Version string  `json:"version,omitempty"`
	Stats   Stats   `json:"stats"`
	// Unidentified are the decisions on requests from the sandbox's address while no sandbox
	// was known there (all refused: unknown-sandbox), when asked by address.
	Unidentified *Stats `json:"unidentified,omitempty"`
}

// AdminHandler serves the admin API:
//
//	GET    /healthz                   ok
//	GET    /metrics                   Prometheus text format
//	GET    /v1/sandboxes/{id}         SandboxView of a sandbox by ID (its Pod's name)
//	GET    /v1/sandboxes?addr=IP      SandboxView of the sandbox at a source address
//	DELETE /v1/sandboxes/{id}/stats   forget a sandbox's stats (204)
//	GET    /v1/ca.crt                 the namespace's CA certificate (PEM), if there is one
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+PathMetrics, g.handleMetrics)
	mux.Handle("GET "+PathSandboxes+"/{id}", g.adminAuth(http.HandlerFunc(g.handleSandbox)))
	mux.Handle("GET "+PathSandboxes, g.adminAuth(http.HandlerFunc(g.handleSandboxByAddr)))
	mux.Handle("DELETE "+PathSandboxes+"/{id}/stats", g.adminAuth(http.HandlerFunc(g.handleForget)))
	mux.HandleFunc("GET "+PathCA, g.handleCA)
	return mux
}

func (g *Gateway) adminAuth(next http.Handler) http.Handler {
	if g.opts.AdminToken == "" {
		return next
	}
	want := sha256.Sum256([]byte(g.opts.AdminToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gkexec gateway"`)
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Gateway) handleMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var cached int
	var minted uint64
	if g.ca != nil {
		cached, minted = g.ca.leafStats()
	}
	_ = g.metrics.write(w, g.stats.len(), cached, minted)
}

func (g *Gateway) handleSandbox(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	sb, known := g.dir.ByID(id)
	stats, seen := g.stats.get(id)
	if !known && !seen {
		http.Error(w, "no sandbox "+id+" known or seen", http.StatusNotFound)
		return
	}
	if !known {
		sb = Sandbox{ID: id}
	}
	writeJSON(w, viewOf(sb, known, stats))
}

func (g *Gateway) handleSandboxByAddr(w http.ResponseWriter, r *http.Request) {
	addr, err := netip.ParseAddr(r.URL.Query().Get("addr"))
	if err != nil {
		http.Error(w, "want ?addr=<IP address>", http.StatusBadRequest)
		return
	}
	addr = addr.Unmap()
	unknown, seenUnknown := g.stats.get("addr:" + addr.String())
	sb, known := g.dir.ByAddr(addr)
	if !known && !seenUnknown {
		http.Error(w, "no sandbox at "+addr.String()+" known or seen", http.StatusNotFound)
		return
	}
	var v SandboxView
	if known {
		stats, _ := g.stats.get(sb.ID)
		v = viewOf(sb, true, stats)
	} else {
		v = SandboxView{Addr: addr.String(), Stats: Stats{Allowed: []Destination{}, Denied: []Destination{}}}
	}
	if seenUnknown {
		v.Unidentified = &unknown
	}
	writeJSON(w, v)
}

func viewOf(sb Sandbox, known bool, stats Stats) SandboxView {
	v := SandboxView{Known: known, ID: sb.ID, Version: sb.Version, Stats: stats}
	if sb.Addr.IsValid() {
		v.Addr = sb.Addr.String()
	}
	if sb.Allow != nil {
		s := sb.Allow.String()
		v.Allow = &s
	}
	return v
}

func (g *Gateway) handleForget(w http.ResponseWriter, r *http.Request) {
	if !g.stats.forget(r.PathValue("id")) {
		http.Error(w, "no stats for "+r.PathValue("id"), http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) handleCA(w http.ResponseWriter, _ *http.Request) {
	if g.ca == nil {
		http.Error(w, "this gateway has no CA: no secrets are bound", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(g.ca.CertificatePEM())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
