// Package server is the HTTP/JSON API over a runner.Runner that `gkexec serve` runs: a sidecar in
// the agent's Pod, so that agents in any language run code with one POST to 127.0.0.1 and the
// Kubernetes credentials stay in the sidecar.
//
//	POST /v1/executions  {"code": "...", "files": {"name": "<base64>"}, "execution_id": "..."}
//	GET  /v1/config      the sandbox every execution gets (namespace, image, limits, timeouts)
//	POST   /v1/sessions                 {"session_id": "...", "idle_timeout_seconds": 600, ...}
//	POST   /v1/sessions/{id}/executions the body of POST /v1/executions, in the session's interpreter
//	DELETE /v1/sessions/{id}            ends the session and deletes its sandbox
//	GET  /healthz        the process is alive
//	GET  /readyz         the API server answers and RBAC allows every call the runner makes
//	GET  /metrics        Prometheus text format
//
// A finished execution is always 200 with the runner's Result JSON, whatever the code did:
// non-zero exit, timeout (timed_out: true) and OOM kill are results the agent reads. Everything
// else is an ErrorBody with a 4xx or 5xx status; see docs/integrations.md for the table.
//
// With "Accept: application/x-ndjson" the answer streams instead: a StreamLine per chunk of
// output as the code produces it, then one with the result (or the error, once output has begun).
package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gkexec/gkexec/runner"
)

// errShuttingDown is the cancellation cause of executions interrupted by Serve's shutdown.
var errShuttingDown = errors.New("server shutting down")

// Server serves the API. Create it with New; serve it with Serve, or mount Handler in your own
// http.Server and call Shutdown yourself.
type Server struct {
	opts Options
	run  *runner.Runner
	// sessions is the session API; the runner's, unless a test stands in.
	sessions sessionRunner
	log      *slog.Logger
	sem      chan struct{}
	metrics  *metrics
	ready    *readiness
	token    [sha256.Size]byte

	// stop cancels every in-flight execution's context (with errShuttingDown).
	stopCtx context.Context
	stop    context.CancelCauseFunc

	// mu guards draining and ids, so that no execution starts once Shutdown has begun waiting.
	mu       sync.Mutex
	draining atomic.Bool
	ids      map[string]bool // execution IDs in flight
	inflight sync.WaitGroup
}

// New validates the options and returns a Server.
func New(opts Options) (*Server, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts: opts, run: opts.Runner, log: opts.Logger, sessions: runnerSessions{opts.Runner},
		sem:     make(chan struct{}, opts.MaxConcurrent),
		metrics: newMetrics(opts.MaxConcurrent),
		ids:     map[string]bool{},
	}
	s.ready = &readiness{run: opts.Runner, ttl: opts.ReadyCacheTTL, timeout: opts.ReadyTimeout}
	s.token = sha256.Sum256([]byte(opts.Token))
	s.stopCtx, s.stop = context.WithCancelCause(context.Background())
	return s, nil
}

// Handler serves the whole API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST "+PathExecutions, s.authenticated(http.HandlerFunc(s.handleExecute)))
	mux.Handle("GET "+PathConfig, s.authenticated(http.HandlerFunc(s.handleConfig)))
	mux.Handle("POST "+PathSessions, s.authenticated(http.HandlerFunc(s.handleOpenSession)))
	mux.Handle("POST "+PathSessions+"/{id}/executions", s.authenticated(http.HandlerFunc(s.handleSessionExecute)))
	mux.Handle("DELETE "+PathSessions+"/{id}", s.authenticated(http.HandlerFunc(s.handleCloseSession)))
	s.probes(mux)
	return mux
}

// ProbeHandler serves only /healthz, /readyz and /metrics, for a second listener on the Pod's
// IP that the kubelet and Prometheus reach while the API itself stays on loopback.
func (s *Server) ProbeHandler() http.Handler {
	mux := http.NewServeMux()
	s.probes(mux)
	return mux
}

func (s *Server) probes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathHealthz, s.handleHealthz)
	mux.HandleFunc("GET "+PathReadyz, s.handleReadyz)
	mux.HandleFunc("GET "+PathMetrics, s.handleMetrics)
}

