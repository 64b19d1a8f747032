package runner

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// CheckStatus is the outcome of one doctor check.
type CheckStatus string

const (
	CheckPass CheckStatus = "pass"
	// CheckWarn: could not be verified with this identity, or works with a caveat. Not a failure.
	CheckWarn CheckStatus = "warn"
	CheckFail CheckStatus = "fail"
)

// Check is one line of the doctor's checklist.
type Check struct {
	Name   string      `json:"name"`
	Status CheckStatus `json:"status"`
	Detail string      `json:"detail"`
	// Fix says what to do when the check fails or warns.
	Fix string `json:"fix,omitempty"`
}

// DoctorOptions selects optional checks.
type DoctorOptions struct {
	// Smoke runs a real execution that reports the sandbox's kernel; the strongest check, since
	// it exercises RuntimeClass, node, image and RBAC together.
	Smoke bool
}

// Doctor checks that the namespace is ready for the runner, with the runner's own identity:
// API reachable, namespace present, every RBAC permission, RuntimeClass, a gVisor node, quota
// headroom and, optionally, a smoke execution. It never fails as a whole; read the checks.
func (r *Runner) Doctor(ctx context.Context, do DoctorOptions) []Check {
	var checks []Check
	add := func(c Check) { checks = append(checks, c) }

	v, err := r.client.Discovery().ServerVersion()
	if err != nil {
		add(Check{"API server reachable", CheckFail, err.Error(), "check --kubeconfig/--context, network access to the API server and credentials"})
		return checks
	}
	add(Check{"API server reachable", CheckPass, "Kubernetes " + v.GitVersion, ""})

	add(r.checkNamespace(ctx))
	add(r.checkRBAC(ctx))
	// Checks this identity may not perform leave something for the smoke execution to prove;
	// their Fix is written once it is known whether that ran and how it went.
	unproven := map[int]string{}
	for _, check := range []func(context.Context) (Check, string){r.checkRuntimeClass, r.checkSandboxNodes} {
		c, proof := check(ctx)
		if proof != "" {
			unproven[len(checks)] = proof
		}
		add(c)
	}
	add(r.checkQuota(ctx))
	add(r.checkWarmPool(ctx))
	var smoke Check
	if do.Smoke {
		smoke = r.checkSmoke(ctx)
		add(smoke)
	}
	for i, proof := range unproven {
		switch {
		case !do.Smoke:
			checks[i].Fix = "run `gkexec doctor` with --smoke (the default) to prove " + proof + " with a real execution"
		case smoke.Status == CheckPass:
			checks[i].Fix = "nothing to do: the smoke execution below proved " + proof
		default:
			checks[i].Fix = "the smoke execution below did not prove " + proof + "; see its detail"
		}
	}
	return checks
}

func (r *Runner) checkNamespace(ctx context.Context) Check {
	name := "namespace " + r.opts.Namespace + " exists"
	cm := podspec.ConfigMap(&r.env.Shape, wire.Request{Code: "pass", ExecutionID: "doctor-dry-run"})
	_, err := r.client.CoreV1().ConfigMaps(r.opts.Namespace).Create(ctx, cm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil:
		return Check{name, CheckPass, "a dry-run ConfigMap was accepted", ""}
	case apierrors.IsNotFound(err):
		return Check{name, CheckFail, err.Error(), "create it: terraform/modules/sandbox-namespace or kubectl apply -k manifests/"}
	case apierrors.IsForbidden(err):
		return Check{name, CheckWarn, "cannot tell: creating configmaps is forbidden (see the RBAC check)", ""}
	}
	return Check{name, CheckFail, err.Error(), ""}
}

