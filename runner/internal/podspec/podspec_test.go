package podspec

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gkexec/gkexec/internal/wire"
)

// testShape is the Shape of a runner with default options.
func testShape() Shape {
	return Shape{Namespace: "default", Image: "python:3.11-slim", PullPolicy: corev1.PullIfNotPresent,
		CPURequest: "200m", MemoryRequest: "256Mi", CPULimit: "500m", MemoryLimit: "512Mi",
		EphemeralStorageLimit: "1Gi", ScratchSizeLimit: "128Mi", RuntimeClassName: "gvisor", SandboxNodes: true,
		RunAsUser: 65534, RunAsGroup: 65534, StartTimeout: 120 * time.Second, TTLAfterFinished: 5 * time.Minute, WarmPool: "default"}
}

// testRequest fills in the limits a runner with default options sends.
func testRequest(req wire.Request) wire.Request {
	if req.Timeout == 0 {
		req.Timeout = 300 * time.Second
	}
	req.MaxOutput, req.MaxFile, req.MaxProcesses = 1<<20, 4<<20, 256
	return req
}

func TestJobIsHardened(t *testing.T) {
	t.Parallel()
	s := testShape()
	s.Namespace, s.Labels, s.NodeSelector = "sb", map[string]string{"team": "ai"}, map[string]string{"pool": "x"}
	req := testRequest(wire.Request{Code: "print(1)", ExecutionID: "abc", Files: map[string][]byte{"b.txt": nil, "a/c.csv": nil}})
	job := Job(&s, req)
	pod := job.Spec.Template.Spec
	c := pod.Containers[0]

	checks := map[string]bool{
		"job name":                      job.Name == "gkexec-abc" && job.Namespace == "sb",
		"backoffLimit 0":                *job.Spec.BackoffLimit == 0,
		"activeDeadlineSeconds":         *job.Spec.ActiveDeadlineSeconds == 120+300+DeadlineSlack,
		"ttlSecondsAfterFinished":       *job.Spec.TTLSecondsAfterFinished == 300,
		"runtimeClassName gvisor":       *pod.RuntimeClassName == "gvisor",
		"restartPolicy Never":           pod.RestartPolicy == corev1.RestartPolicyNever,
		"no service account token":      !*pod.AutomountServiceAccountToken,
		"no service links":              !*pod.EnableServiceLinks,
		"short termination grace":       *pod.TerminationGracePeriodSeconds == 1,
		"pod runAsNonRoot":              *pod.SecurityContext.RunAsNonRoot,
		"pod uid/gid fixed":             *pod.SecurityContext.RunAsUser == 65534 && *pod.SecurityContext.RunAsGroup == 65534,
		"pod seccomp RuntimeDefault":    pod.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault,
		"read-only root filesystem":     *c.SecurityContext.ReadOnlyRootFilesystem,
		"no privilege escalation":       !*c.SecurityContext.AllowPrivilegeEscalation,
		"not privileged":                !*c.SecurityContext.Privileged,
		"all capabilities dropped":      len(c.SecurityContext.Capabilities.Drop) == 1 && c.SecurityContext.Capabilities.Drop[0] == "ALL" && len(c.SecurityContext.Capabilities.Add) == 0,
		"container seccomp":             c.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault,
		"container runAsNonRoot":        *c.SecurityContext.RunAsNonRoot,
		"image and policy":              c.Image == "python:3.11-slim" && c.ImagePullPolicy == corev1.PullIfNotPresent,
		"gke sandbox node selector":     pod.NodeSelector[GKESandboxLabel] == GKESandboxValue && pod.NodeSelector["pool"] == "x",
		"gke sandbox toleration":        len(pod.Tolerations) == 1 && pod.Tolerations[0].Key == GKESandboxLabel && pod.Tolerations[0].Effect == corev1.TaintEffectNoSchedule,
		"managed-by label":              job.Labels[LabelManagedBy] == ManagedByValue && job.Spec.Template.Labels[LabelManagedBy] == ManagedByValue,
		"execution id label":            job.Labels[LabelExecutionID] == "abc" && job.Spec.Template.Labels[LabelExecutionID] == "abc",
		"sandbox component label":       job.Spec.Template.Labels[LabelComponent] == ComponentSandbox,
		"user label":                    job.Labels["team"] == "ai" && job.Spec.Template.Labels["team"] == "ai",
		"no host namespaces":            !pod.HostNetwork && !pod.HostPID && !pod.HostIPC,
		"cpu/memory requests":           c.Resources.Requests.Cpu().String() == "200m" && c.Resources.Requests.Memory().String() == "256Mi",
		"cpu/memory limits":             c.Resources.Limits.Cpu().String() == "500m" && c.Resources.Limits.Memory().String() == "512Mi",
		"ephemeral storage limit":       c.Resources.Limits.StorageEphemeral().String() == "1Gi",
		"working dir":                   c.WorkingDir == WorkDir,
		"output dir for the entrypoint": envOf(c, "GKEXEC_OUTPUT_DIR") == OutputDir,
		"timeout for the entrypoint":    envOf(c, "GKEXEC_TIMEOUT_SECONDS") == "300",
		"not evicted by scale-down":     job.Spec.Template.Annotations[AnnotationSafeToEvict] == "false",
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("%s: not as required", name)
		}
	}

	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if !mounts[codeMount].ReadOnly {
		t.Error("code mount must be read-only")
	}
	for _, path := range []string{"/tmp", WorkDir} {
		if _, ok := mounts[path]; !ok {
			t.Errorf("%s is not a writable volume", path)
		}
	}
	scratch := resource.MustParse(s.ScratchSizeLimit)
	for _, v := range pod.Volumes {
		switch {
		case v.EmptyDir != nil:
			if v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.Cmp(scratch) != 0 || v.EmptyDir.Medium != corev1.StorageMediumMemory {
				t.Errorf("volume %s: emptyDir must be memory backed and limited to %s", v.Name, s.ScratchSizeLimit)
			}
		case v.ConfigMap != nil:
			if v.ConfigMap.Name != job.Name {
				t.Errorf("code volume names ConfigMap %q", v.ConfigMap.Name)
			}
			var paths []string
			for _, it := range v.ConfigMap.Items {
				paths = append(paths, it.Key+"="+it.Path)
			}
			want := "main.py=main.py entrypoint.py=entrypoint.py input-0=inputs/a/c.csv input-1=inputs/b.txt"
			if strings.Join(paths, " ") != want {
				t.Errorf("items = %v, want %s", paths, want)
			}
		default:
			t.Errorf("unexpected volume %s (no hostPath, no secrets)", v.Name)
		}
	}
}

