//go:build integration

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner"
)

const (
	// sandboxNamespaceLabel selects a namespace for the admission policy of the sandbox-namespace
	// module and manifests/, and names the RuntimeClass it requires.
	sandboxNamespaceLabel = "gkexec.dev/sandbox-runtime-class"
	// policyDenial starts what the API server says when one of the installations' admission
	// policies refuses a request (every installation's binding covers every labelled namespace,
	// so which one answers first is not fixed).
	policyDenial = "ValidatingAdmissionPolicy 'gkexec-sandbox-pods-"
	// admissionGate keeps the Pods this stage gets admitted from ever being scheduled: admission is
	// what is tested, and nothing needs to run.
	admissionGate = "gkexec.dev/e2e-admission"
	// jobControllerUser creates Job Pods; the admin impersonates it to create Pods the way the Job
	// controller does for the agent (not as system:masters, whom the policy lets through).
	jobControllerUser = "system:serviceaccount:kube-system:job-controller"
)

// testAdmission is stage 13, on the namespace with the warm pool (whose Role has pods patch): the
// namespace admits only sandbox Pods. As the agent, a Job whose Pod is not the runner's hardened
// gVisor sandbox never gets its Pod, and the Job's events carry the policy's message; a patch cannot
// take a sandbox's labels off; cold, warm and session executions still run. With Pod Security
// relaxed, the policy alone still refuses what Pod Security would.
func testAdmission(t *testing.T, tg *target) {
	tg.step(t, "policy_installed_for_the_namespace", func(t *testing.T) {
		ctx := context.Background()
		name := "gkexec-sandbox-pods-" + tg.namespace
		ns, err := tg.admin.CoreV1().Namespaces().Get(ctx, tg.namespace, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := ns.Labels[sandboxNamespaceLabel]; got != runner.DefaultRuntimeClassName {
			t.Errorf("namespace %s: label %s = %q, want %q", tg.namespace, sandboxNamespaceLabel, got, runner.DefaultRuntimeClassName)
		}
		if _, err := tg.admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("ValidatingAdmissionPolicy %s: %v", name, err)
		}
		binding, err := tg.admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("ValidatingAdmissionPolicyBinding %s: %v", name, err)
		}
		if binding.Spec.PolicyName != name {
			t.Errorf("binding %s puts policy %q in force, want %q", name, binding.Spec.PolicyName, name)
		}
	})

	tg.step(t, "agent_jobs_make_only_sandbox_pods", func(t *testing.T) {
		// Each case breaks one rule that Pod Security "restricted" (enforced in the namespace too)
		// lets pass, so that what refuses the Pod is the policy. The first case breaks none.
		cases := []struct {
			name    string
			breaks  func(*corev1.PodTemplateSpec)
			message string // "" for the control: admitted
		}{
			{"sandbox", func(*corev1.PodTemplateSpec) {}, ""},
			{"no-sandbox-labels", func(p *corev1.PodTemplateSpec) {
				delete(p.Labels, runner.LabelComponent)
			}, "admits only gkexec sandbox Pods"},
			{"no-runtime-class", func(p *corev1.PodTemplateSpec) {
				p.Spec.RuntimeClassName = nil
			}, "runs sandboxes under RuntimeClass " + runner.DefaultRuntimeClassName},
			{"agent-service-account", func(p *corev1.PodTemplateSpec) {
				p.Spec.ServiceAccountName = tg.serviceAccount
			}, "holds no Kubernetes identity"},
			{"service-account-token", func(p *corev1.PodTemplateSpec) {
				p.Spec.AutomountServiceAccountToken = ptr.To(true)
			}, "holds no Kubernetes identity"},
			{"secret-volume", func(p *corev1.PodTemplateSpec) {
				p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "secret",
					VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "anything"}}})
			}, "mounts only emptyDir and configMap volumes"},
			{"secret-env", func(p *corev1.PodTemplateSpec) {
				p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: "S", ValueFrom: &corev1.EnvVarSource{
					SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "anything"}, Key: "k"}}})
			}, "reads no Secret"},
			{"writable-root", func(p *corev1.PodTemplateSpec) {
				p.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = ptr.To(false)
			}, "read-only root filesystem"},
			{"capability-added", func(p *corev1.PodTemplateSpec) {
				p.Spec.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_BIND_SERVICE"}
			}, "drops all capabilities and adds none"},
		}
		agent := tg.agentClient(t)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				id := executionID("adm-" + c.name)
				template := tg.sandboxTemplate(t, id)
				c.breaks(&template)
				job := &batchv1.Job{
					ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: tg.namespace, Labels: template.Labels},
					Spec: batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), ActiveDeadlineSeconds: ptr.To[int64](120),
						PodReplacementPolicy: ptr.To(batchv1.Failed), Template: template},
				}
				ctx := context.Background()
				if _, err := agent.BatchV1().Jobs(tg.namespace).Create(ctx, job, metav1.CreateOptions{}); err != nil {
					t.Fatalf("create job %s as the agent: %v", id, err)
				}
				t.Cleanup(func() { tg.deleteJob(id) })
				if c.message == "" {
					tg.waitJobPod(t, id)
					return
				}
				tg.waitJobRefused(t, id, c.message)
			})
		}
	})

	tg.step(t, "agent_cannot_take_a_sandbox_labels_off", func(t *testing.T) {
		tg.waitPoolReady(t, 1)
		ctx := context.Background()
		pods, err := tg.agentClient(t).CoreV1().Pods(tg.namespace).List(ctx, metav1.ListOptions{LabelSelector: poolSelector(runner.PoolStateIdle)})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("an idle warm pool Pod to patch as the agent: %v (%d found)", err, len(pods.Items))
		}
		pod := pods.Items[0].Name
		agent := tg.agentClient(t)
		patch := func(kind types.PatchType, body string) error {
			_, err := agent.CoreV1().Pods(tg.namespace).Patch(ctx, pod, kind, []byte(body), metav1.PatchOptions{})
			return err
		}
		refused := []struct{ name, kind, body string }{
			{"remove component", string(types.JSONPatchType), `[{"op":"remove","path":"/metadata/labels/app.kubernetes.io~1component"}]`},
			{"change managed-by", string(types.MergePatchType), `{"metadata":{"labels":{"app.kubernetes.io/managed-by":"someone-else"}}}`},
		}
		for _, r := range refused {
			err := patch(types.PatchType(r.kind), r.body)
			if err == nil {
				// Out of the Deployment, gc's and the leftover checks' sight: take it away.
				_ = tg.admin.CoreV1().Pods(tg.namespace).Delete(context.Background(), pod, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
				t.Fatalf("%s of sandbox Pod %s as the agent was admitted; the namespace must refuse it", r.name, pod)
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), policyDenial) || !strings.Contains(err.Error(), "keeps its labels") {
				t.Errorf("%s of sandbox Pod %s as the agent: %v; want the admission policy's refusal", r.name, pod, err)
			}
		}
		// Other labels stay the agent's to change (the runner's claim relabels pool-state).
		if err := patch(types.MergePatchType, `{"metadata":{"labels":{"gkexec.dev/e2e-admission":"probe"}}}`); err != nil {
			t.Errorf("adding a label to sandbox Pod %s as the agent: %v", pod, err)
		}
		if err := patch(types.MergePatchType, `{"metadata":{"labels":{"gkexec.dev/e2e-admission":null}}}`); err != nil {
			t.Errorf("removing that label again: %v", err)
		}
	})

	tg.step(t, "the_runners_sandboxes_are_admitted", func(t *testing.T) {
		tg.waitPoolReady(t, warmPoolReplicas)
		ctx := context.Background()
		warmOpts := tg.options()
		warmOpts.WarmPoolReady = -1
		coldOpts := warmOpts
		coldOpts.WarmPool = "no-such-pool" // nothing matches: a Job of its own
		warm, cold := tg.newRunner(t, warmOpts), tg.newRunner(t, coldOpts)
		for _, run := range []struct {
			r    *runner.Runner
			want string
		}{{cold, runner.SandboxCold}, {warm, runner.SandboxWarm}} {
			res, err := run.r.Execute(ctx, runner.Request{Code: "print(6 * 7)", ExecutionID: executionID("adm-" + run.want)})
			if err != nil || res.Sandbox != run.want || string(res.Stdout) != "42\n" {
				t.Errorf("one-shot: %v, sandbox %q, stdout %q; want 42 from a %s sandbox", err, res.Sandbox, res.Stdout, run.want)
			}
		}
		for _, r := range []*runner.Runner{warm, cold} {
			s := openSession(t, r, runner.SessionOptions{ID: executionID("adms")})
			sessionExec(t, s, "x = 41\n", 0, "")
			sessionExec(t, s, "print(x + 1)\n", 0, "42\n")
			if err := s.Close(); err != nil {
				t.Errorf("close session %s (%s): %v", s.ID(), s.Sandbox(), err)
			}
		}
	})

	t.Run("the_policy_alone_refuses_what_pod_security_would", func(t *testing.T) {
		tg.testPolicyWithoutPodSecurity(t)
	})
}

