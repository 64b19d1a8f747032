package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// MaxSessionIDLength is the longest session ID the runner accepts.
const MaxSessionIDLength = runner.MaxSessionIDLength

// OpenSessionRequest is the body of POST /v1/sessions. Every field is optional: {} opens a
// session with a random ID and the server's idle timeout and lifetime, which are also ceilings.
type OpenSessionRequest struct {
	// SessionID names the session: a DNS label of at most MaxSessionIDLength characters.
	SessionID string `json:"session_id,omitempty"`
	// IdleTimeoutSeconds ends the session after this long without an execution.
	IdleTimeoutSeconds float64 `json:"idle_timeout_seconds,omitempty"`
	// MaxLifetimeSeconds ends the session this long after it opened, whatever it is doing.
	MaxLifetimeSeconds float64 `json:"max_lifetime_seconds,omitempty"`
	// Language is the session's interpreter's: "python" (the default), "bash" or "javascript".
	Language string `json:"language,omitempty"`
}

// SessionInfo is the 201 body of POST /v1/sessions.
type SessionInfo struct {
	SessionID string `json:"session_id"`
	// Sandbox is where its sandbox came from: "warm" (a pool Pod) or "cold" (a Job of its own).
	Sandbox string `json:"sandbox"`
	PodName string `json:"pod_name"`
}

// sessionRunner is what the server needs of the runner's sessions; runnerSessions is the real
// one, and tests stand in for it where the fake cluster cannot attach to a sandbox.
type sessionRunner interface {
	OpenSession(ctx context.Context, so runner.SessionOptions) (SessionInfo, error)
	ExecuteInSession(ctx context.Context, id string, req runner.Request) (runner.Result, error)
	CloseSession(ctx context.Context, id string) error
}

// runnerSessions is the runner library's session API.
type runnerSessions struct{ r *runner.Runner }

func (rs runnerSessions) OpenSession(ctx context.Context, so runner.SessionOptions) (SessionInfo, error) {
	sess, err := rs.r.OpenSession(ctx, so)
	if err != nil {
		return SessionInfo{}, err
	}
	return SessionInfo{SessionID: sess.ID(), Sandbox: sess.Sandbox(), PodName: sess.PodName()}, nil
}

func (rs runnerSessions) ExecuteInSession(ctx context.Context, id string, req runner.Request) (runner.Result, error) {
	sess, err := rs.r.Session(ctx, id)
	if err != nil {
		return runner.Result{ExecutionID: req.ExecutionID}, err
	}
	return sess.Execute(ctx, req)
}

func (rs runnerSessions) CloseSession(ctx context.Context, id string) error {
	return rs.r.CloseSession(ctx, id)
}

// checkSessionID checks a session ID from a path or a body before anything else sees it.
func checkSessionID(id string) *APIError {
	if problems := runner.SessionIDProblems(id); len(problems) > 0 {
		return newAPIError(http.StatusBadRequest, CodeInvalidRequest,
			"session ID %q: %s; use the session_id POST /v1/sessions returned", id, strings.Join(problems, "; "))
	}
	return nil
}

// handleOpenSession serves POST /v1/sessions. It takes a place in the concurrency bound while the
// sandbox starts, as an execution does.
func (s *Server) handleOpenSession(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if e := s.admit(r, ""); e != nil {
		s.sessionFailed(w, "open", "", start, e)
		return
	}
	release, e := s.acquireSlot()
	if e != nil {
		s.sessionFailed(w, "open", "", start, e)
		return
	}
	defer release()
	so, apiErr := readBody(s, w, r, decodeOpenSession)
	if apiErr != nil {
		s.sessionFailed(w, "open", "", start, apiErr)
		return
	}
	if so.ID == "" {
		so.ID = runner.NewSessionID()
	}
	key := "session/" + so.ID
	if e := s.begin(key); e != nil {
		if e.Code == CodeExecutionIDInUse {
			e = newAPIError(http.StatusConflict, CodeSessionBusy, "session %s is being opened by another request", so.ID)
			e.Retryable = true
		}
		s.sessionFailed(w, "open", so.ID, start, e)
		return
	}
	defer s.end(key)
	ctx, cancel := s.requestContext(r)
	defer cancel(nil)
	info, err := s.sessions.OpenSession(ctx, so)
	if err != nil {
		s.sessionFailed(w, "open", so.ID, start, apiErrorFor(err))
		return
	}
	s.log.Info("session opened", "session", info.SessionID, "sandbox", info.Sandbox, "pod", info.PodName,
		"seconds", time.Since(start).Seconds())
	w.Header().Set("Location", PathSessions+"/"+info.SessionID)
	s.writeJSON(w, http.StatusCreated, info, "")
}

