package runner

import "github.com/gkexec/gkexec/runner/internal/diagnose"

// Sentinel errors. Every error the runner returns wraps one of them (test with errors.Is) and names
// the object and what to do next.
var (
	// ErrInvalidOptions: Options failed validation; the message names every bad field.
	ErrInvalidOptions = diagnose.ErrInvalidOptions // "invalid runner options"
	// ErrInvalidRequest: the Request cannot be executed as given (bad file name, bad execution ID, ...).
	ErrInvalidRequest = diagnose.ErrInvalidRequest // "invalid request"
	// ErrRequestTooLarge: code and input files do not fit in one ConfigMap. Also wraps ErrInvalidRequest.
	ErrRequestTooLarge = diagnose.ErrRequestTooLarge // "request too large"
	// ErrTimeout: the code ran past Options.Timeout (or never started within Options.StartTimeout).
	// Execute returns the partial Result alongside it.
	ErrTimeout = diagnose.ErrTimeout // "execution timed out"
	// ErrCanceled: the caller's context was cancelled; everything created was deleted.
	ErrCanceled = diagnose.ErrCanceled // "execution canceled"
	// ErrForbidden: RBAC denied a call; the message names the verb and resource to grant.
	ErrForbidden = diagnose.ErrForbidden // "forbidden by RBAC"
	// ErrNamespaceNotFound: the target namespace does not exist.
	ErrNamespaceNotFound = diagnose.ErrNamespaceNotFound // "namespace not found"
	// ErrUnschedulable: no node can take the sandbox Pod (selector, taint, or autoscaler gave up).
	ErrUnschedulable = diagnose.ErrUnschedulable // "sandbox pod cannot be scheduled"
	// ErrImagePull: the sandbox image cannot be pulled or is not present with pull policy Never.
	ErrImagePull = diagnose.ErrImagePull // "sandbox image cannot be pulled"
	// ErrRuntimeClass: the RuntimeClass is missing, or the node has no handler for it.
	ErrRuntimeClass = diagnose.ErrRuntimeClass // "sandbox runtime unavailable"
	// ErrQuotaExceeded: a ResourceQuota in the namespace refused the sandbox Pod.
	ErrQuotaExceeded = diagnose.ErrQuotaExceeded // "resource quota exceeded"
	// ErrSandboxFailed: the sandbox Pod failed without producing a result (it was deleted, evicted,
	// or its container could not be created).
	ErrSandboxFailed = diagnose.ErrSandboxFailed // "sandbox failed"
	// ErrCluster: the Kubernetes API could not be reached or answered with an unexpected error.
	ErrCluster = diagnose.ErrCluster // "kubernetes API error"
	// ErrSessionNotFound: no open session has that ID in the namespace (it never existed, was
	// closed, or expired).
	ErrSessionNotFound = diagnose.ErrSessionNotFound // "session not found"
	// ErrSessionBusy: another runner process is executing in the session; try again when it is done.
	ErrSessionBusy = diagnose.ErrSessionBusy // "session busy"
	// ErrSessionEnded: the session is over (closed, expired, or its interpreter could not be
	// recovered) and its sandbox deleted; open a new one. The execution that ended it returns
	// its Result with this error.
	ErrSessionEnded = diagnose.ErrSessionEnded // "session ended"
)
