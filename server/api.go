package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// Paths of the API. Executions are a resource that POST creates; the answer comes back when the
// execution is over and its objects are deleted, so there is nothing to GET afterwards.
const (
	PathExecutions = "/v1/executions"
	PathConfig     = "/v1/config"
	PathSessions   = "/v1/sessions"
	PathHealthz    = "/healthz"
	PathReadyz     = "/readyz"
	PathMetrics    = "/metrics"
)

// ExecuteRequest is the body of POST /v1/executions.
type ExecuteRequest struct {
	// Code is the program, run in /workspace: Python (main.py) unless Language says otherwise.
	Code string `json:"code"`
	// Language is Code's: "python" (the default), "bash" or "javascript" (Config.Languages); in
	// a session, empty means the session's. The image must have its interpreter.
	Language string `json:"language,omitempty"`
	// Files are input files: relative path -> content, base64 (standard alphabet, padded).
	Files map[string]string `json:"files,omitempty"`
	// ExecutionID names the objects; a DNS label of at most 40 characters. Default random.
	ExecutionID string `json:"execution_id,omitempty"`
	// TimeoutSeconds bounds this execution's run time; at most the server's timeout_seconds
	// (GET /v1/config), which is also the default.
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
}

// MediaTypeNDJSON selects a streamed execution: a POST /v1/executions whose Accept header names it
// is answered with one JSON object per line (StreamLine), the code's output as it is produced and
// the result last. The plain JSON answer stays the default.
const MediaTypeNDJSON = "application/x-ndjson"

// Types of StreamLine.
const (
	LineOutput = "output" // a chunk of stdout or stderr
	LineResult = "result" // the last line of an execution that finished: the Result JSON
	LineError  = "error"  // the last line of an execution that failed after its output began
)

// StreamLine is one line of a streamed execution. Output lines come in the order the sandbox
// wrote them; the stream ends with exactly one result or error line. Errors found before any line
// was sent (auth, a bad request, limits, a sandbox that never started) are not lines: they are
// the usual status and ErrorBody. Clients ignore lines of types they do not know.
type StreamLine struct {
	Type string `json:"type"`
	// Stream is "stdout" or "stderr" (output lines).
	Stream string `json:"stream,omitempty"`
	// Data is the chunk as text when it is valid UTF-8; otherwise DataBase64 holds its exact bytes
	// (standard base64) and Data is absent. A character split between two chunks of a stream is
	// held back and sent whole with the next, so that every Data is whole characters; the chunks
	// of a stream, decoded and put together, are exactly the Result's stdout or stderr.
	Data       string `json:"data,omitempty"`
	DataBase64 []byte `json:"data_base64,omitempty"`
	// Status is the HTTP status the same failure has in a plain JSON answer (error lines).
	Status int `json:"status,omitempty"`
	// Error, ExecutionID and Result are those of ErrorBody (error lines); Result is also the
	// whole Result of a result line, the same JSON as the plain answer's body.
	Error       *APIError      `json:"error,omitempty"`
	ExecutionID string         `json:"execution_id,omitempty"`
	Result      *runner.Result `json:"result,omitempty"`
}

// ErrorBody is the body of every answer that is not a result.
type ErrorBody struct {
	Error APIError `json:"error"`
	// ExecutionID is set once the request got that far.
	ExecutionID string `json:"execution_id,omitempty"`
	// Result is what the sandbox produced before the failure, when it had started.
	Result *runner.Result `json:"result,omitempty"`
}

// APIError describes a failed request. Code is stable and meant for programs; Message is for
// people and names what to do.
type APIError struct {
	// Status is the HTTP status; not part of the JSON (it is the response's).
	Status int    `json:"-"`
	Code   string `json:"code"`
	// Message says what happened and what to do next.
	Message string `json:"message"`
	// Retryable: the same request may succeed later (after Retry-After, when given).
	Retryable bool `json:"retryable"`
	// sentinel is the runner error this corresponds to, for errors.Is on the client side.
	sentinel error
}

