package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

const (
	// cleanupTimeout bounds the deletions after an execution; they run on their own context so
	// that a cancelled caller still removes what it made.
	cleanupTimeout = 30 * time.Second
	// defaultKillGrace is how long past Timeout the runner waits for the sandbox's own timeout
	// record before it deletes the Job itself.
	defaultKillGrace = 10 * time.Second
	// defaultExitGrace is how long the runner waits, after the log ends without an end record, for
	// the kubelet to report why the container stopped (OOM kill, eviction).
	defaultExitGrace = 20 * time.Second
)

// Runner executes code in sandboxed Jobs. It is safe for concurrent use; create one per namespace
// and share it, so that all executions share one set of watches. Call Close when done.
type Runner struct {
	opts   Options
	client kubernetes.Interface
	log    *slog.Logger
	// openLogs streams the sandbox container's log; tests replace it, since fake clientsets
	// cannot serve logs.
	openLogs func(ctx context.Context, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error)
	// killGrace and exitGrace: see their defaults; tests shorten them.
	killGrace, exitGrace time.Duration

	startMu sync.Mutex
	hub     *hub
	// cleanups tracks background work (ConfigMap ownership patches) that Close waits for.
	cleanups sync.WaitGroup
	closed   chan struct{}
}

// New validates the options and returns a Runner. It does not contact the cluster: the first
// Execute starts the shared watches.
func New(opts Options) (*Runner, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	client, err := NewClient(opts)
	if err != nil {
		return nil, err
	}
	r := &Runner{opts: opts, client: client, log: opts.Logger, closed: make(chan struct{}),
		killGrace: defaultKillGrace, exitGrace: defaultExitGrace}
	r.openLogs = func(ctx context.Context, pod string, lo *corev1.PodLogOptions) (io.ReadCloser, error) {
		return r.client.CoreV1().Pods(r.opts.Namespace).GetLogs(pod, lo).Stream(ctx)
	}
	return r, nil
}

// Options returns the effective options, defaults filled in.
func (r *Runner) Options() Options { return r.opts }

// Client returns the Kubernetes client the runner uses.
func (r *Runner) Client() kubernetes.Interface { return r.client }

// Close stops the shared watches and waits for background work. Executions still running are
// not interrupted; cancel their contexts first.
func (r *Runner) Close() error {
	r.startMu.Lock()
	defer r.startMu.Unlock()
	select {
	case <-r.closed:
		return nil
	default:
	}
	close(r.closed)
	r.cleanups.Wait()
	if r.hub != nil {
		r.hub.close()
	}
	return nil
}

func (r *Runner) ensureWatching(ctx context.Context) (*hub, error) {
	r.startMu.Lock()
	defer r.startMu.Unlock()
	select {
	case <-r.closed:
		return nil, fmt.Errorf("%w: runner is closed", ErrInvalidRequest)
	default:
	}
	if r.hub != nil {
		return r.hub, nil
	}
	h := newHub()
	if err := h.start(ctx, r.client, r.opts.Namespace); err != nil {
		h.close()
		return nil, err
	}
	r.hub = h
	return h, nil
}

// NewExecutionID returns a random execution ID.
func NewExecutionID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CheckRequest validates a request without running it: the same checks Execute makes before it
// creates anything.
func (r *Runner) CheckRequest(req Request) error {
	req, err := req.validate(&r.opts, NewExecutionID)
	if err != nil {
		return err
	}
	if n := requestSize(req); n > maxConfigMapBytes {
		return fmt.Errorf("%w: %w: code and input files are %s, more than a ConfigMap holds (%s); pass large inputs another way or split the work",
			ErrInvalidRequest, ErrRequestTooLarge, describeSize(n), describeSize(maxConfigMapBytes))
	}
	return nil
}

