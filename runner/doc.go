// Package runner executes untrusted code in gVisor-sandboxed Kubernetes Pods and returns what it
// produced: stdout and stderr apart, the exit code, output files and timings, as one Result.
//
// Execute takes a sandbox from the warm pool when a pre-started Pod there matches the options
// (claimed with one guarded patch, reached over pods/attach), else creates a ConfigMap holding
// the code and a Job whose Pod runs it; either way the Pod runs under the gVisor RuntimeClass
// with a hardened security context, serves one execution, and is deleted (a warm Pod whose code
// ended: just after Execute returns; on every other path before).
// OpenSession keeps one interpreter alive in one sandbox across many executions, and any process
// can resume it by its ID (Runner.Session).
//
// The package is the public API and the one place a Result is finished (execute.go); the how
// lives below it: internal/podspec builds the objects, internal/sandbox obtains sandboxes (the
// cold and warm sources behind one seam), internal/track follows them through shared watches,
// internal/diagnose says what went wrong, internal/session keeps a session's lease,
// internal/gatewayclient reads what the namespace's egress gateway allowed and refused for a
// sandbox (Result.Egress), and internal/wire (at the module root) is the protocol spoken with the
// sandbox's entrypoint. runner/doctor checks a namespace, runner/gc removes what crashed callers
// left, runner/autoscale sizes the warm pool by demand, and runner/adktool is the ADK-for-Go tool.
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
