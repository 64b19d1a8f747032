package runner

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// Defaults. The first nine match ADK's GkeCodeExecutor so that moving to gkexec changes nothing.
const (
	DefaultNamespace        = "default"
	DefaultImage            = "python:3.11-slim"
	DefaultTimeout          = 300 * time.Second
	DefaultCPURequest       = "200m"
	DefaultMemoryRequest    = "256Mi"
	DefaultCPULimit         = "500m"
	DefaultMemoryLimit      = "512Mi"
	DefaultRuntimeClassName = "gvisor"

	DefaultStartTimeout          = 120 * time.Second
	DefaultEphemeralStorageLimit = "1Gi"
	DefaultScratchSizeLimit      = "128Mi"
	DefaultMaxOutputBytes        = 1 << 20
	DefaultMaxFileBytes          = 4 << 20
	DefaultMaxProcesses          = 256
	DefaultTTLAfterFinished      = 5 * time.Minute
	DefaultUnschedulableGrace    = 15 * time.Second
	DefaultRunAsUser             = 65534 // "nobody" in Debian-based images, python:3.11-slim included
	DefaultQPS                   = 100
	DefaultBurst                 = 300
	DefaultCleanupTimeout        = time.Minute
	DefaultWarmPool              = "default"
	DefaultWarmPoolReady         = 1
	DefaultWarmPoolHold          = 10 * time.Minute
	DefaultWarmPoolMaxIdleAge    = time.Hour
	DefaultSessionIdleTimeout    = 10 * time.Minute
	DefaultSessionMaxLifetime    = time.Hour

	// GKESandboxLabel is the label and taint key GKE puts on GKE Sandbox (gVisor) nodes.
	GKESandboxLabel = podspec.GKESandboxLabel // "sandbox.gke.io/runtime"
	// GKESandboxValue is that label's and taint's value.
	GKESandboxValue = podspec.GKESandboxValue // "gvisor"
)

