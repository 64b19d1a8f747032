package runner

import (
	"fmt"
	"maps"
	"math"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/internal/wire"
)

const (
	containerName = "sandbox"
	codeMount     = "/gkexec/code"
	codeKey       = "main.py"
	entrypointKey = "entrypoint.py"
	// maxConfigMapBytes is the API server's limit on a ConfigMap's data (keys and values).
	maxConfigMapBytes = 1 << 20
	// terminationGrace: killing untrusted code needs no courtesy; the Pod should vanish at once.
	terminationGrace = 1
	// deadlineSlack is added to the Job's activeDeadlineSeconds beyond start and run timeouts:
	// the backstop must never fire before the runner's own, friendlier, timeout handling.
	deadlineSlack = 30
	// warmCodeVolumeSize holds the code a warm sandbox receives: the same 1 MiB a ConfigMap bounds
	// a cold one to, with room to spare.
	warmCodeVolumeSize = "2Mi"
)

// objectName is the name of an execution's ConfigMap and Job.
func objectName(executionID string) string { return "gkexec-" + executionID }

// inputKey is the ConfigMap key of the i-th input file: ConfigMap keys cannot hold slashes, so
// files are stored under plain keys and projected to their paths by the volume's items.
func inputKey(i int) string { return "input-" + strconv.Itoa(i) }

func (o *Options) labels(executionID string) map[string]string {
	l := make(map[string]string, len(o.Labels)+3)
	maps.Copy(l, o.Labels)
	l[LabelManagedBy] = ManagedByValue
	l[LabelComponent] = ComponentSandbox
	l[LabelExecutionID] = executionID
	return l
}

// requestSize is what the request adds to the ConfigMap, checked before anything is created.
func requestSize(req Request) int {
	n := len(codeKey) + len(req.Code) + len(entrypointKey) + len(wire.Entrypoint)
	i := 0
	for _, data := range req.Files {
		n += len(inputKey(i)) + len(data)
		i++
	}
	return n
}

func sortedFileNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// newConfigMap holds the code, the entrypoint and the input files. Immutable: nothing should
// change the code under a running execution, and the kubelet need not watch it.
func newConfigMap(o *Options, req Request) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:        objectName(req.ExecutionID),
			Namespace:   o.Namespace,
			Labels:      o.labels(req.ExecutionID),
			Annotations: maps.Clone(o.Annotations),
		},
		Immutable: ptr.To(true),
		Data:      map[string]string{codeKey: req.Code, entrypointKey: wire.Entrypoint},
	}
	for i, name := range sortedFileNames(req.Files) {
		if cm.BinaryData == nil {
			cm.BinaryData = make(map[string][]byte, len(req.Files))
		}
		cm.BinaryData[inputKey(i)] = req.Files[name]
	}
	return cm
}

// newJob runs the entrypoint in a Pod that passes the Pod Security Standards "restricted" profile,
// under the sandbox RuntimeClass, with no credentials, no service links and no way to escalate.
func newJob(o *Options, req Request) *batchv1.Job {
	name := objectName(req.ExecutionID)
	labels := o.labels(req.ExecutionID)
	timeoutSeconds := int64(math.Ceil(req.timeout(o).Seconds()))
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   o.Namespace,
			Labels:      labels,
			Annotations: maps.Clone(o.Annotations),
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			Completions:             ptr.To[int32](1),
			Parallelism:             ptr.To[int32](1),
			ActiveDeadlineSeconds:   ptr.To(int64(math.Ceil(o.StartTimeout.Seconds())) + timeoutSeconds + deadlineSlack),
			TTLSecondsAfterFinished: ptr.To(int32(math.Ceil(o.TTLAfterFinished.Seconds()))),
			// Pods are not replaced while terminating: a killed sandbox must stay killed.
			PodReplacementPolicy: ptr.To(batchv1.Failed),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(labels), Annotations: runningSandboxAnnotations(o)},
				Spec:       sandboxPodSpec(o, &req),
			},
		},
	}
}