// testPolicyWithoutPodSecurity: in a namespace labelled for the policy but with Pod Security
// relaxed to privileged (as an operator might), the policy alone refuses host namespaces, hostPath,
// root, privilege escalation, privileged containers and other seccomp profiles. Server-side dry
// runs, as the Job controller.
func (tg *target) testPolicyWithoutPodSecurity(t *testing.T) {
	ctx := context.Background()
	ns := uniqueName("gkexec-e2e-adm")
	_, err := tg.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		sandboxNamespaceLabel:                runner.DefaultRuntimeClassName,
		"pod-security.kubernetes.io/enforce": "privileged",
	}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tg.admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		waitNamespaceGone(t, tg.admin, ns, 2*time.Minute)
	})
	// A new namespace gets its default ServiceAccount a moment later; no Pod is admitted before.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := tg.admin.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("namespace %s has no default ServiceAccount: %v", ns, err)
	}
	cfg := rest.CopyConfig(tg.adminConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: jobControllerUser}
	jobController, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		breaks  func(*corev1.PodSpec)
		message string
	}{
		{"sandbox", func(*corev1.PodSpec) {}, ""},
		{"host-network", func(p *corev1.PodSpec) { p.HostNetwork = true }, "shares no namespace with its node"},
		{"host-pid", func(p *corev1.PodSpec) { p.HostPID = true }, "shares no namespace with its node"},
		{"host-path", func(p *corev1.PodSpec) {
			p.Volumes = append(p.Volumes, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
		}, "mounts only emptyDir and configMap volumes"},
		{"root", func(p *corev1.PodSpec) {
			p.SecurityContext.RunAsUser, p.SecurityContext.RunAsNonRoot = ptr.To[int64](0), nil
			p.Containers[0].SecurityContext.RunAsUser, p.Containers[0].SecurityContext.RunAsNonRoot = nil, nil
		}, "runs as a non-root user"},
		{"privilege-escalation", func(p *corev1.PodSpec) {
			p.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
		}, "is privileged or may escalate"},
		{"privileged", func(p *corev1.PodSpec) {
			p.Containers[0].SecurityContext.Privileged, p.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true), nil
		}, "is privileged or may escalate"},
		{"unconfined", func(p *corev1.PodSpec) {
			p.SecurityContext.SeccompProfile = nil
			p.Containers[0].SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}, "RuntimeDefault seccomp profile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			template := tg.sandboxTemplate(t, executionID("adm-psa"))
			c.breaks(&template.Spec)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-admission-", Namespace: ns, Labels: template.Labels}, Spec: template.Spec}
			_, err := jobController.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			switch {
			case c.message == "" && err != nil:
				t.Fatalf("the runner's sandbox Pod was refused: %v", err)
			case c.message == "":
			case err == nil:
				t.Fatalf("admitted; with Pod Security relaxed the admission policy must still refuse it (%q)", c.message)
			case !strings.Contains(err.Error(), policyDenial) || !strings.Contains(err.Error(), c.message):
				t.Errorf("refused with %v; want the admission policy's %q", err, c.message)
			}
		})
	}
}

