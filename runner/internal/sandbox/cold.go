package sandbox

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
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/track"
)

// ColdSource creates a sandbox for each request: a ConfigMap holding the code and inputs, and a
// Job whose Pod runs the entrypoint on them. The output is read from the container log.
type ColdSource struct {
	e         *Env
	admission *Admission
}

// NewCold returns the cold source; admission bounds its sandboxes in flight.
func NewCold(e *Env, admission *Admission) *ColdSource {
	return &ColdSource{e: e, admission: admission}
}

// coldSandbox is a started Job Pod.
type coldSandbox struct {
	e        *Env
	t        *track.Tracker
	name     string // of the Job and the ConfigMap
	made     made
	jobUID   types.UID // the Job's, once made
	released bool
	// slot is its place in the admission queue, told how its Pod's scheduling goes; nil for a
	// session's Job, which takes none.
	slot *Slot
}

// podGoneTimeout bounds how long an admission slot waits for its deleted Pod to go.
const podGoneTimeout = 2 * time.Minute

// made records which objects may exist, so that cleanup deletes exactly those.
type made struct{ configMap, job bool }

// Acquire waits for its turn in the admission queue, creates the ConfigMap and the Job, and waits
// for the Pod's container to start.
func (s *ColdSource) Acquire(ctx context.Context, x *Execution) (Sandbox, error) {
	e := s.e
	// Wait in line before anything is made: StartTimeout starts now. Execute gives the slot back
	// once the sandbox has ended (see x.leave).
	slot, err := s.admission.admit(ctx)
	if err != nil {
		return nil, err
	}
	x.Marks.Admitted = time.Now()
	id := x.Request.ExecutionID
	t := e.Hub.TrackJob(id)
	sb := &coldSandbox{e: e, t: t, name: podspec.ObjectName(id), slot: slot}
	x.leave = func() {
		if !s.admission.Bounded() {
			e.Hub.Untrack(id, t)
			slot.Leave()
			return
		}
		// The slot is node capacity: it is free once the Pod is gone, not when its deletion was
		// accepted (a terminating Pod still holds its requests, and the scheduler counts them).
		// A learning admission, which measures the room as the scheduler counts it, frees it as
		// soon as the Pod finished: the scheduler no longer counts a Succeeded or Failed Pod.
		e.Background(func() {
			deadline := time.Now().Add(podGoneTimeout)
			sb.seeUnseenPod(id)
			t.AwaitEnded(podGoneTimeout, e.Stopping)
			slot.ended()
			t.AwaitGone(time.Until(deadline), e.Stopping)
			e.Hub.Untrack(id, t)
			slot.Leave()
		})
	}
	x.Kind = Cold
	cm, job := podspec.ConfigMap(&e.Shape, x.Request), podspec.Job(&e.Shape, x.Request)
	podspec.NarrowEgress(&job.Spec.Template, x.EgressAllow)
	if x.PoolMiss != "" {
		podspec.MarkPoolMiss(job, e.WarmPool, x.PoolMiss)
	}
	err = sb.create(ctx, cm, job)
	if err == nil {
		x.Marks.Created = time.Now()
		x.Log.Debug("created", "job", job.Name)
		err = sb.awaitStart(ctx, x)
	}
	if err == nil && e.ColdStarts != nil {
		e.ColdStarts.Observe(x.Marks.Started.Sub(x.Marks.Admitted))
	}
	if err != nil {
		if !e.KeepObjects {
			x.LeftBehind = sb.Release(x.Log)
		}
		return nil, err
	}
	return sb, nil
}

func (sb *coldSandbox) Kind() string            { return Cold }
func (sb *coldSandbox) Tracker() *track.Tracker { return sb.t }

