package doctor

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

type Status string

const (
	Pass Status = "pass"
	// Warn: could not be verified with this identity, or works with a caveat. Not a failure.
	Warn Status = "warn"
	Fail Status = "fail"
)

type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	// Fix says what to do when the check fails or warns.
	Fix string `json:"fix,omitempty"`
}

type Options struct {
	// Smoke runs a real execution that reports the sandbox's kernel; the strongest check, since
	// it exercises RuntimeClass, node, image and RBAC together.
	Smoke bool
}

type doctor struct {
	r      *runner.Runner
	opts   runner.Options
	client kubernetes.Interface
}

func Run(ctx context.Context, r *runner.Runner, do Options) []Check {
	d := &doctor{r: r, opts: r.Options(), client: r.Client()}
	var checks []Check
	add := func(c Check) { checks = append(checks, c) }

	v, err := d.client.Discovery().ServerVersion()
	if err != nil {
		add(Check{"API server reachable", Fail, err.Error(), "check --kubeconfig/--context, network access to the API server and credentials"})
		return checks
	}
	add(Check{"API server reachable", Pass, "Kubernetes " + v.GitVersion, ""})

	add(d.checkNamespace(ctx))
	add(d.checkRBAC(ctx))
	// Checks this identity may not perform leave something for the smoke execution to prove;
	// their Fix is written once it is known whether that ran and how it went.
	unproven := map[int]string{}
	for _, check := range []func(context.Context) (Check, string){d.checkRuntimeClass, d.checkSandboxNodes} {
		c, proof := check(ctx)
		if proof != "" {
			unproven[len(checks)] = proof
		}
		add(c)
	}
	add(d.checkQuota(ctx))
	add(d.checkWarmPool(ctx))
	var smoke Check
	if do.Smoke {
		var languages *Check
		smoke, languages = d.checkSmoke(ctx)
		add(smoke)
		if languages != nil {
			add(*languages)
		}
	}
	for i, proof := range unproven {
		switch {
		case !do.Smoke:
			checks[i].Fix = "run `gkexec doctor` with --smoke (the default) to prove " + proof + " with a real execution"
		case smoke.Status == Pass:
			checks[i].Fix = "nothing to do: the smoke execution below proved " + proof
		default:
			checks[i].Fix = "the smoke execution below did not prove " + proof + "; see its detail"
		}
	}
	return checks
}

func (d *doctor) checkNamespace(ctx context.Context) Check {
	name := "namespace " + d.opts.Namespace + " exists"
	cm := podspec.ConfigMap(&podspec.Shape{Namespace: d.opts.Namespace, Labels: d.opts.Labels, Annotations: d.opts.Annotations},
		wire.Request{Code: "pass", ExecutionID: "doctor-dry-run"})
	_, err := d.client.CoreV1().ConfigMaps(d.opts.Namespace).Create(ctx, cm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil:
		return Check{name, Pass, "a dry-run ConfigMap was accepted", ""}
	case apierrors.IsNotFound(err):
		return Check{name, Fail, err.Error(), "create it: terraform/modules/sandbox-namespace or kubectl apply -k manifests/"}
	case apierrors.IsForbidden(err):
		return Check{name, Warn, "cannot tell: creating configmaps is forbidden (see the RBAC check)", ""}
	}
	return Check{name, Fail, err.Error(), ""}
}

func (d *doctor) checkRBAC(ctx context.Context) Check {
	name := "RBAC allows every call the runner makes"
	allowed, missing, err := d.reviewRules(ctx, runner.RequiredRules())
	if err != nil {
		return Check{name, Fail, "SelfSubjectAccessReview failed: " + err.Error(), "the identity must be able to create selfsubjectaccessreviews (every authenticated user can by default)"}
	}
	if len(missing) > 0 {
		return Check{name, Fail, "missing: " + strings.Join(missing, ", "),
			fmt.Sprintf("grant these verbs in namespace %s with the gkexec Role (terraform/modules/sandbox-namespace or manifests/base/role.yaml)", d.opts.Namespace)}
	}
	return Check{name, Pass, fmt.Sprintf("%d permissions allowed", len(allowed)), ""}
}

