package main

import (
	"errors"

	"github.com/gkexec/gkexec/runner"
)

// Exit codes of gkexec itself. They sit where other tools put theirs (timeout's 124, docker run's
// 125 and 126, the shell's 130), so a caller can tell them from the code's own exit status; a
// program that exits with one of these itself is indistinguishable, as with those tools.
const (
	exitUsage           = 2   // bad flags, invalid options or an invalid request: nothing was created
	exitSessionNotFound = 121 // gkexec session: no open session has that ID (closed, expired or never opened)
	exitSessionBusy     = 122 // gkexec session: another process is executing in it; try again when it is done
	exitSessionEnded    = 123 // gkexec session: it is over (closed, expired, its interpreter died) and its sandbox deleted
	exitTimeout         = 124 // the code ran past --timeout (or never started within --start-timeout)
	exitRunner          = 125 // the runner failed: cluster unreachable, forbidden, API error, sandbox failed
	exitCannotStart     = 126 // the sandbox cannot start: image, RuntimeClass, no node, quota, no namespace
	exitInterrupted     = 130 // SIGINT or SIGTERM: everything the execution created was deleted (a session's code is interrupted; the session stays open)
)

// exitCodeFor maps a runner error onto the documented exit codes.
func exitCodeFor(err error) int {
	switch {
	case err == nil:
		return 0
	// A session's fate comes first: a timeout that ended the session is reported as its end, since
	// what the caller must do next is open a new one.
	case errors.Is(err, runner.ErrSessionEnded):
		return exitSessionEnded
	case errors.Is(err, runner.ErrSessionNotFound):
		return exitSessionNotFound
	case errors.Is(err, runner.ErrSessionBusy):
		return exitSessionBusy
	case errors.Is(err, runner.ErrCanceled):
		return exitInterrupted
	case errors.Is(err, runner.ErrInvalidOptions), errors.Is(err, runner.ErrInvalidRequest):
		return exitUsage
	case errors.Is(err, runner.ErrTimeout):
		return exitTimeout
	case errors.Is(err, runner.ErrImagePull), errors.Is(err, runner.ErrRuntimeClass),
		errors.Is(err, runner.ErrUnschedulable), errors.Is(err, runner.ErrQuotaExceeded),
		errors.Is(err, runner.ErrNamespaceNotFound):
		return exitCannotStart
	}
	return exitRunner
}