func envOf(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func TestJobWithoutSandboxSelectorOrRuntimeClass(t *testing.T) {
	t.Parallel()
	s := testShape()
	s.RuntimeClassName, s.SandboxNodes = "", false
	pod := Job(&s, testRequest(wire.Request{Code: "x", ExecutionID: "a"})).Spec.Template.Spec
	if pod.RuntimeClassName != nil || len(pod.NodeSelector) != 0 || len(pod.Tolerations) != 0 {
		t.Errorf("runtimeClass %v selector %v tolerations %v, want none", pod.RuntimeClassName, pod.NodeSelector, pod.Tolerations)
	}
}

func TestConfigMapHoldsCodeEntrypointAndInputs(t *testing.T) {
	t.Parallel()
	s := testShape()
	s.Namespace = "sb"
	cm := ConfigMap(&s, testRequest(wire.Request{Code: "print(2)", ExecutionID: "x1", Files: map[string][]byte{"z.bin": {0, 1}, "a.txt": []byte("a")}}))
	switch {
	case cm.Name != "gkexec-x1" || cm.Namespace != "sb":
		t.Errorf("name %s/%s", cm.Namespace, cm.Name)
	case !*cm.Immutable:
		t.Error("ConfigMap must be immutable")
	case cm.Data["main.py"] != "print(2)" || cm.Data[entrypointKey] != wire.Entrypoint:
		t.Error("code or entrypoint missing")
	case string(cm.BinaryData["input-0"]) != "a" || string(cm.BinaryData["input-1"]) != "\x00\x01":
		t.Errorf("inputs not stored in name order: %v", cm.BinaryData)
	case cm.Labels[LabelManagedBy] != ManagedByValue || cm.Labels[LabelExecutionID] != "x1":
		t.Errorf("labels %v", cm.Labels)
	}
}

func BenchmarkJob(b *testing.B) {
	s := testShape()
	req := testRequest(wire.Request{Code: "print(1)", ExecutionID: "bench", Files: map[string][]byte{"a": []byte("x")}})
	b.ReportAllocs()
	for b.Loop() {
		_ = ConfigMap(&s, req)
		_ = Job(&s, req)
	}
}

func TestRequestTimeoutShortensTheJob(t *testing.T) {
	t.Parallel()
	s := testShape()
	job := Job(&s, testRequest(wire.Request{Code: "x", ExecutionID: "t", Timeout: 30 * time.Second}))
	c := job.Spec.Template.Spec.Containers[0]
	if envOf(c, "GKEXEC_TIMEOUT_SECONDS") != "30" || *job.Spec.ActiveDeadlineSeconds != 120+30+DeadlineSlack {
		t.Errorf("timeout env %q, deadline %d; want the request's 30s", envOf(c, "GKEXEC_TIMEOUT_SECONDS"), *job.Spec.ActiveDeadlineSeconds)
	}
}

// TestWarmPoolDeploymentIsTheColdSandboxWaitingOnStdin: the pool's Pods are the cold sandbox,
// field for field, except what waiting for a request on stdin needs: stdin, restartPolicy Always
// (a ReplicaSet's), the entrypoint inline instead of a ConfigMap, and no per-execution settings.
func TestWarmPoolIsTheColdSandboxWaitingOnStdin(t *testing.T) {
	t.Parallel()
	s := testShape()
	s.Namespace, s.Labels, s.WarmPool = "sb", map[string]string{"team": "ai"}, "small"
	d := WarmPool(&s, 3)
	cold := Job(&s, testRequest(wire.Request{Code: "x", ExecutionID: "abc"})).Spec.Template.Spec
	warm := d.Spec.Template.Spec
	if d.Name != "gkexec-pool-small" || d.Namespace != "sb" || *d.Spec.Replicas != 3 {
		t.Errorf("deployment %s/%s replicas %d", d.Namespace, d.Name, *d.Spec.Replicas)
	}
	sel := d.Spec.Selector.MatchLabels
	if sel[LabelPool] != "small" || sel[LabelPoolState] != PoolStateIdle || sel[LabelComponent] != ComponentSandbox {
		t.Errorf("selector %v must select idle sandbox pods of the pool", sel)
	}
	for k, v := range sel {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("template label %s=%q, selector wants %q", k, d.Spec.Template.Labels[k], v)
		}
	}
	if d.Spec.Template.Labels["team"] != "ai" {
		t.Error("user labels are missing from the pool's pods")
	}
	c := warm.Containers[0]
	if !c.Stdin || c.StdinOnce || c.TTY {
		t.Errorf("stdin %v stdinOnce %v tty %v: requests arrive on stdin, which must stay open across attaches (a session is resumed by a new one)", c.Stdin, c.StdinOnce, c.TTY)
	}
	if warm.RestartPolicy != corev1.RestartPolicyAlways {
		t.Errorf("restartPolicy %s", warm.RestartPolicy)
	}
	if len(c.Command) != 5 || c.Command[3] != "-c" || c.Command[4] != wire.Entrypoint || envOf(c, "GKEXEC_REQUEST") != "stdin" {
		t.Errorf("command %q... must run the entrypoint inline in stdin mode", c.Command[:4])
	}
	if envOf(c, "GKEXEC_TIMEOUT_SECONDS") != "" || envOf(c, "GKEXEC_INPUTS") != "" {
		t.Error("per-execution settings belong to the request, not the pool's pods")
	}
	for _, v := range warm.Volumes {
		if v.ConfigMap != nil || v.Secret != nil || v.HostPath != nil || v.Projected != nil {
			t.Errorf("volume %s: only memory-backed scratch volumes", v.Name)
		}
	}
	// Everything else is the cold sandbox's.
	warmC, coldC := c.DeepCopy(), cold.Containers[0].DeepCopy()
	for _, x := range []*corev1.Container{warmC, coldC} {
		x.Command, x.Env, x.Stdin, x.StdinOnce, x.VolumeMounts = nil, nil, false, false, nil
	}
	if !equality.Semantic.DeepEqual(warmC, coldC) {
		t.Errorf("container differs from the cold sandbox's:\nwarm %+v\ncold %+v", warmC, coldC)
	}
	w, cd := warm.DeepCopy(), cold.DeepCopy()
	w.Containers, cd.Containers, w.Volumes, cd.Volumes = nil, nil, nil, nil
	w.RestartPolicy, cd.RestartPolicy = "", ""
	if !equality.Semantic.DeepEqual(w, cd) {
		t.Errorf("pod spec differs from the cold sandbox's:\nwarm %+v\ncold %+v", w, cd)
	}
	if Fingerprint(warm) != Fingerprint(Pod(&s, nil)) {
		t.Error("a runner with the pool's options would not claim its pods")
	}
	other := s
	other.Image = "python:3.12"
	if Fingerprint(warm) == Fingerprint(Pod(&other, nil)) {
		t.Error("a runner with another image would claim the pool's pods")
	}
	other = s
	other.MemoryLimit = "1Gi"
	if Fingerprint(warm) == Fingerprint(Pod(&other, nil)) {
		t.Error("a runner with another memory limit would claim the pool's pods")
	}
}