func (r *Runner) checkRBAC(ctx context.Context) Check {
	name := "RBAC allows every call the runner makes"
	allowed, missing, err := r.reviewRules(ctx, RequiredRules())
	if err != nil {
		return Check{name, CheckFail, "SelfSubjectAccessReview failed: " + err.Error(), "the identity must be able to create selfsubjectaccessreviews (every authenticated user can by default)"}
	}
	if len(missing) > 0 {
		return Check{name, CheckFail, "missing: " + strings.Join(missing, ", "),
			fmt.Sprintf("grant these verbs in namespace %s with the gkexec Role (terraform/modules/sandbox-namespace or manifests/base/role.yaml)", r.opts.Namespace)}
	}
	return Check{name, CheckPass, fmt.Sprintf("%d permissions allowed", len(allowed)), ""}
}

// reviewRules asks the API server, verb by verb, which of rules this identity holds in the
// namespace ("verb resource" each).
func (r *Runner) reviewRules(ctx context.Context, rules []rbacv1.PolicyRule) (allowed, missing []string, err error) {
	for _, rule := range rules {
		for _, res := range rule.Resources {
			resource, sub, _ := strings.Cut(res, "/")
			for _, verb := range rule.Verbs {
				review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Namespace: r.opts.Namespace, Verb: verb, Group: rule.APIGroups[0], Resource: resource, Subresource: sub,
					}}}
				out, err := r.client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
				if err != nil {
					return allowed, missing, err
				}
				if out.Status.Allowed {
					allowed = append(allowed, verb+" "+res)
				} else {
					missing = append(missing, verb+" "+res)
				}
			}
		}
	}
	return allowed, missing, nil
}

// checkRuntimeClass also returns what only the smoke execution can prove when this identity
// cannot read RuntimeClasses.
func (r *Runner) checkRuntimeClass(ctx context.Context) (Check, string) {
	if r.opts.NoRuntimeClass {
		return Check{"RuntimeClass", CheckWarn, "no RuntimeClass: code runs in the node's default runtime, not a sandbox", "drop --no-runtime-class on a cluster with gVisor"}, ""
	}
	name := "RuntimeClass " + r.opts.RuntimeClassName + " exists"
	rc, err := r.client.NodeV1().RuntimeClasses().Get(ctx, r.opts.RuntimeClassName, metav1.GetOptions{})
	switch {
	case err == nil:
		return Check{name, CheckPass, "handler " + rc.Handler, ""}, ""
	case apierrors.IsNotFound(err):
		return Check{name, CheckFail, err.Error(), "on GKE enable GKE Sandbox on a node pool; elsewhere kubectl apply -k manifests/overlays/non-gke"}, ""
	case apierrors.IsForbidden(err):
		return Check{name, CheckWarn, "cannot read RuntimeClasses with this identity (expected: the agent has no cluster-wide rights)", ""}, "that the runtime works"
	}
	return Check{name, CheckFail, err.Error(), ""}, ""
}

// checkSandboxNodes also returns what only the smoke execution can prove when this identity
// cannot list nodes.
func (r *Runner) checkSandboxNodes(ctx context.Context) (Check, string) {
	if r.opts.DisableSandboxNodeSelector {
		return Check{"sandbox nodes", CheckPass, "node selector for GKE Sandbox nodes disabled", ""}, ""
	}
	name := "a schedulable gVisor node exists"
	sel := labels.Set{GKESandboxLabel: GKESandboxValue}.String()
	nodes, err := r.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sel})
	switch {
	case apierrors.IsForbidden(err):
		return Check{name, CheckWarn, "cannot list nodes with this identity (expected: the agent has no cluster-wide rights)", ""}, "that a node takes sandbox pods"
	case err != nil:
		return Check{name, CheckFail, err.Error(), ""}, ""
	}
	ready := 0
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable {
			continue
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	if ready == 0 {
		return Check{name, CheckFail, fmt.Sprintf("%d nodes labelled %s, none Ready and schedulable", len(nodes.Items), sel),
			"add a GKE Sandbox node pool (terraform/modules/gke-sandbox-cluster); with autoscaling from 0 this is expected until the first execution"}, ""
	}
	return Check{name, CheckPass, fmt.Sprintf("%d Ready", ready), ""}, ""
}

