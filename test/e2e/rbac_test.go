//go:build integration || gke

package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	authenticationv1 "k8s.io/api/authentication/v1"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// testRBAC is stage 2: with the agent's own token, everything the runner needs is allowed and
// everything else that matters is denied; `gkexec doctor` passes, and names the verb when a rule
// is taken away.
func testRBAC(t *testing.T, tg *target) {
	ctx := context.Background()

	t.Run("agent_is_the_service_account", func(t *testing.T) {
		review, err := tg.agentClient(t).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := "system:serviceaccount:" + tg.serviceAccountNamespace() + ":" + tg.serviceAccount
		if got := review.Status.UserInfo.Username; got != want {
			t.Fatalf("the agent kubeconfig authenticates as %q, want %q", got, want)
		}
		if slices.Contains(review.Status.UserInfo.Groups, "system:masters") {
			t.Fatal("the agent is in system:masters")
		}
	})

	t.Run("allowed", func(t *testing.T) {
		for _, rule := range tg.rules() {
			for _, res := range rule.Resources {
				resource, sub, _ := strings.Cut(res, "/")
				for _, verb := range rule.Verbs {
					attrs := authv1.ResourceAttributes{Namespace: tg.namespace, Verb: verb, Group: rule.APIGroups[0], Resource: resource, Subresource: sub}
					if !k8s.CanIDoContext(t, ctx, tg.agentKubectl, attrs) {
						t.Errorf("denied: %s %s in %s; the runner needs it", verb, res, tg.namespace)
					}
				}
			}
		}
	})

	t.Run("denied", func(t *testing.T) {
		ns := tg.namespace
		denied := []struct {
			why   string
			attrs authv1.ResourceAttributes
		}{
			{"exec into pods", authv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "exec"}},
			{"update pods", authv1.ResourceAttributes{Namespace: ns, Verb: "update", Resource: "pods"}},
			{"attach to pods in another namespace", authv1.ResourceAttributes{Namespace: tg.otherNamespace, Verb: "create", Resource: "pods", Subresource: "attach"}},
			{"change the warm pool", authv1.ResourceAttributes{Namespace: ns, Verb: "patch", Group: "apps", Resource: "deployments"}},
			{"port-forward", authv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "portforward"}},
			{"read secrets", authv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "secrets"}},
			{"list secrets", authv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "secrets"}},
			{"create pods directly", authv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods"}},
			{"delete pods in another namespace", authv1.ResourceAttributes{Namespace: tg.otherNamespace, Verb: "delete", Resource: "pods"}},
			{"read configmaps by name", authv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "configmaps"}},
			{"update jobs", authv1.ResourceAttributes{Namespace: ns, Verb: "update", Group: "batch", Resource: "jobs"}},
			{"mint tokens", authv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "serviceaccounts", Subresource: "token"}},
			{"edit its own Role", authv1.ResourceAttributes{Namespace: ns, Verb: "update", Group: "rbac.authorization.k8s.io", Resource: "roles"}},
			{"bind roles", authv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}},
			{"change the quota", authv1.ResourceAttributes{Namespace: ns, Verb: "update", Resource: "resourcequotas"}},
			{"change the NetworkPolicy", authv1.ResourceAttributes{Namespace: ns, Verb: "delete", Group: "networking.k8s.io", Resource: "networkpolicies"}},
			{"create jobs in another namespace", authv1.ResourceAttributes{Namespace: tg.otherNamespace, Verb: "create", Group: "batch", Resource: "jobs"}},
			{"read logs in another namespace", authv1.ResourceAttributes{Namespace: tg.otherNamespace, Verb: "get", Resource: "pods", Subresource: "log"}},
			{"create configmaps in default", authv1.ResourceAttributes{Namespace: "default", Verb: "create", Resource: "configmaps"}},
			{"list pods in kube-system", authv1.ResourceAttributes{Namespace: "kube-system", Verb: "list", Resource: "pods"}},
			{"list nodes", authv1.ResourceAttributes{Verb: "list", Resource: "nodes"}},
			{"list namespaces", authv1.ResourceAttributes{Verb: "list", Resource: "namespaces"}},
			{"delete its namespace", authv1.ResourceAttributes{Verb: "delete", Resource: "namespaces", Name: ns}},
			{"create RuntimeClasses", authv1.ResourceAttributes{Verb: "create", Group: "node.k8s.io", Resource: "runtimeclasses"}},
			{"create ClusterRoleBindings", authv1.ResourceAttributes{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}},
			{"anything, anywhere", authv1.ResourceAttributes{Verb: "*", Group: "*", Resource: "*"}},
		}
		if !tg.warmPool {
			// Only the warm path needs these, and only where a pool is installed.
			denied = append(denied, []struct {
				why   string
				attrs authv1.ResourceAttributes
			}{
				{"attach to pods", authv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "attach"}},
				{"delete pods", authv1.ResourceAttributes{Namespace: ns, Verb: "delete", Resource: "pods"}},
				{"patch pods", authv1.ResourceAttributes{Namespace: ns, Verb: "patch", Resource: "pods"}},
			}...)
		}
		for _, d := range denied {
			if k8s.CanIDoContext(t, ctx, tg.agentKubectl, d.attrs) {
				t.Errorf("allowed, must be denied: %s (%+v)", d.why, d.attrs)
			}
		}
	})

	t.Run("denied_calls_fail", func(t *testing.T) {
		agent := tg.agentClient(t)
		calls := map[string]func() error{
			"list secrets": func() error {
				_, err := agent.CoreV1().Secrets(tg.namespace).List(ctx, metav1.ListOptions{})
				return err
			},
			"create a pod": func() error {
				_, err := agent.CoreV1().Pods(tg.namespace).Create(ctx, &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-forbidden-"},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "python:3.11-slim"}}},
				}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				return err
			},
			"list nodes": func() error {
				_, err := agent.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
				return err
			},
			"list configmaps in another namespace": func() error {
				_, err := agent.CoreV1().ConfigMaps(tg.otherNamespace).List(ctx, metav1.ListOptions{})
				return err
			},
		}
		for what, call := range calls {
			if err := call(); !apierrors.IsForbidden(err) {
				t.Errorf("%s as the agent: err = %v, want Forbidden", what, err)
			}
		}
	})

	t.Run("doctor_passes", func(t *testing.T) {
		res := tg.gkexec(t, 5*time.Minute, nil, "doctor")
		if res.exitCode != 0 {
			t.Fatalf("gkexec doctor as the agent: %s", res)
		}
		for _, want := range []string{
			"[ok]   RBAC allows every call the runner makes",
			"[ok]   namespace " + tg.namespace + " exists",
			"[ok]   smoke execution in the sandbox",
			"[ok]   languages the image runs: bash, javascript, python", // the local image has Debian's nodejs
		} {
			if !strings.Contains(string(res.stdout), want) {
				t.Errorf("doctor output lacks %q:\n%s", want, res.stdout)
			}
		}
	})

	t.Run("doctor_names_a_missing_verb", func(t *testing.T) {
		removed := tg.dropRoleRule(t, "pods/log")
		t.Cleanup(func() { tg.restoreRole(t, removed) })
		res := tg.gkexec(t, 2*time.Minute, nil, "doctor", "--smoke=false")
		if res.exitCode != 1 {
			t.Fatalf("doctor without pods/log: %s; want exit 1", res)
		}
		if !strings.Contains(string(res.stdout), "[FAIL] RBAC allows every call the runner makes: missing: get pods/log") {
			t.Errorf("doctor does not name the missing verb:\n%s", res.stdout)
		}
		if !strings.Contains(string(res.stdout), "fix: grant these verbs in namespace "+tg.namespace) {
			t.Errorf("doctor gives no fix:\n%s", res.stdout)
		}
		if !strings.Contains(string(res.stderr), "1 check(s) failed") {
			t.Errorf("doctor stderr = %q, want the failed count", res.stderr)
		}
	})
}

