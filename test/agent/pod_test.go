//go:build integration

package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner"
)

// Local-cluster details of the agent Pod. The local cluster has no kube-proxy and no route from the
// pod network to the host, so in-cluster clients cannot reach the API server at its Service IP;
// it listens on the host's loopback only. The agent Pod therefore uses host networking and points
// the in-cluster config at 127.0.0.1:6443 explicitly. On GKE neither is needed (nor wanted): the
// Pod keeps its own network and the injected KUBERNETES_SERVICE_HOST.
const (
	localAPIServerHost = "127.0.0.1"
	localAPIServerPort = "6443"
)

// Container names of the agent Pod.
const (
	sidecarContainer   = "gkexec"
	viaSidecarAgent    = "agent-via-sidecar"
	inProcessAgent     = "agent-in-process"
	saTokenVolume      = "agent-token"
	saTokenMountPath   = "/var/run/secrets/kubernetes.io/serviceaccount"
	agentPodLabelValue = "gkexec-agent-e2e"
)

// testAgentPod builds the gkexec and adk-go-agent images, imports them into the local cluster,
// and runs an agent Pod in a fresh namespace as its agent ServiceAccount: a `gkexec serve`
// sidecar that holds the Kubernetes credentials, the example agent calling it over the Pod's
// loopback with none, and the example agent again running the sandbox in-process with its own
// credentials. Both agents use the offline model (no Gemini here) and print the sandbox's output.
func testAgentPod(t *testing.T, c *cluster) {
	images := buildImages(t, c.root)
	pc := standUp(t) // its own namespace: host networking needs its Pod Security enforcement relaxed
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	port, probePort := freePort(t), freePort(t)
	pod := agentPod(pc.namespace, images["gkexec"], images["adk-go-agent"], port, probePort)

	// The Pod satisfies Pod Security "restricted" in everything but the host network, a local-cluster
	// detail: a server-side dry run of it without hostNetwork, in the namespace as manifests/ made
	// it (enforce: restricted), is admitted.
	compliant := pod.DeepCopy()
	compliant.Spec.HostNetwork = false
	if _, err := pc.admin.CoreV1().Pods(pc.namespace).Create(ctx, compliant, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("the agent Pod does not satisfy Pod Security restricted: %v", err)
	}
	// Restricted (and baseline) forbid host namespaces; enforce "privileged" in this namespace only,
	// keeping warn and audit at restricted so that the exception stays visible.
	patch := `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"privileged"}}}`
	if _, err := pc.admin.CoreV1().Namespaces().Patch(ctx, pc.namespace, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	// Pod Security admission reads the namespace's labels from a cache: until it sees the new one it
	// still enforces restricted, for a moment.
	var createErr error
	_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, createErr = pc.admin.CoreV1().Pods(pc.namespace).Create(ctx, pod, metav1.CreateOptions{})
		return createErr == nil || !strings.Contains(createErr.Error(), "violates PodSecurity"), nil
	})
	if createErr != nil {
		t.Fatalf("create agent pod: %v", createErr)
	}
	t.Cleanup(func() {
		_ = pc.admin.CoreV1().Pods(pc.namespace).Delete(context.Background(), pod.Name, metav1.DeleteOptions{})
	})
	var final *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := pc.admin.CoreV1().Pods(pc.namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		final = p
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
	})
	logs := map[string]string{}
	for _, name := range []string{sidecarContainer, viaSidecarAgent, inProcessAgent} {
		logs[name] = containerLog(ctx, pc, pod.Name, name)
	}
	if err != nil || final.Status.Phase != corev1.PodSucceeded {
		for name, l := range logs {
			t.Logf("--- %s log:\n%s", name, l)
		}
		t.Fatalf("agent pod did not succeed: %v; status %s", err, describe(final))
	}
	t.Logf("agent pod succeeded in %s", time.Since(start).Round(time.Second))
	for _, name := range []string{viaSidecarAgent, inProcessAgent} {
		t.Logf("%s log:\n%s", name, strings.TrimSpace(logs[name]))
	}

	for name, want := range map[string]string{viaSidecarAgent: "via sidecar 42", inProcessAgent: "in process 42"} {
		if !strings.Contains(logs[name], want) {
			t.Errorf("%s: log lacks the sandbox's output %q:\n%s", name, want, logs[name])
		}
		if !strings.Contains(logs[name], "status=ok") {
			t.Errorf("%s: log lacks the tool call with status=ok:\n%s", name, logs[name])
		}
	}
	if !strings.Contains(logs[sidecarContainer], "msg=executed") || !strings.Contains(logs[sidecarContainer], "outcome=success") {
		t.Errorf("the sidecar did not run the execution:\n%s", logs[sidecarContainer])
	}
	// When the agents finished, the kubelet stopped the sidecar with SIGTERM: it drained and exited 0.
	for _, s := range final.Status.InitContainerStatuses {
		if s.Name == sidecarContainer && (s.State.Terminated == nil || s.State.Terminated.ExitCode != 0) {
			t.Errorf("sidecar state %+v, want terminated with exit code 0 after SIGTERM", s.State)
		}
	}
	pc.assertNothingLeaked(t)
}

