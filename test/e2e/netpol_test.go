//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/test/testns"
)

// The egress gateway (issue 19 part 2) as its installation lays it out: its Pods, labelled with
// gatewayComponent, run in the namespace "<sandbox namespace>-egress" and serve the sandboxes'
// proxy on gatewayPort and an admin API, which sandboxes must never reach, on gatewayAdminPort.
// The sandbox namespace gets a second NetworkPolicy, gatewayPolicy, that lets sandbox Pods reach
// gatewayPort of those Pods and nothing else.
const (
	gatewayComponent = "egress-gateway"
	gatewayPort      = 3128
	gatewayAdminPort = 9090
	gatewayPolicy    = "gkexec-sandbox-egress-gateway"
)

// peerPort is where the other peers of this stage listen.
const peerPort = 8080

// peerServer answers every connection, on every port in argv[2:], with the token in argv[1], so
// that a client that reads it has provably reached this very server. Plain Python: the peers use
// the sandbox image.
const peerServer = `import socket, sys, threading
token = sys.argv[1].encode()
def answer(c):
    with c:
        c.settimeout(5)
        try:
            c.recv(4096)
        except OSError:
            pass
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(token) + token)
def serve(srv):
    while True:
        threading.Thread(target=answer, args=(srv.accept()[0],), daemon=True).start()
servers = [socket.create_server(("0.0.0.0", int(port)), backlog=64) for port in sys.argv[2:]]
for srv in servers[1:]:
    threading.Thread(target=serve, args=(srv,), daemon=True).start()
serve(servers[0])
`

// peer is one port of something on the pods' bridge; Allowed says whether the sandboxes' policy
// lets them reach it.
type peer struct {
	Name    string `json:"name"`
	IP      string `json:"ip"`
	Port    int    `json:"port"`
	Token   string `json:"token"`
	Allowed bool   `json:"allowed"`
}

