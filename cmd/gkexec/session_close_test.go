package main

import (
	"bytes"
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
)

// close deletes the session's sandbox, whoever opened it; then the session is not found.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestSessionCloseDeletesItsSandbox(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pool-abc12", Namespace: fakecluster.Namespace, UID: "u1", Labels: map[string]string{
			runner.LabelManagedBy: runner.ManagedByValue, runner.LabelComponent: runner.ComponentSandbox,
			runner.LabelPool: "default", runner.LabelPoolState: runner.PoolStateClaimed, runner.LabelSession: "s-open",
		}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	fc, newSessions := libraryOnFakeCluster(t, pod)
	var stdout, stderr bytes.Buffer
	if code := sessionCLI(t, newSessions, nil, nil, &stdout, &stderr, "close", "s-open"); code != 0 {
		t.Fatalf("close: exit %d stderr %q", code, stderr.String())
	}
	if _, err := fc.Client.CoreV1().Pods(fakecluster.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the session's pod after close: %v, want it deleted", err)
	}
	if code := sessionCLI(t, newSessions, nil, nil, &stdout, &stderr, "close", "s-open"); code != exitSessionNotFound {
		t.Errorf("closing it again: exit %d, want %d; stderr %q", code, exitSessionNotFound, stderr.String())
	}
}
