package server

import (
	"context"
	"io"
	"mime"
	"net/http"
	"time"
)

// Admission: what a request that starts work (an execution, opening a session) passes before
// the runner sees it, in this order: admit, acquireSlot, readBody, then begin for its ID.

// admit refuses a request when the server is draining or the body is not JSON or too large.
// tooLarge ends the message of a body over the cap: what must fit in it, or nothing.
func (s *Server) admit(r *http.Request, tooLarge string) *APIError {
	if s.draining.Load() {
		return shuttingDown()
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		// Requiring application/json also keeps browsers out: a web page cannot send it
		// cross-origin without a CORS preflight, which this server never approves.
		return newAPIError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			"Content-Type must be application/json, got %q", r.Header.Get("Content-Type"))
	}
	if r.ContentLength > s.opts.MaxBodyBytes {
		return newAPIError(http.StatusRequestEntityTooLarge, CodeRequestTooLarge,
			"request body is %d bytes, more than %d%s", r.ContentLength, s.opts.MaxBodyBytes, tooLarge)
	}
	return nil
}

// acquireSlot takes a place in the MaxConcurrent bound, or answers busy; release gives it back.
// It is taken before the body is read, so that at most MaxConcurrent bodies are in memory.
func (s *Server) acquireSlot() (release func(), e *APIError) {
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem }, nil
	default:
		return nil, s.busy()
	}
}

func (s *Server) busy() *APIError {
	return newAPIError(http.StatusTooManyRequests, CodeBusy,
		"%d executions are in flight, the most this server runs at once (--max-concurrent); retry after the Retry-After delay", s.opts.MaxConcurrent)
}

func shuttingDown() *APIError {
	e := newAPIError(http.StatusServiceUnavailable, CodeShuttingDown, "the server is shutting down; retry on another replica")
	e.Retryable = true
	return e
}

// readBody decodes the request's body with decode: at most MaxBodyBytes of it, within
// BodyReadTimeout.
func readBody[T any](s *Server, w http.ResponseWriter, r *http.Request, decode func(io.Reader) (T, *APIError)) (T, *APIError) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.opts.BodyReadTimeout))
	v, e := decode(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	// Clear the deadline: once it passes, net/http would cancel the request's context, and with
	// it a long execution.
	_ = rc.SetReadDeadline(time.Time{})
	return v, e
}

// begin registers an execution, unless the server is shutting down or the ID is in flight
// already: the runner follows executions by ID, so two at once with the same ID would confuse it.
func (s *Server) begin(id string) *APIError {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining.Load():
		return shuttingDown()
	case s.ids[id]:
		return newAPIError(http.StatusConflict, CodeExecutionIDInUse,
			"execution %s is in flight already; use another execution_id or none", id)
	}
	s.ids[id] = true
	s.inflight.Add(1)
	return nil
}

func (s *Server) end(id string) {
	s.mu.Lock()
	delete(s.ids, id)
	s.mu.Unlock()
	s.inflight.Done()
}

// requestContext ends when the caller goes away or the server shuts down, whichever is first.
func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(r.Context())
	stop := context.AfterFunc(s.stopCtx, func() { cancel(context.Cause(s.stopCtx)) })
	return ctx, func(cause error) { stop(); cancel(cause) }
}
