package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// writeError writes e as an ErrorBody, with Retry-After when the same request may succeed later.
func (s *Server) writeError(w http.ResponseWriter, e *APIError, id string, partial *runner.Result) {
	if e.Status == http.StatusTooManyRequests || (e.Retryable && (e.Status == http.StatusServiceUnavailable || e.Status == http.StatusConflict)) {
		w.Header().Set("Retry-After", strconv.Itoa(int((s.opts.RetryAfter+time.Second-1)/time.Second)))
	}
	s.writeJSON(w, e.Status, ErrorBody{Error: *e, ExecutionID: id, Result: partial}, id)
}

// writeJSON writes every answer that is not a stream: one JSON document, never cached, with the
// execution's ID in a header once it has one.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any, id string) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(ErrorBody{Error: APIError{Code: CodeInternal, Message: "encoding the answer: " + err.Error()}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if id != "" {
		h.Set("X-Gkexec-Execution-Id", id)
	}
	if status == StatusClientClosedRequest {
		return // nobody is listening
	}
	// A caller that reads nothing for a while does not hold the handler (and what it holds).
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
