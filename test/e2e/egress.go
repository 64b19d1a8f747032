//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/internal/egress"
	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/test/testns"
)

// The stand-in internet of the egress stage: one server Pod on the local bridge, under names
// only the gateway resolves (its policy's hosts map). Nothing here ever leaves the bridge.
const (
	internetHTTP  = 8080
	internetHTTPS = 8443
	// secretName is the secret bound to hostAPI; sandboxes send its placeholder.
	secretName = "example-api-key"

	hostAllowed  = "allowed.example.test"
	hostWildcard = "a.wild.example.test" // under *.wild.example.test
	hostWildApex = "wild.example.test"   // the wildcard's own domain: not allowed
	hostAPI      = "api.example.test"    // the secret's host
	hostUnbound  = "unbound.example.test"
	hostDenied   = "denied.example.test" // resolvable, never allowed
)

// egressStack is what the egress stage stands up: a sandbox namespace with the gateway component
// and a warm pool (its agent is the target), the gateway's namespace, and the internet's.
type egressStack struct {
	tg                          *target
	sandboxNS, gatewayNS, netNS string
	gatewayIP, internetIP       string
	gatewayPod                  string
	secret                      string // the secret's value: never in a sandbox
	overlays                    []string
	internetCA                  []byte
}

// standUpEgress stands the stack up and registers its teardown.
func standUpEgress(t *testing.T, root, kubeconfig, bin string, admin kubernetes.Interface, adminConfig *rest.Config, adminKubectl *k8s.KubectlOptions) *egressStack {
	t.Helper()
	ctx := context.Background()
	st := &egressStack{sandboxNS: uniqueName("gkexec-e2e-eg"), netNS: uniqueName("gkexec-e2e-inet"), secret: randomHex(t, 24)}
	st.gatewayNS = st.sandboxNS + "-egress"
	images := buildGkexecImage(t, root)
	// Made before tearDown is registered, so removed after it ran (cleanups run last first): it
	// holds the overlays tearDown deletes by.
	dir := t.TempDir()
	t.Cleanup(func() { st.tearDown(t, admin, adminKubectl) })

	// The internet: a server Pod in a namespace of its own.
	internet := newInternetPKI(t)
	st.internetCA = internet.caPEM
	createNamespace(t, admin, st.netNS)
	st.internetIP = startInternet(t, admin, st.netNS, internet)

	// The sandbox namespace's side, with an empty pool (scaled up once the gateway published: a
	// Pod takes the proxy settings when it starts).
	sandboxSide := writeOverlay(t, dir, "sandbox", root, st.sandboxNS, []string{"manifests/base"},
		[]string{"manifests/components/egress-gateway", "manifests/components/warm-pool"}, true, []patch{
			{"NetworkPolicy", "gkexec-sandbox-egress-gateway", []op{{"replace", "/spec/egress/0/to/0/namespaceSelector/matchLabels/kubernetes.io~1metadata.name", st.gatewayNS}}},
			{"RoleBinding", "gkexec-egress-gateway", []op{{"replace", "/subjects/0/namespace", st.gatewayNS}}},
			{"Deployment", "gkexec-pool-default", []op{{"replace", "/spec/replicas", 0}}},
		})
	st.overlays = append(st.overlays, sandboxSide)
	k8s.KubectlApplyFromKustomizeContext(t, ctx, adminKubectl, sandboxSide)
	testns.Own(t, admin, st.sandboxNS)

	// The gateway's Secrets and the internet's CA, before the gateway starts.
	relayDir := startAPIRelay(t, adminConfig)
	gatewaySide := writeOverlay(t, dir, "gateway", root, st.gatewayNS, []string{"manifests/egress-gateway"}, nil, false,
		gatewayPatches(st, images["gkexec"], relayDir))
	st.overlays = append(st.overlays, gatewaySide)
	createNamespace(t, admin, st.gatewayNS) // so that the Secrets exist when the Deployment does
	caDir := filepath.Join(dir, "ca")
	if out, err := exec.Command(bin, "gateway", "ca", "--out-dir", caDir, "--domain", "example.test").CombinedOutput(); err != nil {
		t.Fatalf("gkexec gateway ca: %v\n%s", err, out)
	}
	caCert, caKey := readFile(t, filepath.Join(caDir, "ca.crt")), readFile(t, filepath.Join(caDir, "ca.key"))
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "gkexec-egress-ca"}, Data: map[string][]byte{"ca.crt": caCert, "ca.key": caKey}},
		{ObjectMeta: metav1.ObjectMeta{Name: "gkexec-egress-secrets"}, Data: map[string][]byte{secretName: []byte(st.secret)}},
	} {
		if _, err := admin.CoreV1().Secrets(st.gatewayNS).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	upstream := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "e2e-upstream-ca"}, Data: map[string]string{"ca.crt": string(internet.caPEM)}}
	if _, err := admin.CoreV1().ConfigMaps(st.gatewayNS).Create(ctx, upstream, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k8s.KubectlApplyFromKustomizeContext(t, ctx, adminKubectl, gatewaySide)
	testns.Own(t, admin, st.gatewayNS)

	st.waitPublished(t, admin)
	st.tg = &target{name: "egress", namespace: st.sandboxNS, serviceAccount: "gkexec-agent", admin: admin,
		adminConfig: adminConfig, adminKubectl: adminKubectl, bin: bin, warmPool: true}
	st.tg.becomeAgent(t, dir)
	scale := []byte(`{"spec":{"replicas":1}}`)
	if _, err := admin.AppsV1().Deployments(st.sandboxNS).Patch(ctx, "gkexec-pool-default", types.MergePatchType, scale, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	st.tg.waitPoolReady(t, 1)
	return st
}

// gatewayPatches adapt manifests/egress-gateway to this stage: the sandbox namespace's name where
// it is named, the test's policy, the image under test, the Pod IP published (no kube-proxy
// here), the internet's CA, and the API relay (no route from Pods to the API server here).
func gatewayPatches(st *egressStack, image, relayDir string) []patch {
	ip := st.internetIP
	policy, _ := json.Marshal(map[string]any{
		"allow": []any{
			map[string]any{"host": hostAllowed, "ports": []int{internetHTTP, internetHTTPS}, "allow_private": true},
			map[string]any{"host": "*.wild.example.test", "ports": []int{internetHTTPS}, "allow_private": true},
			map[string]any{"host": hostAPI, "ports": []int{internetHTTP, internetHTTPS}, "allow_private": true},
			map[string]any{"host": hostUnbound, "ports": []int{internetHTTPS}, "allow_private": true},
		},
		"secrets": []any{map[string]any{"name": secretName, "hosts": []string{hostAPI}}},
		"hosts":   map[string][]string{hostAllowed: {ip}, hostWildcard: {ip}, hostWildApex: {ip}, hostAPI: {ip}, hostUnbound: {ip}, hostDenied: {ip}},
	})
	c := "/spec/template/spec/containers/0"
	relay := corev1.Container{
		Name: "api-relay", Image: runner.DefaultImage, ImagePullPolicy: corev1.PullNever,
		Command:       []string{"python3", "-c", apiRelay},
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{
			"python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 6443), 1)"}}}, PeriodSeconds: 1, FailureThreshold: 60},
		VolumeMounts:    []corev1.VolumeMount{{Name: "relay", MountPath: "/relay"}},
		SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
	}
	return []patch{
		{"Namespace", "", []op{{"add", "/metadata/labels/pod-security.kubernetes.io~1enforce", "privileged"}}},
		{"RoleBinding", "gkexec-egress-runner", []op{{"replace", "/subjects/0/namespace", st.sandboxNS}}},
		{"NetworkPolicy", "gkexec-egress-gateway", []op{{"replace", "/spec/ingress/0/from/0/namespaceSelector/matchLabels/kubernetes.io~1metadata.name", st.sandboxNS}}},
		{"ConfigMap", "gkexec-egress-gateway-policy", []op{{"replace", "/data/policy.yaml", string(policy)}}},
		{"Deployment", egress.GatewayName, []op{
			{"replace", c + "/image", image},
			{"replace", c + "/imagePullPolicy", "Never"},
			{"replace", c + "/args", []string{"gateway", "--namespace=" + st.sandboxNS, "--config=/etc/gkexec-gateway/policy/policy.yaml",
				"--ca-dir=/etc/gkexec-gateway/ca", "--secrets-dir=/etc/gkexec-gateway/secrets", "--advertise=$(POD_IP)",
				"--upstream-ca=/etc/gkexec-gateway/upstream/ca.crt"}},
			{"add", c + "/env/-", map[string]any{"name": "POD_IP", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "status.podIP"}}}},
			{"add", c + "/env/-", map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"}},
			{"add", c + "/env/-", map[string]any{"name": "KUBERNETES_SERVICE_PORT", "value": "6443"}},
			// The kubelet probes from the host, which the local pod network does not reach.
			{"remove", c + "/readinessProbe", nil},
			{"remove", c + "/livenessProbe", nil},
			{"add", c + "/volumeMounts/-", map[string]any{"name": "upstream", "mountPath": "/etc/gkexec-gateway/upstream", "readOnly": true}},
			{"add", "/spec/template/spec/volumes/-", map[string]any{"name": "upstream", "configMap": map[string]any{"name": "e2e-upstream-ca"}}},
			{"add", "/spec/template/spec/volumes/-", map[string]any{"name": "relay", "hostPath": map[string]any{"path": relayDir, "type": "Directory"}}},
			{"add", "/spec/template/spec/initContainers", []corev1.Container{relay}},
			// The local cluster's one node is a (tainted) sandbox node.
			{"add", "/spec/template/spec/tolerations", []corev1.Toleration{{Key: "sandbox.gke.io/runtime", Operator: corev1.TolerationOpEqual, Value: "gvisor", Effect: corev1.TaintEffectNoSchedule}}},
		}},
	}
}

