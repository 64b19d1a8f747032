package bench

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/autoscale"
)

// PoolPriority is the priority of the warm pool's Pods in the sandbox-namespace module and
// manifests/components/warm-pool: below the default (0) that an execution's own sandbox runs at, so
// that on a full node the scheduler evicts an idle pool Pod for it rather than leave it Pending;
// not below -10, under which GKE's cluster autoscaler counts Pods as expendable and adds no node
// for them.
const PoolPriority = -1

// PoolPriorityDescription is the class's description: the same in every namespace, so that
// renaming the class (an overlay's replacements) leaves it true.
const PoolPriorityDescription = "Idle gkexec warm pool Pods: below the sandboxes of executions, which the scheduler places by evicting them; never evicts anything itself."

// PoolPriorityClassName is the PriorityClass the module and the manifests give the warm pool of
// namespace: named after it, since a PriorityClass is cluster-wide and two installations must not
// share (and delete) one.
func PoolPriorityClassName(namespace string) string { return "gkexec-warm-pool-" + namespace }

// PoolPriorityClass is that class, as the module and the manifests declare it (test/parity keeps
// the three equal). preemptionPolicy Never: a pool Pod takes free room only, it never evicts
// anything to make room.
func PoolPriorityClass(namespace string) *schedulingv1.PriorityClass {
	return &schedulingv1.PriorityClass{
		TypeMeta: metav1.TypeMeta{APIVersion: "scheduling.k8s.io/v1", Kind: "PriorityClass"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   PoolPriorityClassName(namespace),
			Labels: map[string]string{"app.kubernetes.io/part-of": "gkexec"},
		},
		Value:            PoolPriority,
		PreemptionPolicy: ptr.To(corev1.PreemptNever),
		Description:      PoolPriorityDescription,
	}
}

// PoolOptions is the warm pool a run installs.
type PoolOptions struct {
	// Replicas is the pool's size.
	Replicas int32
	// LowPriority runs the pool's Pods at PoolPriorityClass, as the module and the manifests
	// install it; the class is created for the run unless it exists. Otherwise they run at the
	// default priority, the same as executions.
	LowPriority bool
	// Timeout bounds the wait for the pool to be full.
	Timeout time.Duration
	// Autoscale, if set, sizes the pool by demand (runner/autoscale) instead of Replicas: the
	// policy goes on its Deployment and an autoscaler runs with the benchmark until Remove.
	Autoscale *autoscale.Policy
}

// Pool is a warm pool installed for a run.
type Pool struct {
	client    kubernetes.Interface
	namespace string
	name      string
	replicas  int
	timeout   time.Duration
	// PriorityClass its Pods run at; "" for the default priority.
	PriorityClass string
	// Autoscaler sizes the pool when PoolOptions.Autoscale asked for it; nil otherwise.
	Autoscaler *autoscale.Autoscaler
	cleanup    []func(context.Context)
}

// InstallPool creates the warm pool the options describe (runner.WarmPoolDeployment, at
// PoolPriorityClass with LowPriority), waits until it is full, and returns it; Remove deletes what
// it created. It needs deployments create/delete (and, with LowPriority, priorityclasses
// create/delete, cluster-wide): run it as an admin, like the floor.
func InstallPool(ctx context.Context, client kubernetes.Interface, opts runner.Options, po PoolOptions) (*Pool, error) {
	d, err := runner.WarmPoolDeployment(opts, po.Replicas)
	if err != nil {
		return nil, err
	}
	p := &Pool{client: client, namespace: d.Namespace, name: d.Spec.Template.Labels[runner.LabelPool], replicas: int(po.Replicas), timeout: po.Timeout}
	if p.timeout <= 0 {
		p.timeout = 5 * time.Minute
	}
	if po.LowPriority {
		pc := PoolPriorityClass(d.Namespace)
		switch _, err := client.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{}); {
		case err == nil:
			p.cleanup = append(p.cleanup, func(ctx context.Context) {
				_ = client.SchedulingV1().PriorityClasses().Delete(ctx, pc.Name, metav1.DeleteOptions{})
			})
		case !apierrors.IsAlreadyExists(err):
			return nil, fmt.Errorf("%w: create the warm pool's PriorityClass %s (the benchmark needs priorityclasses create, cluster-wide; or run it with the pool at the default priority): %w", runner.ErrCluster, pc.Name, err)
		}
		p.PriorityClass = pc.Name
		d.Spec.Template.Spec.PriorityClassName = pc.Name
	}
	if po.Autoscale != nil {
		d = autoscale.Deployment(d, *po.Autoscale)
		p.replicas = int(max(po.Autoscale.Min, 1)) // full: at its minimum (and at least one)
	}
	if _, err := client.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		p.Remove()
		return nil, fmt.Errorf("%w: create the warm pool %s/%s: %w", runner.ErrCluster, d.Namespace, d.Name, err)
	}
	// The Deployment goes before its PriorityClass.
	p.cleanup = append([]func(context.Context){func(ctx context.Context) {
		_ = client.AppsV1().Deployments(d.Namespace).Delete(ctx, d.Name, metav1.DeleteOptions{})
	}}, p.cleanup...)
	if po.Autoscale != nil {
		if err := p.startAutoscaler(client); err != nil {
			p.Remove()
			return nil, err
		}
	}
	if _, err := p.WaitFull(ctx); err != nil {
		p.Remove()
		return nil, err
	}
	return p, nil
}

// startAutoscaler runs the pool's autoscaler until Remove, which stops it first.
func (p *Pool) startAutoscaler(client kubernetes.Interface) error {
	a, err := autoscale.New(autoscale.Config{Client: client, Namespace: p.namespace, Pool: p.name, Identity: "gkexec-bench"})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Run(ctx)
	}()
	p.Autoscaler = a
	p.cleanup = append([]func(context.Context){func(context.Context) { cancel(); <-done }}, p.cleanup...)
	return nil
}

// Replicas is the pool's size.
func (p *Pool) Replicas() int { return p.replicas }

// WaitFull waits until the pool holds its replicas of ready idle Pods and says how long that took.
func (p *Pool) WaitFull(ctx context.Context) (time.Duration, error) {
	return WaitPoolReady(ctx, p.client, p.namespace, p.name, p.replicas, p.timeout)
}

// Remove deletes what InstallPool created, on a context of its own.
func (p *Pool) Remove() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, f := range p.cleanup {
		f(ctx)
	}
	p.cleanup = nil
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
