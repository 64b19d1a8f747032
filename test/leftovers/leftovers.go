// Package leftovers finds what gkexec's runner left in a namespace: its Jobs, ConfigMaps and Pods,
// recognised by the runner's labels. The end-to-end suites (test/e2e, test/agent, test/chaos) end
// their cases by waiting until none remains. Idle warm-pool Pods never count: they belong to the
// pool's Deployment, waiting for an execution; a claimed one does.
package leftovers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/runner"
)

// Selector picks the runner's objects, or only those of the given executions.
func Selector(executionIDs ...string) string {
	sel := labels.Set{runner.LabelManagedBy: runner.ManagedByValue}.AsSelector()
	if len(executionIDs) > 0 {
		req, err := labels.NewRequirement(runner.LabelExecutionID, selection.In, executionIDs)
		if err != nil {
			panic(err) // only for an ID that is not a label value: a bug in the test
		}
		sel = sel.Add(*req)
	}
	return sel.String()
}

// List returns the runner's Jobs, ConfigMaps and Pods in the namespace (of the given executions,
// or all), terminating ones included since they still exist, as sorted "Kind/name" strings; a Pod
// shows its phase too: "Pod/name(Running,terminating)".
func List(ctx context.Context, client kubernetes.Interface, namespace string, executionIDs ...string) ([]string, error) {
	opts := metav1.ListOptions{LabelSelector: Selector(executionIDs...)}
	var found []string
	jobs, err := client.BatchV1().Jobs(namespace).List(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs.Items {
		found = append(found, "Job/"+j.Name)
	}
	cms, err := client.CoreV1().ConfigMaps(namespace).List(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, c := range cms.Items {
		found = append(found, "ConfigMap/"+c.Name)
	}
	pods, err := client.CoreV1().Pods(namespace).List(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, p := range pods.Items {
		if p.Labels[runner.LabelPoolState] == runner.PoolStateIdle {
			continue
		}
		state := string(p.Status.Phase)
		if p.DeletionTimestamp != nil {
			state += ",terminating"
		}
		found = append(found, fmt.Sprintf("Pod/%s(%s)", p.Name, state))
	}
	slices.Sort(found)
	return found, nil
}

// Wait lists every second until nothing is left, and returns nil then. At the deadline it returns
// what was still there, with an error naming it, or the error of the last listing. Deletions
// finish asynchronously (a Job's Pods go after it), hence the wait.
func Wait(ctx context.Context, client kubernetes.Interface, namespace string, timeout time.Duration, executionIDs ...string) ([]string, error) {
	var left []string
	var listErr error
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		left, listErr = List(ctx, client, namespace, executionIDs...)
		return listErr == nil && len(left) == 0, nil
	})
	switch {
	case err == nil:
		return nil, nil
	case listErr != nil:
		return nil, fmt.Errorf("could not list what is left in namespace %s: %w", namespace, listErr)
	}
	return left, fmt.Errorf("left in namespace %s after %s: %s", namespace, timeout, strings.Join(left, ", "))
}
