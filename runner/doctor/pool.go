package doctor

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// checkWarmPool reports whether executions with these options can run warm: the pool's Pods
// (present, ready, matching the options) and the extra RBAC the warm path needs. A missing or
// unusable pool is a warning, not a failure: executions then run cold.
func (d *doctor) checkWarmPool(ctx context.Context) Check {
	pool := d.opts.WarmPool
	name := fmt.Sprintf("warm pool %q", pool)
	if d.opts.NoWarmPool {
		return Check{name, Warn, "disabled (--no-warm-pool): every execution runs cold", ""}
	}
	install := "install one: the sandbox-namespace Terraform module's warm_pool variable, or kubectl apply -k manifests/overlays/warm-pool"
	sel := labels.Set{runner.LabelManagedBy: runner.ManagedByValue, runner.LabelPool: pool}.String()
	pods, err := d.client.CoreV1().Pods(d.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return Check{name, Warn, "cannot list pods: " + err.Error(), "see the RBAC check"}
	}
	deployment, err := runner.WarmPoolDeployment(d.opts, 0)
	if err != nil {
		return Check{name, Warn, "cannot build the pool these options describe: " + err.Error(), ""}
	}
	want := podspec.Fingerprint(deployment.Spec.Template.Spec)
	var idle, ready, matching, claimed int
	for i := range pods.Items {
		p := &pods.Items[i]
		switch p.Labels[runner.LabelPoolState] {
		case runner.PoolStateClaimed:
			claimed++
		case runner.PoolStateIdle:
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
	_, missing, err := d.reviewRules(ctx, runner.WarmPoolRules())
	if err != nil {
		return Check{name, Warn, detail + "; cannot review RBAC: " + err.Error(), "see the RBAC check"}
	}
	if len(missing) > 0 {
		return Check{name, Warn, detail + "; RBAC lacks " + strings.Join(missing, ", ") + ": executions run cold",
			"grant the warm pool's rules (runner.WarmPoolRules) with the module's warm_pool or manifests/components/warm-pool"}
	}
	switch {
	case idle+claimed == 0:
		return Check{name, Warn, "no pods of this pool in namespace " + d.opts.Namespace + ": every execution runs cold (about 1 s)", install}
	case matching == 0 && ready > 0:
		return Check{name, Warn, detail + ": the pool's pods differ from these options (image, resources, runtime class, user, scratch size or gkexec version), so executions run cold",
			"run with the options the pool was installed with, or reinstall the pool with these"}
	case matching == 0:
		return Check{name, Warn, detail + ": none ready yet; executions run cold until one is", "kubectl -n " + d.opts.Namespace + " describe pods -l " + runner.LabelPool + "=" + pool}
	}
	return Check{name, Pass, detail, ""}
}
