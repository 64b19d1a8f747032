// Package sandbox is where a sandbox comes from: the seam between "obtain a sandbox" and "talk to
// it" (Source and Sandbox), the cold source (a ConfigMap and a Job per execution, behind the FIFO
// admission queue), the warm source (a claimed Pod of the warm pool, some held ready ahead, or the
// first of its refills when it is empty), the
// attach stream that reaches a waiting entrypoint and the line pump over it (Conn), and the
// deletion of what a source made.
//
// A source is handed what it needs in an Env — a client, the shared watches, a few functions and
// the settings — never its owner.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/track"
)

// Where a sandbox came from (Result.Sandbox).
const (
	Cold = "cold"
	Warm = "warm"
)

// Source obtains sandboxes.
type Source interface {
	// Acquire returns a sandbox whose entrypoint is running and ready for x's request. An error
	// wrapping ErrNotServed means this source cannot serve the request now (no idle Pod, or none
	// that matches): the runner tries the next source. On any error nothing is left behind but
	// what Acquire reports in x.LeftBehind.
	Acquire(ctx context.Context, x *Execution) (Sandbox, error)
}

// ErrNotServed: the source cannot serve this request; try the next one.
var ErrNotServed = errors.New("not served by this source")

// Why the warm pool did not serve a request (Miss.Reason): the values of the cold sandbox's
// podspec.AnnotationPoolMiss and of the runner's metrics. Empty and Raced say the pool was too
// small for the demand; the others, that a larger pool would not have helped.
const (
	MissEmpty    = "empty"    // no idle, ready Pod in the pool
	MissMismatch = "mismatch" // idle Pods, none of the options' sandbox (image, resources, ...)
	MissRaced    = "raced"    // other executions or runners claimed the idle Pods first
	MissAttach   = "attach"   // claimed, but the attach stream or its ping failed
	MissError    = "error"    // the API server refused or failed the claim
)

// MissReasons are the reasons in a stable order, for metrics exported at zero.
var MissReasons = []string{MissEmpty, MissMismatch, MissRaced, MissAttach, MissError}

// Miss is a warm pool's ErrNotServed with its reason.
type Miss struct {
	Reason string
	err    error
}

func (m *Miss) Error() string { return m.err.Error() }
func (m *Miss) Unwrap() error { return m.err }

// miss wraps ErrNotServed, saying why.
func miss(reason, format string, args ...any) error {
	return &Miss{Reason: reason, err: fmt.Errorf("%w: "+format, append([]any{ErrNotServed}, args...)...)}
}

// MissReason is why err says the warm pool did not serve; "" when it says nothing of the kind.
func MissReason(err error) string {
	var m *Miss
	if errors.As(err, &m) {
		return m.Reason
	}
	return ""
}

// Sandbox is one running sandbox Pod, good for one request.
type Sandbox interface {
	// Kind is Cold or Warm.
	Kind() string
	// Tracker follows the sandbox Pod (name, node, status).
	Tracker() *track.Tracker
	// Open delivers x's request (unless the source already did) and returns the stream of framed
	// records the entrypoint writes. Closing it, or ending ctx, ends the stream.
	Open(ctx context.Context, x *Execution) (io.ReadCloser, error)
	// Reopen returns the execution's whole output once more, for when the stream broke before
	// the end record (an API server or kubelet restart, a proxy): followed while the sandbox runs,
	// or read whole once it ended (follow false); nil if it cannot now. It may be called again.
	Reopen(ctx context.Context, follow bool) io.ReadCloser
	// Release deletes what the source made for this sandbox, retrying until CleanupTimeout, and
	// returns what it could not delete ("kind/name").
	Release(log *slog.Logger) []string
}

var (
	_ Sandbox = (*coldSandbox)(nil)
	_ Sandbox = (*warmSandbox)(nil)
	_ Source  = (*ColdSource)(nil)
	_ Source  = (*WarmSource)(nil)
)