// Execute runs req.Code in a new sandbox and returns what it produced. A non-zero exit code is a
// result, not an error. On timeout it returns the partial Result and an error wrapping ErrTimeout.
// Whatever happens, the Job, its Pod and the ConfigMap are deleted before Execute returns (unless
// Options.KeepObjects).
func (r *Runner) Execute(ctx context.Context, req Request) (res Result, err error) {
	res.Timings.Requested = time.Now()
	if err := r.CheckRequest(req); err != nil {
		return res, err
	}
	if req.ExecutionID == "" {
		req.ExecutionID = NewExecutionID()
	}
	res.ExecutionID = req.ExecutionID
	log := r.log.With("execution", req.ExecutionID, "namespace", r.opts.Namespace)
	defer func() {
		// Whatever step the caller's cancellation interrupted, it is reported as a cancellation.
		if err != nil && ctx.Err() != nil && !errors.Is(err, ErrCanceled) && !errors.Is(err, ErrTimeout) {
			err = fmt.Errorf("%w: execution %s in namespace %s: %w", ErrCanceled, req.ExecutionID, r.opts.Namespace, ctx.Err())
		}
	}()

	h, werr := r.ensureWatching(ctx)
	if werr != nil {
		return res, werr
	}
	t, ok := h.track(req.ExecutionID)
	if !ok {
		return res, fmt.Errorf("%w: execution %s is already running on this runner; use a new execution ID", ErrInvalidRequest, req.ExecutionID)
	}
	defer h.untrack(req.ExecutionID)

	cm, job := newConfigMap(&r.opts, req), newJob(&r.opts, req)
	made, cerr := r.create(ctx, cm, job)
	if !r.opts.KeepObjects {
		defer func() {
			r.cleanup(log, made, cm.Name)
			if made.any() {
				res.Timings.CleanedUp = time.Now()
			}
		}()
	}
	if cerr != nil {
		return res, cerr
	}
	res.Timings.Created = time.Now()
	log.Debug("created", "job", job.Name)

	return res, r.await(ctx, log, t, job.Name, req.timeout(&r.opts), &res)
}

// made records which objects exist, so that cleanup deletes exactly those.
type made struct{ configMap, job bool }

func (m made) any() bool { return m.configMap || m.job }

func (r *Runner) create(ctx context.Context, cm *corev1.ConfigMap, job *batchv1.Job) (made, error) {
	var m made
	ns := r.opts.Namespace
	// A ResourceQuota's admission answers Conflict when concurrent creates race on its usage
	// counters; nothing was created then, and trying again is what the API server asks for.
	err := retry.OnError(retry.DefaultBackoff, apierrors.IsConflict, func() error {
		_, err := r.client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return m, apiError(err, "create", "configmaps", ns, cm.Name)
	}
	m.configMap = true
	var created *batchv1.Job
	err = retry.OnError(retry.DefaultBackoff, apierrors.IsConflict, func() error {
		var err error
		created, err = r.client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return m, apiError(err, "create", "jobs", ns, job.Name)
	}
	m.job = true
	// The Pod only needs the ConfigMap to exist; who owns it matters only if the runner dies, so
	// the ownership patch stays off the critical path.
	r.cleanups.Add(1)
	go func() {
		defer r.cleanups.Done()
		r.adoptConfigMap(cm.Name, created)
	}()
	return m, nil
}

func (r *Runner) adoptConfigMap(name string, job *batchv1.Job) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":%q,"uid":%q}]}}`,
		job.Name, job.UID)
	_, err := r.client.CoreV1().ConfigMaps(r.opts.Namespace).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		r.log.Warn("could not make the job own its configmap; the runner still deletes both", "configmap", name, "error", err)
	}
}

// cleanup deletes what create made, on its own context. The Job goes with background propagation
// so its Pod is removed by the garbage collector at once, with a 1 s grace period.
func (r *Runner) cleanup(log *slog.Logger, m made, name string) {
	if !m.any() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	ns := r.opts.Namespace
	var wg sync.WaitGroup
	if m.job {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{
				PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
			})
			if err != nil && !apierrors.IsNotFound(err) {
				log.Error("cleanup: deleting job failed; `gkexec gc` will remove it", "job", name, "error", err)
			}
		}()
	}
	if m.configMap {
		err := r.client.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			log.Error("cleanup: deleting configmap failed; `gkexec gc` will remove it", "configmap", name, "error", err)
		}
	}
	wg.Wait()
}