// A cold execution in another language carries its code under that language's file name and says
// the language to the entrypoint; a Python one is as it always was.
func TestJobRunsTheRequestsLanguage(t *testing.T) {
	t.Parallel()
	s := testShape()
	req := testRequest(wire.Request{Code: "echo hi", ExecutionID: "sh", Language: "bash"})
	job, cm := Job(&s, req), ConfigMap(&s, req)
	c := job.Spec.Template.Spec.Containers[0]
	if envOf(c, "GKEXEC_CODE") != "/gkexec/code/main.sh" || envOf(c, "GKEXEC_LANGUAGE") != "bash" || cm.Data["main.sh"] != "echo hi" {
		t.Errorf("code %q language %q data %v", envOf(c, "GKEXEC_CODE"), envOf(c, "GKEXEC_LANGUAGE"), cm.Data)
	}
	py := Job(&s, testRequest(wire.Request{Code: "x", ExecutionID: "py"})).Spec.Template.Spec.Containers[0]
	if envOf(py, "GKEXEC_CODE") != "/gkexec/code/main.py" || envOf(py, "GKEXEC_LANGUAGE") != "" {
		t.Errorf("python: code %q language %q", envOf(py, "GKEXEC_CODE"), envOf(py, "GKEXEC_LANGUAGE"))
	}
}
