package track

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner/internal/podspec"
)

func sandboxPod(name, execution string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "sb", UID: types.UID("uid-" + name),
		Labels: map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelComponent: podspec.ComponentSandbox,
			podspec.LabelExecutionID: execution}}}
}

// await waits for the tracker to show what want says, failing after a generous bound.
func await(t *testing.T, tr *Tracker, what string, want func(*corev1.Pod, []*corev1.Event) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		pod, _, events, _ := tr.Snapshot()
		if want(pod, events) {
			return
		}
		select {
		case <-tr.Wake():
		case <-deadline:
			t.Fatalf("the tracker never showed %s", what)
		}
	}
}

// TestHubRoutesEachChangeToItsSandbox: a Pod reaches the tracker of its execution (by label) or of
// its name (a warm sandbox), an event the tracker of the execution its object is named after;
// nothing reaches another's tracker.
func TestHubRoutesEachChangeToItsSandbox(t *testing.T) {
	t.Parallel()
	client, h := startHub(t)
	ctx := context.Background()
	cold, warm, other := h.Track("e1"), h.Track(PodKey("pool-a")), h.Track("e2")

	if _, err := client.CoreV1().Pods("sb").Create(ctx, sandboxPod("gkexec-e1-x", "e1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	await(t, cold, "its Job's Pod", func(p *corev1.Pod, _ []*corev1.Event) bool { return p != nil && p.Name == "gkexec-e1-x" })
	if _, err := client.CoreV1().Pods("sb").Create(ctx, sandboxPod("pool-a", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	await(t, warm, "its pool Pod", func(p *corev1.Pod, _ []*corev1.Event) bool { return p != nil && p.Name == "pool-a" })
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "w1", Namespace: "sb", UID: "ev1"}, Type: corev1.EventTypeWarning,
		Reason: "FailedCreate", InvolvedObject: corev1.ObjectReference{Kind: "Job", Name: "gkexec-e1"}}
	if _, err := client.CoreV1().Events("sb").Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	await(t, cold, "its Job's event", func(_ *corev1.Pod, events []*corev1.Event) bool { return len(events) == 1 })
	if pod, _, events, _ := other.Snapshot(); pod != nil || len(events) != 0 {
		t.Errorf("another execution's tracker saw pod %v and %d events", pod, len(events))
	}
	if got := len(h.Pods()); got != 2 {
		t.Errorf("the hub holds %d pods, want 2", got)
	}
}

// startHub starts a hub on a fake clientset in namespace sb; it closes when the test ends.
func startHub(t *testing.T) (*fake.Clientset, *Hub) {
	t.Helper()
	client := fake.NewSimpleClientset()
	h := NewHub()
	if err := h.Start(context.Background(), client, "sb"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return client, h
}

// jobPod is sandboxPod made by the Job of UID job.
func jobPod(name, execution string, job types.UID) *corev1.Pod {
	p := sandboxPod(name, execution)
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "gkexec-" + execution, UID: job, Controller: ptr.To(true)}}
	return p
}

// TestAnIDTrackedAgainFollowsEachJobsOwnPod: an execution ID used again while the previous Job's
// Pod is still going. The new tracker takes only its own Job's Pod — also one reported before its
// Job was known — and the previous tracker goes on following its own Pod to its end.
func TestAnIDTrackedAgainFollowsEachJobsOwnPod(t *testing.T) {
	t.Parallel()
	client, h := startHub(t)
	ctx := context.Background()
	first := h.TrackJob("e1")
	first.Own("job-1")
	pods := client.CoreV1().Pods("sb")
	if _, err := pods.Create(ctx, jobPod("gkexec-e1-a", "e1", "job-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	await(t, first, "its Job's Pod", func(p *corev1.Pod, _ []*corev1.Event) bool { return p != nil })

	second := h.TrackJob("e1") // the ID used again; its Job is not made yet
	if _, err := pods.Create(ctx, jobPod("gkexec-e1-b", "e1", "job-2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "gkexec-e1-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	await(t, first, "its own Pod's deletion", func(*corev1.Pod, []*corev1.Event) bool { _, gone, _, _ := first.Snapshot(); return gone })
	if pod, gone, _, _ := second.Snapshot(); pod != nil || gone {
		t.Fatalf("before its Job was known, the new tracker took pod %v (gone %v)", pod, gone)
	}
	second.Own("job-2")
	if pod, gone, _, _ := second.Snapshot(); pod == nil || pod.Name != "gkexec-e1-b" || gone {
		t.Errorf("once its Job is known, the new tracker has pod %v (gone %v), want gkexec-e1-b, reported before", pod, gone)
	}
	h.Untrack("e1", first)
	if _, err := pods.Create(ctx, jobPod("gkexec-e1-c", "e1", "job-3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_ = pods.Delete(ctx, "gkexec-e1-b", metav1.DeleteOptions{})
	await(t, second, "its own Pod's deletion", func(*corev1.Pod, []*corev1.Event) bool { _, gone, _, _ := second.Snapshot(); return gone })
	if pod, _, _, _ := second.Snapshot(); pod.Name != "gkexec-e1-b" {
		t.Errorf("the tracker followed %s, another Job's", pod.Name)
	}
}

// TestAnIDTrackedAgainTakesOnlyItsOwnObjectsEvents: the events of an execution ID's previous Job
// and Pod (a client retrying with the same ID) name the same execution; read as the new one's, a
// warning of the old Pod (FailedScheduling, an image pull) would fail the new execution with the
// old one's cause. The tracker takes the events of its own Job and Pod only.
func TestAnIDTrackedAgainTakesOnlyItsOwnObjectsEvents(t *testing.T) {
	t.Parallel()
	client, h := startHub(t)
	ctx := context.Background()
	first := h.TrackJob("e1")
	first.Own("job-1")
	pods := client.CoreV1().Pods("sb")
	if _, err := pods.Create(ctx, jobPod("gkexec-e1-a", "e1", "job-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	await(t, first, "its Job's Pod", func(p *corev1.Pod, _ []*corev1.Event) bool { return p != nil })
	h.Untrack("e1", first)
	second := h.TrackJob("e1")
	second.Own("job-2")
	if _, err := pods.Create(ctx, jobPod("gkexec-e1-b", "e1", "job-2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	await(t, second, "its Job's Pod", func(p *corev1.Pod, _ []*corev1.Event) bool { return p != nil && p.Name == "gkexec-e1-b" })
	warn := func(uid, kind, name string, obj types.UID) {
		t.Helper()
		ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "sb", UID: types.UID(uid)}, Type: corev1.EventTypeWarning,
			Reason: "Failed" + kind, InvolvedObject: corev1.ObjectReference{Kind: kind, Name: name, UID: obj}}
		if _, err := client.CoreV1().Events("sb").Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	warn("old-pod", "Pod", "gkexec-e1-a", "uid-gkexec-e1-a")
	warn("old-job", "Job", "gkexec-e1", "job-1")
	warn("own-job", "Job", "gkexec-e1", "job-2")
	warn("own-pod", "Pod", "gkexec-e1-b", "uid-gkexec-e1-b") // the last: once it is in, all are
	await(t, second, "its own Pod's event", func(_ *corev1.Pod, events []*corev1.Event) bool {
		for _, e := range events {
			if e.UID == "own-pod" {
				return true
			}
		}
		return false
	})
	_, _, events, _ := second.Snapshot()
	var got []string
	for _, e := range events {
		got = append(got, string(e.UID))
	}
	slices.Sort(got)
	if want := []string{"own-job", "own-pod"}; !slices.Equal(got, want) {
		t.Errorf("the tracker of the ID's second Job holds events %v, want only %v", got, want)
	}
}