// Execution is one request on its way to a sandbox, and what its source learned getting it there.
type Execution struct {
	// Request is what the sandbox is asked.
	Request wire.Request
	// EgressAllow narrows the namespace's egress allow-list for this sandbox (empty: the
	// namespace's list); the egress gateway reads it from the Pod's annotation.
	EgressAllow []string
	Log         *slog.Logger
	Marks       Marks
	// Kind, Pod and Node: which sandbox serves it, as soon as the source knows.
	Kind, Pod, Node string
	// LeftBehind: what the source could not delete when acquiring failed.
	LeftBehind []string
	// PoolMiss is why the warm pool did not serve the execution, when it was asked first; the
	// cold source notes it on the sandbox (podspec.AnnotationPoolMiss).
	PoolMiss string
	// leave gives back the cold admission slot, if the execution holds one.
	leave func()
}

// Marks are when the source reached each of its phases; zero when not reached.
type Marks struct {
	Admitted  time.Time // cold: its turn came in the admission queue
	Created   time.Time // cold: ConfigMap and Job accepted
	Claimed   time.Time // warm: a pool Pod was claimed
	Scheduled time.Time // cold: the Pod was bound to a node
	Attached  time.Time // warm: the attach stream was open and answered a ping
	Started   time.Time // cold: the container was seen running; warm: the request was delivered
}

// Leave gives back the admission slot, once the execution's sandbox is gone; it does nothing
// when the execution holds none.
func (x *Execution) Leave() {
	if x.leave != nil {
		x.leave()
	}
}

// NoteSandbox records where the execution runs.
func (x *Execution) NoteSandbox(kind string, pod *corev1.Pod) {
	x.Kind = kind
	if pod != nil {
		x.Pod, x.Node = pod.Name, pod.Spec.NodeName
	}
}

// Env is what the sources need from the runner that owns them.
type Env struct {
	Client    kubernetes.Interface
	Namespace string
	Log       *slog.Logger
	Hub       *track.Hub
	// Shape is the sandbox the runner's options describe.
	Shape podspec.Shape
	// Holder names the runner on what it claims ("<host>/<pid>/<random>").
	Holder string
	// Background runs f on a goroutine the runner's Close waits for.
	Background func(f func())
	// Stopping is closed once the runner is closing: background waits end early.
	Stopping <-chan struct{}
	// OpenLogs streams a sandbox container's log (tests replace it: fake clientsets serve none).
	OpenLogs func(ctx context.Context, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error)
	// Attach connects to a Pod's sandbox container (pods/attach); nil when the runner has no REST
	// config to attach with.
	Attach AttachFunc
	// ColdStarts estimates how long a cold sandbox takes to start, measured by the cold source.
	ColdStarts *StartEstimate
	Config
}

// Config is the runner's settings the sources read.
type Config struct {
	// Timeout is the runner's ceiling on an execution's run time; StartTimeout bounds a cold
	// sandbox's start; UnschedulableGrace how long no node may match it.
	Timeout, StartTimeout, UnschedulableGrace time.Duration
	// KillGrace is how long past its timeout the runner waits for the sandbox's own timeout record.
	KillGrace time.Duration
	// CleanupTimeout bounds the retries of a deletion.
	CleanupTimeout time.Duration
	KeepObjects    bool
	// The warm pool: its name, the sandboxes held ready ahead, how long, and the idle Pods' age
	// limit.
	WarmPool           string
	WarmPoolReady      int
	WarmPoolHold       time.Duration
	WarmPoolMaxIdleAge time.Duration
}

// explain adds what the API can tell about a Forbidden error: a least-privilege identity is
// refused before the API server checks that the namespace exists.
func (e *Env) explain(ctx context.Context, err error) error {
	if !errors.Is(err, diagnose.ErrForbidden) {
		return err
	}
	return diagnose.ClarifyForbidden(ctx, e.Client, e.Namespace, err)
}
