package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/runner"
)

// fakeCluster plays the Job controller and the kubelet on a fake clientset, so that the server
// is tested on a real runner.Runner: every Job gets a Pod that walks through the scenario's
// states, and log requests get the scenario's framed log (the sandbox entrypoint's protocol).
type fakeCluster struct {
	t        *testing.T
	client   *fake.Clientset
	scenario scenario
	ns       string

	podsWatching chan struct{}
	watchOnce    sync.Once
	wg           sync.WaitGroup
	stop         chan struct{}
}

type scenario struct {
	// steps are applied to the new Pod's status, one update each.
	steps []func(*corev1.Pod)
	// log is the container log.
	log []byte
	// noPod: the Job never gets a Pod, so the execution waits until it is cancelled or its
	// StartTimeout passes. Tests use it to hold executions in flight.
	noPod bool
}

const testNamespace = "sandbox"

func newFakeCluster(t *testing.T, sc scenario) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{t: t, client: fake.NewSimpleClientset(), scenario: sc, ns: testNamespace,
		podsWatching: make(chan struct{}), stop: make(chan struct{})}
	// The fake tracker has no resourceVersions: a Pod created before the runner's watch starts
	// would be missed, so Pods wait for it.
	fc.client.PrependWatchReactor("pods", func(action k8stesting.Action) (bool, watch.Interface, error) {
		w, err := fc.client.Tracker().Watch(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, action.GetNamespace())
		fc.watchOnce.Do(func() { close(fc.podsWatching) })
		return true, w, err
	})
	fc.client.PrependReactor("get", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "log" {
			return false, nil, nil
		}
		return true, &runtime.Unknown{Raw: fc.scenario.log}, nil
	})
	fc.client.PrependReactor("create", "selfsubjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
		review.Status.Allowed = true
		return true, review, nil
	})
	jobs, err := fc.client.BatchV1().Jobs(fc.ns).Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fc.wg.Add(1)
	go func() {
		defer fc.wg.Done()
		defer jobs.Stop()
		for {
			select {
			case <-fc.stop:
				return
			case ev, ok := <-jobs.ResultChan():
				if !ok {
					return
				}
				if job, isJob := ev.Object.(*batchv1.Job); isJob && ev.Type == watch.Added && !fc.scenario.noPod {
					fc.wg.Add(1)
					go func() { defer fc.wg.Done(); fc.runJob(job) }()
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(fc.stop)
		fc.wg.Wait()
	})
	return fc
}

func (fc *fakeCluster) runJob(job *batchv1.Job) {
	ctx := context.Background()
	select {
	case <-fc.podsWatching:
	case <-fc.stop:
		return
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-abcde", Namespace: fc.ns, Labels: job.Spec.Template.Labels},
		Spec:       *job.Spec.Template.Spec.DeepCopy(),
		Status:     corev1.PodStatus{Phase: corev1.PodPending},
	}
	pod, err := fc.client.CoreV1().Pods(fc.ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return
	}
	for _, step := range fc.scenario.steps {
		pod = pod.DeepCopy()
		step(pod)
		if pod, err = fc.client.CoreV1().Pods(fc.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			return // deleted by the runner meanwhile
		}
	}
}

// runner returns a runner.Runner on the fake cluster, closed at the end of the test.
func (fc *fakeCluster) runner(o runner.Options) *runner.Runner {
	fc.t.Helper()
	o.Namespace, o.Client = fc.ns, fc.client
	r, err := runner.New(o)
	if err != nil {
		fc.t.Fatal(err)
	}
	fc.t.Cleanup(func() { _ = r.Close() })
	return r
}

// created lists the objects the runner created, from the fake's action log.
func (fc *fakeCluster) created() []string {
	var out []string
	for _, a := range fc.client.Actions() {
		if a.GetVerb() == "create" && (a.GetResource().Resource == "configmaps" || a.GetResource().Resource == "jobs") {
			out = append(out, a.GetResource().Resource)
		}
	}
	return out
}

// leftovers lists the runner's objects still in the fake cluster.
func (fc *fakeCluster) leftovers() []string {
	var names []string
	ctx := context.Background()
	cms, _ := fc.client.CoreV1().ConfigMaps(fc.ns).List(ctx, metav1.ListOptions{})
	for _, c := range cms.Items {
		if c.Name != "gkexec-doctor-dry-run" { // the fake ignores dry-run
			names = append(names, "configmap/"+c.Name)
		}
	}
	jobs, _ := fc.client.BatchV1().Jobs(fc.ns).List(ctx, metav1.ListOptions{})
	for _, j := range jobs.Items {
		names = append(names, "job/"+j.Name)
	}
	return names
}

// jobCount is how many Jobs exist now.
func (fc *fakeCluster) jobCount() int {
	jobs, _ := fc.client.BatchV1().Jobs(fc.ns).List(context.Background(), metav1.ListOptions{})
	return len(jobs.Items)
}

// Pod state steps.
func scheduled(p *corev1.Pod) {
	p.Spec.NodeName = "node-1"
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
}

func running(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "sandbox",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
}

func terminated(reason string, code int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodFailed
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "sandbox",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code}}}}
	}
}

func waiting(reason string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "sandbox", Image: p.Spec.Containers[0].Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "image not present"}}}}
	}
}

// framed writes a container log the way runner/sandbox/entrypoint.py does: "<tag>:<base64>" lines,
// O stdout, E stderr, F file header, D file data, X the end record.
type framed struct{ bytes.Buffer }

func (f *framed) rec(tag byte, payload []byte) *framed {
	fmt.Fprintf(&f.Buffer, "%c:%s\n", tag, base64.StdEncoding.EncodeToString(payload))
	return f
}

func (f *framed) out(s string) *framed { return f.rec('O', []byte(s)) }
func (f *framed) err(s string) *framed { return f.rec('E', []byte(s)) }
func (f *framed) file(path string, data []byte) *framed {
	h, _ := json.Marshal(map[string]any{"path": path, "size": len(data)})
	return f.rec('F', h).rec('D', data)
}

func (f *framed) end(exitCode int, timedOut bool) []byte {
	now := float64(time.Now().UnixNano()) / 1e9
	b, _ := json.Marshal(map[string]any{"exit_code": exitCode, "timed_out": timedOut,
		"started_at": now - 0.25, "finished_at": now, "max_rss_kib": 1024})
	return f.rec('X', b).Bytes()
}

// ok is the usual lifecycle of a Pod that runs.
var ok = []func(*corev1.Pod){scheduled, running}
