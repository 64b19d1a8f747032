package gc

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
)

// staleWarmSandboxes lists the claimed warm pool Pods that ended by themselves (sandbox.Ended):
// a used one whose runner did not delete it leaves a minute after its execution, one held ready
// leaves when its runner's keepalive pings stop, a session's when its session ends, and any of
// them when its deadline passes. What decides is the Pod's status as the kubelet reports it, never
// a timestamp another machine wrote; a claimed Pod that has not ended may be in use, however old.
// Idle pool Pods are the Deployment's, never garbage.
func staleWarmSandboxes(ctx context.Context, client kubernetes.Interface, namespace string, now time.Time) ([]Leftover, error) {
	sel := labels.Set{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelPoolState: podspec.PoolStateClaimed}.String()
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, diagnose.APIError(err, "list", "pods", namespace, "")
	}
	var found []Leftover
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && sandbox.Ended(&p) != "" {
			found = append(found, Leftover{Kind: "Pod", Name: p.Name, Age: now.Sub(p.CreationTimestamp.Time)})
		}
	}
	return found, nil
}