// sandboxPodSpec is the one hardened sandbox Pod, for a cold Job (req set: the code and inputs in
// the execution's ConfigMap, the limits in the environment) or for the warm pool (req nil: the
// entrypoint waits for the request on stdin, and the Pod restarts its container like any
// ReplicaSet Pod). Everything that isolates the code is the same in both.
func sandboxPodSpec(o *Options, req *Request) corev1.PodSpec {
	scratch := resource.MustParse(o.ScratchSizeLimit)
	env := []corev1.EnvVar{
		{Name: "GKEXEC_CODE", Value: codeMount + "/" + codeKey},
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
			{Key: codeKey, Path: codeKey},
			{Key: entrypointKey, Path: entrypointKey},
		}
		for i, file := range sortedFileNames(req.Files) {
			items = append(items, corev1.KeyToPath{Key: inputKey(i), Path: "inputs/" + file})
		}
		code.VolumeSource = corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: objectName(req.ExecutionID)},
			Items:                items,
			DefaultMode:          ptr.To[int32](0o444),
		}}
		command = []string{"python3", "-I", "-S", codeMount + "/" + entrypointKey}
		restart = corev1.RestartPolicyNever
		env = append(env,
			corev1.EnvVar{Name: "GKEXEC_INPUTS", Value: codeMount + "/inputs"},
			corev1.EnvVar{Name: "GKEXEC_TIMEOUT_SECONDS", Value: strconv.FormatFloat(req.timeout(o).Seconds(), 'f', -1, 64)},
			corev1.EnvVar{Name: "GKEXEC_MAX_OUTPUT_BYTES", Value: strconv.FormatInt(o.MaxOutputBytes, 10)},
			corev1.EnvVar{Name: "GKEXEC_MAX_FILE_BYTES", Value: strconv.FormatInt(o.MaxFileBytes, 10)},
			corev1.EnvVar{Name: "GKEXEC_MAX_PROCESSES", Value: strconv.FormatInt(max(o.MaxProcesses, 0), 10)},
		)
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
		Name:            containerName,
		Image:           o.Image,
		ImagePullPolicy: o.ImagePullPolicy,
		Command:         command,
		WorkingDir:      WorkDir,
		Env:             env,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse(o.CPURequest),
				corev1.ResourceMemory: resource.MustParse(o.MemoryRequest),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU:              resource.MustParse(o.CPULimit),
				corev1.ResourceMemory:           resource.MustParse(o.MemoryLimit),
				corev1.ResourceEphemeralStorage: resource.MustParse(o.EphemeralStorageLimit),
			},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(o.RunAsUser),
			RunAsGroup:               ptr.To(o.RunAsGroup),
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
		RuntimeClassName:              runtimeClass(o),
		RestartPolicy:                 restart,
		AutomountServiceAccountToken:  ptr.To(false),
		EnableServiceLinks:            ptr.To(false),
		TerminationGracePeriodSeconds: ptr.To[int64](terminationGrace),
		NodeSelector:                  nodeSelector(o),
		Tolerations:                   tolerations(o),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To(o.RunAsUser),
			RunAsGroup:     ptr.To(o.RunAsGroup),
			FSGroup:        ptr.To(o.RunAsGroup),
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

// AnnotationSafeToEvict tells the cluster autoscaler whether it may evict a Pod to scale its node
// down. A running execution must not be evicted: its Pod says "false" (a warm Pod from its claim
// on; an idle one may go, its Deployment replaces it).
const AnnotationSafeToEvict = "cluster-autoscaler.kubernetes.io/safe-to-evict"

func runningSandboxAnnotations(o *Options) map[string]string {
	a := maps.Clone(o.Annotations)
	if a == nil {
		a = map[string]string{}
	}
	a[AnnotationSafeToEvict] = "false"
	return a
}

func runtimeClass(o *Options) *string {
	if o.NoRuntimeClass {
		return nil
	}
	return ptr.To(o.RuntimeClassName)
}

func nodeSelector(o *Options) map[string]string {
	sel := maps.Clone(o.NodeSelector)
	if !o.DisableSandboxNodeSelector {
		if sel == nil {
			sel = map[string]string{}
		}
		sel[GKESandboxLabel] = GKESandboxValue
	}
	return sel
}

func tolerations(o *Options) []corev1.Toleration {
	t := append([]corev1.Toleration(nil), o.Tolerations...)
	if !o.DisableSandboxNodeSelector {
		t = append(t, corev1.Toleration{
			Key: GKESandboxLabel, Operator: corev1.TolerationOpEqual, Value: GKESandboxValue,
			Effect: corev1.TaintEffectNoSchedule,
		})
	}
	return t
}