type op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

type patch struct {
	kind, name string
	ops        []op
}

// writeOverlay writes a kustomization that puts resources and components (paths from root) in
// namespace, renaming the admission policy after it (admission), with JSON patches.
func writeOverlay(t *testing.T, dir, name, root, namespace string, resources, components []string, admission bool, patches []patch) string {
	t.Helper()
	out := filepath.Join(dir, name)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	rel := func(paths []string) []string {
		var r []string
		for _, p := range paths {
			rp, err := filepath.Rel(out, filepath.Join(root, p))
			if err != nil {
				t.Fatal(err)
			}
			r = append(r, rp)
		}
		return r
	}
	k := map[string]any{"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": namespace, "resources": rel(resources)}
	if len(components) > 0 {
		k["components"] = rel(components)
	}
	if admission {
		k["replacements"] = []any{map[string]any{
			"source": map[string]any{"kind": "Namespace", "fieldPath": "metadata.name"},
			"targets": []any{
				map[string]any{"select": map[string]any{"group": "admissionregistration.k8s.io"}, "fieldPaths": []string{"metadata.name"}, "options": map[string]any{"delimiter": "-", "index": 3}},
				map[string]any{"select": map[string]any{"kind": "ValidatingAdmissionPolicyBinding"}, "fieldPaths": []string{"spec.policyName"}, "options": map[string]any{"delimiter": "-", "index": 3}},
			},
		}}
	}
	var ps []any
	for _, p := range patches {
		ops, _ := json.Marshal(p.ops)
		target := map[string]any{"kind": p.kind}
		if p.name != "" {
			target["name"] = p.name
		}
		ps = append(ps, map[string]any{"target": target, "patch": string(ops)})
	}
	if len(ps) > 0 {
		k["patches"] = ps
	}
	b, _ := json.MarshalIndent(k, "", "  ")
	writeFile(t, filepath.Join(out, "kustomization.yaml"), b)
	return out
}

