package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/track"
)

// coldSource creates a sandbox for each request: a ConfigMap holding the code and inputs, and a
// Job whose Pod runs the entrypoint on them. The output is read from the container log.
type coldSource struct{ r *Runner }

// coldSandbox is a started Job Pod.
type coldSandbox struct {
	r        *Runner
	t        *track.Tracker
	name     string // of the Job and the ConfigMap
	made     made
	released bool
}

// podGoneTimeout bounds how long an admission slot waits for its deleted Pod to go.
const podGoneTimeout = 2 * time.Minute

// made records which objects may exist, so that cleanup deletes exactly those.
type made struct{ configMap, job bool }

func (s coldSource) acquire(ctx context.Context, x *execution) (sandbox, error) {
	r := s.r
	// Wait in line before anything is made: StartTimeout starts now. Execute gives the slot back
	// when the sandbox is gone.
	leave, err := r.admission.admit(ctx)
	if err != nil {
		return nil, err
	}
	x.mark(&x.timings.Admitted)
	id := x.req.ExecutionID
	t := r.hub.Track(id)
	sb := &coldSandbox{r: r, t: t, name: podspec.ObjectName(id)}
	x.leave = func() {
		if !r.admission.bounded() {
			r.hub.Untrack(id, t)
			leave()
			return
		}
		// The slot is node capacity: it is free once the Pod is gone, not when its deletion was
		// accepted (a terminating Pod still holds its requests, and the scheduler counts them).
		r.background(func() {
			t.AwaitGone(podGoneTimeout, r.stopping)
			r.hub.Untrack(id, t)
			leave()
		})
	}
	x.kind = SandboxCold
	cm, job := podspec.ConfigMap(&r.shape, x.sandboxRequest(&r.opts)), podspec.Job(&r.shape, x.sandboxRequest(&r.opts))
	err = sb.create(ctx, cm, job)
	if err == nil {
		x.mark(&x.timings.Created)
		x.log.Debug("created", "job", job.Name)
		err = sb.awaitStart(ctx, x)
	}
	if err != nil {
		if !r.opts.KeepObjects {
			x.leftBehind = sb.release(x.log)
		}
		return nil, err
	}
	return sb, nil
}

func (sb *coldSandbox) kind() string            { return SandboxCold }
func (sb *coldSandbox) tracker() *track.Tracker { return sb.t }

// A session's Job has no ConfigMap (cm nil): its requests arrive on stdin.
func (sb *coldSandbox) create(ctx context.Context, cm *corev1.ConfigMap, job *batchv1.Job) error {
	r, ns := sb.r, sb.r.opts.Namespace
	if cm != nil {
		// A ResourceQuota's admission answers Conflict when concurrent creates race on its usage
		// counters; nothing was created then, and trying again is what the API server asks for.
		err := retry.OnError(retry.DefaultBackoff, apierrors.IsConflict, func() error {
			_, err := r.client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			// An error that is not the server's answer (a timeout, a broken connection) may come
			// after the server created the object: delete it by name to be sure.
			sb.made.configMap = !diagnose.IsAnswer(err)
			return r.explain(ctx, diagnose.APIError(err, "create", "configmaps", ns, cm.Name))
		}
		sb.made.configMap = true
	}
	var created *batchv1.Job
	err := retry.OnError(retry.DefaultBackoff, apierrors.IsConflict, func() error {
		var err error
		created, err = r.client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		sb.made.job = !diagnose.IsAnswer(err)
		err = diagnose.APIError(err, "create", "jobs", ns, job.Name)
		if cm == nil {
			return r.explain(ctx, err)
		}
		return err // the namespace exists: the ConfigMap is in it
	}
	sb.made.job = true
	if cm == nil {
		return nil
	}
	// The Pod only needs the ConfigMap to exist; who owns it matters only if the runner dies, so
	// the ownership patch stays off the critical path.
	r.background(func() { r.adoptConfigMap(cm.Name, created) })
	return nil
}

func (r *Runner) adoptConfigMap(name string, job *batchv1.Job) {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.CleanupTimeout)
	defer cancel()
	patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":%q,"uid":%q}]}}`,
		job.Name, job.UID)
	_, err := r.client.CoreV1().ConfigMaps(r.opts.Namespace).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		r.log.Warn("could not make the job own its configmap; the runner still deletes both", "configmap", name, "error", err)
	}
}

