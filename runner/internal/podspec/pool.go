package podspec

import (
	"encoding/json"
	"maps"
	"math"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// WarmPool is the warm pool: a Deployment of idle sandbox Pods whose entrypoint waits for a
// request on stdin. Its Pod template is the same hardened sandbox a cold execution gets (Pod), so
// a runner with the same options claims its Pods. Pods leave the Deployment when claimed (their
// pool-state label changes), and the Deployment replaces them at once.
func WarmPool(s *Shape, replicas int32) *appsv1.Deployment {
	labels := map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelComponent: ComponentSandbox,
		LabelPool:      s.WarmPool,
		LabelPoolState: PoolStateIdle,
	}
	podLabels := maps.Clone(s.Labels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	maps.Copy(podLabels, labels)
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      WarmPoolName(s.WarmPool),
			Namespace: s.Namespace,
			Labels:    map[string]string{LabelManagedBy: ManagedByValue, LabelComponent: ComponentWarmPool, LabelPool: s.WarmPool},
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
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: maps.Clone(s.Annotations)},
				Spec:       Pod(s, nil),
			},
		},
	}
}

// SessionJob is a cold session's sandbox: the warm pool's Pod (the entrypoint waiting on
// stdin) in a Job of its own, which never restarts it and ends at the session's maximum lifetime
// at the latest; the TTL controller removes it once it ended.
func SessionJob(s *Shape, session, language string, lifetime, idle time.Duration, expires time.Time) *batchv1.Job {
	id := SessionSandboxID(session)
	labels := s.labels(id)
	labels[LabelSession] = session
	annotations := s.runningAnnotations()
	maps.Copy(annotations, SessionAnnotations(idle, expires, language))
	jobAnnotations := maps.Clone(s.Annotations)
	if jobAnnotations == nil {
		jobAnnotations = map[string]string{}
	}
	jobAnnotations[AnnotationSessionExpiresAt] = annotations[AnnotationSessionExpiresAt] // for people: the sandbox enforces it
	spec := Pod(s, nil)
	spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: ObjectName(id), Namespace: s.Namespace, Labels: labels, Annotations: jobAnnotations},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			Completions:             ptr.To[int32](1),
			Parallelism:             ptr.To[int32](1),
			PodReplacementPolicy:    ptr.To(batchv1.Failed),
			ActiveDeadlineSeconds:   ptr.To(int64(math.Ceil((s.StartTimeout + lifetime).Seconds())) + DeadlineSlack),
			TTLSecondsAfterFinished: ptr.To(int32(math.Ceil(s.TTLAfterFinished.Seconds()))),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec:       spec,
			},
		},
	}
}

// SessionMarker is what makes a session's ID taken, in the namespace, for every process at once:
// the API server creates an object of a name once, so of two processes opening one ID the second
// is refused before it claims or creates anything. Once the session has its sandbox, the sandbox
// owns the marker, and the garbage collector removes it with the sandbox.
func SessionMarker(s *Shape, id string) *corev1.ConfigMap {
	labels := map[string]string{LabelManagedBy: ManagedByValue, LabelComponent: ComponentSession, LabelSession: id}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: SessionMarkerName(id), Namespace: s.Namespace, Labels: labels, Annotations: maps.Clone(s.Annotations)},
		Immutable:  ptr.To(true),
	}
}

// SessionAnnotations are a session's terms on its Pod, as it opens.
func SessionAnnotations(idle time.Duration, expires time.Time, language string) map[string]string {
	if language == "" {
		language = "python"
	}
	return map[string]string{
		AnnotationSessionExpiresAt:   expires.UTC().Format(time.RFC3339),
		AnnotationSessionIdleTimeout: idle.String(),
		AnnotationSessionLastUsed:    time.Now().UTC().Format(time.RFC3339),
		AnnotationSessionLanguage:    language,
	}
}

// Fingerprint is what a pool Pod must share with the sandbox the options describe to serve a
// request: image, runtime, resources, identity, scratch sizes, placement and the entrypoint
// itself. Per-execution settings (timeout, caps) travel with the request.
func Fingerprint(spec corev1.PodSpec) string {
	type volume struct {
		Name string
		Size string
	}
	var f struct {
		RuntimeClass string
		Containers   []corev1.Container
		Volumes      []volume
		NodeSelector map[string]string
		Tolerations  []corev1.Toleration
		User, Group  int64
	}
	if spec.RuntimeClassName != nil {
		f.RuntimeClass = *spec.RuntimeClassName
	}
	for _, c := range spec.Containers {
		// The API server defaults a request to its limit where only the limit is set.
		requests := c.Resources.Requests.DeepCopy()
		if requests == nil {
			requests = corev1.ResourceList{}
		}
		for name, limit := range c.Resources.Limits {
			if _, ok := requests[name]; !ok {
				requests[name] = limit
			}
		}
		f.Containers = append(f.Containers, corev1.Container{Name: c.Name, Image: c.Image, Command: c.Command,
			Resources: corev1.ResourceRequirements{Requests: requests, Limits: c.Resources.Limits}})
	}
	for _, v := range spec.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
			f.Volumes = append(f.Volumes, volume{v.Name, v.EmptyDir.SizeLimit.String()})
		}
	}
	f.NodeSelector = spec.NodeSelector
	for _, t := range spec.Tolerations {
		if t.Key == GKESandboxLabel || strings.HasPrefix(t.Key, "node.kubernetes.io/") {
			continue // admission adds these (the RuntimeClass's scheduling, DefaultTolerationSeconds)
		}
		f.Tolerations = append(f.Tolerations, t)
	}
	if sc := spec.SecurityContext; sc != nil && sc.RunAsUser != nil && sc.RunAsGroup != nil {
		f.User, f.Group = *sc.RunAsUser, *sc.RunAsGroup
	}
	b, _ := json.Marshal(f)
	return string(b)
}
