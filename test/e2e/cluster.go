//go:build integration || gke

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner"
)

const (
	// roleName is the Role both the Terraform module and manifests/ create.
	roleName = "gkexec-runner"
	// agentTokenTTL outlives the whole suite; tokens are minted per run, never stored.
	agentTokenTTL = 3 * time.Hour
)

// target is one namespace stood up by the kit, with the two identities the stages need: the admin
// (to stand up, inspect and tamper) and the agent ServiceAccount (to run everything under test).
type target struct {
	name           string // which stand-up made it: "terraform", "manifests", "gke"
	namespace      string
	serviceAccount string
	// agentNamespace holds the agent's ServiceAccount when the agent runs in a namespace of its
	// own (the GKE example); "" means namespace (an agent outside the cluster, the local stand-ups).
	agentNamespace string
	// otherNamespace exists and belongs to someone else: the agent must not reach into it.
	otherNamespace string

	admin        kubernetes.Interface
	adminConfig  *rest.Config
	adminKubectl *k8s.KubectlOptions

	agentConfig     *rest.Config
	agentKubeconfig string
	agentKubectl    *k8s.KubectlOptions

	// bin is the gkexec binary under test.
	bin string
	// gke: a real GKE cluster (metadata server, Dataplane V2, autoscaled sandbox pool).
	gke bool
	// startTimeout for executions that should start: room for a node scale-up on GKE.
	startTimeout time.Duration
	// warmPool: installed with the warm pool (manifests/overlays/warm-pool); its Role adds
	// runner.WarmPoolRules().
	warmPool bool
	// autoscaled: the pool is sized by demand (manifests/overlays/warm-pool-autoscale); its Role
	// adds runner.PoolAutoscaleRules() too.
	autoscaled bool
}

// serviceAccountNamespace is where the agent's ServiceAccount lives.
func (tg *target) serviceAccountNamespace() string {
	if tg.agentNamespace != "" {
		return tg.agentNamespace
	}
	return tg.namespace
}

// rules is what the namespace's Role must grant, exactly.
func (tg *target) rules() []rbacv1.PolicyRule {
	if tg.autoscaled {
		return append(append(runner.RequiredRules(), runner.WarmPoolRules()...), runner.PoolAutoscaleRules()...)
	}
	if tg.warmPool {
		return append(runner.RequiredRules(), runner.WarmPoolRules()...)
	}
	return runner.RequiredRules()
}

