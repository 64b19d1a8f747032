package runner

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
)

// refused is what a client sees while the API server restarts.
var refused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// failDeletes makes the first n deletes of resource fail with err (n < 0: all of them).
func failDeletes(fc *fakeCluster, resource string, n int, err error) {
	var mu sync.Mutex
	fc.client.PrependReactor("delete", resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if n == 0 {
			return false, nil, nil
		}
		n--
		return true, nil, err
	})
}

func TestCleanupRetriesARestartingAPIServer(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running},
		log: new(framed).out("ok").end(endRecord{})})
	failDeletes(fc, "jobs", 2, refused)
	failDeletes(fc, "configmaps", 2, refused)
	r := fc.runner(Options{})
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if len(res.LeftBehind) != 0 || res.Timings.CleanedUp.IsZero() || r.CleanupFailures() != 0 {
		t.Errorf("left behind %v, cleaned up at %v, failures %d; want everything deleted on the third try",
			res.LeftBehind, res.Timings.CleanedUp, r.CleanupFailures())
	}
	if left := fc.leftovers(); len(left) != 0 {
		t.Errorf("still in the namespace: %v", left)
	}
}

func TestCleanupThatOutlastsCleanupTimeoutIsNamedInTheResult(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running},
		log: new(framed).out("ok").end(endRecord{})})
	failDeletes(fc, "jobs", -1, refused)
	r := fc.runner(Options{CleanupTimeout: 300 * time.Millisecond})
	res, err := r.Execute(context.Background(), Request{Code: "x", ExecutionID: "stuck"})
	if err != nil || string(res.Stdout) != "ok" {
		t.Fatalf("Execute: %v, stdout %q; a failed cleanup is reported, not an error", err, res.Stdout)
	}
	if !slices.Equal(res.LeftBehind, []string{"job/gkexec-stuck"}) {
		t.Errorf("LeftBehind = %v, want [job/gkexec-stuck]", res.LeftBehind)
	}
	if !res.Timings.CleanedUp.IsZero() {
		t.Errorf("CleanedUp = %v, want zero: the Job is still there", res.Timings.CleanedUp)
	}
	if n := r.CleanupFailures(); n != 1 {
		t.Errorf("CleanupFailures = %d, want 1", n)
	}
	if left := fc.leftovers(); !slices.Equal(left, []string{"job/gkexec-stuck"}) {
		t.Errorf("in the namespace: %v, want only the Job whose deletes failed", left)
	}
}

// TestAmbiguousJobCreateStillDeletesTheJob: a create that times out may have been carried out;
// the runner cannot know, so it deletes the Job by name.
func TestAmbiguousJobCreateStillDeletesTheJob(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}})
	fc.client.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject()
		if err := fc.client.Tracker().Create(schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}, obj, a.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewTimeoutError("request did not complete within the allowed duration", 0)
	})
	r := fc.runner(Options{})
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if !errors.Is(err, ErrCluster) {
		t.Errorf("Execute: %v, want ErrCluster", err)
	}
	if len(res.LeftBehind) != 0 {
		t.Errorf("LeftBehind = %v", res.LeftBehind)
	}
	if left := fc.leftovers(); len(left) != 0 {
		t.Errorf("still in the namespace: %v; the Job the timed-out create made was not deleted", left)
	}
}