// A session's Job has no ConfigMap (cm nil): its requests arrive on stdin.
func (sb *coldSandbox) create(ctx context.Context, cm *corev1.ConfigMap, job *batchv1.Job) error {
	e, ns := sb.e, sb.e.Namespace
	if cm != nil {
		err := diagnose.RetryQuotaConflict(func() error {
			_, err := e.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			// An error that is not the server's answer (a timeout, a broken connection) may come
			// after the server created the object: delete it by name to be sure.
			sb.made.configMap = !diagnose.IsAnswer(err)
			return e.explain(ctx, diagnose.APIError(err, "create", "configmaps", ns, cm.Name))
		}
		sb.made.configMap = true
	}
	var created *batchv1.Job
	err := diagnose.RetryQuotaConflict(func() error {
		var err error
		created, err = e.Client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		sb.made.job = !diagnose.IsAnswer(err)
		err = diagnose.APIError(err, "create", "jobs", ns, job.Name)
		if cm == nil {
			return e.explain(ctx, err)
		}
		return err // the namespace exists: the ConfigMap is in it
	}
	sb.made.job = true
	sb.jobUID = created.UID
	sb.t.Own(created.UID)
	if cm == nil {
		return nil
	}
	// The Pod only needs the ConfigMap to exist; who owns it matters only if the runner dies, so
	// the ownership patch stays off the critical path.
	e.Background(func() { e.adoptConfigMap(cm.Name, created) })
	return nil
}

func (e *Env) adoptConfigMap(name string, job *batchv1.Job) {
	ctx, cancel := context.WithTimeout(context.Background(), e.CleanupTimeout)
	defer cancel()
	patch := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":%q,"uid":%q}]}}`,
		job.Name, job.UID)
	_, err := e.Client.CoreV1().ConfigMaps(e.Namespace).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		e.Log.Warn("could not make the job own its configmap; the runner still deletes both", "configmap", name, "error", err)
	}
}

// seeUnseenPod: the Job was made, but the watch has not shown its Pod (the caller gave up right
// after). The API server says whether the Pod exists; if it does, the tracker starts from it, so
// that the slot is held until it is gone — it holds its room on the node until then.
func (sb *coldSandbox) seeUnseenPod(id string) {
	if sb.jobUID == "" {
		return
	}
	if pod, _, _, _ := sb.t.Snapshot(); pod != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sb.e.CleanupTimeout)
	defer cancel()
	if pod, err := sb.e.Hub.JobPodNow(ctx, id, sb.jobUID); err == nil && pod != nil {
		sb.t.Seed(pod)
	}
}

// Release deletes the Job (with background propagation, so that the garbage collector removes
// its Pod at once, with a 1 s grace period) and the ConfigMap.
func (sb *coldSandbox) Release(log *slog.Logger) []string {
	if sb.released {
		return nil
	}
	sb.released = true
	ns, name := sb.e.Namespace, sb.name
	var dels []Deletion
	if sb.made.job {
		dels = append(dels, sb.e.JobDeletion(name, sb.jobUID))
	}
	if sb.made.configMap {
		dels = append(dels, Deletion{"configmap/" + name, func(ctx context.Context) error {
			return sb.e.Client.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{})
		}})
	}
	return DeleteAll(log, sb.e.CleanupTimeout, dels...)
}

