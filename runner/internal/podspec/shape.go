package podspec

import (
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// GKESandboxLabel is the label and taint key GKE puts on GKE Sandbox (gVisor) nodes;
// GKESandboxValue is its value.
const (
	GKESandboxLabel = "sandbox.gke.io/runtime"
	GKESandboxValue = "gvisor"
)

// Shape is what a sandbox looks like and where it runs: the runner's options, validated and
// with their defaults, as the builders need them.
type Shape struct {
	Namespace  string
	Image      string
	PullPolicy corev1.PullPolicy
	// Kubernetes quantities of the sandbox container.
	CPURequest, MemoryRequest, CPULimit, MemoryLimit, EphemeralStorageLimit string
	// ScratchSizeLimit sizes /tmp and /workspace, each.
	ScratchSizeLimit string
	// RuntimeClassName of the Pod; empty for none.
	RuntimeClassName string
	// SandboxNodes adds the GKE Sandbox node selector and toleration.
	SandboxNodes bool
	NodeSelector map[string]string
	Tolerations  []corev1.Toleration
	RunAsUser    int64
	RunAsGroup   int64
	// Labels and Annotations are the caller's, added to every object.
	Labels, Annotations map[string]string
	// StartTimeout and TTLAfterFinished bound a Job's life beside its run time.
	StartTimeout, TTLAfterFinished time.Duration
	// WarmPool names the warm pool.
	WarmPool string
}

func (s *Shape) runtimeClass() *string {
	if s.RuntimeClassName == "" {
		return nil
	}
	return ptr.To(s.RuntimeClassName)
}

func (s *Shape) nodeSelector() map[string]string {
	sel := maps.Clone(s.NodeSelector)
	if s.SandboxNodes {
		if sel == nil {
			sel = map[string]string{}
		}
		sel[GKESandboxLabel] = GKESandboxValue
	}
	return sel
}

func (s *Shape) tolerations() []corev1.Toleration {
	t := append([]corev1.Toleration(nil), s.Tolerations...)
	if s.SandboxNodes {
		t = append(t, corev1.Toleration{
			Key: GKESandboxLabel, Operator: corev1.TolerationOpEqual, Value: GKESandboxValue,
			Effect: corev1.TaintEffectNoSchedule,
		})
	}
	return t
}

// runningAnnotations are a running sandbox Pod's: the caller's, and not to be evicted.
func (s *Shape) runningAnnotations() map[string]string {
	a := maps.Clone(s.Annotations)
	if a == nil {
		a = map[string]string{}
	}
	a[AnnotationSafeToEvict] = "false"
	return a
}
