package server

import (
	"bufio"
	"net/http"
)

// The probes are served on the API's listener and on the probe listener (ProbeHandler), without
// the token: probes and scrapers carry no secrets.

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.writeJSON(w, http.StatusServiceUnavailable, readyStatus{Ready: false, Reason: "shutting down"}, "")
		return
	}
	st := s.ready.get(r.Context())
	status := http.StatusOK
	if !st.Ready {
		status = http.StatusServiceUnavailable
	}
	s.writeJSON(w, status, st, "")
}

func (s *Server) handleMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	bw := bufio.NewWriter(w)
	_ = s.metrics.write(bw, s.run.CleanupFailures())
	writePoolMetrics(bw, s.run, s.opts.Autoscaler)
	_ = bw.Flush()
}