func (d *doctor) reviewRules(ctx context.Context, rules []rbacv1.PolicyRule) (allowed, missing []string, err error) {
	for _, rule := range rules {
		for _, res := range rule.Resources {
			resource, sub, _ := strings.Cut(res, "/")
			for _, verb := range rule.Verbs {
				review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Namespace: d.opts.Namespace, Verb: verb, Group: rule.APIGroups[0], Resource: resource, Subresource: sub,
					}}}
				out, err := d.client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
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

func (d *doctor) checkRuntimeClass(ctx context.Context) (Check, string) {
	if d.opts.NoRuntimeClass {
		return Check{"RuntimeClass", Warn, "no RuntimeClass: code runs in the node's default runtime, not a sandbox", "drop --no-runtime-class on a cluster with gVisor"}, ""
	}
	name := "RuntimeClass " + d.opts.RuntimeClassName + " exists"
	rc, err := d.client.NodeV1().RuntimeClasses().Get(ctx, d.opts.RuntimeClassName, metav1.GetOptions{})
	switch {
	case err == nil:
		return Check{name, Pass, "handler " + rc.Handler, ""}, ""
	case apierrors.IsNotFound(err):
		return Check{name, Fail, err.Error(), "on GKE enable GKE Sandbox on a node pool; elsewhere kubectl apply -k manifests/overlays/non-gke"}, ""
	case apierrors.IsForbidden(err):
		return Check{name, Warn, "cannot read RuntimeClasses with this identity (expected: the agent has no cluster-wide rights)", ""}, "that the runtime works"
	}
	return Check{name, Fail, err.Error(), ""}, ""
}

func (d *doctor) checkSandboxNodes(ctx context.Context) (Check, string) {
	if d.opts.DisableSandboxNodeSelector {
		return Check{"sandbox nodes", Pass, "node selector for GKE Sandbox nodes disabled", ""}, ""
	}
	name := "a schedulable gVisor node exists"
	sel := labels.Set{runner.GKESandboxLabel: runner.GKESandboxValue}.String()
	nodes, err := d.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sel})
	switch {
	case apierrors.IsForbidden(err):
		return Check{name, Warn, "cannot list nodes with this identity (expected: the agent has no cluster-wide rights)", ""}, "that a node takes sandbox pods"
	case err != nil:
		return Check{name, Fail, err.Error(), ""}, ""
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
		return Check{name, Fail, fmt.Sprintf("%d nodes labelled %s, none Ready and schedulable", len(nodes.Items), sel),
			"add a GKE Sandbox node pool (terraform/modules/gke-sandbox-cluster); with autoscaling from 0 this is expected until the first execution"}, ""
	}
	return Check{name, Pass, fmt.Sprintf("%d Ready", ready), ""}, ""
}