// agentPod is the agent Pod: the gkexec serve sidecar (a native sidecar: an init container that
// keeps running, started and ready before the agents) and the two agents. The API is on loopback
// (port); the kubelet probes the Pod's IP, so the probes have a listener of their own (probePort),
// which serves nothing else.
func agentPod(namespace, gkexecImage, agentImage string, port, probePort int) *corev1.Pod {
	sidecarURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	apiServerEnv := []corev1.EnvVar{
		{Name: "KUBERNETES_SERVICE_HOST", Value: localAPIServerHost},
		{Name: "KUBERNETES_SERVICE_PORT", Value: localAPIServerPort},
	}
	token := []corev1.VolumeMount{{Name: saTokenVolume, MountPath: saTokenMountPath, ReadOnly: true}}
	sidecar := corev1.Container{
		Name: sidecarContainer, Image: gkexecImage, ImagePullPolicy: corev1.PullNever,
		Command: []string{"/gkexec"},
		Args: []string{"serve", "--namespace=" + namespace, fmt.Sprintf("--listen=127.0.0.1:%d", port),
			fmt.Sprintf("--probe-listen=:%d", probePort), "--max-concurrent=4", "--start-timeout=3m"},
		Env:           apiServerEnv,
		VolumeMounts:  token,
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		// The agents start once the sidecar is ready: API server reachable, RBAC complete.
		StartupProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Port: intstr.FromInt32(int32(probePort)), Path: "/readyz"}},
			PeriodSeconds: 1, FailureThreshold: 120,
		},
		Resources:       resources("100m", "64Mi", "500m", "256Mi"),
		SecurityContext: restrictedContainer(),
	}
	agent := func(name string, args ...string) corev1.Container {
		return corev1.Container{
			Name: name, Image: agentImage, ImagePullPolicy: corev1.PullNever,
			Command:         []string{"/adk-go-agent"},
			Args:            append([]string{"-model", "offline"}, args...),
			Resources:       resources("100m", "64Mi", "500m", "256Mi"),
			SecurityContext: restrictedContainer(),
		}
	}
	viaSidecar := agent(viaSidecarAgent, "-sidecar", sidecarURL, "-prompt", `print("via sidecar", 6 * 7)`)
	inProcess := agent(inProcessAgent, "-namespace", namespace, "-prompt", `print("in process", 7 * 6)`)
	inProcess.Env, inProcess.VolumeMounts = apiServerEnv, token

	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "agent", Namespace: namespace,
			// Not managed-by=gkexec: the leak check counts only what the runner creates.
			Labels: map[string]string{"app.kubernetes.io/name": agentPodLabelValue, "app.kubernetes.io/part-of": "gkexec"},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: agentServiceAccount,
			// The token is mounted only where it is needed: the sidecar and the in-process agent.
			// The agent that uses the sidecar has no Kubernetes credentials at all.
			AutomountServiceAccountToken: ptr.To(false),
			HostNetwork:                  true, // local-cluster detail, see localAPIServerHost
			RestartPolicy:                corev1.RestartPolicyNever,
			// The single local node is a sandbox node, tainted like a GKE Sandbox pool; on GKE the
			// agent runs in another pool and needs no toleration.
			Tolerations: []corev1.Toleration{{Key: runner.GKESandboxLabel, Operator: corev1.TolerationOpEqual,
				Value: runner.GKESandboxValue, Effect: corev1.TaintEffectNoSchedule}},
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(65532)), RunAsGroup: ptr.To(int64(65532)),
				FSGroup: ptr.To(int64(65532)), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			TerminationGracePeriodSeconds: ptr.To(int64(60)), // room for serve's drain
			InitContainers:                []corev1.Container{sidecar},
			Containers:                    []corev1.Container{viaSidecar, inProcess},
			Volumes: []corev1.Volume{{Name: saTokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To(int64(3600))}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
						Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
						FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
				}}}}},
		},
	}
}

func restrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

func resources(cpuReq, memReq, cpuLim, memLim string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuReq), corev1.ResourceMemory: resource.MustParse(memReq)},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuLim), corev1.ResourceMemory: resource.MustParse(memLim)},
	}
}

// buildImages runs test/images/build.sh --import and returns the image references by name.
func buildImages(t *testing.T, root string) map[string]string {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("test/images/build.sh", "--import")
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("test/images/build.sh --import: %v\n%s", err, stderr.String())
	}
	images := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		ref, _, _ := strings.Cut(sc.Text(), " ")
		repo, _, _ := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
		images[repo] = ref
	}
	if images["gkexec"] == "" || images["adk-go-agent"] == "" {
		t.Fatalf("build.sh printed %q, want the gkexec and adk-go-agent images", out)
	}
	t.Logf("images %v ready in %s", images, time.Since(start).Round(time.Second))
	return images
}

func containerLog(ctx context.Context, c *cluster, pod, container string) string {
	rc, err := c.admin.CoreV1().Pods(c.namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).Stream(ctx)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
	return string(b)
}

func describe(p *corev1.Pod) string {
	if p == nil {
		return "no pod"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", p.Status.Phase)
	for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, "; %s ready=%v %+v", s.Name, s.Ready, s.State)
	}
	for _, cond := range p.Status.Conditions {
		if cond.Status != corev1.ConditionTrue {
			fmt.Fprintf(&b, "; %s: %s %s", cond.Type, cond.Reason, cond.Message)
		}
	}
	return b.String()
}