func createNamespace(t *testing.T, admin kubernetes.Interface, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/part-of": "gkexec-e2e"}}}
	if _, err := admin.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	testns.Own(t, admin, name)
}

// waitPublished waits for the gateway Pod to run and to publish its address and CA in the
// sandbox namespace.
func (st *egressStack) waitPublished(t *testing.T, admin kubernetes.Interface) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var last string
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := admin.CoreV1().Pods(st.gatewayNS).List(ctx, metav1.ListOptions{LabelSelector: egress.GatewaySelector})
		if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.PodIP == "" {
			last = fmt.Sprintf("gateway pods: %v (%v)", len(pods.Items), err)
			return false, nil
		}
		st.gatewayPod, st.gatewayIP = pods.Items[0].Name, pods.Items[0].Status.PodIP
		cm, err := admin.CoreV1().ConfigMaps(st.sandboxNS).Get(ctx, egress.ConfigMapProxy, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = fmt.Sprintf("proxy ConfigMap %v; gateway pod %s", cm.Data, describePod(&pods.Items[0]))
		return cm.Data["HTTPS_PROXY"] == fmt.Sprintf("http://%s:%d", st.gatewayIP, egress.ProxyPort), nil
	})
	if err != nil {
		t.Fatalf("the gateway did not publish itself: %v; last: %s\n%s", err, last, st.gatewayLogs(admin))
	}
}

func describePod(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", p.Name, p.Status.Phase)
	for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, " [%s ready=%v restarts=%d %+v]", s.Name, s.Ready, s.RestartCount, s.State)
	}
	return b.String()
}

func (st *egressStack) gatewayLogs(admin kubernetes.Interface) string {
	if st.gatewayPod == "" {
		return "(no gateway pod)"
	}
	b, err := admin.CoreV1().Pods(st.gatewayNS).GetLogs(st.gatewayPod, &corev1.PodLogOptions{Container: "gateway"}).DoRaw(context.Background())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(b)
}

// tearDown deletes what the stage made, even after a failure, and waits for the namespaces to go.
func (st *egressStack) tearDown(t *testing.T, admin kubernetes.Interface, adminKubectl *k8s.KubectlOptions) {
	ctx := context.Background()
	for i := len(st.overlays) - 1; i >= 0; i-- {
		if err := k8s.KubectlDeleteFromKustomizeContextE(t, ctx, adminKubectl, st.overlays[i]); err != nil {
			t.Errorf("kubectl delete -k %s: %v", st.overlays[i], err)
		}
	}
	for _, ns := range []string{st.netNS, st.gatewayNS, st.sandboxNS} {
		if err := admin.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", ns, err)
		}
	}
	for _, ns := range []string{st.netNS, st.gatewayNS, st.sandboxNS} {
		testns.WaitGone(t, admin, ns, 3*time.Minute)
	}
}
