//go:build integration

package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/test/leftovers"
	"github.com/gkexec/gkexec/test/testenv"
	"github.com/gkexec/gkexec/test/testns"
)

// What test/run.sh (make test) and make e2e pass.
const (
	envKubeconfig = "GKEXEC_E2E_KUBECONFIG"
	envBin        = "GKEXEC_BIN"
	howToRun      = "run with `make e2e` (against a running local cluster: make cluster-up) or `make test`, which set it"

	// agentServiceAccount is the identity manifests/ creates for the agent.
	agentServiceAccount = "gkexec-agent"
)

// cluster is one fresh namespace set up like the namespace module, and the two identities the
// tests use: the admin stands it up and inspects it; everything under test runs as the agent.
type cluster struct {
	root      string // repository root
	bin       string // the gkexec binary under test
	namespace string

	admin       kubernetes.Interface
	adminConfig *rest.Config
	kubectl     *k8s.KubectlOptions

	agentConfig     *rest.Config
	agentKubeconfig string
	agentToken      string
}

// standUp applies manifests/overlays/warm-pool (the base and the RBAC sessions need; its pool
// scaled to no idle Pods) into a fresh namespace with kubectl apply -k, mints a token for
// its agent ServiceAccount, and registers the teardown: the namespace is deleted after the test
// has checked that nothing the runner creates was left behind.
func standUp(t *testing.T) *cluster {
	t.Helper()
	kubeconfig := requireEnv(t, envKubeconfig, "the local cluster's admin kubeconfig")
	c := &cluster{root: repoRoot(t), bin: requireEnv(t, envBin, "the gkexec binary under test"),
		namespace: "gkexec-agent-" + strings.ToLower(random.UniqueID())}
	if _, err := os.Stat(c.bin); err != nil {
		t.Fatalf("%s=%s: %v; %s", envBin, c.bin, err, howToRun)
	}
	testenv.UseClusterKubectl(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("admin kubeconfig %s: %v", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	c.adminConfig = cfg
	c.admin = kubernetes.NewForConfigOrDie(cfg)
	c.kubectl = k8s.NewKubectlOptions("", kubeconfig, "")
	// A killed run's namespaces would take the node's capacity from this one.
	testns.SweepStale(t, c.admin)

	overlay := writeOverlay(t, c.root, c.namespace)
	t.Cleanup(func() {
		// Deleting the overlay deletes the namespace and everything in it.
		k8s.KubectlDeleteFromKustomizeContext(t, context.Background(), c.kubectl, overlay)
		testns.WaitGone(t, c.admin, c.namespace, 3*time.Minute)
	})
	k8s.KubectlApplyFromKustomizeContext(t, context.Background(), c.kubectl, overlay)
	testns.Own(t, c.admin, c.namespace)
	c.becomeAgent(t)
	t.Logf("namespace %s from manifests/overlays/warm-pool, agent %s", c.namespace, agentServiceAccount)
	return c
}

// writeOverlay writes a kustomization that retargets manifests/overlays/warm-pool to namespace
// (testenv.WriteOverlay): the base plus runner.WarmPoolRules (which sessions need), its pool at 0
// replicas. The overlay's RBAC (sessions need pods/attach) without its idle Pods: this suite runs
// beside the e2e suite, whose own pool and executions use most of a node that fits ten sandboxes;
// idle Pods here starved them. Sessions here run cold, in Jobs of their own.
func writeOverlay(t *testing.T, root, namespace string) string {
	t.Helper()
	replicas := fmt.Sprintf("replicas:\n  - name: %s\n    count: 0\n", runner.WarmPoolName(runner.DefaultWarmPool))
	return testenv.WriteOverlay(t, root, t.TempDir(), namespace, "warm-pool", replicas)
}

// becomeAgent mints a TokenRequest token for the agent ServiceAccount and makes a rest.Config
// and a kubeconfig file that authenticate with it and nothing else.
func (c *cluster) becomeAgent(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var tr *authenticationv1.TokenRequest
	// The ServiceAccount was just applied; its token controller may need a moment.
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		tr, err = c.admin.CoreV1().ServiceAccounts(c.namespace).CreateToken(ctx, agentServiceAccount,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("TokenRequest for serviceaccount %s/%s: %v", c.namespace, agentServiceAccount, err)
	}
	ca := c.adminConfig.CAData
	if len(ca) == 0 && c.adminConfig.CAFile != "" {
		if ca, err = os.ReadFile(c.adminConfig.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	c.agentToken = tr.Status.Token
	c.agentConfig = &rest.Config{Host: c.adminConfig.Host, BearerToken: c.agentToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca, ServerName: c.adminConfig.ServerName}, QPS: 50, Burst: 100}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: c.adminConfig.Host, CertificateAuthorityData: ca, TLSServerName: c.adminConfig.ServerName}
	kc.AuthInfos["agent"] = &clientcmdapi.AuthInfo{Token: c.agentToken}
	kc.Contexts["agent"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "agent", Namespace: c.namespace}
	kc.CurrentContext = "agent"
	c.agentKubeconfig = filepath.Join(t.TempDir(), "agent.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, c.agentKubeconfig); err != nil {
		t.Fatal(err)
	}
}

// agentRunner is a runner as the agent, closed when the test ends.
func (c *cluster) agentRunner(t *testing.T, o runner.Options) *runner.Runner {
	t.Helper()
	o.Namespace, o.RESTConfig = c.namespace, c.agentConfig
	if o.StartTimeout == 0 {
		o.StartTimeout = 3 * time.Minute // a loaded 2-core machine
	}
	r, err := runner.New(o)
	if err != nil {
		t.Fatalf("runner.New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// assertNothingLeaked fails unless every object the runner created (idle warm-pool Pods aside) is
// gone. Deletions are accepted before they finish (a Job's Pod goes with background propagation),
// so it waits a little for them.
func (c *cluster) assertNothingLeaked(t *testing.T) {
	t.Helper()
	if _, err := leftovers.Wait(context.Background(), c.admin, c.namespace, time.Minute); err != nil {
		t.Error(err)
	}
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func requireEnv(t *testing.T, name, what string) string { return testenv.RequireEnv(t, name, what) }

func repoRoot(t *testing.T) string { return testenv.RepoRoot(t) }

// freePort is a loopback port nothing listens on (it may be taken again before use; unlikely).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