// Serve serves the API on api (and the probes on probe, if not nil) until ctx ends, then shuts
// down gracefully: it stops accepting, cancels in-flight executions, waits for the runner to
// delete everything they created, and returns. It does not close the runner.
func (s *Server) Serve(ctx context.Context, api, probe net.Listener) error {
	servers := []*http.Server{s.httpServer(s.Handler())}
	listeners := []net.Listener{api}
	if probe != nil {
		servers = append(servers, s.httpServer(s.ProbeHandler()))
		listeners = append(listeners, probe)
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	s.log.Info("serving", "listen", api.Addr().String(), "probes", addrOf(probe),
		"max_concurrent", s.opts.MaxConcurrent, "auth", s.opts.Token != "")

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		serveErr = fmt.Errorf("serving: %w", serveErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.Shutdown(shutdownCtx)
		}()
	}
	err := s.Shutdown(shutdownCtx)
	wg.Wait()
	return errors.Join(serveErr, err)
}

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler: h,
		// No ReadTimeout or WriteTimeout: an execution legitimately takes minutes, bounded by the
		// runner's StartTimeout and Timeout. The body has its own deadline (BodyReadTimeout).
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Shutdown makes the server refuse new executions (503) and report not ready, cancels the
// executions in flight and waits until they have returned, which the runner does only after
// deleting what they created. Use it when mounting Handler in your own http.Server: call it
// alongside http.Server.Shutdown, which waits for the handlers but cannot interrupt them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	s.mu.Unlock()
	s.stop(errShuttingDown)
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		s.log.Info("shut down: no execution in flight")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutdown: executions still in flight after %s; `gkexec gc` removes what they leave: %w",
			s.opts.ShutdownTimeout, ctx.Err())
	}
}