// dropRoleRule removes resource from the gkexec Role (as admin) and waits until the authorizer
// denies it to the agent. It returns the Role as it was.
func (tg *target) dropRoleRule(t *testing.T, resource string) *rbacv1.Role {
	t.Helper()
	ctx := context.Background()
	role, err := tg.admin.RbacV1().Roles(tg.namespace).Get(ctx, roleName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	original := role.DeepCopy()
	role.Rules = slices.DeleteFunc(role.Rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.Resources, resource) })
	if len(role.Rules) == len(original.Rules) {
		t.Fatalf("role %s/%s has no rule for %s", tg.namespace, roleName, resource)
	}
	if _, err := tg.admin.RbacV1().Roles(tg.namespace).Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, sub, _ := strings.Cut(resource, "/")
	tg.waitAgentCan(t, authv1.ResourceAttributes{Namespace: tg.namespace, Verb: "get", Resource: res, Subresource: sub}, false)
	return original
}

// restoreRole puts the Role's rules back and waits until the agent has them again.
func (tg *target) restoreRole(t *testing.T, original *rbacv1.Role) {
	t.Helper()
	ctx := context.Background()
	err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		role, err := tg.admin.RbacV1().Roles(tg.namespace).Get(ctx, roleName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		role.Rules = original.Rules
		_, err = tg.admin.RbacV1().Roles(tg.namespace).Update(ctx, role, metav1.UpdateOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("could not restore role %s/%s: %v", tg.namespace, roleName, err)
	}
	tg.waitAgentCan(t, authv1.ResourceAttributes{Namespace: tg.namespace, Verb: "get", Resource: "pods", Subresource: "log"}, true)
}

// waitAgentCan waits until a SelfSubjectAccessReview as the agent answers want (RBAC changes
// reach the authorizer through an informer, a moment later).
func (tg *target) waitAgentCan(t *testing.T, attrs authv1.ResourceAttributes, want bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := k8s.CanIDoContextE(t, ctx, tg.agentKubectl, attrs)
		return err == nil && got == want, nil
	})
	if err != nil {
		t.Fatalf("the agent's %s %s/%s never became allowed=%v", attrs.Verb, attrs.Resource, attrs.Subresource, want)
	}
}
