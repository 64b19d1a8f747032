package bench

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/runner"
)

// InstallPool creates the warm pool the options describe (runner.WarmPoolDeployment) with
// replicas Pods, waits until they are ready, and returns how to remove it. It needs deployments
// create/delete: run it as an admin, like the floor.
func InstallPool(ctx context.Context, client kubernetes.Interface, opts runner.Options, replicas int32, timeout time.Duration) (remove func(), err error) {
	d, err := runner.WarmPoolDeployment(opts, replicas)
	if err != nil {
		return nil, err
	}
	if _, err := client.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("%w: create the warm pool %s/%s: %w", runner.ErrCluster, d.Namespace, d.Name, err)
	}
	remove = func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = client.AppsV1().Deployments(d.Namespace).Delete(ctx, d.Name, metav1.DeleteOptions{})
	}
	if _, err := WaitPoolReady(ctx, client, d.Namespace, d.Spec.Template.Labels[runner.LabelPool], int(replicas), timeout); err != nil {
		remove()
		return nil, err
	}
	return remove, nil
}

// WaitPoolReady waits until at least n idle pool Pods are ready and says how long that took.
func WaitPoolReady(ctx context.Context, client kubernetes.Interface, namespace, pool string, n int, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	sel := labels.Set{runner.LabelPool: pool, runner.LabelPoolState: runner.PoolStateIdle}.String()
	deadline := time.After(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err == nil && readyCount(pods.Items) >= n {
			return time.Since(start), nil
		}
		select {
		case <-tick.C:
		case <-deadline:
			return 0, fmt.Errorf("%w: warm pool %q: fewer than %d ready idle pods after %s", runner.ErrTimeout, pool, n, timeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func readyCount(pods []corev1.Pod) int {
	n := 0
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}
