package session

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// Deadline is the earliest moment the session's terms on pod may end it.
func Deadline(pod *corev1.Pod) time.Time {
	a := pod.Annotations
	at, err := time.Parse(time.RFC3339, a[podspec.AnnotationSessionExpiresAt])
	if err != nil {
		at = time.Now().Add(time.Hour)
	}
	idle, err := time.ParseDuration(a[podspec.AnnotationSessionIdleTimeout])
	last, err2 := time.Parse(time.RFC3339, a[podspec.AnnotationSessionLastUsed])
	if err == nil && err2 == nil && last.Add(idle).Before(at) {
		at = last.Add(idle)
	}
	return at
}

// Expired says why the session on pod is over by its own terms at now, or "".
func Expired(pod *corev1.Pod, now time.Time) string {
	a := pod.Annotations
	if at, err := time.Parse(time.RFC3339, a[podspec.AnnotationSessionExpiresAt]); err == nil && !now.Before(at) {
		return "max lifetime reached"
	}
	idle, err := time.ParseDuration(a[podspec.AnnotationSessionIdleTimeout])
	last, err2 := time.Parse(time.RFC3339, a[podspec.AnnotationSessionLastUsed])
	if err == nil && err2 == nil && now.Sub(last) >= idle {
		if _, _, until := ParseLease(a[podspec.AnnotationSessionLease]); !now.Before(until) {
			return "idle timeout reached"
		}
	}
	return ""
}

// Newer reports whether a is a later version of the same Pod than b. resourceVersions are
// opaque; the watch's copy is newer unless it is the one this runner's own patch replaced.
func Newer(a, b *corev1.Pod) bool {
	if a.ResourceVersion == b.ResourceVersion {
		return false
	}
	at, bt := a.Annotations[podspec.AnnotationSessionLease], b.Annotations[podspec.AnnotationSessionLease]
	return at == bt || a.Annotations[podspec.AnnotationSessionLastUsed] >= b.Annotations[podspec.AnnotationSessionLastUsed]
}

// ParseLease reads the lease annotation: "<holder> <execution> <until>".
func ParseLease(v string) (holder, execution string, until time.Time) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return "", "", time.Time{}
	}
	until, err := time.Parse(time.RFC3339, f[2])
	if err != nil {
		return "", "", time.Time{}
	}
	return f[0], f[1], until
}
