// Package fakecluster stands in for the Job controller and the kubelet on client-go's fake
// clientset, so that unit tests run a real runner.Runner without a cluster: for every Job it
// creates a Pod, walks it through the states a Scenario chooses, posts the Scenario's events and
// serves its container log. What it cannot stand in for is proven on the real cluster (test/e2e).
//
// It does not import the runner, so the runner's own internal tests can use it too.
package fakecluster

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/wire"
)

// Namespace is where the fake cluster's executions run.
const Namespace = "sandbox"

// containerName is the runner's sandbox container (runner.containerName).
const containerName = "sandbox"

// Scenario decides what happens to every execution's Pod.
type Scenario struct {
	// Steps mutate the new Pod's status; each is applied as one status update.
	Steps []func(*corev1.Pod)
	// Log is the container log the logs API serves.
	Log []byte
	// NoPod: Jobs never get a Pod (quota, admission); Events says why.
	NoPod bool
	// Events are posted for each Job; InvolvedObject.Kind "Job" names the Job, anything else its Pod.
	Events []corev1.Event
	// KeepPods: the garbage collector is slow — a deleted Job's Pod stays until the test deletes it.
	KeepPods bool
}

// Cluster is a fake clientset with a Job controller and a kubelet.
type Cluster struct {
	Client   *fake.Clientset
	t        testing.TB
	scenario Scenario

	podsWatching chan struct{}
	watchOnce    sync.Once
	podGate      *gate

	// jobs counts the Jobs made under each name (an execution ID may be used again); pods is each
	// Job's Pod, by the Job's UID, for the garbage collector.
	mu   sync.Mutex
	jobs map[string]int
	pods map[types.UID]string

	wg       sync.WaitGroup
	stop     chan struct{}
	stopOnce sync.Once
}

// New starts a fake cluster holding objects; it stops when the test ends.
func New(t testing.TB, sc Scenario, objects ...runtime.Object) *Cluster {
	t.Helper()
	c := &Cluster{Client: fake.NewSimpleClientset(objects...), t: t, scenario: sc,
		podsWatching: make(chan struct{}), stop: make(chan struct{}), podGate: newGate(),
		jobs: map[string]int{}, pods: map[types.UID]string{}}
	// The API server gives every object a UID; the fake does not. A Job's Pod is found by it.
	c.Client.PrependReactor("create", "jobs", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if job, ok := action.(k8stesting.CreateAction).GetObject().(*batchv1.Job); ok && job.UID == "" {
			c.mu.Lock()
			job.UID = types.UID(fmt.Sprintf("uid-job-%s-%d", job.Name, c.jobs[job.Name]))
			c.jobs[job.Name]++
			c.mu.Unlock()
		}
		return false, nil, nil
	})
	HonourDeletePreconditions(c.Client)
	// The fake tracker has no resourceVersions: a Pod created before the runner's watch starts
	// would be missed, so Pods are created only once it is registered.
	c.Client.PrependWatchReactor("pods", func(action k8stesting.Action) (bool, watch.Interface, error) {
		w, err := c.Client.Tracker().Watch(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, action.GetNamespace())
		c.watchOnce.Do(func() { close(c.podsWatching) })
		if err != nil {
			return true, nil, err
		}
		return true, newGatedWatch(w, c.podGate), nil
	})
	c.Client.PrependReactor("get", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "log" {
			return false, nil, nil
		}
		return true, &runtime.Unknown{Raw: c.scenario.Log}, nil
	})
	jobs, err := c.Client.BatchV1().Jobs(Namespace).Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer jobs.Stop()
		for {
			select {
			case <-c.stop:
				return
			case ev, ok := <-jobs.ResultChan():
				if !ok {
					return
				}
				job, isJob := ev.Object.(*batchv1.Job)
				switch {
				case isJob && ev.Type == watch.Added:
					c.wg.Add(1)
					go func() { defer c.wg.Done(); c.runJob(job) }()
				case isJob && ev.Type == watch.Deleted && !c.scenario.KeepPods:
					// The garbage collector: a deleted Job's Pod goes too (background propagation).
					// Straight through the tracker: a call through the clientset would run the reactor
					// chain, which tests may be prepending to meanwhile (client-go's fake does not lock it).
					c.mu.Lock()
					pod, ok := c.pods[job.UID]
					c.mu.Unlock()
					if ok {
						_ = c.Client.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace, pod)
					}
				}
			}
		}
	}()
	t.Cleanup(c.Stop)
	return c
}

// Stop ends the controller's goroutines; the test's cleanup calls it.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.wg.Wait()
}

