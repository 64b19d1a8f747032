package mcp

import (
	"errors"
	"fmt"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/server"
)

// ToolError is why a tool could not do what it was asked: the structured form of a tool error
// (CallToolResult.IsError). Code is stable, for programs (the vocabulary of gkexec serve's
// error.code); Message is for the model, and says what to do next.
type ToolError struct {
	Code      string `json:"code" jsonschema:"Stable error code, e.g. session_not_found, session_busy, invalid_request, forbidden."`
	Message   string `json:"message" jsonschema:"What happened and what to do next."`
	Retryable bool   `json:"retryable" jsonschema:"Whether the same call may succeed if made again later."`
}

func (e *ToolError) Error() string {
	retry := "do not retry the same call"
	if e.Retryable {
		retry = "retryable"
	}
	return fmt.Sprintf("%s (%s): %s", e.Code, retry, e.Message)
}

// errorKind maps a runner sentinel onto a ToolError: its code, whether trying again can help,
// and what the model (or, for setup problems, its operator) should do.
type errorKind struct {
	sentinel  error
	code      string
	retryable bool
	next      string
}

// errorKinds, most specific first: ErrRequestTooLarge also wraps ErrInvalidRequest, and an
// execution that timed out and ended its session wraps both ErrSessionEnded and ErrTimeout.
// A run timeout that leaves the session usable is not here: it is a result (timed_out).
var errorKinds = []errorKind{
	{runner.ErrSessionEnded, server.CodeSessionEnded, false,
		"the session is over and its variables and files are gone; open a new one with open_session and redo the setup it needs"},
	{runner.ErrSessionNotFound, server.CodeSessionNotFound, false,
		"open a session with open_session"},
	{runner.ErrSessionBusy, server.CodeSessionBusy, true,
		"another client is running code in this session; try again in a few seconds"},
	{runner.ErrRequestTooLarge, server.CodeRequestTooLarge, false,
		"code and input files must fit in 1 MiB; send less, or upload the files one by one into a session"},
	{runner.ErrInvalidRequest, server.CodeInvalidRequest, false,
		"change the arguments as the message says"},
	{runner.ErrTimeout, server.CodeStartTimeout, true,
		"the sandbox did not start in time (the cluster is busy); try again"},
	{runner.ErrQuotaExceeded, server.CodeQuotaExceeded, true,
		"the namespace's quota is full with other executions; try again in a few seconds"},
	{runner.ErrSandboxFailed, server.CodeSandboxFailed, true,
		"the sandbox died without a result (evicted or deleted); try again"},
	{runner.ErrCluster, server.CodeClusterError, true,
		"the Kubernetes API failed; try again"},
	{runner.ErrCanceled, server.CodeCanceled, true,
		"the call was cancelled and everything it made deleted"},
	{runner.ErrForbidden, server.CodeForbidden, false,
		"the server's identity lacks a permission (the message names it); its operator must grant it (gkexec doctor); retrying will not help"},
	{runner.ErrNamespaceNotFound, server.CodeNamespaceNotFound, false,
		"the sandbox namespace does not exist; its operator must fix the setup; retrying will not help"},
	{runner.ErrImagePull, server.CodeImagePull, false,
		"the sandbox image cannot be pulled; its operator must fix the setup; retrying will not help"},
	{runner.ErrRuntimeClass, server.CodeRuntimeUnavailable, false,
		"the gVisor runtime is missing; its operator must fix the setup; retrying will not help"},
	{runner.ErrUnschedulable, server.CodeUnschedulable, false,
		"no node can run the sandbox; its operator must fix the setup; retrying will not help"},
}

// toolErrorFor is err as a ToolError: the runner's sentinels by kind, anything else internal.
func toolErrorFor(err error) *ToolError {
	var te *ToolError
	if errors.As(err, &te) {
		return te
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.sentinel) {
			return &ToolError{Code: k.code, Message: err.Error() + "; " + k.next, Retryable: k.retryable}
		}
	}
	return &ToolError{Code: server.CodeInternal, Message: err.Error() + "; this is a bug in gkexec, please report it"}
}

// invalid is a refusal of the arguments before anything ran.
func invalid(format string, args ...any) *ToolError {
	return &ToolError{Code: server.CodeInvalidRequest, Message: fmt.Sprintf(format, args...)}
}