// Options configures a Runner. The zero value of each field means its documented default.
type Options struct {
	// Namespace where ConfigMaps and Jobs are created. Default "default".
	Namespace string
	// Image of the sandbox container; it must have python3 on its PATH, which runs gkexec's
	// entrypoint whatever the language (bash and node too, to run those). Default
	// "python:3.11-slim" (python3 and bash, no node).
	Image string
	// ImagePullPolicy of the sandbox container. Default IfNotPresent.
	ImagePullPolicy corev1.PullPolicy
	// Timeout bounds the code's run time, measured from when it starts in the sandbox. When it
	// passes the code is killed and Execute returns the output so far with ErrTimeout. Default 300s.
	Timeout time.Duration
	// StartTimeout bounds scheduling, image pull and container start, from when the execution is
	// admitted (see MaxInFlight). Default 120s.
	StartTimeout time.Duration
	// MaxInFlight bounds the cold sandboxes (Jobs) in flight at once; further cold executions
	// wait for a slot, first come first served, for as long as their context allows, and the wait
	// counts against neither StartTimeout nor Timeout (Result phase "queue"). Warm executions
	// take no slot. Default: as many as the namespace's ResourceQuotas admit (the smallest of
	// hard pods and of hard cpu and memory requests and limits over one sandbox's, read when the
	// shared watches start); when there is no quota or it cannot be read, learned: once the
	// scheduler reports a sandbox Pod unschedulable for lack of room (and no node is being added
	// for it), the sandboxes scheduled, growing by one after as many ran without waiting for room
	// (Runner.MaxInFlight). -1: unbounded.
	MaxInFlight int

	// CPURequest, MemoryRequest, CPULimit, MemoryLimit: Kubernetes quantities for the sandbox
	// container. Defaults 200m, 256Mi, 500m, 512Mi.
	CPURequest    string
	MemoryRequest string
	CPULimit      string
	MemoryLimit   string
	// EphemeralStorageLimit caps the container's writable layer, logs and disk use. Default 1Gi.
	EphemeralStorageLimit string
	// ScratchSizeLimit sizes each writable scratch volume, /tmp and /workspace. They are memory
	// backed, so writes count against MemoryLimit and fail with ENOSPC past this size. Default 128Mi.
	ScratchSizeLimit string

	// MaxOutputBytes caps stdout and stderr, each; the rest is dropped and the Result says
	// truncated. Default 1 MiB.
	MaxOutputBytes int64
	// MaxFileBytes caps the total size of output files returned. Default 4 MiB.
	MaxFileBytes int64
	// MaxProcesses is the RLIMIT_NPROC given to the code, a first line against fork bombs (the
	// memory and CPU limits are the second). Default 256; negative disables it.
	MaxProcesses int64

	// RuntimeClassName of the sandbox Pod. Default "gvisor" (GKE Sandbox). Set NoRuntimeClass to
	// run without one, e.g. on a cluster without gVisor; that is not a sandbox.
	RuntimeClassName string
	NoRuntimeClass   bool
	// DisableSandboxNodeSelector drops the node selector and toleration for GKE Sandbox nodes
	// (sandbox.gke.io/runtime=gvisor), which are on by default.
	DisableSandboxNodeSelector bool
	// NodeSelector and Tolerations are added to the sandbox Pod.
	NodeSelector map[string]string
	Tolerations  []corev1.Toleration
	// UnschedulableGrace is how long a Pod may stay unschedulable because no node matches its
	// selector or tolerations before Execute fails with ErrUnschedulable. A cluster autoscaler that
	// announces a scale-up extends it to StartTimeout. Lack of free capacity never fails early: the
	// Pod waits in the queue. Default 15s.
	UnschedulableGrace time.Duration

	// RunAsUser and RunAsGroup: the fixed non-root identity of the code. Default 65534.
	RunAsUser  int64
	RunAsGroup int64

	// Labels and Annotations are added to every object the runner creates (and the Pod).
	Labels      map[string]string
	Annotations map[string]string
	// TTLAfterFinished is the Job's ttlSecondsAfterFinished: a backstop that removes the Job, its
	// Pod and ConfigMap if the runner dies before its own cleanup. Default 5m.
	TTLAfterFinished time.Duration
	// KeepObjects leaves the ConfigMap and Job (or the warm Pod) in place after execution, for
	// debugging.
	KeepObjects bool
	// CleanupTimeout is how long the runner retries deleting what an execution made (an API
	// server that restarts refuses connections for a while). What is still there then is named
	// in Result.LeftBehind. Default 1m.
	CleanupTimeout time.Duration

	// WarmPool names the warm pool (the gkexec.dev/pool label of its Pods) to take pre-started
	// sandboxes from. An execution runs warm when an idle, ready pool Pod matches the sandbox
	// these options describe (image, resources, runtime, identity, scratch sizes, placement);
	// otherwise — no pool, an empty pool, another image — it runs cold, in the same call.
	// Default "default".
	WarmPool string
	// NoWarmPool: every one-shot execution runs cold, and sessions run in Jobs of their own. The
	// warm path and sessions reach their sandbox over pods/attach, which needs a REST config: a
	// runner given only Options.Client runs one-shot executions cold and refuses sessions.
	NoWarmPool bool
	// WarmPoolReady is how many warm sandboxes the runner holds claimed and attached ahead of
	// demand, so that an execution skips the claim and the attach. They count against the pool
	// and serve one execution each. Default 1; -1 for none (claim on request).
	WarmPoolReady int
	// WarmPoolHold is how long a sandbox is held ready before it is released and replaced, and
	// part of the deadline set on it when claimed (a runner that dies leaves it to expire).
	// Default 10m.
	WarmPoolHold time.Duration
	// WarmPoolMaxIdleAge: idle pool Pods older than this are deleted (their Deployment replaces
	// them) instead of used. Default 1h.
	WarmPoolMaxIdleAge time.Duration

	// SessionIdleTimeout ends a session that has run nothing for this long; SessionMaxLifetime
	// ends it this long after it opened, however busy. The sandbox enforces both itself, on its own
	// clock, whether any runner lives or not; a sandbox that ended its session is then deleted by
	// any runner alive in the namespace (or gkexec gc). OpenSession may lower them per session.
	// Defaults 10m and 1h.
	SessionIdleTimeout time.Duration
	SessionMaxLifetime time.Duration

	// KubeconfigPath and KubeconfigContext select the cluster. Fallback order: this kubeconfig,
	// in-cluster config, then the default kubeconfig (KUBECONFIG, ~/.kube/config).
	KubeconfigPath    string
	KubeconfigContext string
	// RESTConfig, if set, is used instead of loading a kubeconfig.
	RESTConfig *rest.Config
	// Client, if set, is used for every API call (tests inject a fake clientset here).
	Client kubernetes.Interface
	// QPS and Burst of the client-side rate limiter when the runner builds its own client. An
	// execution costs six requests (two creates, an ownership patch, a log stream, two deletes),
	// so the defaults (100, 300) let 50 executions start at once without waiting on the limiter;
	// the API server's priority and fairness still protects it. Default 100 and 300.
	QPS   float32
	Burst int

	// Logger receives structured progress; default discards.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	setDefault(&o.Namespace, DefaultNamespace)
	setDefault(&o.Image, DefaultImage)
	setDefault(&o.ImagePullPolicy, corev1.PullIfNotPresent)
	setDefault(&o.Timeout, DefaultTimeout)
	setDefault(&o.StartTimeout, DefaultStartTimeout)
	setDefault(&o.CPURequest, DefaultCPURequest)
	setDefault(&o.MemoryRequest, DefaultMemoryRequest)
	setDefault(&o.CPULimit, DefaultCPULimit)
	setDefault(&o.MemoryLimit, DefaultMemoryLimit)
	setDefault(&o.EphemeralStorageLimit, DefaultEphemeralStorageLimit)
	setDefault(&o.ScratchSizeLimit, DefaultScratchSizeLimit)
	setDefault(&o.MaxOutputBytes, DefaultMaxOutputBytes)
	setDefault(&o.MaxFileBytes, DefaultMaxFileBytes)
	setDefault(&o.MaxProcesses, DefaultMaxProcesses)
	if !o.NoRuntimeClass {
		setDefault(&o.RuntimeClassName, DefaultRuntimeClassName)
	}
	setDefault(&o.UnschedulableGrace, DefaultUnschedulableGrace)
	setDefault(&o.RunAsUser, DefaultRunAsUser)
	setDefault(&o.RunAsGroup, o.RunAsUser)
	setDefault(&o.TTLAfterFinished, DefaultTTLAfterFinished)
	setDefault(&o.QPS, DefaultQPS)
	setDefault(&o.Burst, DefaultBurst)
	setDefault(&o.CleanupTimeout, DefaultCleanupTimeout)
	setDefault(&o.WarmPool, DefaultWarmPool)
	setDefault(&o.WarmPoolReady, DefaultWarmPoolReady)
	setDefault(&o.WarmPoolHold, DefaultWarmPoolHold)
	setDefault(&o.WarmPoolMaxIdleAge, DefaultWarmPoolMaxIdleAge)
	setDefault(&o.SessionIdleTimeout, DefaultSessionIdleTimeout)
	setDefault(&o.SessionMaxLifetime, DefaultSessionMaxLifetime)
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

func setDefault[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
	}
}

