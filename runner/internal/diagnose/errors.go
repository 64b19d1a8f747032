package diagnose

import "errors"

// The sentinel errors: every error the runner returns wraps one of them. Their documentation is
// runner's (runner/errors.go), which re-exports them.
var (
	// ErrInvalidOptions: Options failed validation; the message names every bad field.
	ErrInvalidOptions = errors.New("invalid runner options")
	// ErrInvalidRequest: the Request cannot be executed as given (bad file name, bad execution ID, ...).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrRequestTooLarge: code and input files do not fit in one ConfigMap. Also wraps ErrInvalidRequest.
	ErrRequestTooLarge = errors.New("request too large")
	// ErrTimeout: the code ran past Options.Timeout (or never started within Options.StartTimeout).
	// Execute returns the partial Result alongside it.
	ErrTimeout = errors.New("execution timed out")
	// ErrCanceled: the caller's context was cancelled; everything created was deleted.
	ErrCanceled = errors.New("execution canceled")
	// ErrForbidden: RBAC denied a call; the message names the verb and resource to grant.
	ErrForbidden = errors.New("forbidden by RBAC")
	// ErrNamespaceNotFound: the target namespace does not exist.
	ErrNamespaceNotFound = errors.New("namespace not found")
	// ErrUnschedulable: no node can take the sandbox Pod (selector, taint, or autoscaler gave up).
	ErrUnschedulable = errors.New("sandbox pod cannot be scheduled")
	// ErrImagePull: the sandbox image cannot be pulled or is not present with pull policy Never.
	ErrImagePull = errors.New("sandbox image cannot be pulled")
	// ErrRuntimeClass: the RuntimeClass is missing, or the node has no handler for it.
	ErrRuntimeClass = errors.New("sandbox runtime unavailable")
	// ErrQuotaExceeded: a ResourceQuota in the namespace refused the sandbox Pod.
	ErrQuotaExceeded = errors.New("resource quota exceeded")
	// ErrSandboxFailed: the sandbox Pod failed without producing a result (it was deleted, evicted,
	// or its container could not be created).
	ErrSandboxFailed = errors.New("sandbox failed")
	// ErrCluster: the Kubernetes API could not be reached or answered with an unexpected error.
	ErrCluster = errors.New("kubernetes API error")
	// ErrSessionNotFound: no open session has that ID in the namespace (it never existed, was
	// closed, or expired).
	ErrSessionNotFound = errors.New("session not found")
	// ErrSessionBusy: another runner process is executing in the session; try again when it is done.
	ErrSessionBusy = errors.New("session busy")
	// ErrSessionEnded: the session is over (closed, expired, or its interpreter could not be
	// recovered) and its sandbox deleted; open a new one. The execution that ended it returns
	// its Result with this error.
	ErrSessionEnded = errors.New("session ended")
)
