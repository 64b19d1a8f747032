package runner

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// checkWarmPool reports whether executions with these options can run warm: the pool's Pods
// (present, ready, matching the options) and the extra RBAC the warm path needs. A missing or
// unusable pool is a warning, not a failure: executions then run cold.
func (r *Runner) checkWarmPool(ctx context.Context) Check {
	pool := r.opts.WarmPool
	name := fmt.Sprintf("warm pool %q", pool)
	if r.opts.NoWarmPool {
		return Check{name, CheckWarn, "disabled (--no-warm-pool): every execution runs cold", ""}
	}
	install := "install one: the sandbox-namespace Terraform module's warm_pool variable, or kubectl apply -k manifests/overlays/warm-pool"
	sel := labels.Set{LabelManagedBy: ManagedByValue, LabelPool: pool}.String()
	pods, err := r.client.CoreV1().Pods(r.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return Check{name, CheckWarn, "cannot list pods: " + err.Error(), "see the RBAC check"}
	}
	want := podspec.Fingerprint(podspec.Pod(&r.env.Shape, nil))
	var idle, ready, matching, claimed int
	for i := range pods.Items {
		p := &pods.Items[i]
		switch p.Labels[LabelPoolState] {
		case PoolStateClaimed:
			claimed++
		case PoolStateIdle:
			idle++
			if diagnose.IdleAndReady(p) {
				ready++
				if podspec.Fingerprint(p.Spec) == want {
					matching++
				}
			}
		}
	}
	detail := fmt.Sprintf("%d idle pods (%d ready, %d matching these options), %d claimed", idle, ready, matching, claimed)
	_, missing, err := r.reviewRules(ctx, WarmPoolRules())
	if err != nil {
		return Check{name, CheckWarn, detail + "; cannot review RBAC: " + err.Error(), "see the RBAC check"}
	}
	if len(missing) > 0 {
		return Check{name, CheckWarn, detail + "; RBAC lacks " + strings.Join(missing, ", ") + ": executions run cold",
			"grant the warm pool's rules (runner.WarmPoolRules) with the module's warm_pool or manifests/components/warm-pool"}
	}
	switch {
	case idle+claimed == 0:
		return Check{name, CheckWarn, "no pods of this pool in namespace " + r.opts.Namespace + ": every execution runs cold (about 1 s)", install}
	case matching == 0 && ready > 0:
		return Check{name, CheckWarn, detail + ": the pool's pods differ from these options (image, resources, runtime class, user, scratch size or gkexec version), so executions run cold",
			"run with the options the pool was installed with, or reinstall the pool with these"}
	case matching == 0:
		return Check{name, CheckWarn, detail + ": none ready yet; executions run cold until one is", "kubectl -n " + r.opts.Namespace + " describe pods -l " + LabelPool + "=" + pool}
	}
	return Check{name, CheckPass, detail, ""}
}