// ownerReference makes the Job own the ConfigMap, so that whoever deletes the Job (the runner, gc,
// or the TTL controller) deletes the code with it.
func ownerReference(job *batchv1.Job) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: "batch/v1",
		Kind:       "Job",
		Name:       job.Name,
		UID:        job.UID,
	}
}

func describeSize(n int) string {
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}

// WarmPoolDeployment is the warm pool for these options: a Deployment of idle sandbox Pods in
// Options.Namespace whose entrypoint waits for a request on stdin. Its Pod template is the same
// hardened sandbox a cold execution gets (sandboxPodSpec), so a runner with the same options
// claims its Pods. The sandbox-namespace Terraform module and manifests/components/warm-pool
// declare exactly this object; a test keeps them in step. Pods leave the Deployment when claimed
// (their pool-state label changes), and the Deployment replaces them at once.
func WarmPoolDeployment(opts Options, replicas int32) (*appsv1.Deployment, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if replicas < 0 {
		return nil, fmt.Errorf("%w: warm pool replicas %d: must not be negative", ErrInvalidOptions, replicas)
	}
	o := &opts
	labels := map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelComponent: ComponentSandbox,
		LabelPool:      o.WarmPool,
		LabelPoolState: PoolStateIdle,
	}
	podLabels := maps.Clone(o.Labels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	maps.Copy(podLabels, labels)
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      WarmPoolName(o.WarmPool),
			Namespace: o.Namespace,
			Labels:    map[string]string{LabelManagedBy: ManagedByValue, LabelComponent: ComponentWarmPool, LabelPool: o.WarmPool},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			// New Pods before old ones go: the pool never shrinks during a rollout.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromString("25%")),
				}},
			RevisionHistoryLimit: ptr.To[int32](2),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: maps.Clone(o.Annotations)},
				Spec:       sandboxPodSpec(o, nil),
			},
		},
	}, nil
}

// sessionSandboxID is the execution ID a cold session's Job is labelled and named with
// (gkexec-s-<session>): the shared watches route its Pod and events by it.
func sessionSandboxID(session string) string { return "s-" + session }

// newSessionJob is a cold session's sandbox: the warm pool's Pod (the entrypoint waiting on
// stdin) in a Job of its own, which never restarts it and ends at the session's maximum lifetime
// at the latest; the TTL controller removes it once it ended.
func newSessionJob(o *Options, session string, lifetime, idle time.Duration, expires time.Time) *batchv1.Job {
	id := sessionSandboxID(session)
	labels := o.labels(id)
	labels[LabelSession] = session
	annotations := runningSandboxAnnotations(o)
	maps.Copy(annotations, sessionAnnotations(idle, expires))
	jobAnnotations := maps.Clone(o.Annotations)
	if jobAnnotations == nil {
		jobAnnotations = map[string]string{}
	}
	jobAnnotations[AnnotationSessionExpiresAt] = annotations[AnnotationSessionExpiresAt] // for gc
	spec := sandboxPodSpec(o, nil)
	spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: objectName(id), Namespace: o.Namespace, Labels: labels, Annotations: jobAnnotations},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			Completions:             ptr.To[int32](1),
			Parallelism:             ptr.To[int32](1),
			PodReplacementPolicy:    ptr.To(batchv1.Failed),
			ActiveDeadlineSeconds:   ptr.To(int64(math.Ceil((o.StartTimeout + lifetime).Seconds())) + deadlineSlack),
			TTLSecondsAfterFinished: ptr.To(int32(math.Ceil(o.TTLAfterFinished.Seconds()))),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec:       spec,
			},
		},
	}
}

func sessionAnnotations(idle time.Duration, expires time.Time) map[string]string {
	return map[string]string{
		AnnotationSessionExpiresAt:   expires.UTC().Format(time.RFC3339),
		AnnotationSessionIdleTimeout: idle.String(),
		AnnotationSessionLastUsed:    time.Now().UTC().Format(time.RFC3339),
	}
}

// WarmPoolName is the name of the Deployment of warm pool pool.
func WarmPoolName(pool string) string { return "gkexec-pool-" + pool }
