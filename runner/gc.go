package runner

import (
	"context"
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Leftover is an object a runner made and did not delete (its caller crashed or was killed).
type Leftover struct {
	Kind        string // "Job" or "ConfigMap"
	Name        string
	ExecutionID string
	Age         time.Duration
}

// CollectGarbage deletes the Jobs (with their Pods) and ConfigMaps that gkexec made in namespace
// and that are older than olderThan. With dryRun it only lists them. It returns what it found.
func CollectGarbage(ctx context.Context, client kubernetes.Interface, namespace string, olderThan time.Duration, dryRun bool) ([]Leftover, error) {
	sel := labels.Set{LabelManagedBy: ManagedByValue}.String()
	now := time.Now()
	var found []Leftover
	jobs, err := client.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, apiError(err, "list", "jobs", namespace, "")
	}
	for _, j := range jobs.Items {
		if age := now.Sub(j.CreationTimestamp.Time); age >= olderThan && j.DeletionTimestamp == nil {
			found = append(found, Leftover{"Job", j.Name, j.Labels[LabelExecutionID], age})
		}
	}
	cms, err := client.CoreV1().ConfigMaps(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, apiError(err, "list", "configmaps", namespace, "")
	}
	for _, c := range cms.Items {
		if age := now.Sub(c.CreationTimestamp.Time); age >= olderThan && c.DeletionTimestamp == nil {
			found = append(found, Leftover{"ConfigMap", c.Name, c.Labels[LabelExecutionID], age})
		}
	}
	sort.Slice(found, func(i, j int) bool {
		if found[i].Name != found[j].Name {
			return found[i].Name < found[j].Name
		}
		return found[i].Kind > found[j].Kind // the Job before its ConfigMap
	})
	if dryRun {
		return found, nil
	}
	for _, l := range found {
		var err error
		switch l.Kind {
		case "Job":
			err = client.BatchV1().Jobs(namespace).Delete(ctx, l.Name, metav1.DeleteOptions{
				PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
			if err != nil && !isNotFound(err) {
				return found, apiError(err, "delete", "jobs", namespace, l.Name)
			}
		case "ConfigMap":
			err = client.CoreV1().ConfigMaps(namespace).Delete(ctx, l.Name, metav1.DeleteOptions{})
			if err != nil && !isNotFound(err) {
				return found, apiError(err, "delete", "configmaps", namespace, l.Name)
			}
		default:
			return found, fmt.Errorf("%w: unknown kind %s", ErrCluster, l.Kind)
		}
	}
	return found, nil
}
