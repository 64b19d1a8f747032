package podspec

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/internal/egress"
)

// egressCAVolume is the volume of the egress gateway's CA files.
const egressCAVolume = "egress-ca"

// egressEnvFrom gives the sandbox the proxy environment its namespace's gateway publishes
// (egress.ConfigMapProxy). Optional: in a namespace without the gateway the ConfigMap does not
// exist, or is empty, and the sandbox gets nothing. Explicit env entries take precedence, so the
// gateway can never override the entrypoint's own settings.
func egressEnvFrom() []corev1.EnvFromSource {
	return []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: egress.ConfigMapProxy},
		Optional:             ptr.To(true),
	}}}
}

// egressCA mounts the gateway's CA certificate and bundle (egress.ConfigMapCA) read-only, when
// the namespace has them: the certificate only, never its key.
func egressCA() (corev1.Volume, corev1.VolumeMount) {
	return corev1.Volume{Name: egressCAVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: egress.ConfigMapCA},
			Optional:             ptr.To(true),
			DefaultMode:          ptr.To[int32](0o444),
		}}},
		corev1.VolumeMount{Name: egressCAVolume, MountPath: egress.CAMountPath, ReadOnly: true}
}

// EgressAllow is the value of the egress.AnnotationAllow annotation that narrows the
// namespace's allow-list to domains ("host" or "host:port" entries); ok is false when domains is
// empty: the sandbox keeps the namespace's list.
func EgressAllow(domains []string) (value string, ok bool) {
	if len(domains) == 0 {
		return "", false
	}
	return strings.Join(domains, " "), true
}

// NarrowEgress sets a Pod template's narrowing annotation for domains (none: nothing to set).
func NarrowEgress(t *corev1.PodTemplateSpec, domains []string) {
	value, ok := EgressAllow(domains)
	if !ok {
		return
	}
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	t.Annotations[egress.AnnotationAllow] = value
}
