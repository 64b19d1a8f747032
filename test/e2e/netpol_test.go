//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/test/testns"
)

// peerPort is where every peer of this stage listens.
const peerPort = 8080

// peerServer answers every connection with the token in argv[1], so that a client that reads it
// has provably reached this very server. Plain Python: the peers use the sandbox image.
const peerServer = `import socket, sys, threading
token = sys.argv[1].encode()
srv = socket.create_server(("0.0.0.0", 8080), backlog=64)
def answer(c):
    with c:
        c.settimeout(5)
        try:
            c.recv(4096)
        except OSError:
            pass
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(token) + token)
while True:
    threading.Thread(target=answer, args=(srv.accept()[0],), daemon=True).start()
`

// peer is something on the pods' bridge that a sandbox must not reach.
type peer struct {
	Name  string `json:"name"`
	IP    string `json:"ip"`
	Token string `json:"token"`
}

// reachCode tries to reach each peer from inside the sandbox, all at once, and prints one JSON
// object: per peer, the outcome of every attempt ("connected", "timeout" or the error) and what
// a connection read. In "deny" mode it makes a fixed number of attempts and never stops early:
// a policy that drops the packets leaves each one to time out. In "allow" mode it tries until
// it connects or its deadline passes. It only ever dials the peers' Pod IPs on the local bridge.
func reachCode(mode string, peers []peer) string {
	spec, _ := json.Marshal(peers)
	return fmt.Sprintf(`import json, socket, threading, time
mode, peers = %s, json.loads(%s)
def attempt(ip, timeout):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((ip, %d))
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
    outcomes, body, deadline = [], "", time.monotonic() + 90
    while True:
        outcome, body = attempt(p["ip"], 2 if mode == "deny" else 1)
        outcomes.append(outcome)
        if mode == "deny" and len(outcomes) == 3:
            break
        if mode == "allow" and (outcome == "connected" or time.monotonic() > deadline):
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
`, pyString(mode), pyString(string(spec)), peerPort)
}

type probeOutcome struct {
	Outcomes []string `json:"outcomes"`
	Body     string   `json:"body"`
}