func (c *Cluster) runJob(job *batchv1.Job) {
	ctx := context.Background()
	select {
	case <-c.podsWatching:
	case <-c.stop:
		return
	}
	// The Job controller names a Job's Pod after it with a random suffix: the first Job of a name
	// gets -abcde here, one made under that name again another.
	podName := job.Name + "-abcde"
	c.mu.Lock()
	if n := c.jobs[job.Name]; n > 1 {
		podName = fmt.Sprintf("%s-r%04d", job.Name, n-1)
	}
	c.pods[job.UID] = podName
	c.mu.Unlock()
	for i, ev := range c.scenario.Events {
		ev.Namespace = Namespace
		ev.Name = fmt.Sprintf("%s.%d", job.Name, i)
		ev.UID = types.UID("uid-" + ev.Name)
		ev.InvolvedObject.Name = podName
		if ev.InvolvedObject.Kind == "Job" {
			ev.InvolvedObject.Name = job.Name
		}
		if _, err := c.Client.CoreV1().Events(Namespace).Create(ctx, &ev, metav1.CreateOptions{}); err != nil {
			c.t.Errorf("create event: %v", err)
		}
	}
	if c.scenario.NoPod {
		return
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: Namespace, Labels: job.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))}},
		Spec:   *job.Spec.Template.Spec.DeepCopy(),
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	pod, err := c.Client.CoreV1().Pods(Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return
	}
	for _, step := range c.scenario.Steps {
		pod = pod.DeepCopy()
		step(pod)
		if pod, err = c.Client.CoreV1().Pods(Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			return // deleted by the runner meanwhile
		}
	}
}

// Created lists the resources of the objects created so far (configmaps, jobs), from the action log.
func (c *Cluster) Created() []string {
	var out []string
	for _, a := range c.Client.Actions() {
		if r := a.GetResource().Resource; a.GetVerb() == "create" && (r == "configmaps" || r == "jobs") {
			out = append(out, r)
		}
	}
	return out
}

// Leftovers lists the ConfigMaps and Jobs still in the namespace. The fake ignores dry-run, so
// doctor's dry-run ConfigMap is not counted.
func (c *Cluster) Leftovers() []string {
	var names []string
	ctx := context.Background()
	cms, _ := c.Client.CoreV1().ConfigMaps(Namespace).List(ctx, metav1.ListOptions{})
	for _, cm := range cms.Items {
		if cm.Name != "gkexec-doctor-dry-run" {
			names = append(names, "configmap/"+cm.Name)
		}
	}
	jobs, _ := c.Client.BatchV1().Jobs(Namespace).List(ctx, metav1.ListOptions{})
	for _, j := range jobs.Items {
		names = append(names, "job/"+j.Name)
	}
	return names
}

// Pod state steps.

// ScheduledOn binds the Pod to node.
func ScheduledOn(node string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.NodeName = node
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	}
}

// Running starts the sandbox container.
func Running(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
}

// TerminatedWith ends the container with reason and exit code, and the Pod as Failed.
func TerminatedWith(reason string, code int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodFailed
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code}}}}
	}
}

// Waiting keeps the container waiting for reason.
func Waiting(reason, msg string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, Image: p.Spec.Containers[0].Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}
	}
}

// Unschedulable marks the Pod unschedulable with the scheduler's message.
func Unschedulable(msg string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: msg}}
	}
}

// Log builds a container log the way the sandbox's entrypoint writes it, with the wire's own
// framing (internal/wire): O stdout, E stderr, F file header, D file data, X the end record.
type Log struct{ bytes.Buffer }

// End is the entrypoint's end record.
type End = wire.End

// Record appends one raw record.
func (l *Log) Record(tag wire.Tag, payload []byte) *Log {
	l.Write(wire.Frame(tag, payload))
	return l
}

// Out appends stdout; Err stderr.
func (l *Log) Out(s string) *Log { return l.Record(wire.TagStdout, []byte(s)) }
func (l *Log) Err(s string) *Log { return l.Record(wire.TagStderr, []byte(s)) }

// File appends an output file.
func (l *Log) File(path string, data []byte) *Log {
	l.Write(wire.FrameJSON(wire.TagFile, wire.FileHeader{Path: path, Size: int64(len(data))}))
	return l.Record(wire.TagData, data)
}

// End appends the end record and returns the whole log.
func (l *Log) End(e End) []byte {
	l.Write(wire.FrameJSON(wire.TagEnd, e))
	return l.Bytes()
}

// Now is a convenience for End records: seconds since the epoch.
func Now() float64 { return float64(time.Now().UnixNano()) / 1e9 }
