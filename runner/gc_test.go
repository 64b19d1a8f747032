package runner

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestCollectGarbageDeletesOnlyOldObjectsOfOurs(t *testing.T) {
	t.Parallel()
	meta := func(name string, age time.Duration, ours bool) metav1.ObjectMeta {
		m := metav1.ObjectMeta{Name: name, Namespace: "sb", CreationTimestamp: metav1.NewTime(time.Now().Add(-age))}
		if ours {
			m.Labels = map[string]string{LabelManagedBy: ManagedByValue, LabelExecutionID: name}
		}
		return m
	}
	client := fake.NewSimpleClientset(
		&batchv1.Job{ObjectMeta: meta("gkexec-old", time.Hour, true)},
		&corev1.ConfigMap{ObjectMeta: meta("gkexec-old", time.Hour, true)},
		&batchv1.Job{ObjectMeta: meta("gkexec-live", time.Minute, true)},
		&corev1.ConfigMap{ObjectMeta: meta("gkexec-live", time.Minute, true)},
		&batchv1.Job{ObjectMeta: meta("someone-elses", time.Hour, false)},
	)
	ctx := context.Background()

	found, err := CollectGarbage(ctx, client, "sb", 10*time.Minute, true)
	if err != nil || len(found) != 2 || found[0].Kind != "Job" || found[1].Kind != "ConfigMap" {
		t.Fatalf("dry run found %+v, %v; want the old Job then its ConfigMap", found, err)
	}
	if jobs, _ := client.BatchV1().Jobs("sb").List(ctx, metav1.ListOptions{}); len(jobs.Items) != 3 {
		t.Fatal("dry run deleted something")
	}

	if _, err := CollectGarbage(ctx, client, "sb", 10*time.Minute, false); err != nil {
		t.Fatal(err)
	}
	jobs, _ := client.BatchV1().Jobs("sb").List(ctx, metav1.ListOptions{})
	cms, _ := client.CoreV1().ConfigMaps("sb").List(ctx, metav1.ListOptions{})
	var left []string
	for _, j := range jobs.Items {
		left = append(left, "job/"+j.Name)
	}
	for _, c := range cms.Items {
		left = append(left, "cm/"+c.Name)
	}
	want := "job/gkexec-live job/someone-elses cm/gkexec-live"
	if got := join(left); got != want {
		t.Errorf("left %q, want %q", got, want)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}
