package gc

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// TestGCRemovesClaimedSandboxesThatEndedByThemselves: a claimed warm Pod is garbage once it ended
// by itself — its container restarted (its entrypoint left: nobody deleted it after its
// execution, its holder stopped pinging it) or its Pod ended (its deadline) — however young; a
// claimed Pod still running is not, however long ago another machine's clock says it was claimed
// (it may be held ready); a one-shot execution's Pod older than --older-than is, as its Job would
// be. Idle pool Pods are the Deployment's.
func TestGCRemovesClaimedSandboxesThatEndedByThemselves(t *testing.T) {
	t.Parallel()
	now := time.Now()
	pod := func(name, state string, restarts int32, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "sb",
			CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Hour)),
			Labels:            map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelComponent: podspec.ComponentSandbox, podspec.LabelPool: "default", podspec.LabelPoolState: state},
			Annotations:       map[string]string{podspec.AnnotationClaimedAt: now.Add(-time.Hour).UTC().Format(time.RFC3339)}},
			Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: podspec.ContainerName, RestartCount: restarts}}}}
	}
	orphan := pod("orphaned", podspec.PoolStateClaimed, 0, corev1.PodRunning)
	orphan.Labels[podspec.LabelExecutionID] = "e1" // a one-shot execution whose runner died, claimed an hour ago
	client := fake.NewSimpleClientset(
		pod("idle-old", podspec.PoolStateIdle, 0, corev1.PodRunning),
		orphan,
		pod("left", podspec.PoolStateClaimed, 1, corev1.PodRunning),
		pod("expired", podspec.PoolStateClaimed, 0, corev1.PodFailed),
		pod("in-use", podspec.PoolStateClaimed, 0, corev1.PodRunning),
	)
	found, err := Collect(context.Background(), client, "sb", 15*time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	deleted := map[string]bool{}
	for _, l := range found {
		if l.Kind != "Pod" || !l.Deleted {
			t.Errorf("%+v", l)
		}
		deleted[l.Name] = true
	}
	if !deleted["left"] || !deleted["expired"] || !deleted["orphaned"] || deleted["idle-old"] || deleted["in-use"] || len(deleted) != 3 {
		t.Errorf("deleted %v, want left, expired and orphaned only", deleted)
	}
	left, _ := client.CoreV1().Pods("sb").List(context.Background(), metav1.ListOptions{})
	if len(left.Items) != 2 {
		t.Errorf("%d pods left, want the idle one and the one in use", len(left.Items))
	}
}

// TestGCJudgesSessionsByWhatTheirSandboxSays: a session's sandbox is garbage once the sandbox ended
// the session itself (a pool Pod's container left and was restarted; a cold session's Job
// finished), and never because a timestamp some runner wrote says its terms are over: the sandbox
// enforces them on its own clock.
func TestGCJudgesSessionsByWhatTheirSandboxSays(t *testing.T) {
	t.Parallel()
	now := time.Now()
	stamp := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339) }
	session := func(name string, restarts int32, lastUsed, expires time.Duration) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "sb",
			CreationTimestamp: metav1.NewTime(now.Add(-3 * time.Hour)),
			Labels: map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelComponent: podspec.ComponentSandbox, podspec.LabelPool: "default",
				podspec.LabelPoolState: podspec.PoolStateClaimed, podspec.LabelSession: name},
			Annotations: map[string]string{podspec.AnnotationClaimedAt: stamp(-3 * time.Hour), podspec.AnnotationSessionIdleTimeout: "10m0s",
				podspec.AnnotationSessionLastUsed: stamp(lastUsed), podspec.AnnotationSessionExpiresAt: stamp(expires)}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: podspec.ContainerName, RestartCount: restarts}}}}
	}
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "gkexec-s-old", Namespace: "sb", CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Hour)),
		Labels:      map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelSession: "old"},
		Annotations: map[string]string{podspec.AnnotationSessionExpiresAt: stamp(time.Hour)}},
		Status: batchv1.JobStatus{Succeeded: 1}}
	live := job.DeepCopy()
	live.Name, live.Labels[podspec.LabelSession], live.Annotations[podspec.AnnotationSessionExpiresAt] = "gkexec-s-live", "live", stamp(-time.Hour)
	live.Status = batchv1.JobStatus{}
	client := fake.NewSimpleClientset(
		session("in-use", 0, -time.Minute, time.Hour),
		session("ended", 1, -time.Minute, time.Hour),
		session("idle-by-another-clock", 0, -11*time.Minute, -time.Second),
		job, live,
	)
	found, err := Collect(context.Background(), client, "sb", 15*time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	deleted := map[string]bool{}
	for _, l := range found {
		deleted[l.Name] = l.Deleted
	}
	want := map[string]bool{"ended": true, "gkexec-s-old": true}
	if len(deleted) != len(want) {
		t.Errorf("deleted %v, want %v (not what the sandbox has not ended, whatever the annotations say)", deleted, want)
	}
	for name := range want {
		if !deleted[name] {
			t.Errorf("%s not deleted: %v", name, deleted)
		}
	}
}

