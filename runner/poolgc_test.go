package runner

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestGCRemovesClaimedWarmSandboxesOnly: a warm Pod claimed by a runner that died is garbage
// once its claim is older than --older-than, or once it ended; idle pool Pods are the
// Deployment's and stay, and so does a fresh claim of a live runner.
func TestGCRemovesClaimedWarmSandboxesOnly(t *testing.T) {
	t.Parallel()
	now := time.Now()
	pod := func(name, state string, claimedAgo time.Duration, phase corev1.PodPhase) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "sb",
			CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Hour)),
			Labels:            map[string]string{LabelManagedBy: ManagedByValue, LabelComponent: ComponentSandbox, LabelPool: "default", LabelPoolState: state}},
			Status: corev1.PodStatus{Phase: phase}}
		if state == PoolStateClaimed {
			p.Annotations = map[string]string{AnnotationClaimedAt: now.Add(-claimedAgo).UTC().Format(time.RFC3339)}
		}
		return p
	}
	client := fake.NewSimpleClientset(
		pod("idle-old", PoolStateIdle, 0, corev1.PodRunning),
		pod("orphaned", PoolStateClaimed, time.Hour, corev1.PodRunning),
		pod("expired", PoolStateClaimed, time.Minute, corev1.PodFailed),
		pod("in-use", PoolStateClaimed, time.Minute, corev1.PodRunning),
	)
	found, err := CollectGarbage(context.Background(), client, "sb", 15*time.Minute, false)
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
	if !deleted["orphaned"] || !deleted["expired"] || deleted["idle-old"] || deleted["in-use"] || len(deleted) != 2 {
		t.Errorf("deleted %v, want orphaned and expired only", deleted)
	}
	left, _ := client.CoreV1().Pods("sb").List(context.Background(), metav1.ListOptions{})
	if len(left.Items) != 2 {
		t.Errorf("%d pods left, want the idle one and the one in use", len(left.Items))
	}
}