// handleSessionExecute serves POST /v1/sessions/{id}/executions: POST /v1/executions in the
// session's interpreter, streaming included.
func (s *Server) handleSessionExecute(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if e := checkSessionID(id); e != nil {
		s.fail(w, time.Now(), e, "", nil)
		return
	}
	s.serveExecution(w, r, func(ctx context.Context, req runner.Request) (runner.Result, error) {
		return s.sessions.ExecuteInSession(ctx, id, req)
	})
}

// handleCloseSession serves DELETE /v1/sessions/{id}. It is not bounded by MaxConcurrent: closing
// frees a sandbox, and a busy server must still be able to.
func (s *Server) handleCloseSession(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.PathValue("id")
	if e := checkSessionID(id); e != nil {
		s.sessionFailed(w, "close", "", start, e)
		return
	}
	if err := s.sessions.CloseSession(r.Context(), id); err != nil {
		s.sessionFailed(w, "close", id, start, apiErrorFor(err))
		return
	}
	s.log.Info("session closed", "session", id, "seconds", time.Since(start).Seconds())
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// sessionFailed logs and writes an error answer for opening or closing a session. These are not
// executions, so they are not counted in gkexec_serve_executions_total.
func (s *Server) sessionFailed(w http.ResponseWriter, op, id string, start time.Time, e *APIError) {
	level := slog.LevelWarn
	if e.Status < 500 && e.Status != StatusClientClosedRequest {
		level = slog.LevelInfo
	}
	s.log.Log(context.Background(), level, "session "+op+" failed", "session", id, "status", e.Status, "code", e.Code,
		"error", e.Message, "seconds", time.Since(start).Seconds())
	s.writeError(w, e, "", nil)
}

// decodeOpenSession reads POST /v1/sessions's body as strictly as an execution's.
func decodeOpenSession(body io.Reader) (runner.SessionOptions, *APIError) {
	var in OpenSessionRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		if errors.Is(err, io.EOF) {
			return runner.SessionOptions{}, newAPIError(http.StatusBadRequest, CodeInvalidJSON, `empty body; send {} or {"session_id": "my-session"}`)
		}
		return runner.SessionOptions{}, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if tooLarge := jsonError(err); tooLarge != nil && tooLarge.Code == CodeRequestTooLarge {
			return runner.SessionOptions{}, tooLarge
		}
		return runner.SessionOptions{}, newAPIError(http.StatusBadRequest, CodeInvalidJSON, "the body must hold exactly one JSON object; found more after it")
	}
	for name, v := range map[string]float64{"idle_timeout_seconds": in.IdleTimeoutSeconds, "max_lifetime_seconds": in.MaxLifetimeSeconds} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return runner.SessionOptions{}, newAPIError(http.StatusBadRequest, CodeInvalidJSON, "%s must be positive", name)
		}
	}
	if in.SessionID != "" {
		if e := checkSessionID(in.SessionID); e != nil {
			return runner.SessionOptions{}, e
		}
	}
	return runner.SessionOptions{ID: in.SessionID,
		IdleTimeout: time.Duration(in.IdleTimeoutSeconds * float64(time.Second)),
		MaxLifetime: time.Duration(in.MaxLifetimeSeconds * float64(time.Second)), Language: in.Language}, nil
}
