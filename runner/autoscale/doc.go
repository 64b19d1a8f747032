// Package autoscale sizes a warm pool by its demand, on Kubernetes' own machinery: the pool's
// Deployment is resized through its scale subresource (the call an HorizontalPodAutoscaler
// makes), and one process at a time does it, elected through a coordination.k8s.io Lease (the
// election kube-controller-manager uses), so that any number of runner processes may run an
// Autoscaler and the pool still has one writer.
//
// What runs the loop: `gkexec serve` runs one when the pool's Deployment asks for it (the
// Policy's annotations, which the sandbox-namespace module's warm_pool.autoscale and
// manifests/components/warm-pool-autoscale write), and `gkexec pool autoscale` runs one on its
// own, for installations whose runners are short-lived. Where a metrics pipeline is installed
// (Prometheus and an external metrics adapter), an HorizontalPodAutoscaler can do the writing
// instead, on the gkexec_pool_recommended_replicas that serve exports (docs/autoscale.md); none is
// installed on the local cluster, which is why the loop is here.
//
// Demand is read from the cluster, not from one process: every claim of a pool Pod (its
// gkexec.dev/claimed-for says it is demand, not a runner renewing the sandbox it holds) and
// every cold sandbox that a runner started because the pool was empty or claimed first (its
// gkexec.dev/pool-miss). The pool must hold what can be claimed while a Pod refills, so the
// size is the most demand seen within one refill time, plus a spare (Recommend). Up at once;
// down only once that peak has stayed lower for a cooldown.
package autoscale