// release deletes the Job (with background propagation, so that the garbage collector removes
// its Pod at once, with a 1 s grace period) and the ConfigMap.
func (sb *coldSandbox) release(log *slog.Logger) []string {
	if sb.released {
		return nil
	}
	sb.released = true
	ns, name := sb.r.opts.Namespace, sb.name
	var dels []deletion
	if sb.made.job {
		dels = append(dels, deletion{"job/" + name, func(ctx context.Context) error {
			return sb.r.client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{
				PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
			})
		}})
	}
	if sb.made.configMap {
		dels = append(dels, deletion{"configmap/" + name, func(ctx context.Context) error {
			return sb.r.client.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{})
		}})
	}
	return deleteAll(log, sb.r.opts.CleanupTimeout, dels...)
}

// awaitStart waits for the container to start, failing fast on what can never start.
func (sb *coldSandbox) awaitStart(ctx context.Context, x *execution) error {
	r, t := sb.r, sb.t
	startDeadline := time.NewTimer(r.opts.StartTimeout)
	defer startDeadline.Stop()
	var unschedulableSince time.Time
	var graceTimer <-chan time.Time
	for {
		pod, gone, events, scaleUp := t.Snapshot()
		if diagnose.Scheduled(pod) && x.timings.Scheduled.IsZero() {
			x.mark(&x.timings.Scheduled)
			x.noteSandbox(SandboxCold, pod)
			x.log.Debug("scheduled", "pod", pod.Name, "node", pod.Spec.NodeName)
		}
		if gone {
			return fmt.Errorf("%w: pod %s/%s was deleted before it started", ErrSandboxFailed, r.opts.Namespace, pod.Name)
		}
		d := diagnose.Diagnose(r.opts.Namespace, r.opts.RuntimeClassName, sb.name, pod, events)
		if d.Fatal != nil {
			return d.Fatal
		}
		if diagnose.ContainerStarted(pod) {
			x.noteSandbox(SandboxCold, pod)
			if x.timings.Scheduled.IsZero() {
				x.mark(&x.timings.Scheduled)
			}
			x.mark(&x.timings.Started)
			x.log.Debug("started", "pod", pod.Name)
			return nil
		}
		if d.UnschedulableSelector && !scaleUp {
			if unschedulableSince.IsZero() {
				unschedulableSince = time.Now()
				graceTimer = time.After(r.opts.UnschedulableGrace)
			}
		} else {
			unschedulableSince, graceTimer = time.Time{}, nil
		}
		select {
		case <-t.Wake():
		case <-graceTimer:
			return fmt.Errorf("%w: %s (for %s); the sandbox needs a node labelled and tainted %s=%s (a GKE Sandbox node pool) that also matches --node-selector",
				ErrUnschedulable, d.Summary, r.opts.UnschedulableGrace, GKESandboxLabel, GKESandboxValue)
		case <-startDeadline.C:
			return fmt.Errorf("%w: the sandbox did not start within %s: %s", ErrTimeout, r.opts.StartTimeout, d.Summary)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// open follows the container log. The kubelet may refuse for a moment after the container
// started ("waiting to start"); that is retried until the stream opens or ctx ends. The request
// is already in the sandbox: it travelled in the ConfigMap.
func (sb *coldSandbox) open(ctx context.Context, x *execution) (io.ReadCloser, error) {
	r, pod := sb.r, x.pod
	opts := &corev1.PodLogOptions{Container: podspec.ContainerName, Follow: true,
		LimitBytes: ptr.To(int64(wire.MaxLogBytes + 1<<20))}
	backoff := 50 * time.Millisecond
	for {
		stream, err := r.openLogs(ctx, pod, opts)
		if err == nil {
			return stream, nil
		}
		if !apierrors.IsBadRequest(err) {
			return nil, diagnose.APIError(err, "get", "pods/log", r.opts.Namespace, pod)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-sb.t.Wake():
		case <-time.After(backoff):
			backoff = min(backoff*2, time.Second)
		}
	}
}

// reopen reads a finished container's whole log without following it.
func (sb *coldSandbox) reopen(ctx context.Context) io.ReadCloser {
	pod, _, _, _ := sb.t.Snapshot()
	if pod == nil {
		return nil
	}
	stream, err := sb.r.openLogs(ctx, pod.Name, &corev1.PodLogOptions{Container: podspec.ContainerName,
		LimitBytes: ptr.To(int64(wire.MaxLogBytes + 1<<20))})
	if err != nil {
		return nil
	}
	return stream
}
