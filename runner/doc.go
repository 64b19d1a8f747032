// Package runner executes untrusted code in gVisor-sandboxed Kubernetes Jobs: Execute creates a
// ConfigMap with the code and a Job whose Pod runs it under GKE Sandbox with a hardened security
// context, returns stdout, stderr, the exit code and output files as a Result, and deletes what
// it made on every path.
//
// # Logging
//
// The package never writes to stdout or stderr itself: it logs phase messages to
// Options.Logger (default: discarded). client-go, which it uses, logs through k8s.io/klog/v2,
// whose default is the process's stderr; routing that is the host program's choice, made once
// before the first Runner is created, e.g. into the same slog logger:
//
//	klog.SetSlogLogger(logger)
//
// The gkexec CLI does exactly that: client-go's lines show on stderr with -v and nowhere without.
package runner