func (e *APIError) Error() string {
	return fmt.Sprintf("gkexec serve: %d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap lets callers of Client test the answer with the runner's sentinels, e.g.
// errors.Is(err, runner.ErrForbidden), exactly as if they had called the runner.
func (e *APIError) Unwrap() error { return e.sentinel }

// Error codes. Each is documented in docs/integrations.md with its status.
const (
	CodeInvalidJSON        = "invalid_json"
	CodeInvalidRequest     = "invalid_request"
	CodeRequestTooLarge    = "request_too_large"
	CodeUnsupportedMedia   = "unsupported_media_type"
	CodeUnauthorized       = "unauthorized"
	CodeHostNotAllowed     = "host_not_allowed"
	CodeBusy               = "busy"
	CodeExecutionIDInUse   = "execution_id_in_use"
	CodeSessionNotFound    = "session_not_found"
	CodeSessionBusy        = "session_busy"
	CodeSessionEnded       = "session_ended"
	CodeForbidden          = "forbidden"
	CodeStartTimeout       = "start_timeout"
	CodeShuttingDown       = "shutting_down"
	CodeCanceled           = "canceled"
	CodeNamespaceNotFound  = "namespace_not_found"
	CodeImagePull          = "image_pull"
	CodeRuntimeUnavailable = "runtime_unavailable"
	CodeUnschedulable      = "unschedulable"
	CodeQuotaExceeded      = "quota_exceeded"
	CodeSandboxFailed      = "sandbox_failed"
	CodeClusterError       = "cluster_error"
	CodeInternal           = "internal"
)

// StatusClientClosedRequest is logged and counted when the caller went away mid-execution
// (nginx's convention); nobody is left to receive it.
const StatusClientClosedRequest = 499

// errorKinds maps the runner's sentinels onto the API, most specific first (ErrRequestTooLarge
// also wraps ErrInvalidRequest; a session's execution that timed out and ended the session wraps
// ErrSessionEnded and ErrTimeout, and is session_ended). Run timeouts that leave the session
// usable never get here: they are results.
var errorKinds = []APIError{
	{Status: http.StatusGone, Code: CodeSessionEnded, sentinel: runner.ErrSessionEnded},
	{Status: http.StatusNotFound, Code: CodeSessionNotFound, sentinel: runner.ErrSessionNotFound},
	{Status: http.StatusConflict, Code: CodeSessionBusy, Retryable: true, sentinel: runner.ErrSessionBusy},
	{Status: http.StatusRequestEntityTooLarge, Code: CodeRequestTooLarge, sentinel: runner.ErrRequestTooLarge},
	{Status: http.StatusBadRequest, Code: CodeInvalidRequest, sentinel: runner.ErrInvalidRequest},
	{Status: http.StatusForbidden, Code: CodeForbidden, sentinel: runner.ErrForbidden},
	{Status: http.StatusGatewayTimeout, Code: CodeStartTimeout, Retryable: true, sentinel: runner.ErrTimeout},
	{Status: http.StatusServiceUnavailable, Code: CodeNamespaceNotFound, sentinel: runner.ErrNamespaceNotFound},
	{Status: http.StatusServiceUnavailable, Code: CodeImagePull, sentinel: runner.ErrImagePull},
	{Status: http.StatusServiceUnavailable, Code: CodeRuntimeUnavailable, sentinel: runner.ErrRuntimeClass},
	{Status: http.StatusServiceUnavailable, Code: CodeUnschedulable, sentinel: runner.ErrUnschedulable},
	{Status: http.StatusServiceUnavailable, Code: CodeQuotaExceeded, Retryable: true, sentinel: runner.ErrQuotaExceeded},
	{Status: http.StatusServiceUnavailable, Code: CodeSandboxFailed, Retryable: true, sentinel: runner.ErrSandboxFailed},
	{Status: http.StatusServiceUnavailable, Code: CodeClusterError, Retryable: true, sentinel: runner.ErrCluster},
	{Status: StatusClientClosedRequest, Code: CodeCanceled, sentinel: runner.ErrCanceled},
}

// apiErrorFor turns a runner error into the API's error.
func apiErrorFor(err error) *APIError {
	for _, k := range errorKinds {
		if errors.Is(err, k.sentinel) {
			e := k
			e.Message = err.Error()
			return &e
		}
	}
	return &APIError{Status: http.StatusInternalServerError, Code: CodeInternal, Message: err.Error()}
}

// byCode finds the kind of an error code, for the client.
func byCode(code string) (APIError, bool) {
	for _, k := range errorKinds {
		if k.Code == code {
			return k, true
		}
	}
	switch code {
	case CodeInvalidJSON, CodeUnsupportedMedia:
		return APIError{sentinel: runner.ErrInvalidRequest}, true
	case CodeShuttingDown:
		return APIError{sentinel: runner.ErrCanceled}, true
	}
	return APIError{}, false
}

func newAPIError(status int, code, format string, args ...any) *APIError {
	return &APIError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// decodeRequest reads the body strictly: one JSON object, no unknown fields (a field this server
// does not know must not be silently ignored), files in base64.
func decodeRequest(body io.Reader) (runner.Request, *APIError) {
	var in ExecuteRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return runner.Request{}, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if tooLarge := jsonError(err); tooLarge != nil && tooLarge.Code == CodeRequestTooLarge {
			return runner.Request{}, tooLarge
		}
		return runner.Request{}, newAPIError(http.StatusBadRequest, CodeInvalidJSON, "the body must hold exactly one JSON object; found more after it")
	}
	req := runner.Request{Code: in.Code, Language: in.Language, ExecutionID: in.ExecutionID,
		Timeout: time.Duration(in.TimeoutSeconds * float64(time.Second))}
	if in.TimeoutSeconds < 0 || math.IsNaN(in.TimeoutSeconds) {
		return runner.Request{}, newAPIError(http.StatusBadRequest, CodeInvalidJSON, "timeout_seconds must be positive")
	}
	if len(in.Files) > 0 {
		req.Files = make(map[string][]byte, len(in.Files))
		for _, name := range slices.Sorted(maps.Keys(in.Files)) {
			data, err := base64.StdEncoding.DecodeString(in.Files[name])
			if err != nil {
				return runner.Request{}, newAPIError(http.StatusBadRequest, CodeInvalidJSON,
					"files[%q]: not standard base64 (RFC 4648, padded): %v", name, err)
			}
			req.Files[name] = data
		}
	}
	return req, nil
}

// fitsOneConfigMap ends the message of an execution's body over the cap.
const fitsOneConfigMap = "; code and input files must fit in one ConfigMap (1 MiB)"

func jsonError(err error) *APIError {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return newAPIError(http.StatusRequestEntityTooLarge, CodeRequestTooLarge,
			"request body is larger than %d bytes"+fitsOneConfigMap, tooLarge.Limit)
	case err == io.EOF:
		return newAPIError(http.StatusBadRequest, CodeInvalidJSON, `empty body; send {"code": "print(1)"}`)
	case errors.As(err, &syntax):
		return newAPIError(http.StatusBadRequest, CodeInvalidJSON, "body is not valid JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		return newAPIError(http.StatusBadRequest, CodeInvalidJSON, "field %q: wrong type (a JSON %s); see the request format in docs/integrations.md", typ.Field, typ.Value)
	case err == io.ErrUnexpectedEOF:
		return newAPIError(http.StatusBadRequest, CodeInvalidJSON, "body ends in the middle of the JSON object")
	}
	return newAPIError(http.StatusBadRequest, CodeInvalidJSON, "%v", err)
}
