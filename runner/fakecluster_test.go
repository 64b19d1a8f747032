package runner

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
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
)

// fakeCluster stands in for the Job controller and the kubelet on a fake clientset: for every
// Job it creates a Pod and walks it through the states a scenario chooses, and it serves the
// scenario's container log. What it cannot stand in for is proven on the real cluster (test/e2e).
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

// scenario decides what happens to an execution's Pod.
type scenario struct {
	// pod mutates the new Pod's status in steps; each step is applied as a status update.
	steps []func(*corev1.Pod)
	// log is the container log; nil means the log stream never ends (until its context does).
	log []byte
	// logErr is returned by the log request instead.
	logErr error
	// noPod: the Job never gets a Pod (e.g. quota); events carries what the controller says.
	noPod  bool
	events []corev1.Event
}

func newFakeCluster(t *testing.T, sc scenario, objects ...runtime.Object) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{
		t: t, client: fake.NewSimpleClientset(objects...), scenario: sc, ns: "sandbox",
		podsWatching: make(chan struct{}), stop: make(chan struct{}),
	}
	// Register the Pod watch before saying it exists: the fake tracker has no resourceVersions,
	// so anything created before the watch would be missed.
	fc.client.PrependWatchReactor("pods", func(action k8stesting.Action) (bool, watch.Interface, error) {
		w, err := fc.client.Tracker().Watch(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, action.GetNamespace())
		fc.watchOnce.Do(func() { close(fc.podsWatching) })
		return true, w, err
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
				if job, isJob := ev.Object.(*batchv1.Job); isJob && ev.Type == watch.Added {
					fc.wg.Add(1)
					go func() { defer fc.wg.Done(); fc.runJob(job) }()
				}
			}
		}
	}()
	t.Cleanup(fc.close)
	return fc
}

func (fc *fakeCluster) close() {
	select {
	case <-fc.stop:
	default:
		close(fc.stop)
	}
	fc.wg.Wait()
}

func (fc *fakeCluster) runJob(job *batchv1.Job) {
	ctx := context.Background()
	<-fc.podsWatching
	for _, ev := range fc.scenario.events {
		ev := ev
		ev.Namespace = fc.ns
		ev.Name = fmt.Sprintf("%s.%d", job.Name, time.Now().UnixNano())
		ev.UID = types.UID("uid-" + ev.Name)
		if ev.InvolvedObject.Kind == "Job" {
			ev.InvolvedObject.Name = job.Name
		} else {
			ev.InvolvedObject.Name = job.Name + "-abcde"
		}
		if _, err := fc.client.CoreV1().Events(fc.ns).Create(ctx, &ev, metav1.CreateOptions{}); err != nil {
			fc.t.Errorf("create event: %v", err)
		}
	}
	if fc.scenario.noPod {
		return
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-abcde", Namespace: fc.ns, Labels: job.Spec.Template.Labels},
		Spec:       *job.Spec.Template.Spec.DeepCopy(),
		Status:     corev1.PodStatus{Phase: corev1.PodPending},
	}
	pod, err := fc.client.CoreV1().Pods(fc.ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		fc.t.Errorf("create pod: %v", err)
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

// runner returns a Runner on the fake cluster whose log requests get the scenario's log.
func (fc *fakeCluster) runner(o Options) *Runner {
	fc.t.Helper()
	o.Namespace = fc.ns
	o.Client = fc.client
	r, err := New(o)
	if err != nil {
		fc.t.Fatal(err)
	}
	r.killGrace, r.exitGrace = 200*time.Millisecond, 500*time.Millisecond
	r.openLogs = func(ctx context.Context, pod string, _ *corev1.PodLogOptions) (io.ReadCloser, error) {
		if fc.scenario.logErr != nil {
			return nil, fc.scenario.logErr
		}
		if fc.scenario.log == nil {
			return blockingReader{ctx}, nil
		}
		return io.NopCloser(bytes.NewReader(fc.scenario.log)), nil
	}
	fc.t.Cleanup(func() { _ = r.Close() })
	return r
}

// leftovers lists the runner's objects still in the fake cluster.
func (fc *fakeCluster) leftovers() []string {
	var names []string
	ctx := context.Background()
	cms, _ := fc.client.CoreV1().ConfigMaps(fc.ns).List(ctx, metav1.ListOptions{})
	for _, c := range cms.Items {
		names = append(names, "configmap/"+c.Name)
	}
	jobs, _ := fc.client.BatchV1().Jobs(fc.ns).List(ctx, metav1.ListOptions{})
	for _, j := range jobs.Items {
		names = append(names, "job/"+j.Name)
	}
	return names
}

type blockingReader struct{ ctx context.Context }

func (b blockingReader) Read([]byte) (int, error) { <-b.ctx.Done(); return 0, b.ctx.Err() }
func (b blockingReader) Close() error             { return nil }

// Pod state steps.
func scheduledOn(node string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.NodeName = node
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	}
}

func running(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
}

func terminatedWith(reason string, code int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodFailed
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code}}}}
	}
}

func waiting(reason, msg string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, Image: p.Spec.Containers[0].Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}
	}
}

func unschedulable(msg string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: msg}}
	}
}

// framed builds a container log the way sandbox/entrypoint.py writes it.
type framed struct{ bytes.Buffer }

func (f *framed) rec(tag byte, payload []byte) *framed {
	f.WriteByte(tag)
	f.WriteByte(':')
	f.WriteString(base64.StdEncoding.EncodeToString(payload))
	f.WriteByte('\n')
	return f
}

func (f *framed) out(s string) *framed { return f.rec('O', []byte(s)) }
func (f *framed) err(s string) *framed { return f.rec('E', []byte(s)) }
func (f *framed) file(path string, data []byte) *framed {
	h, _ := json.Marshal(fileHeader{Path: path, Size: int64(len(data))})
	f.rec('F', h)
	return f.rec('D', data)
}
func (f *framed) end(e endRecord) []byte {
	b, _ := json.Marshal(e)
	f.rec('X', b)
	return f.Bytes()
}

type ioReadCloser = io.ReadCloser

func nopCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