// checkQuota compares every ResourceQuota's headroom with what one execution needs.
func (r *Runner) checkQuota(ctx context.Context) Check {
	name := "resource quota has room for an execution"
	quotas, err := r.client.CoreV1().ResourceQuotas(r.opts.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return Check{name, CheckFail, diagnose.APIError(err, "list", "resourcequotas", r.opts.Namespace, "").Error(), ""}
	}
	if len(quotas.Items) == 0 {
		return Check{name, CheckPass, "no ResourceQuota in the namespace", ""}
	}
	need := map[corev1.ResourceName]resource.Quantity{
		"pods": resource.MustParse("1"), "count/pods": resource.MustParse("1"),
		"count/jobs.batch": resource.MustParse("1"), "configmaps": resource.MustParse("1"), "count/configmaps": resource.MustParse("1"),
		"requests.cpu": resource.MustParse(r.opts.CPURequest), "cpu": resource.MustParse(r.opts.CPURequest),
		"requests.memory": resource.MustParse(r.opts.MemoryRequest), "memory": resource.MustParse(r.opts.MemoryRequest),
		"limits.cpu": resource.MustParse(r.opts.CPULimit), "limits.memory": resource.MustParse(r.opts.MemoryLimit),
		"limits.ephemeral-storage": resource.MustParse(r.opts.EphemeralStorageLimit),
	}
	var short, room []string
	for _, q := range quotas.Items {
		names := make([]string, 0, len(q.Status.Hard))
		for res := range q.Status.Hard {
			names = append(names, string(res))
		}
		sort.Strings(names)
		for _, res := range names {
			want, ok := need[corev1.ResourceName(res)]
			if !ok {
				continue
			}
			hard, used := q.Status.Hard[corev1.ResourceName(res)], q.Status.Used[corev1.ResourceName(res)]
			left := hard.DeepCopy()
			left.Sub(used)
			line := fmt.Sprintf("%s %s: %s of %s used", q.Name, res, used.String(), hard.String())
			if left.Cmp(want) < 0 {
				short = append(short, line)
			} else {
				room = append(room, line)
			}
		}
	}
	if len(short) > 0 {
		return Check{name, CheckFail, strings.Join(short, "; "), "wait for running executions, run `gkexec gc`, or raise the quota"}
	}
	return Check{name, CheckPass, strings.Join(room, "; "), ""}
}

// smokeCode prints the kernel the sandbox sees; gVisor announces itself in its boot log.
const smokeCode = `import subprocess
v = open("/proc/version").read().strip()
try:
    boot = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5).stdout
except Exception:
    boot = ""
print(v)
print("gvisor" if "gVisor" in boot or "gvisor" in v else "not-gvisor")
`

func (r *Runner) checkSmoke(ctx context.Context) Check {
	name := "smoke execution in the sandbox"
	ctx, cancel := context.WithTimeout(ctx, r.opts.StartTimeout+30*time.Second)
	defer cancel()
	res, err := r.Execute(ctx, Request{Code: smokeCode})
	if err != nil {
		return Check{name, CheckFail, err.Error(), "see the error; `gkexec run -v -c 'print(1)'` shows each phase"}
	}
	out := strings.TrimSpace(string(res.Stdout))
	if res.ExitCode != 0 {
		return Check{name, CheckFail, fmt.Sprintf("exit %d: %s", res.ExitCode, res.Stderr), ""}
	}
	lines := strings.Split(out, "\n")
	kernel := lines[0]
	if !r.opts.NoRuntimeClass && !strings.HasSuffix(out, "gvisor") {
		return Check{name, CheckWarn, "ran, but not under gVisor: " + kernel, "check that RuntimeClass " + r.opts.RuntimeClassName + " uses the gVisor handler"}
	}
	return Check{name, CheckPass, fmt.Sprintf("%s (in %.1fs)", kernel, time.Since(res.Timings.Requested).Seconds()), ""}
}