// await follows the execution: wait for the container to start (failing fast on what can never
// start), then read the framed log until the end record.
func (r *Runner) await(ctx context.Context, log *slog.Logger, t *tracker, jobName string, timeout time.Duration, res *Result) error {
	startDeadline := time.NewTimer(r.opts.StartTimeout)
	defer startDeadline.Stop()
	var unschedulableSince time.Time
	var graceTimer <-chan time.Time
	var pod *corev1.Pod
	for {
		p, gone, events, scaleUp := t.snapshot()
		pod = p
		if scheduled(pod) && res.Timings.Scheduled.IsZero() {
			res.Timings.Scheduled = time.Now()
			res.PodName, res.NodeName = pod.Name, pod.Spec.NodeName
			log.Debug("scheduled", "pod", pod.Name, "node", pod.Spec.NodeName)
		}
		if gone {
			return fmt.Errorf("%w: pod %s/%s was deleted before it started", ErrSandboxFailed, r.opts.Namespace, pod.Name)
		}
		d := diagnose(&r.opts, jobName, pod, events)
		if d.fatal != nil {
			return d.fatal
		}
		if containerStarted(pod) {
			break
		}
		if d.unschedulableSelector && !scaleUp {
			if unschedulableSince.IsZero() {
				unschedulableSince = time.Now()
				graceTimer = time.After(r.opts.UnschedulableGrace)
			}
		} else {
			unschedulableSince, graceTimer = time.Time{}, nil
		}
		select {
		case <-t.wake:
		case <-graceTimer:
			return fmt.Errorf("%w: %s (for %s); the sandbox needs a node labelled and tainted %s=%s (a GKE Sandbox node pool) that also matches --node-selector",
				ErrUnschedulable, d.summary, r.opts.UnschedulableGrace, GKESandboxLabel, GKESandboxValue)
		case <-startDeadline.C:
			return fmt.Errorf("%w: the sandbox did not start within %s: %s", ErrTimeout, r.opts.StartTimeout, d.summary)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	res.PodName, res.NodeName = pod.Name, pod.Spec.NodeName
	if res.Timings.Scheduled.IsZero() {
		res.Timings.Scheduled = time.Now()
	}
	res.Timings.Started = time.Now()
	log.Debug("started", "pod", pod.Name)
	return r.collect(ctx, log, t, pod.Name, timeout, res)
}

// collect follows the container log to the end record. If the log ends without one (the sandbox
// was OOM-killed or deleted), the container's final state explains why.
func (r *Runner) collect(ctx context.Context, log *slog.Logger, t *tracker, podName string, timeout time.Duration, res *Result) error {
	dec := newDecoder(r.opts.MaxOutputBytes, r.opts.MaxFileBytes)
	runDeadline := time.NewTimer(timeout + r.killGrace)
	defer runDeadline.Stop()

	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	readDone := make(chan error, 1)
	go func() { readDone <- r.follow(streamCtx, t, podName, dec) }()

	var readErr error
	select {
	case readErr = <-readDone:
	case <-runDeadline.C:
		stopStream()
		<-readDone
		dec.apply(res)
		res.TimedOut, res.ExitCode, res.Signal = true, 137, 9
		res.Timings.Finished = time.Now()
		return fmt.Errorf("%w: pod %s/%s ran past %s and was killed", ErrTimeout, r.opts.Namespace, podName, timeout)
	case <-ctx.Done():
		stopStream()
		<-readDone
		dec.apply(res)
		return ctx.Err()
	}
	if dec.end != nil {
		res.Timings.Finished = time.Now()
		res.Timings.LogsRead = res.Timings.Finished
		dec.apply(res)
		return r.recordOutcome(res, timeout, podName)
	}
	if readErr != nil && (ctx.Err() != nil || errors.Is(readErr, ErrForbidden)) {
		dec.apply(res)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return readErr
	}
	// No end record: find out from the kubelet how the container ended.
	term, err := r.awaitTermination(ctx, t)
	res.Timings.Finished = time.Now()
	if err != nil {
		dec.apply(res)
		return err
	}
	if term != nil {
		// A follow stream can break before the container ends (API server or kubelet restarts);
		// the finished container's whole log is still there to read once more.
		if again := r.reread(ctx, podName); again != nil && again.end != nil {
			dec = again
		}
	}
	dec.apply(res)
	res.Timings.LogsRead = time.Now()
	if dec.end != nil {
		return r.recordOutcome(res, timeout, podName)
	}
	if term == nil {
		return fmt.Errorf("%w: pod %s/%s: the log ended without a result and the pod is gone (%v)", ErrSandboxFailed, r.opts.Namespace, podName, readErr)
	}
	res.ExitCode = int(term.ExitCode)
	res.OOMKilled = term.Reason == "OOMKilled"
	if res.OOMKilled {
		// The kernel's OOM killer sends SIGKILL. Under gVisor the whole sandbox goes and the runtime
		// reports exit code 128; report what a process killed that way exits with everywhere else.
		res.ExitCode, res.Signal = 137, 9
		log.Debug("oom killed", "pod", podName)
		return nil
	}
	if term.Reason == "DeadlineExceeded" {
		res.TimedOut = true
		return fmt.Errorf("%w: pod %s/%s reached the Job's deadline", ErrTimeout, r.opts.Namespace, podName)
	}
	return fmt.Errorf("%w: pod %s/%s: the sandbox ended without a result: %s exit %d %s (log: %v)",
		ErrSandboxFailed, r.opts.Namespace, podName, term.Reason, term.ExitCode, term.Message, readErr)
}

// follow streams the log into dec. The kubelet may refuse for a moment after the container
// started ("waiting to start"); that is retried until the stream opens or ctx ends.
func (r *Runner) follow(ctx context.Context, t *tracker, podName string, dec *decoder) error {
	opts := &corev1.PodLogOptions{Container: containerName, Follow: true,
		LimitBytes: ptr.To(int64(maxLogBytes + 1<<20))}
	backoff := 50 * time.Millisecond
	for {
		stream, err := r.openLogs(ctx, podName, opts)
		if err == nil {
			defer stream.Close()
			return dec.readFrom(stream)
		}
		if !apierrors.IsBadRequest(err) {
			return apiError(err, "get", "pods/log", r.opts.Namespace, podName)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.wake:
		case <-time.After(backoff):
			backoff = min(backoff*2, time.Second)
		}
	}
}

// recordOutcome is Execute's answer once the end record was read: the sandbox's own timeout is
// ErrTimeout (with the Result), anything else is a result.
func (r *Runner) recordOutcome(res *Result, timeout time.Duration, podName string) error {
	if res.TimedOut {
		return fmt.Errorf("%w: the code ran past %s and was killed (pod %s/%s)", ErrTimeout, timeout, r.opts.Namespace, podName)
	}
	return nil
}

// reread reads a finished container's whole log without following it.
func (r *Runner) reread(ctx context.Context, podName string) *decoder {
	stream, err := r.openLogs(ctx, podName, &corev1.PodLogOptions{Container: containerName,
		LimitBytes: ptr.To(int64(maxLogBytes + 1<<20))})
	if err != nil {
		return nil
	}
	defer stream.Close()
	dec := newDecoder(r.opts.MaxOutputBytes, r.opts.MaxFileBytes)
	if err := dec.readFrom(stream); err != nil {
		return nil
	}
	return dec
}

// awaitTermination waits for the kubelet to report the container's final state.
func (r *Runner) awaitTermination(ctx context.Context, t *tracker) (*corev1.ContainerStateTerminated, error) {
	deadline := time.After(r.exitGrace)
	for {
		pod, gone, _, _ := t.snapshot()
		if term := terminated(pod); term != nil {
			return term, nil
		}
		if gone || podFinished(pod) {
			return nil, nil
		}
		select {
		case <-t.wake:
		case <-deadline:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