// reachCode tries to reach each peer from inside the sandbox, all at once, and prints one JSON
// object: per peer, the outcome of every attempt ("connected", "timeout" or the error) and what
// a connection read. A peer expected to be unreachable ("deny": not Allowed, unless everything
// is to be reachable) gets a fixed number of attempts, never stopped early: a policy that drops
// the packets leaves each one to time out. One expected to be reachable is tried until it
// connects or the deadline passes (a cold sandbox's first packets are held back until the
// enforcer can judge its Pod). It only ever dials the peers' Pod IPs on the local bridge.
func reachCode(allReachable bool, peers []peer) string {
	spec, _ := json.Marshal(peers)
	return fmt.Sprintf(`import json, socket, threading, time
all_reachable, peers = %s, json.loads(%s)
def attempt(ip, port, timeout):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return "connected", data.decode(errors="replace")
            data += chunk
    except TimeoutError:
        return "timeout", ""
    except OSError as e:
        return "%%s(errno %%s)" %% (type(e).__name__, e.errno), ""
    finally:
        s.close()
out = {}
def probe(p):
    deny = not (all_reachable or p["allowed"])
    outcomes, body, deadline = [], "", time.monotonic() + 90
    while True:
        outcome, body = attempt(p["ip"], p["port"], 2 if deny else 1)
        outcomes.append(outcome)
        if deny and len(outcomes) == 3:
            break
        if not deny and (outcome == "connected" or time.monotonic() > deadline):
            break
        if outcome != "timeout":
            time.sleep(0.2)  # a refusal comes back at once: do not spin
    out[p["name"]] = {"outcomes": outcomes, "body": body}
threads = [threading.Thread(target=probe, args=(p,)) for p in peers]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(out))
`, pyBool(allReachable), pyString(string(spec)))
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

type probeOutcome struct {
	Outcomes []string `json:"outcomes"`
	Body     string   `json:"body"`
}

// testNetworkPolicy is stage 16: on the local cluster the sandbox namespace's NetworkPolicies are
// enforced (test/localcluster: kube-network-policies). With the namespace's default deny and one
// egress rule to a stand-in for the egress gateway, a sandbox reaches the gateway's proxy port and
// no other Pod on the bridge — not a server in another namespace, not a Pod in the agent's
// namespace, not another sandbox, not the gateway's other port nor another Pod of its namespace —
// warm or cold, from the first packet of its code on; with the namespace's policies removed the
// very same connections succeed, so the test fails where nothing enforces them.
func testNetworkPolicy(t *testing.T, tg *target) {
	tg.waitPoolReady(t, warmPoolReplicas)
	warm := tg.options()
	warm.WarmPoolReady = -1
	cold := warm
	cold.WarmPool = "no-such-pool" // nothing matches: a Job of its own

	// A server in some other namespace (under gVisor), and one in the namespace an agent Pod would
	// run in (under runc, as an agent's Pod would).
	serverNS, agentNS, gatewayNS := uniqueName("gkexec-e2e-peer"), uniqueName("gkexec-e2e-agentns"), tg.namespace+"-egress"
	tg.createNamespace(t, serverNS)
	tg.createNamespace(t, agentNS)
	tg.createNamespace(t, gatewayNS)
	peers := []peer{
		tg.startPeer(t, serverNS, "server", true, nil, peerPort)[0],
		tg.startPeer(t, agentNS, "agent", false, nil, peerPort)[0],
	}
	// The stand-in for the egress gateway: a runc Pod labelled as the gateway's, in the gateway's
	// namespace, listening on its proxy and admin ports; beside it a Pod without the label on the
	// proxy port.
	gw := tg.startPeer(t, gatewayNS, "gateway", false, map[string]string{"app.kubernetes.io/component": gatewayComponent}, gatewayPort, gatewayAdminPort)
	gw[0].Allowed = true
	peers = append(peers, gw...)
	peers = append(peers, tg.startPeer(t, gatewayNS, "gateway_neighbour", false, nil, gatewayPort)...)
	// And another sandbox: a session whose code keeps a server running in a thread.
	r := tg.newRunner(t, warm)
	session := openSession(t, r, runner.SessionOptions{ID: executionID("np-listen")})
	sandboxToken := strings.ToLower(uniqueName("sandbox"))
	sessionExec(t, session, fmt.Sprintf("import sys, threading\nsys.argv = ['server', %s, '%d']\n_server = threading.Thread(target=exec, args=(%s, {}), daemon=True)\n_server.start()\nprint('listening')",
		pyString(sandboxToken), peerPort, pyString(peerServer)), 0, "listening\n")
	peers = append(peers, peer{Name: "sandbox", IP: tg.podIP(t, session.PodName()), Port: peerPort, Token: sandboxToken})
	t.Logf("peers on the bridge: %+v", peers)

	// The egress rule the gateway's installation adds to the namespace's default deny
	// (NetworkPolicies add up, manifests/README.md "Egress"): sandbox Pods may reach the gateway's
	// Pods, in the gateway's namespace, on its proxy port; nothing else. Until the gateway's
	// component is in manifests/, the test writes that policy itself.
	tg.allowEgressToGateway(t, gatewayNS)

	// expect checks a probe: every peer the policies allow answered its token, every other one
	// timed out on every attempt, its packets dropped (a refusal would fail the test: it would
	// mean the packet reached the peer's network stack).
	expect := func(t *testing.T, opts runner.Options, slug string, allReachable bool) {
		t.Helper()
		seen := tg.probe(t, opts, slug, allReachable, peers)
		for _, p := range peers {
			o := seen[p.Name]
			if allReachable || p.Allowed {
				if last := o.Outcomes[len(o.Outcomes)-1]; last != "connected" || !strings.HasSuffix(o.Body, p.Token) {
					t.Errorf("sandbox -> %s (%s:%d): %v, read %q; want a connection answering %q", p.Name, p.IP, p.Port, o.Outcomes, o.Body, p.Token)
				}
				continue
			}
			for i, outcome := range o.Outcomes {
				if outcome != "timeout" {
					t.Errorf("sandbox -> %s (%s:%d), attempt %d: %s (read %q); want every attempt to time out, its packets dropped", p.Name, p.IP, p.Port, i+1, outcome, o.Body)
				}
			}
		}
	}

	// Not tg.step: the listening session's Pod stays up through every case (runStage checks for
	// leftovers once it is closed).
	t.Run("warm_reaches_only_the_gateway", func(t *testing.T) { expect(t, warm, "np-warm", false) })
	// A cold sandbox's code starts before the API server knows its Pod's IP: its very first
	// packets must be judged too.
	t.Run("cold_reaches_only_the_gateway_from_the_first_packet", func(t *testing.T) { expect(t, cold, "np-cold", false) })

	t.Run("reachable_without_the_policies", func(t *testing.T) {
		restore := tg.removeNetworkPolicies(t)
		expect(t, warm, "np-open", true)
		// Put back, they hold again for sandboxes that are already running.
		restore()
		expect(t, warm, "np-restored", false)
	})
}

// probe runs reachCode in a sandbox and returns what it saw of each peer.
func (tg *target) probe(t *testing.T, opts runner.Options, slug string, allReachable bool, peers []peer) map[string]probeOutcome {
	t.Helper()
	r := tg.newRunner(t, opts)
	res, err := r.Execute(context.Background(), runner.Request{Code: reachCode(allReachable, peers), ExecutionID: executionID(slug), Timeout: 2 * time.Minute})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("probe (all reachable: %v): err %v, exit %d, stderr %s", allReachable, err, res.ExitCode, res.Stderr)
	}
	var out map[string]probeOutcome
	if err := json.Unmarshal(res.Stdout, &out); err != nil || len(out) != len(peers) {
		t.Fatalf("probe (all reachable: %v): %v; stdout %s", allReachable, err, quoteShort(res.Stdout))
	}
	t.Logf("%s sandbox %s, all reachable %v: %+v", res.Sandbox, res.PodName, allReachable, out)
	return out
}

