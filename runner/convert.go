package runner

import (
	"time"

	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
)

// shape is what the options say a sandbox looks like, as the object builders take it: the one
// place the public options are read for them.
func (o *Options) shape() podspec.Shape {
	s := podspec.Shape{
		Namespace: o.Namespace, Image: o.Image, PullPolicy: o.ImagePullPolicy,
		CPURequest: o.CPURequest, MemoryRequest: o.MemoryRequest, CPULimit: o.CPULimit, MemoryLimit: o.MemoryLimit,
		EphemeralStorageLimit: o.EphemeralStorageLimit, ScratchSizeLimit: o.ScratchSizeLimit,
		SandboxNodes: !o.DisableSandboxNodeSelector, NodeSelector: o.NodeSelector, Tolerations: o.Tolerations,
		RunAsUser: o.RunAsUser, RunAsGroup: o.RunAsGroup, Labels: o.Labels, Annotations: o.Annotations,
		StartTimeout: o.StartTimeout, TTLAfterFinished: o.TTLAfterFinished, WarmPool: o.WarmPool,
	}
	if !o.NoRuntimeClass {
		s.RuntimeClassName = o.RuntimeClassName
	}
	return s
}

// sandboxConfig is the options' settings the sandbox sources read.
func (o *Options) sandboxConfig(killGrace time.Duration) sandbox.Config {
	return sandbox.Config{Timeout: o.Timeout, StartTimeout: o.StartTimeout, UnschedulableGrace: o.UnschedulableGrace,
		KillGrace: killGrace, CleanupTimeout: o.CleanupTimeout, KeepObjects: o.KeepObjects,
		WarmPool: o.WarmPool, WarmPoolReady: o.WarmPoolReady, WarmPoolHold: o.WarmPoolHold, WarmPoolMaxIdleAge: o.WarmPoolMaxIdleAge}
}
