package podspec

import (
	"maps"
	"math"
	"slices"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/internal/wire"
)

const (
	// MaxConfigMapBytes is the API server's limit on a ConfigMap's data (keys and values).
	MaxConfigMapBytes = 1 << 20
	// DeadlineSlack (seconds) is added to a sandbox's activeDeadlineSeconds beyond its start and
	// run time: the backstop must never fire before the runner's own, friendlier, timeout handling.
	DeadlineSlack = 30
)

// inputKey is the ConfigMap key of the i-th input file: ConfigMap keys cannot hold slashes, so
// files are stored under plain keys and projected to their paths by the volume's items.
func inputKey(i int) string { return "input-" + strconv.Itoa(i) }

// RequestSize is what the request adds to a cold execution's ConfigMap, checked before anything
// is created.
func RequestSize(req wire.Request) int {
	n := len(wire.CodeFile(req.Language)) + len(req.Code) + len(entrypointKey) + len(wire.Entrypoint)
	i := 0
	for _, data := range req.Files {
		n += len(inputKey(i)) + len(data)
		i++
	}
	return n
}

// ConfigMap holds a cold execution's code, the entrypoint and the input files. Immutable: nothing
// should change the code under a running execution, and the kubelet need not watch it.
func ConfigMap(s *Shape, req wire.Request) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:        ObjectName(req.ExecutionID),
			Namespace:   s.Namespace,
			Labels:      s.labels(req.ExecutionID),
			Annotations: maps.Clone(s.Annotations),
		},
		Immutable: ptr.To(true),
		Data:      map[string]string{wire.CodeFile(req.Language): req.Code, entrypointKey: wire.Entrypoint},
	}
	for i, name := range slices.Sorted(maps.Keys(req.Files)) {
		if cm.BinaryData == nil {
			cm.BinaryData = make(map[string][]byte, len(req.Files))
		}
		cm.BinaryData[inputKey(i)] = req.Files[name]
	}
	return cm
}

// Job runs a cold execution's entrypoint in a Pod that passes the Pod Security Standards
// "restricted" profile, under the sandbox RuntimeClass, with no credentials, no service links and
// no way to escalate.
func Job(s *Shape, req wire.Request) *batchv1.Job {
	labels := s.labels(req.ExecutionID)
	timeoutSeconds := int64(math.Ceil(req.Timeout.Seconds()))
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        ObjectName(req.ExecutionID),
			Namespace:   s.Namespace,
			Labels:      labels,
			Annotations: maps.Clone(s.Annotations),
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			Completions:             ptr.To[int32](1),
			Parallelism:             ptr.To[int32](1),
			ActiveDeadlineSeconds:   ptr.To(int64(math.Ceil(s.StartTimeout.Seconds())) + timeoutSeconds + DeadlineSlack),
			TTLSecondsAfterFinished: ptr.To(int32(math.Ceil(s.TTLAfterFinished.Seconds()))),
			// Pods are not replaced while terminating: a killed sandbox must stay killed.
			PodReplacementPolicy: ptr.To(batchv1.Failed),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(labels), Annotations: s.runningAnnotations()},
				Spec:       Pod(s, &req),
			},
		},
	}
}