// validate checks options after setDefaults and reports every bad field at once.
func (o *Options) validate() error {
	var errs []error
	bad := func(field string, value any, why string) {
		errs = append(errs, fmt.Errorf("%s %q: %s", field, fmt.Sprint(value), why))
	}
	for _, msg := range validation.IsDNS1123Label(o.Namespace) {
		bad("Namespace", o.Namespace, msg)
	}
	switch o.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		bad("ImagePullPolicy", o.ImagePullPolicy, "must be Always, IfNotPresent or Never")
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			bad(field, d, "must be positive")
		}
	}
	positive("Timeout", o.Timeout)
	positive("StartTimeout", o.StartTimeout)
	positive("UnschedulableGrace", o.UnschedulableGrace)
	positive("TTLAfterFinished", o.TTLAfterFinished)
	positive("CleanupTimeout", o.CleanupTimeout)
	positive("WarmPoolHold", o.WarmPoolHold)
	positive("WarmPoolMaxIdleAge", o.WarmPoolMaxIdleAge)
	positive("SessionIdleTimeout", o.SessionIdleTimeout)
	positive("SessionMaxLifetime", o.SessionMaxLifetime)
	for _, msg := range validation.IsValidLabelValue(o.WarmPool) {
		bad("WarmPool", o.WarmPool, msg)
	}
	if o.MaxInFlight < -1 {
		bad("MaxInFlight", o.MaxInFlight, "must be -1 (unbounded), 0 (the default) or more")
	}
	if o.WarmPoolReady < -1 {
		bad("WarmPoolReady", o.WarmPoolReady, "must be -1 (none), 0 (the default) or more")
	}

	quantity := func(field, value string) *resource.Quantity {
		q, err := resource.ParseQuantity(value)
		if err != nil {
			bad(field, value, "not a Kubernetes quantity (e.g. 500m, 1, 256Mi, 1Gi)")
			return nil
		}
		if q.Sign() <= 0 {
			bad(field, value, "must be positive")
			return nil
		}
		return &q
	}
	atMost := func(reqField string, req *resource.Quantity, limField string, lim *resource.Quantity) {
		if req != nil && lim != nil && req.Cmp(*lim) > 0 {
			errs = append(errs, fmt.Errorf("%s %q exceeds %s %q: a request cannot be above its limit",
				reqField, req.String(), limField, lim.String()))
		}
	}
	cpuReq, cpuLim := quantity("CPURequest", o.CPURequest), quantity("CPULimit", o.CPULimit)
	memReq, memLim := quantity("MemoryRequest", o.MemoryRequest), quantity("MemoryLimit", o.MemoryLimit)
	atMost("CPURequest", cpuReq, "CPULimit", cpuLim)
	atMost("MemoryRequest", memReq, "MemoryLimit", memLim)
	quantity("EphemeralStorageLimit", o.EphemeralStorageLimit)
	quantity("ScratchSizeLimit", o.ScratchSizeLimit)

	if o.MaxOutputBytes < 0 {
		bad("MaxOutputBytes", o.MaxOutputBytes, "must be positive")
	}
	if o.MaxFileBytes < 0 {
		bad("MaxFileBytes", o.MaxFileBytes, "must be positive")
	}
	// Base64 framing grows output by a third; all of it has to fit in one unrotated container log.
	if framed := (2*o.MaxOutputBytes + o.MaxFileBytes) * 4 / 3; framed > wire.MaxLogBytes {
		errs = append(errs, fmt.Errorf("2*MaxOutputBytes + MaxFileBytes = %d bytes: too much for one container log (at most %d before framing)",
			2*o.MaxOutputBytes+o.MaxFileBytes, wire.MaxLogBytes*3/4))
	}
	if !o.NoRuntimeClass {
		for _, msg := range validation.IsDNS1123Subdomain(o.RuntimeClassName) {
			bad("RuntimeClassName", o.RuntimeClassName, msg)
		}
	}
	if o.RunAsUser <= 0 {
		bad("RunAsUser", o.RunAsUser, "must be a non-root UID (> 0)")
	}
	if o.RunAsGroup <= 0 {
		bad("RunAsGroup", o.RunAsGroup, "must be a non-root GID (> 0)")
	}
	for _, k := range slices.Sorted(maps.Keys(o.Labels)) {
		for _, msg := range validation.IsQualifiedName(k) {
			bad("Labels key", k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(o.Labels[k]) {
			bad("Labels["+k+"]", o.Labels[k], msg)
		}
		if k == LabelManagedBy || k == LabelComponent || k == LabelExecutionID {
			bad("Labels key", k, "is reserved by gkexec")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Annotations)) {
		for _, msg := range validation.IsQualifiedName(k) {
			bad("Annotations key", k, msg)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.NodeSelector)) {
		for _, msg := range validation.IsQualifiedName(k) {
			bad("NodeSelector key", k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(o.NodeSelector[k]) {
			bad("NodeSelector["+k+"]", o.NodeSelector[k], msg)
		}
	}
	if o.QPS < 0 {
		bad("QPS", o.QPS, "must be positive")
	}
	if o.Burst < 0 {
		bad("Burst", o.Burst, "must be positive")
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
}