// adminClient loads a kubeconfig into a client with room for the suite's polling.
func adminClient(t *testing.T, kubeconfig, kubeContext string) (*rest.Config, kubernetes.Interface) {
	t.Helper()
	cfg, err := k8s.LoadAPIClientConfigE(kubeconfig, kubeContext)
	if err != nil {
		t.Fatalf("admin kubeconfig %s: %v", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, client
}

// becomeAgent mints a TokenRequest token for the namespace's agent ServiceAccount (as admin) and
// gives the target a rest.Config and a kubeconfig file that authenticate with it, and nothing else.
func (tg *target) becomeAgent(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := tg.admin.CoreV1().ServiceAccounts(tg.serviceAccountNamespace()).CreateToken(ctx, tg.serviceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To(int64(agentTokenTTL.Seconds())),
		}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for serviceaccount %s/%s: %v", tg.serviceAccountNamespace(), tg.serviceAccount, err)
	}
	ca := tg.adminConfig.CAData
	if len(ca) == 0 && tg.adminConfig.CAFile != "" {
		if ca, err = os.ReadFile(tg.adminConfig.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	tg.agentConfig = &rest.Config{
		Host:            tg.adminConfig.Host,
		BearerToken:     tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca, ServerName: tg.adminConfig.ServerName},
		QPS:             50,
		Burst:           100,
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["cluster"] = &clientcmdapi.Cluster{Server: tg.adminConfig.Host, CertificateAuthorityData: ca, TLSServerName: tg.adminConfig.ServerName}
	kc.AuthInfos["agent"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["agent"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "agent", Namespace: tg.namespace}
	kc.CurrentContext = "agent"
	tg.agentKubeconfig = filepath.Join(dir, tg.name+"-agent.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, tg.agentKubeconfig); err != nil {
		t.Fatal(err)
	}
	tg.agentKubectl = k8s.NewKubectlOptions("agent", tg.agentKubeconfig, tg.namespace)
}

// agentClient is a clientset with the agent's identity.
func (tg *target) agentClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(tg.agentConfig)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// options are the runner options every library test starts from: the agent's identity, the
// target namespace, and deadlines generous enough for a loaded 2-core CI machine.
func (tg *target) options() runner.Options {
	return runner.Options{
		Namespace:    tg.namespace,
		RESTConfig:   tg.agentConfig,
		Timeout:      2 * time.Minute,
		StartTimeout: max(tg.startTimeout, 3*time.Minute),
	}
}

// newRunner builds a runner as the agent, closed when the test ends.
func (tg *target) newRunner(t *testing.T, opts runner.Options) *runner.Runner {
	t.Helper()
	r, err := runner.New(opts)
	if err != nil {
		t.Fatalf("runner.New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// executionID is a fresh, recognisable execution ID, so that objects are traceable to a test.
func executionID(slug string) string {
	return fmt.Sprintf("e2e-%s-%s", slug, strings.ToLower(random.UniqueID()))
}

// uniqueName is a DNS label: prefix plus a terratest unique suffix.
func uniqueName(prefix string) string {
	return prefix + "-" + strings.ToLower(random.UniqueID())
}

// assertStoodUp checks what the stand-up promised, as admin: the namespace enforces the restricted
// Pod Security profile, the agent ServiceAccount exists, and its Role grants exactly
// runner.RequiredRules().
func (tg *target) assertStoodUp(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := tg.admin.CoreV1().Namespaces().Get(ctx, tg.namespace, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("namespace %s: %v", tg.namespace, err)
	}
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("namespace %s enforces Pod Security %q, want restricted", tg.namespace, got)
	}
	if _, err := tg.admin.CoreV1().ServiceAccounts(tg.serviceAccountNamespace()).Get(ctx, tg.serviceAccount, metav1.GetOptions{}); err != nil {
		t.Errorf("serviceaccount %s/%s: %v", tg.serviceAccountNamespace(), tg.serviceAccount, err)
	}
	role, err := tg.admin.RbacV1().Roles(tg.namespace).Get(ctx, roleName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("role %s/%s: %v", tg.namespace, roleName, err)
	}
	if got, want := ruleSet(role.Rules), ruleSet(tg.rules()); !slices.Equal(got, want) {
		t.Errorf("role %s/%s grants\n  %v\nwant exactly runner.RequiredRules() (+ WarmPoolRules() with the pool)\n  %v", tg.namespace, roleName, got, want)
	}
	if tg.warmPool {
		if _, err := tg.admin.AppsV1().Deployments(tg.namespace).Get(ctx, runner.WarmPoolName("default"), metav1.GetOptions{}); err != nil {
			t.Errorf("the warm pool: %v", err)
		}
	}
	rb, err := tg.admin.RbacV1().RoleBindings(tg.namespace).Get(ctx, roleName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("rolebinding %s/%s: %v", tg.namespace, roleName, err)
	}
	wantSubject := rbacv1.Subject{Kind: "ServiceAccount", Name: tg.serviceAccount, Namespace: tg.serviceAccountNamespace()}
	if len(rb.Subjects) != 1 || rb.Subjects[0] != wantSubject || rb.RoleRef.Name != roleName {
		t.Errorf("rolebinding %s/%s binds %v to %v, want %v to role %s", tg.namespace, roleName, rb.Subjects, rb.RoleRef, wantSubject, roleName)
	}
	np, err := tg.admin.NetworkingV1().NetworkPolicies(tg.namespace).List(ctx, metav1.ListOptions{})
	if err != nil || len(np.Items) == 0 {
		t.Errorf("namespace %s has no NetworkPolicy for the sandboxes (err %v)", tg.namespace, err)
	}
}

// ruleSet flattens rules to sorted "group/resource:verb" strings, for comparison.
func ruleSet(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, g+"/"+res+":"+v)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// nodesReady reports whether every node is Ready, and describes any that is not.
func nodesReady(ctx context.Context, client kubernetes.Interface) (bool, string, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, "", err
	}
	var bad []string
	for _, n := range nodes.Items {
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			bad = append(bad, n.Name)
		}
	}
	if len(nodes.Items) == 0 {
		return false, "no nodes", nil
	}
	return len(bad) == 0, strings.Join(bad, ", "), nil
}

// errorsIs fails the test unless err wraps want.
func errorsIs(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want one wrapping %q", err, want)
	}
}

// createInQuota makes a create in a namespace with a ResourceQuota, trying again while the API
// server answers Conflict: concurrent creates race on the quota's usage counters, the loser is
// refused, nothing was created, and the server asks for a retry (the runner does the same).
func createInQuota(create func() error) error {
	return retry.OnError(retry.DefaultBackoff, apierrors.IsConflict, create)
}
