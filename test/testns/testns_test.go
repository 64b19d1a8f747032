package testns

import (
	"context"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func namespace(name string, age time.Duration, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations,
		CreationTimestamp: metav1.NewTime(time.Now().Add(-age))}}
}

func TestSweepStaleDeletesOnlyWhatAKilledRunLeft(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	old := StaleAfter + time.Minute
	dead := host + "/" + strconv.Itoa(math.MaxInt32) // no such process
	alive := owner()
	for _, tc := range []struct {
		ns    *corev1.Namespace
		swept bool
	}{
		{namespace("gkexec-e2e-tf-dead", old, map[string]string{OwnerAnnotation: dead}), true},
		{namespace("gkexec-agent-unowned", old, nil), true},
		{namespace("gkexec-chaos-bad-owner", old, map[string]string{OwnerAnnotation: "garbage"}), true},
		{namespace("gkexec-e2e-mf-young", StaleAfter-time.Minute, map[string]string{OwnerAnnotation: dead}), false},
		{namespace("gkexec-bench-session-young-unowned", time.Minute, nil), false},
		{namespace("gkexec-e2e-mf-running", old, map[string]string{OwnerAnnotation: alive}), false},
		{namespace("gkexec-e2e-tf-elsewhere", old, map[string]string{OwnerAnnotation: "another-" + host + "/1"}), false},
		{namespace("gkexec-e2e-tf-kept", old, map[string]string{OwnerAnnotation: dead, KeptAnnotation: "SKIP_teardown"}), false},
		{namespace("gkexec-bench-123", old, nil), false}, // hack/bench.sh's: not a suite's
		{namespace("default", old, nil), false},
	} {
		t.Run(tc.ns.Name, func(t *testing.T) {
			t.Parallel()
			client := fake.NewClientset(tc.ns)
			SweepStale(t, client)
			_, err := client.CoreV1().Namespaces().Get(context.Background(), tc.ns.Name, metav1.GetOptions{})
			if swept := err != nil; swept != tc.swept {
				t.Errorf("swept = %v, want %v (annotations %v)", swept, tc.swept, tc.ns.Annotations)
			}
		})
	}
}

func TestOwnRecordsThisProcessAndClearsKeep(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset(namespace("gkexec-e2e-mf-x", time.Hour, map[string]string{OwnerAnnotation: "old/1", "other": "stays"}))
	Keep(t, client, "gkexec-e2e-mf-x", "SKIP_teardown")
	ns, _ := client.CoreV1().Namespaces().Get(context.Background(), "gkexec-e2e-mf-x", metav1.GetOptions{})
	if ns.Annotations[KeptAnnotation] != "SKIP_teardown" {
		t.Fatalf("after Keep: annotations %v", ns.Annotations)
	}
	Own(t, client, "gkexec-e2e-mf-x")
	ns, _ = client.CoreV1().Namespaces().Get(context.Background(), "gkexec-e2e-mf-x", metav1.GetOptions{})
	want := map[string]string{OwnerAnnotation: owner(), "other": "stays"}
	if got := ns.Annotations; len(got) != len(want) || got[OwnerAnnotation] != want[OwnerAnnotation] || got["other"] != "stays" {
		t.Errorf("after Own: annotations %v, want %v", got, want)
	}
	if running, why := ownerRuns(ns.Annotations[OwnerAnnotation]); !running {
		t.Errorf("this process does not count as running: %s", why)
	}
}

// TestSuitesNamespaces: the prefixes Own accepts and SweepStale looks at, and no other.
func TestSuitesNamespaces(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"gkexec-e2e-tf-a": true, "gkexec-e2e-mf-a": true, "gkexec-e2e-tfw-a": true, "gkexec-agent-a": true,
		"gkexec-chaos-a": true, "gkexec-bench-session-a": true,
		"gkexec-load-1": false, "gkexec-bench-1": false, "default": false, "gkexec-e2e": false,
	} {
		if got := suitesNamespace(name); got != want {
			t.Errorf("suitesNamespace(%q) = %v, want %v", name, got, want)
		}
	}
}