// authenticated requires the bearer token, when one is configured. Both sides are hashed first
// so that the comparison takes the same time whatever the lengths. Without a token the server
// listens on loopback only, and it serves only requests addressed to a loopback name: a web page
// that rebinds its own DNS name to 127.0.0.1 would otherwise reach it as same-origin.
func (s *Server) authenticated(next http.Handler) http.Handler {
	if s.opts.Token == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !loopbackHost(r.Host) {
				s.writeError(w, newAPIError(http.StatusForbidden, CodeHostNotAllowed,
					"request addressed to %q: without a token only loopback names are served (127.0.0.1, [::1], localhost); set a token to serve other names", r.Host), "", nil)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gkexec"`)
			s.writeError(w, newAPIError(http.StatusUnauthorized, CodeUnauthorized,
				"missing or wrong bearer token: send the header Authorization: Bearer <token> (gkexec serve --token-file)"), "", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names the loopback interface.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport // no port
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) handleExecute(w http.ResponseWriter, r *http.Request) {
	s.serveExecution(w, r, s.run.Execute)
}

// executeFunc runs one decoded request: the runner's Execute, or a session's.
type executeFunc func(ctx context.Context, req runner.Request) (runner.Result, error)

// serveExecution is the whole of an execution request — limits, decoding, the plain or streamed
// answer, metrics — around exec; POST /v1/executions and POST /v1/sessions/{id}/executions
// differ only in exec.
func (s *Server) serveExecution(w http.ResponseWriter, r *http.Request, exec executeFunc) {
	start := time.Now()
	if s.draining.Load() {
		e := newAPIError(http.StatusServiceUnavailable, CodeShuttingDown, "the server is shutting down; retry on another replica")
		e.Retryable = true
		s.fail(w, start, e, "", nil)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		// Requiring application/json also keeps browsers out: a web page cannot send it
		// cross-origin without a CORS preflight, which this server never approves.
		s.fail(w, start, newAPIError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			"Content-Type must be application/json, got %q", r.Header.Get("Content-Type")), "", nil)
		return
	}
	if r.ContentLength > s.opts.MaxBodyBytes {
		s.fail(w, start, newAPIError(http.StatusRequestEntityTooLarge, CodeRequestTooLarge,
			"request body is %d bytes, more than %d; code and input files must fit in one ConfigMap (1 MiB)", r.ContentLength, s.opts.MaxBodyBytes), "", nil)
		return
	}
	// The bound is taken before the body is read, so at most MaxConcurrent bodies are in memory.
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		s.fail(w, start, newAPIError(http.StatusTooManyRequests, CodeBusy,
			"%d executions are in flight, the most this server runs at once (--max-concurrent); retry after the Retry-After delay", s.opts.MaxConcurrent), "", nil)
		return
	}

	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.opts.BodyReadTimeout))
	req, apiErr := decodeRequest(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	// Clear the deadline: once it passes, net/http would cancel the request's context, and with
	// it a long execution.
	_ = rc.SetReadDeadline(time.Time{})
	if apiErr != nil {
		s.fail(w, start, apiErr, "", nil)
		return
	}
	if req.ExecutionID == "" {
		req.ExecutionID = runner.NewExecutionID()
	}
	if err := s.run.CheckRequest(req); err != nil {
		s.fail(w, start, apiErrorFor(err), req.ExecutionID, nil)
		return
	}
	if e := s.begin(req.ExecutionID); e != nil {
		s.fail(w, start, e, req.ExecutionID, nil)
		return
	}
	defer s.end(req.ExecutionID)

	// The execution stops when the caller goes away or the server shuts down, whichever is first.
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	stopOnShutdown := context.AfterFunc(s.stopCtx, func() { cancel(context.Cause(s.stopCtx)) })
	defer stopOnShutdown()

	var stream *streamAnswer
	if wantsStream(r) {
		stream = &streamAnswer{w: w, rc: rc, id: req.ExecutionID}
		req.Output = stream.output
	}

	s.metrics.inFlight.Add(1)
	res, err := exec(ctx, req)
	s.metrics.inFlight.Add(-1)
	s.metrics.observe(res)

	log := s.log.With("execution", req.ExecutionID, "seconds", time.Since(start).Seconds(), "stream", stream != nil)
	if err == nil || (errors.Is(err, runner.ErrTimeout) && res.TimedOut && !errors.Is(err, runner.ErrSessionEnded)) {
		// Whatever the code did, it is a result for the agent to read: exit codes, timeouts and
		// OOM kills included. A timeout that also ended a session is a 410 carrying the Result:
		// the agent must learn that its state is gone.
		log.Info("executed", "outcome", res.Outcome(), "exit_code", res.ExitCode)
		s.metrics.count(res.Outcome(), time.Since(start))
		if stream != nil {
			stream.result(res)
			return
		}
		writeJSON(w, http.StatusOK, res, req.ExecutionID)
		return
	}
	apiErr = apiErrorFor(err)
	if errors.Is(context.Cause(ctx), errShuttingDown) {
		apiErr = newAPIError(http.StatusServiceUnavailable, CodeShuttingDown,
			"the server shut down during the execution; everything it created was deleted: %v", err)
		apiErr.Retryable, apiErr.sentinel = true, runner.ErrCanceled
	}
	var partial *runner.Result
	if !res.Timings.Started.IsZero() {
		partial = &res
	}
	if stream.begun() {
		// The 200 is out with the output: the error can only be the stream's last line.
		s.noteFailure(start, apiErr, req.ExecutionID)
		stream.failure(apiErr, partial)
		return
	}
	s.fail(w, start, apiErr, req.ExecutionID, partial)
}

// wantsStream reports whether the request's Accept header names MediaTypeNDJSON (with a
// q-value above zero).
func wantsStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(part)
			if err != nil || mt != MediaTypeNDJSON {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q <= 0 {
				continue
			}
			return true
		}
	}
	return false
}

// streamAnswer writes a streamed execution's answer: a StreamLine per chunk of output as the
// runner delivers it, each flushed at once, then the result or error line. The 200 and the
// headers go out with the first line, so that a failure before any output keeps its own status
// and body. Output comes from the runner's goroutine while the handler waits in Execute, and never
// after Execute returns, so the two never write at once.
type streamAnswer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	enc     *json.Encoder
	id      string
	started bool
	// held is, by stream, the start of a character whose other bytes the next chunk brings.
	held [3][]byte
}

// output is the runner's Request.Output.
func (a *streamAnswer) output(s runner.Stream, p []byte) {
	b := p
	if len(a.held[s]) > 0 {
		b = append(a.held[s][:len(a.held[s]):len(a.held[s])], p...) // a copy: p is the runner's
	}
	n := len(b) - incompleteTail(b)
	a.held[s] = bytes.Clone(b[n:])
	if n > 0 {
		a.write(outputLine(s, b[:n]))
	}
}

