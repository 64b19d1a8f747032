package runner

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/track"
)

// The seam between "where a sandbox comes from" and "how the runner talks to it".
//
// A source hands out sandboxes: the cold source creates a ConfigMap and a Job for each request; the
// warm source claims a pre-started Pod of the warm pool. Everything that depends on where the
// sandbox came from — creating or claiming it, waiting for it to start, telling why it could not,
// delivering the request, deleting it — lives behind these two interfaces. Everything else is the
// same for both: the entrypoint's framed records are read from the sandbox's channel by one
// decoder, the runner's own deadline is enforced in one place (exchange), and one function
// (finish) turns what was learned into the Result.

// source obtains sandboxes.
type source interface {
	// acquire returns a sandbox whose entrypoint is running and ready for x's request. An error
	// wrapping errNotServed means this source cannot serve the request now (no idle Pod, or none
	// that matches): the runner tries the next source. On any error nothing is left behind but
	// what acquire reports in x.leftBehind.
	acquire(ctx context.Context, x *execution) (sandbox, error)
}

// errNotServed: the source cannot serve this request; try the next one.
var errNotServed = errors.New("not served by this source")

// sandbox is one running sandbox Pod, good for one request.
type sandbox interface {
	// kind is SandboxCold or SandboxWarm.
	kind() string
	// pod is the sandbox Pod as last seen (name, node, status).
	tracker() *track.Tracker
	// open delivers x's request (unless the source already did) and returns the stream of framed
	// records the entrypoint writes. Closing it, or ending ctx, ends the stream.
	open(ctx context.Context, x *execution) (io.ReadCloser, error)
	// reopen returns the sandbox's whole output once more, for when the stream broke before the
	// end record (an API server or kubelet restart); nil if it cannot.
	reopen(ctx context.Context) io.ReadCloser
	// release deletes what the source made for this sandbox, retrying until Options.CleanupTimeout,
	// and returns what it could not delete ("kind/name").
	release(log *slog.Logger) []string
}

// execution is one Execute call in flight: its request and the facts gathered about it. Sources
// and exchange add facts; finish alone turns them into the Result.
type execution struct {
	req     Request
	timeout time.Duration
	log     *slog.Logger
	timings Timings
	// kind, pod and node: which sandbox ran it.
	kind, pod, node string
	// dec holds what the sandbox said.
	dec *wire.Decoder
	// term is how the container ended, when the stream ended without an end record.
	term *corev1.ContainerStateTerminated
	// killed: the runner's own deadline passed and it deleted the sandbox.
	killed bool
	// streamErr: why the stream ended early, if it did.
	streamErr error
	// leftBehind: what cleanup could not delete.
	leftBehind []string
	// leave gives back the cold admission slot, if the execution holds one.
	leave func()
	// session is the session the execution ran in, if any; sessionOver why it ended with this
	// execution.
	session, sessionOver string
}

func (x *execution) mark(at *time.Time) { *at = time.Now() }

// leaveAdmission gives back the admission slot, once the execution's sandbox is gone.
func (x *execution) leaveAdmission() {
	if x.leave != nil {
		x.leave()
	}
}

// codeEnded: the sandbox reported the end of the code, and the runner did not have to kill it.
func (x *execution) codeEnded() bool { return x.dec != nil && x.dec.End() != nil && !x.killed }

// noteSandbox records where the execution runs, as soon as the source knows.
func (x *execution) noteSandbox(kind string, pod *corev1.Pod) {
	x.kind = kind
	if pod != nil {
		x.pod, x.node = pod.Name, pod.Spec.NodeName
	}
}

// sandboxRequest is what the sandbox is asked: x's code, files and limits.
func (x *execution) sandboxRequest(o *Options) wire.Request {
	return wire.Request{ExecutionID: x.req.ExecutionID, Code: x.req.Code, Files: x.req.Files, Timeout: x.timeout,
		MaxOutput: o.MaxOutputBytes, MaxFile: o.MaxFileBytes, MaxProcesses: o.MaxProcesses}
}