// awaitStart waits for the container to start, failing fast on what can never start.
func (sb *coldSandbox) awaitStart(ctx context.Context, x *Execution) error {
	e, t := sb.e, sb.t
	startDeadline := time.NewTimer(e.StartTimeout)
	defer startDeadline.Stop()
	var unschedulableSince time.Time
	var graceTimer <-chan time.Time
	for {
		pod, gone, events, scaleUp := t.Snapshot()
		d := diagnose.Diagnose(e.Namespace, e.Shape.RuntimeClassName, sb.name, pod, events)
		sb.slot.observe(diagnose.Scheduled(pod), d.NoRoom, scaleUp || diagnose.RoomBeingMade(pod))
		if diagnose.Scheduled(pod) && x.Marks.Scheduled.IsZero() {
			x.Marks.Scheduled = time.Now()
			x.NoteSandbox(Cold, pod)
			x.Log.Debug("scheduled", "pod", pod.Name, "node", pod.Spec.NodeName)
		}
		if gone {
			return fmt.Errorf("%w: pod %s/%s was deleted before it started", diagnose.ErrSandboxFailed, e.Namespace, pod.Name)
		}
		if d.Fatal != nil {
			return d.Fatal
		}
		if diagnose.ContainerStarted(pod) {
			x.NoteSandbox(Cold, pod)
			if x.Marks.Scheduled.IsZero() {
				x.Marks.Scheduled = time.Now()
			}
			x.Marks.Started = time.Now()
			x.Log.Debug("started", "pod", pod.Name)
			return nil
		}
		if d.UnschedulableSelector && !scaleUp {
			if unschedulableSince.IsZero() {
				unschedulableSince = time.Now()
				graceTimer = time.After(e.UnschedulableGrace)
			}
		} else {
			unschedulableSince, graceTimer = time.Time{}, nil
		}
		select {
		case <-t.Wake():
		case <-graceTimer:
			return fmt.Errorf("%w: %s (for %s); the sandbox needs a node labelled and tainted %s=%s (a GKE Sandbox node pool) that also matches --node-selector%s",
				diagnose.ErrUnschedulable, d.Summary, e.UnschedulableGrace, podspec.GKESandboxLabel, podspec.GKESandboxValue, diagnose.TaintHint(d.Summary))
		case <-startDeadline.C:
			return fmt.Errorf("%w: the sandbox did not start within %s: %s", diagnose.ErrTimeout, e.StartTimeout, d.Summary)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Open follows the container log. The kubelet may refuse for a moment after the container
// started ("waiting to start"); that is retried until the stream opens or ctx ends. The request
// is already in the sandbox: it travelled in the ConfigMap.
func (sb *coldSandbox) Open(ctx context.Context, x *Execution) (io.ReadCloser, error) {
	e, pod := sb.e, x.Pod
	opts := &corev1.PodLogOptions{Container: podspec.ContainerName, Follow: true,
		LimitBytes: ptr.To(int64(wire.MaxLogBytes + 1<<20))}
	backoff := 50 * time.Millisecond
	for {
		stream, err := e.OpenLogs(ctx, pod, opts)
		if err == nil {
			return stream, nil
		}
		if !apierrors.IsBadRequest(err) {
			return nil, diagnose.APIError(err, "get", "pods/log", e.Namespace, pod)
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

// Reopen reads the container's whole log again, followed while the container runs (follow).
func (sb *coldSandbox) Reopen(ctx context.Context, follow bool) io.ReadCloser {
	pod, _, _, _ := sb.t.Snapshot()
	if pod == nil {
		return nil
	}
	stream, err := sb.e.OpenLogs(ctx, pod.Name, &corev1.PodLogOptions{Container: podspec.ContainerName, Follow: follow,
		LimitBytes: ptr.To(int64(wire.MaxLogBytes + 1<<20))})
	if err != nil {
		return nil
	}
	return stream
}

// StartSessionJob creates a cold session's Job (whose Pod waits for requests on stdin, as a warm
// pool Pod does) and waits for its container to start; the Pod is returned as last seen. made
// says whether the Job may exist (a create the API server refused made nothing): the caller
// deletes it (JobDeletion) then, also when starting fails, and never a Job it did not make.
func (e *Env) StartSessionJob(ctx context.Context, job *batchv1.Job) (pod *corev1.Pod, made bool, err error) {
	id := job.Labels[podspec.LabelExecutionID]
	t := e.Hub.TrackJob(id)
	defer e.Hub.Untrack(id, t)
	sb := &coldSandbox{e: e, t: t, name: job.Name}
	if err := sb.create(ctx, nil, job); err != nil {
		return nil, sb.made.job, err
	}
	if err := sb.awaitStart(ctx, &Execution{Request: wire.Request{ExecutionID: id}, Log: e.Log}); err != nil {
		return nil, true, err
	}
	pod, _, _, _ = t.Snapshot()
	return pod, true, nil
}

// JobDeletion deletes a Job and, with background propagation, its Pod at once. With uid it
// deletes exactly that Job, not a later one made under its name (an execution or session ID used
// again); uid "" (a create whose answer was lost) deletes whatever carries the name.
func (e *Env) JobDeletion(name string, uid types.UID) Deletion {
	opts := metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}
	if uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	return Deletion{"job/" + name, func(ctx context.Context) error {
		err := e.Client.BatchV1().Jobs(e.Namespace).Delete(ctx, name, opts)
		if uid != "" && apierrors.IsConflict(err) {
			return nil // a different Job by that name: ours is gone
		}
		return err
	}}
}

// JobOf is the UID of the Job that controls pod ("" for none).
func JobOf(pod *corev1.Pod) types.UID {
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == "Job" {
		return ref.UID
	}
	return ""
}

// Admission is the queue cold executions wait in.
func (s *ColdSource) Admission() *Admission { return s.admission }
