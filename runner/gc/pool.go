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
// them when its deadline passes: what decides is the Pod's status as the kubelet reports it. A
// one-shot execution's Pod is garbage past olderThan too, as a cold execution's Job is; a Pod held
// ready or a session's is not, however old. Idle pool Pods are the Deployment's, never garbage.
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
		// A one-shot execution's Pod (it carries its execution's ID, and no session) whose runner
		// died mid-run is garbage by age too, as its Job would be: the ID is set, and the claim's
		// time renewed, when an execution takes the Pod, so a Pod held ready waits uncounted.
		oneShot := p.Labels[podspec.LabelExecutionID] != "" && p.Labels[podspec.LabelSession] == ""
		if sandbox.Ended(&p) != "" || (oneShot && age >= olderThan) {
			found = append(found, Leftover{Kind: "Pod", Name: p.Name, ExecutionID: p.Labels[podspec.LabelExecutionID], Age: age, uid: p.UID})
		}
	}
	return found, nil
}
