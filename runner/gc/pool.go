package gc

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/session"
)

// staleWarmSandboxes lists the claimed warm pool Pods a runner left behind: those claimed longer
// ago than olderThan, and those that already ended (their claim deadline passed, or their
// container exited). Idle pool Pods are the Deployment's, never garbage.
func staleWarmSandboxes(ctx context.Context, client kubernetes.Interface, namespace string, olderThan time.Duration, now time.Time) ([]Leftover, error) {
	sel := labels.Set{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelPoolState: podspec.PoolStateClaimed}.String()
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, diagnose.APIError(err, "list", "pods", namespace, "")
	}
	var found []Leftover
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		claimedAt, err := time.Parse(time.RFC3339, p.Annotations[podspec.AnnotationClaimedAt])
		if err != nil {
			claimedAt = p.CreationTimestamp.Time
		}
		age := now.Sub(claimedAt)
		ended := p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
		if p.Labels[podspec.LabelSession] != "" {
			// A session's Pod is garbage when its own terms ended it, however old it is.
			if ended || session.Expired(&p, now) != "" {
				found = append(found, Leftover{Kind: "Pod", Name: p.Name, Age: age})
			}
			continue
		}
		if age >= olderThan || ended {
			found = append(found, Leftover{Kind: "Pod", Name: p.Name, Age: age})
		}
	}
	return found, nil
}