func (d *doctor) checkQuota(ctx context.Context) Check {
	name := "resource quota has room for an execution"
	quotas, err := d.client.CoreV1().ResourceQuotas(d.opts.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return Check{name, Fail, diagnose.APIError(err, "list", "resourcequotas", d.opts.Namespace, "").Error(), ""}
	}
	if len(quotas.Items) == 0 {
		return Check{name, Pass, "no ResourceQuota in the namespace", ""}
	}
	need := map[corev1.ResourceName]resource.Quantity{
		"pods": resource.MustParse("1"), "count/pods": resource.MustParse("1"),
		"count/jobs.batch": resource.MustParse("1"), "configmaps": resource.MustParse("1"), "count/configmaps": resource.MustParse("1"),
		"requests.cpu": resource.MustParse(d.opts.CPURequest), "cpu": resource.MustParse(d.opts.CPURequest),
		"requests.memory": resource.MustParse(d.opts.MemoryRequest), "memory": resource.MustParse(d.opts.MemoryRequest),
		"limits.cpu": resource.MustParse(d.opts.CPULimit), "limits.memory": resource.MustParse(d.opts.MemoryLimit),
		"limits.ephemeral-storage": resource.MustParse(d.opts.EphemeralStorageLimit),
	}
	var short, room []string
	for _, q := range quotas.Items {
		names := slices.Sorted(maps.Keys(q.Status.Hard))
		for _, res := range names {
			want, ok := need[res]
			if !ok {
				continue
			}
			hard, used := q.Status.Hard[res], q.Status.Used[res]
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
		return Check{name, Fail, strings.Join(short, "; "), "wait for running executions, run `gkexec gc`, or raise the quota"}
	}
	return Check{name, Pass, strings.Join(room, "; "), ""}
}

// smokeCode reports the sandbox's kernel, whether it is gVisor, and which languages' interpreters
// the image has, one line each.
var smokeCode = `import shutil, subprocess
v = open("/proc/version").read().strip()
try:
    boot = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5).stdout
except Exception:
    boot = ""
print("kernel", v)
print("runtime", "gvisor" if "gVisor" in boot or "gvisor" in v else "not-gvisor")
for lang, program in ` + interpreters() + `:
    print("language", lang, "yes" if shutil.which(program) else "no", program)
`

// interpreters is the languages and their programs, as a Python literal.
func interpreters() string {
	var pairs []string
	for _, lang := range runner.Languages() {
		pairs = append(pairs, fmt.Sprintf("(%q, %q)", lang, wire.Languages[lang].Program))
	}
	return "[" + strings.Join(pairs, ", ") + "]"
}

// smoke is what the smoke code saw.
type smoke struct {
	kernel, runtime string
	runs, lacks     []string // languages whose interpreter the image has; those it lacks, and why
}

func readSmoke(stdout string) smoke {
	var s smoke
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		what, rest, _ := strings.Cut(line, " ")
		switch f := strings.Fields(rest); {
		case what == "kernel":
			s.kernel = rest
		case what == "runtime":
			s.runtime = rest
		case what == "language" && len(f) == 3 && f[1] == "yes":
			s.runs = append(s.runs, f[0])
		case what == "language" && len(f) == 3:
			s.lacks = append(s.lacks, fmt.Sprintf("%s (no %s on the image's PATH)", f[0], f[2]))
		}
	}
	return s
}

// checkSmoke runs the smoke code; its second check, the languages the image runs, is there only
// when the execution ran.
func (d *doctor) checkSmoke(ctx context.Context) (Check, *Check) {
	name := "smoke execution in the sandbox"
	ctx, cancel := context.WithTimeout(ctx, d.opts.StartTimeout+30*time.Second)
	defer cancel()
	res, err := d.r.Execute(ctx, runner.Request{Code: smokeCode})
	if err != nil {
		return Check{name, Fail, err.Error(), "see the error; `gkexec run -v -c 'print(1)'` shows each phase"}, nil
	}
	if res.ExitCode != 0 {
		return Check{name, Fail, fmt.Sprintf("exit %d: %s", res.ExitCode, res.Stderr), ""}, nil
	}
	seen := readSmoke(string(res.Stdout))
	kernel := seen.kernel
	languages := Check{"languages the image runs", Pass, strings.Join(seen.runs, ", "), ""}
	if len(seen.lacks) > 0 {
		languages.Detail += "; not " + strings.Join(seen.lacks, ", ")
	}
	if !d.opts.NoRuntimeClass && seen.runtime != "gvisor" {
		return Check{name, Warn, "ran, but not under gVisor: " + kernel, "check that RuntimeClass " + d.opts.RuntimeClassName + " uses the gVisor handler"}, &languages
	}
	return Check{name, Pass, fmt.Sprintf("%s (in %.1fs)", kernel, time.Since(res.Timings.Requested).Seconds()), ""}, &languages
}