// begun reports whether the first line is out (false for a nil answer: not streaming).
func (a *streamAnswer) begun() bool { return a != nil && a.started }

func (a *streamAnswer) result(res runner.Result) {
	a.flushHeld()
	a.write(StreamLine{Type: LineResult, Result: &res})
}

func (a *streamAnswer) failure(e *APIError, partial *runner.Result) {
	if e.Status == StatusClientClosedRequest {
		return // nobody is listening
	}
	a.flushHeld()
	a.write(StreamLine{Type: LineError, Status: e.Status, Error: e, ExecutionID: a.id, Result: partial})
}

// flushHeld sends what was held back and never became a character, as the exact bytes.
func (a *streamAnswer) flushHeld() {
	for _, s := range []runner.Stream{runner.Stdout, runner.Stderr} {
		if len(a.held[s]) > 0 {
			a.write(outputLine(s, a.held[s]))
			a.held[s] = nil
		}
	}
}

func (a *streamAnswer) write(line StreamLine) {
	if !a.started {
		h := a.w.Header()
		h.Set("Content-Type", MediaTypeNDJSON)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Gkexec-Execution-Id", a.id)
		a.w.WriteHeader(http.StatusOK)
		a.enc = json.NewEncoder(a.w) // one object and a newline per Encode
		a.enc.SetEscapeHTML(false)
		a.started = true
	}
	// A write to a caller that went away fails here and is ignored: its context ends the
	// execution.
	_ = a.enc.Encode(line)
	_ = a.rc.Flush()
}

// outputLine is a chunk as text when it is valid UTF-8, else as its exact bytes.
func outputLine(s runner.Stream, p []byte) StreamLine {
	line := StreamLine{Type: LineOutput, Stream: s.String()}
	if utf8.Valid(p) {
		line.Data = string(p)
	} else {
		line.DataBase64 = p
	}
	return line
}

// incompleteTail is the length of the UTF-8 sequence that b ends in the middle of: a lead byte and
// fewer continuation bytes than it announces (0 when b ends on a whole character, or on bytes
// that are not UTF-8 whatever follows them).
func incompleteTail(b []byte) int {
	for i := len(b) - 1; i >= 0 && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return 0
			}
			return len(b) - i
		}
	}
	return 0
}

// begin registers an execution, unless the server is shutting down or the ID is in flight
// already: the runner follows executions by ID, so two at once with the same ID would confuse it.
func (s *Server) begin(id string) *APIError {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining.Load():
		e := newAPIError(http.StatusServiceUnavailable, CodeShuttingDown, "the server is shutting down; retry on another replica")
		e.Retryable = true
		return e
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

// fail counts, logs and writes an error answer for an execution request.
func (s *Server) fail(w http.ResponseWriter, start time.Time, e *APIError, id string, partial *runner.Result) {
	s.noteFailure(start, e, id)
	s.writeError(w, e, id, partial)
}

// noteFailure counts and logs a failed execution request.
func (s *Server) noteFailure(start time.Time, e *APIError, id string) {
	s.metrics.count(e.Code, time.Since(start))
	level := slog.LevelWarn
	if e.Status < 500 && e.Status != StatusClientClosedRequest {
		level = slog.LevelInfo
	}
	s.log.Log(context.Background(), level, "execution failed", "execution", id, "status", e.Status, "code", e.Code, "error", e.Message)
}

func (s *Server) writeError(w http.ResponseWriter, e *APIError, id string, partial *runner.Result) {
	if e.Status == http.StatusTooManyRequests || (e.Retryable && (e.Status == http.StatusServiceUnavailable || e.Status == http.StatusConflict)) {
		w.Header().Set("Retry-After", strconv.Itoa(int((s.opts.RetryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, e.Status, ErrorBody{Error: *e, ExecutionID: id, Result: partial}, id)
}

func writeJSON(w http.ResponseWriter, status int, v any, id string) {
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
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func (s *Server) handleConfig(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, configOf(s.run.Options(), s.opts), "")
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, readyStatus{Ready: false, Reason: "shutting down"}, "")
		return
	}
	st := s.ready.get(r.Context())
	status := http.StatusOK
	if !st.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, st, "")
}

func (s *Server) handleMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = s.metrics.write(w, s.run.CleanupFailures())
}