// TestGCKeepsTheMarkerOfALiveSession: a session's marker ConfigMap stays while the session has a
// sandbox, however old; one whose opening died half-way goes once it is old.
func TestGCKeepsTheMarkerOfALiveSession(t *testing.T) {
	t.Parallel()
	old := metav1.NewTime(time.Now().Add(-time.Hour))
	marker := func(id string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: podspec.SessionMarkerName(id), Namespace: "sb", CreationTimestamp: old,
			Labels: map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelComponent: podspec.ComponentSession, podspec.LabelSession: id}}}
	}
	live := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pool-a", Namespace: "sb", CreationTimestamp: old,
		Labels: map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelSession: "alive"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	client := fake.NewSimpleClientset(marker("alive"), marker("orphan"), live)
	found, err := Collect(context.Background(), client, "sb", 15*time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range found {
		names = append(names, l.Kind+"/"+l.Name)
	}
	if len(names) != 1 || names[0] != "ConfigMap/gkexec-session-orphan" {
		t.Errorf("collected %v, want only the orphan's marker", names)
	}
}

// TestGCTakesAColdSessionsEndFromItsPod: a cold session ends when its sandbox's Pod does; the Job
// controller counts that in the Job's status some time later (seconds, on a loaded node). gc judges
// by the Pod as the janitor does, so that a gc run right after the sandbox ended the session removes
// it (e2e stage 12 ran gc 80 ms after the Pod ended and found nothing). A Job whose Pod still runs,
// or that has no Pod yet, stays.
func TestGCTakesAColdSessionsEndFromItsPod(t *testing.T) {
	t.Parallel()
	now := time.Now()
	job := func(session string, uid types.UID) *batchv1.Job {
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "gkexec-s-" + session, Namespace: "sb", UID: uid, CreationTimestamp: metav1.NewTime(now.Add(-time.Minute)),
			Labels: map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelSession: session}}}
	}
	pod := func(j *batchv1.Job, owner types.UID, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-x", Namespace: "sb",
			Labels:          map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelSession: j.Labels[podspec.LabelSession]},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: owner, Controller: ptr.To(true)}}},
			Status: corev1.PodStatus{Phase: phase}}
	}
	ended, running, starting, other := job("ended", "u1"), job("running", "u2"), job("starting", "u3"), job("reopened", "u4")
	client := fake.NewSimpleClientset(ended, running, starting, other,
		pod(ended, "u1", corev1.PodFailed), pod(running, "u2", corev1.PodRunning),
		pod(other, "an-earlier-job", corev1.PodSucceeded)) // an earlier Job's Pod under the same session ID
	found, err := Collect(context.Background(), client, "sb", 15*time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	deleted := map[string]bool{}
	for _, l := range found {
		deleted[l.Kind+" "+l.Name] = l.Deleted
	}
	if !deleted["Job gkexec-s-ended"] || len(deleted) != 1 {
		t.Errorf("deleted %v, want the Job whose Pod ended only (not one whose Pod runs, has none yet, or is another Job's)", deleted)
	}
}