// createNamespace creates a namespace for this test's peers, deleted (and waited for) when the
// test ends.
func (tg *target) createNamespace(t *testing.T, namespace string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := tg.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace %s: %v", namespace, err)
	}
	testns.Own(t, tg.admin, namespace)
	t.Cleanup(func() {
		if err := tg.admin.CoreV1().Namespaces().Delete(context.Background(), namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace %s: %v", namespace, err)
		}
		testns.WaitGone(t, tg.admin, namespace, leftoverDeadline)
	})
}

// startPeer runs a server Pod in namespace that answers on each of ports, and returns it once it
// is Ready, as one peer per port (named name, then name:port). gvisor: under gVisor like the
// sandboxes; otherwise under runc, on this node tolerating its sandbox taint (an agent's or the
// gateway's Pod would run in a pool of its own).
func (tg *target) startPeer(t *testing.T, namespace, name string, gvisor bool, labels map[string]string, ports ...int) []peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tg.options().StartTimeout)
	defer cancel()
	podName := strings.ReplaceAll(name, "_", "-")
	token := strings.ToLower(uniqueName(podName))
	args, portList := []string{"python3", "-c", peerServer, token}, make([]string, 0, len(ports))
	for _, p := range ports {
		args = append(args, strconv.Itoa(p))
		portList = append(portList, strconv.Itoa(p))
	}
	podLabels := map[string]string{"app": podName}
	maps.Copy(podLabels, labels)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: namespace, Labels: podLabels},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			EnableServiceLinks:           ptr.To(false),
			SecurityContext:              &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(runner.DefaultRunAsUser))},
			Containers: []corev1.Container{{
				Name: "server", Image: runner.DefaultImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: args,
				ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
					Command: []string{"python3", "-c", fmt.Sprintf("import socket; [socket.create_connection(('127.0.0.1', p), 2) for p in (%s,)]", strings.Join(portList, ", "))}}}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
		},
	}
	if gvisor {
		pod.Spec.RuntimeClassName = ptr.To(runner.DefaultRuntimeClassName)
	} else {
		pod.Spec.Tolerations = []corev1.Toleration{{Key: "sandbox.gke.io/runtime", Operator: corev1.TolerationOpEqual, Value: "gvisor", Effect: corev1.TaintEffectNoSchedule}}
	}
	if _, err := tg.admin.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("pod %s/%s: %v", namespace, podName, err)
	}
	ready := waitPod(ctx, t, tg, namespace, podName, func(p *corev1.Pod) bool { return podReady(p) && p.Status.PodIP != "" })
	peers := make([]peer, 0, len(ports))
	for i, port := range ports {
		n := name
		if i > 0 {
			n = fmt.Sprintf("%s:%d", name, port)
		}
		peers = append(peers, peer{Name: n, IP: ready.Status.PodIP, Port: port, Token: token})
	}
	return peers
}

