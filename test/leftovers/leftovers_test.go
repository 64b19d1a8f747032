package leftovers

import (
	"context"
	"slices"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gkexec/gkexec/runner"
)

func meta(name, executionID string, extra map[string]string) metav1.ObjectMeta {
	l := map[string]string{runner.LabelManagedBy: runner.ManagedByValue}
	if executionID != "" {
		l[runner.LabelExecutionID] = executionID
	}
	for k, v := range extra {
		l[k] = v
	}
	return metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: l}
}

func objects() []runtime.Object {
	terminating := meta("gkexec-b", "b", nil)
	terminating.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	terminating.Finalizers = []string{"test"} // the fake tracker keeps only objects that may linger
	return []runtime.Object{
		&batchv1.Job{ObjectMeta: meta("gkexec-a", "a", nil)},
		&corev1.ConfigMap{ObjectMeta: meta("gkexec-a", "a", nil)},
		&corev1.Pod{ObjectMeta: terminating, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		&corev1.Pod{ObjectMeta: meta("pool-idle", "", map[string]string{runner.LabelPoolState: runner.PoolStateIdle})},
		&corev1.Pod{ObjectMeta: meta("pool-claimed", "c", map[string]string{runner.LabelPoolState: runner.PoolStateClaimed}),
			Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "not-the-runners", Namespace: "ns"}},
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset(objects()...)
	for _, tc := range []struct {
		ids  []string
		want []string
	}{
		{nil, []string{"ConfigMap/gkexec-a", "Job/gkexec-a", "Pod/gkexec-b(Running,terminating)", "Pod/pool-claimed(Running)"}},
		{[]string{"a"}, []string{"ConfigMap/gkexec-a", "Job/gkexec-a"}},
		{[]string{"b", "c"}, []string{"Pod/gkexec-b(Running,terminating)", "Pod/pool-claimed(Running)"}},
		{[]string{"none"}, nil},
	} {
		got, err := List(context.Background(), client, "ns", tc.ids...)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("List(%v) = %v, %v; want %v", tc.ids, got, err, tc.want)
		}
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset(objects()...)
	if left, err := Wait(context.Background(), client, "ns", time.Second, "none"); err != nil || left != nil {
		t.Errorf("nothing of the execution: %v, %v; want nil, nil", left, err)
	}
	left, err := Wait(context.Background(), client, "ns", time.Second, "a")
	if want := []string{"ConfigMap/gkexec-a", "Job/gkexec-a"}; !slices.Equal(left, want) || err == nil ||
		err.Error() != "left in namespace ns after 1s: ConfigMap/gkexec-a, Job/gkexec-a" {
		t.Errorf("left %v, err %v; want %v and an error naming them", left, err, want)
	}
}