// sandboxTemplate is the Pod the runner's warm pool makes (runner.WarmPoolDeployment, the same
// hardened sandboxPodSpec as a cold Job's), as a Job's one-shot Pod labelled with execution id, and
// scheduling-gated: if admitted it is never scheduled.
func (tg *target) sandboxTemplate(t *testing.T, id string) corev1.PodTemplateSpec {
	t.Helper()
	d, err := runner.WarmPoolDeployment(runner.Options{Namespace: tg.namespace}, 1)
	if err != nil {
		t.Fatal(err)
	}
	template := *d.Spec.Template.DeepCopy()
	template.Labels = map[string]string{
		runner.LabelManagedBy:   runner.ManagedByValue,
		runner.LabelComponent:   runner.ComponentSandbox,
		runner.LabelExecutionID: id,
	}
	template.Spec.RestartPolicy = corev1.RestartPolicyNever
	template.Spec.Containers[0].Stdin = false
	template.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: admissionGate}}
	return template
}

// waitJobPod waits until Job name's Pod exists: it was admitted.
func (tg *target) waitJobPod(t *testing.T, name string) {
	t.Helper()
	var events string
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := tg.admin.CoreV1().Pods(tg.namespace).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
		if err == nil && len(pods.Items) > 0 {
			return true, nil
		}
		events = tg.jobEvents(ctx, name)
		return false, nil
	})
	if err != nil {
		t.Fatalf("job %s, the runner's own sandbox, got no Pod within a minute; events: %s", name, events)
	}
}

// waitJobRefused waits for Job name's FailedCreate event and checks that it is the admission
// policy's refusal, saying message, and that no Pod of the Job exists.
func (tg *target) waitJobRefused(t *testing.T, name, message string) {
	t.Helper()
	var events string
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := tg.admin.CoreV1().Pods(tg.namespace).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
		if err == nil && len(pods.Items) > 0 {
			return false, fmt.Errorf("its Pod %s was admitted", pods.Items[0].Name)
		}
		events = tg.jobEvents(ctx, name)
		return strings.Contains(events, policyDenial) && strings.Contains(events, message), nil
	})
	if err != nil {
		t.Fatalf("job %s as the agent: %v; want its Pod refused by the admission policy saying %q; events: %s", name, err, message, events)
	}
}

// jobEvents joins the FailedCreate messages of Job name.
func (tg *target) jobEvents(ctx context.Context, name string) string {
	sel := fields.Set{"involvedObject.kind": "Job", "involvedObject.name": name, "reason": "FailedCreate"}.String()
	list, err := tg.admin.CoreV1().Events(tg.namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return err.Error()
	}
	var msgs []string
	for _, ev := range list.Items {
		msgs = append(msgs, ev.Message)
	}
	return strings.Join(msgs, " | ")
}

// deleteJob deletes Job name and its Pods, as admin.
func (tg *target) deleteJob(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = tg.admin.BatchV1().Jobs(tg.namespace).Delete(ctx, name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
}