// allowEgressToGateway adds to the target namespace (as admin, removed when the test ends) the
// NetworkPolicy an egress gateway's installation adds: sandbox Pods may open connections to Pods
// labelled as the gateway's, in the gateway's namespace, on its proxy port.
func (tg *target) allowEgressToGateway(t *testing.T, gatewayNamespace string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tcp := corev1.ProtocolTCP
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: gatewayPolicy, Namespace: tg.namespace},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{
				"app.kubernetes.io/managed-by": "gkexec", "app.kubernetes.io/component": "sandbox"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": gatewayNamespace}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/component": gatewayComponent}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptr.To(intstr.FromInt32(gatewayPort))}},
			}},
		},
	}
	if _, err := tg.admin.NetworkingV1().NetworkPolicies(tg.namespace).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatalf("NetworkPolicy %s/%s: %v", tg.namespace, np.Name, err)
	}
	t.Cleanup(func() {
		err := tg.admin.NetworkingV1().NetworkPolicies(tg.namespace).Delete(context.Background(), np.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting NetworkPolicy %s/%s: %v", tg.namespace, np.Name, err)
		}
	})
}

// podIP is the IP of a Pod of the target namespace, once it has one.
func (tg *target) podIP(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return waitPod(ctx, t, tg, tg.namespace, name, func(p *corev1.Pod) bool { return p.Status.PodIP != "" }).Status.PodIP
}

// waitPod watches one Pod until cond holds, failing the test when ctx ends first.
func waitPod(ctx context.Context, t *testing.T, tg *target, namespace, name string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	lw := &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return tg.admin.CoreV1().Pods(namespace).List(ctx, o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return tg.admin.CoreV1().Pods(namespace).Watch(ctx, o)
		},
	}
	var last *corev1.Pod
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(e watch.Event) (bool, error) {
		p, ok := e.Object.(*corev1.Pod)
		if !ok {
			return false, nil
		}
		if e.Type == watch.Deleted {
			return false, fmt.Errorf("pod %s/%s deleted", namespace, name)
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		status := "never seen"
		if last != nil {
			status = fmt.Sprintf("phase %s, IP %q, conditions %v, containers %v", last.Status.Phase, last.Status.PodIP, last.Status.Conditions, last.Status.ContainerStatuses)
		}
		t.Fatalf("pod %s/%s: %v (%s)", namespace, name, err, status)
	}
	return last
}

// removeNetworkPolicies deletes the target namespace's NetworkPolicies (as admin) and returns a
// function that puts them back as they were; a t.Cleanup puts them back too, should the test stop
// before it calls it.
func (tg *target) removeNetworkPolicies(t *testing.T) (restore func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := tg.admin.NetworkingV1().NetworkPolicies(tg.namespace).List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) == 0 {
		t.Fatalf("the namespace's NetworkPolicies: %v (%d of them)", err, len(list.Items))
	}
	saved := make([]networkingv1.NetworkPolicy, 0, len(list.Items))
	for _, np := range list.Items {
		saved = append(saved, networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: np.Name, Namespace: np.Namespace, Labels: np.Labels, Annotations: np.Annotations},
			Spec:       np.Spec,
		})
	}
	restored := false
	restore = func() {
		if restored {
			return
		}
		restored = true
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, np := range saved {
			if _, err := tg.admin.NetworkingV1().NetworkPolicies(tg.namespace).Create(ctx, &np, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Errorf("restoring NetworkPolicy %s/%s: %v", tg.namespace, np.Name, err)
			}
		}
	}
	t.Cleanup(restore)
	for _, np := range saved {
		if err := tg.admin.NetworkingV1().NetworkPolicies(tg.namespace).Delete(ctx, np.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("deleting NetworkPolicy %s/%s: %v", tg.namespace, np.Name, err)
		}
	}
	t.Logf("removed the NetworkPolicies of %s: %d", tg.namespace, len(saved))
	return restore
}
