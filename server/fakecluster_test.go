package server

import (
	"context"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner"
)

// The server is tested on a real runner.Runner over internal/fakecluster (a Job controller and
// kubelet on the fake clientset); these are the short names its tests use.

const testNamespace = fakecluster.Namespace

type scenario struct {
	steps []func(*corev1.Pod)
	log   []byte
	// noPod: Jobs never get a Pod, so executions wait until cancelled or StartTimeout passes;
	// tests use it to hold executions in flight.
	noPod bool
}

type fakeCluster struct {
	*fakecluster.Cluster
	client *fake.Clientset
	t      *testing.T
}

func newFakeCluster(t *testing.T, sc scenario) *fakeCluster {
	t.Helper()
	c := fakecluster.New(t, fakecluster.Scenario{Steps: sc.steps, Log: sc.log, NoPod: sc.noPod})
	// Readiness asks SelfSubjectAccessReviews; the fake answers "allowed" unless a test says otherwise.
	c.Client.PrependReactor("create", "selfsubjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview).DeepCopy()
		review.Status.Allowed = true
		return true, review, nil
	})
	return &fakeCluster{Cluster: c, client: c.Client, t: t}
}

// runner returns a runner.Runner on the fake cluster, closed at the end of the test.
func (fc *fakeCluster) runner(o runner.Options) *runner.Runner {
	fc.t.Helper()
	o.Namespace, o.Client = testNamespace, fc.client
	r, err := runner.New(o)
	if err != nil {
		fc.t.Fatal(err)
	}
	fc.t.Cleanup(func() { _ = r.Close() })
	return r
}

func (fc *fakeCluster) created() []string   { return fc.Created() }
func (fc *fakeCluster) leftovers() []string { return fc.Leftovers() }

// jobCount is how many Jobs exist now.
func (fc *fakeCluster) jobCount() int {
	jobs, _ := fc.client.BatchV1().Jobs(testNamespace).List(context.Background(), metav1.ListOptions{})
	return len(jobs.Items)
}

// Pod state steps.
var (
	scheduled  = fakecluster.ScheduledOn("node-1")
	running    = fakecluster.Running
	terminated = fakecluster.TerminatedWith
)

func waiting(reason string) func(*corev1.Pod) {
	return fakecluster.Waiting(reason, "image not present")
}

// ok is the usual lifecycle of a Pod that runs.
var ok = []func(*corev1.Pod){scheduled, running}

// framed writes a container log the way the sandbox entrypoint does (internal/wire).
type framed struct{ fakecluster.Log }

func (f *framed) rec(tag wire.Tag, payload []byte) *framed { f.Record(tag, payload); return f }
func (f *framed) out(s string) *framed                     { f.Out(s); return f }
func (f *framed) err(s string) *framed                     { f.Err(s); return f }
func (f *framed) file(path string, data []byte) *framed    { f.File(path, data); return f }

func (f *framed) end(exitCode int, timedOut bool) []byte {
	now := fakecluster.Now()
	return f.End(fakecluster.End{ExitCode: exitCode, TimedOut: timedOut, StartedAt: now - 0.25, FinishedAt: now, MaxRSSKiB: 1024})
}