// testNetworkPolicy is stage 16: on the local cluster the sandbox namespace's default-deny
// NetworkPolicy is enforced (test/localcluster: kube-network-policies), so a sandbox reaches no
// other Pod on the bridge — a server in another namespace, a Pod in the agent's namespace, another
// sandbox — warm or cold, from the first packet of its code on; and with the policy removed the
// very same connections succeed, so the test fails where nothing enforces the policy.
func testNetworkPolicy(t *testing.T, tg *target) {
	tg.waitPoolReady(t, warmPoolReplicas)
	warm := tg.options()
	warm.WarmPoolReady = -1
	cold := warm
	cold.WarmPool = "no-such-pool" // nothing matches: a Job of its own

	// The peers, each in a namespace of its own: a server in some other namespace (under gVisor),
	// and one in the namespace an agent Pod would run in (under runc, as an agent's Pod would).
	peers := []peer{
		tg.startPeer(t, "server", uniqueName("gkexec-e2e-peer"), true),
		tg.startPeer(t, "agent", uniqueName("gkexec-e2e-agentns"), false),
	}
	// And another sandbox: a session whose code keeps a server running in a thread.
	r := tg.newRunner(t, warm)
	session := openSession(t, r, runner.SessionOptions{ID: executionID("np-listen")})
	sandboxToken := strings.ToLower(uniqueName("sandbox"))
	sessionExec(t, session, fmt.Sprintf("import sys, threading\nsys.argv = ['server', %s]\n_server = threading.Thread(target=exec, args=(%s, {}), daemon=True)\n_server.start()\nprint('listening')",
		pyString(sandboxToken), pyString(peerServer)), 0, "listening\n")
	peers = append(peers, peer{Name: "sandbox", IP: tg.podIP(t, session.PodName()), Token: sandboxToken})
	t.Logf("peers on the bridge: %+v", peers)

	deny := func(t *testing.T, opts runner.Options, slug string) {
		t.Helper()
		for name, o := range tg.probe(t, opts, slug, "deny", peers) {
			for i, outcome := range o.Outcomes {
				if outcome != "timeout" {
					t.Errorf("sandbox -> %s, attempt %d: %s (read %q); want every attempt to time out, its packets dropped", name, i+1, outcome, o.Body)
				}
			}
		}
	}

	// Not tg.step: the listening session's Pod stays up through every case (runStage checks for
	// leftovers once it is closed).
	t.Run("warm_unreachable", func(t *testing.T) { deny(t, warm, "np-warm") })
	// A cold sandbox's code starts before the API server knows its Pod's IP: its very first
	// packets must be dropped too.
	t.Run("cold_unreachable_from_the_first_packet", func(t *testing.T) { deny(t, cold, "np-cold") })

	t.Run("gateway_reachable", func(t *testing.T) {
		// Hook for issue 19 part 2: the namespace's egress gateway is the one peer a sandbox
		// reaches (through the NetworkPolicy's allow rule), while everything above stays denied.
		t.Skip("the egress gateway is not built yet (issue 19, part 2)")
	})

	t.Run("reachable_without_the_policy", func(t *testing.T) {
		restore := tg.removeNetworkPolicies(t)
		for name, o := range tg.probe(t, warm, "np-open", "allow", peers) {
			want := ""
			for _, p := range peers {
				if p.Name == name {
					want = p.Token
				}
			}
			if last := o.Outcomes[len(o.Outcomes)-1]; last != "connected" || !strings.HasSuffix(o.Body, want) {
				t.Errorf("without the NetworkPolicy, sandbox -> %s: %v, read %q; want a connection answering %q", name, o.Outcomes, o.Body, want)
			}
		}
		// Put back, it holds again for sandboxes that are already running.
		restore()
		deny(t, warm, "np-restored")
	})
}

// probe runs reachCode in a sandbox and returns what it saw of each peer.
func (tg *target) probe(t *testing.T, opts runner.Options, slug, mode string, peers []peer) map[string]probeOutcome {
	t.Helper()
	r := tg.newRunner(t, opts)
	res, err := r.Execute(context.Background(), runner.Request{Code: reachCode(mode, peers), ExecutionID: executionID(slug), Timeout: 2 * time.Minute})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("probe (%s): err %v, exit %d, stderr %s", mode, err, res.ExitCode, res.Stderr)
	}
	var out map[string]probeOutcome
	if err := json.Unmarshal(res.Stdout, &out); err != nil || len(out) != len(peers) {
		t.Fatalf("probe (%s): %v; stdout %s", mode, err, quoteShort(res.Stdout))
	}
	t.Logf("%s sandbox %s, %s: %+v", res.Sandbox, res.PodName, mode, out)
	return out
}

// startPeer runs a server Pod in a fresh namespace, deleted when the test ends, and returns it
// once it is Ready. gvisor: under gVisor like the sandboxes; otherwise under runc, on this node
// tolerating its sandbox taint (an agent's Pod would run in a pool of its own).
func (tg *target) startPeer(t *testing.T, name, namespace string, gvisor bool) peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tg.options().StartTimeout)
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
	token := strings.ToLower(uniqueName(name))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			EnableServiceLinks:           ptr.To(false),
			SecurityContext:              &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(runner.DefaultRunAsUser))},
			Containers: []corev1.Container{{
				Name: "server", Image: runner.DefaultImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"python3", "-c", peerServer, token},
				ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
					Command: []string{"python3", "-c", fmt.Sprintf("import socket; socket.create_connection(('127.0.0.1', %d), 2)", peerPort)}}}},
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
		t.Fatalf("pod %s/%s: %v", namespace, name, err)
	}
	ready := waitPod(ctx, t, tg, namespace, name, func(p *corev1.Pod) bool { return podReady(p) && p.Status.PodIP != "" })
	return peer{Name: name, IP: ready.Status.PodIP, Token: token}
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
