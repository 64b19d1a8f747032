package podspec

import (
	"maps"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/internal/wire"
)

const (
	// ContainerName is the sandbox container's name in every sandbox Pod.
	ContainerName = "sandbox"
	// WorkDir is the code's working directory; input files are copied into it.
	WorkDir = "/workspace"
	// OutputDir is where the code writes files it wants returned.
	OutputDir = "/workspace/output"

	codeMount     = "/gkexec/code"
	entrypointKey = "entrypoint.py"
	// terminationGrace: killing untrusted code needs no courtesy; the Pod should vanish at once.
	terminationGrace = 1
	// warmCodeVolumeSize holds the code a warm sandbox receives: the same 1 MiB a ConfigMap bounds
	// a cold one to, with room to spare.
	warmCodeVolumeSize = "2Mi"
)

// Pod is the one hardened sandbox Pod, for a cold Job (req set: the code and inputs in
// the execution's ConfigMap, the limits in the environment) or for the warm pool (req nil: the
// entrypoint waits for the request on stdin, and the Pod restarts its container like any
// ReplicaSet Pod). Everything that isolates the code is the same in both.
func Pod(s *Shape, req *wire.Request) corev1.PodSpec {
	scratch := resource.MustParse(s.ScratchSizeLimit)
	codeFile := wire.CodeFile("")
	if req != nil {
		codeFile = wire.CodeFile(req.Language)
	}
	env := []corev1.EnvVar{
		{Name: "GKEXEC_CODE", Value: codeMount + "/" + codeFile},
		{Name: "GKEXEC_WORKDIR", Value: WorkDir},
		{Name: "GKEXEC_OUTPUT_DIR", Value: OutputDir},
	}
	// The code volume: read-only from the ConfigMap when cold; a small private scratch volume the
	// entrypoint writes the received code to when warm.
	code := corev1.Volume{Name: "code", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse(warmCodeVolumeSize)),
	}}}
	command := []string{"python3", "-I", "-S", "-c", wire.Entrypoint}
	restart := corev1.RestartPolicyAlways
	if req != nil {
		items := []corev1.KeyToPath{
			{Key: codeFile, Path: codeFile},
			{Key: entrypointKey, Path: entrypointKey},
		}
		for i, file := range slices.Sorted(maps.Keys(req.Files)) {
			items = append(items, corev1.KeyToPath{Key: inputKey(i), Path: "inputs/" + file})
		}
		code.VolumeSource = corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ObjectName(req.ExecutionID)},
			Items:                items,
			DefaultMode:          ptr.To[int32](0o444),
		}}
		command = []string{"python3", "-I", "-S", codeMount + "/" + entrypointKey}
		restart = corev1.RestartPolicyNever
		env = append(env,
			corev1.EnvVar{Name: "GKEXEC_INPUTS", Value: codeMount + "/inputs"},
			corev1.EnvVar{Name: "GKEXEC_TIMEOUT_SECONDS", Value: strconv.FormatFloat(req.Timeout.Seconds(), 'f', -1, 64)},
			corev1.EnvVar{Name: "GKEXEC_MAX_OUTPUT_BYTES", Value: strconv.FormatInt(req.MaxOutput, 10)},
			corev1.EnvVar{Name: "GKEXEC_MAX_FILE_BYTES", Value: strconv.FormatInt(req.MaxFile, 10)},
			corev1.EnvVar{Name: "GKEXEC_MAX_PROCESSES", Value: strconv.FormatInt(max(req.MaxProcesses, 0), 10)},
		)
		if req.Language != "" && req.Language != "python" {
			env = append(env, corev1.EnvVar{Name: "GKEXEC_LANGUAGE", Value: req.Language})
		}
	} else {
		env = append(env, corev1.EnvVar{Name: "GKEXEC_REQUEST", Value: "stdin"})
	}
	env = append(env,
		corev1.EnvVar{Name: "HOME", Value: "/tmp"},
		corev1.EnvVar{Name: "TMPDIR", Value: "/tmp"},
		corev1.EnvVar{Name: "PYTHONDONTWRITEBYTECODE", Value: "1"},
		corev1.EnvVar{Name: "PYTHONUNBUFFERED", Value: "1"},
	)
	container := corev1.Container{
		Name:            ContainerName,
		Image:           s.Image,
		ImagePullPolicy: s.PullPolicy,
		Command:         command,
		WorkingDir:      WorkDir,
		Env:             env,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse(s.CPURequest),
				corev1.ResourceMemory: resource.MustParse(s.MemoryRequest),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:              resource.MustParse(s.CPULimit),
				corev1.ResourceMemory:           resource.MustParse(s.MemoryLimit),
				corev1.ResourceEphemeralStorage: resource.MustParse(s.EphemeralStorageLimit),
			},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(s.RunAsUser),
			RunAsGroup:               ptr.To(s.RunAsGroup),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Privileged:               ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "code", MountPath: codeMount, ReadOnly: req != nil},
			{Name: "tmp", MountPath: "/tmp"},
			{Name: "workspace", MountPath: WorkDir},
		},
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	}
	if req == nil {
		// The request arrives over pods/attach. Stdin stays open when an attach ends (no
		// stdinOnce), so that a session can be resumed by another attach; a used one-shot
		// sandbox never reads stdin again, and a restarted container in a Pod that served
		// refuses to (the entrypoint's spent marker).
		container.Stdin = true
	}
	return corev1.PodSpec{
		RuntimeClassName:              s.runtimeClass(),
		RestartPolicy:                 restart,
		AutomountServiceAccountToken:  ptr.To(false),
		EnableServiceLinks:            ptr.To(false),
		TerminationGracePeriodSeconds: ptr.To[int64](terminationGrace),
		NodeSelector:                  s.nodeSelector(),
		Tolerations:                   s.tolerations(),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To(s.RunAsUser),
			RunAsGroup:     ptr.To(s.RunAsGroup),
			FSGroup:        ptr.To(s.RunAsGroup),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{container},
		Volumes: []corev1.Volume{
			code,
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
				Medium: corev1.StorageMediumMemory, SizeLimit: &scratch,
			}}},
			{Name: "workspace", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
				Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(scratch.DeepCopy()),
			}}},
		},
	}
}
