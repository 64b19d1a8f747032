package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gkexec/gkexec/runner"
)

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
	if e := s.admit(r, fitsOneConfigMap); e != nil {
		s.fail(w, start, e, "", nil)
		return
	}
	release, e := s.acquireSlot()
	if e != nil {
		s.fail(w, start, e, "", nil)
		return
	}
	defer release()
	req, apiErr := readBody(s, w, r, decodeRequest)
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

	ctx, cancel := s.requestContext(r)
	defer cancel(nil)

	var stream *streamAnswer
	if wantsStream(r) {
		stream = &streamAnswer{w: w, rc: http.NewResponseController(w), id: req.ExecutionID, writeTimeout: s.opts.WriteTimeout,
			stalled: func() { cancel(errStalledReader) }}
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
		s.writeJSON(w, http.StatusOK, res, req.ExecutionID)
		return
	}
	apiErr = apiErrorFor(err)
	if errors.Is(context.Cause(ctx), errShuttingDown) {
		what := "everything it created was deleted"
		if res.Session != "" {
			what = "the code was interrupted, and session " + res.Session + " stays open"
		}
		apiErr = newAPIError(http.StatusServiceUnavailable, CodeShuttingDown,
			"the server shut down during the execution; %s: %v", what, err)
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
