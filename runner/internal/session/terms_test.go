package session

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gkexec/gkexec/runner/internal/podspec"
)

func podWith(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}
}

func TestTermsEndASessionIdleOrAtItsLifetimeButNotWhileLeased(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	cases := []struct {
		name string
		a    map[string]string
		want string
	}{
		{"fresh", map[string]string{podspec.AnnotationSessionExpiresAt: at(time.Hour), podspec.AnnotationSessionIdleTimeout: "10m0s",
			podspec.AnnotationSessionLastUsed: at(-time.Minute)}, ""},
		{"idle", map[string]string{podspec.AnnotationSessionExpiresAt: at(time.Hour), podspec.AnnotationSessionIdleTimeout: "10m0s",
			podspec.AnnotationSessionLastUsed: at(-11 * time.Minute)}, "idle timeout reached"},
		{"idle but leased", map[string]string{podspec.AnnotationSessionExpiresAt: at(time.Hour), podspec.AnnotationSessionIdleTimeout: "10m0s",
			podspec.AnnotationSessionLastUsed: at(-11 * time.Minute), podspec.AnnotationSessionLease: "host/1 e1 " + at(time.Minute)}, ""},
		{"idle, lease expired", map[string]string{podspec.AnnotationSessionExpiresAt: at(time.Hour), podspec.AnnotationSessionIdleTimeout: "10m0s",
			podspec.AnnotationSessionLastUsed: at(-11 * time.Minute), podspec.AnnotationSessionLease: "host/1 e1 " + at(-time.Minute)}, "idle timeout reached"},
		{"lifetime, however busy", map[string]string{podspec.AnnotationSessionExpiresAt: at(-time.Second), podspec.AnnotationSessionIdleTimeout: "10m0s",
			podspec.AnnotationSessionLastUsed: at(0), podspec.AnnotationSessionLease: "host/1 e1 " + at(time.Minute)}, "max lifetime reached"},
	}
	for _, tc := range cases {
		if got := Expired(podWith(tc.a), now); got != tc.want {
			t.Errorf("%s: Expired = %q, want %q", tc.name, got, tc.want)
		}
	}
	// The deadline is the earlier of the idle end and the lifetime's.
	p := podWith(map[string]string{podspec.AnnotationSessionExpiresAt: at(time.Hour), podspec.AnnotationSessionIdleTimeout: "10m0s",
		podspec.AnnotationSessionLastUsed: at(-time.Minute)})
	if got, want := Deadline(p), now.Add(9*time.Minute); !got.Equal(want) {
		t.Errorf("Deadline = %s, want %s (last use + idle timeout)", got, want)
	}
}

func TestParseLeaseRefusesWhatIsNotALease(t *testing.T) {
	t.Parallel()
	if h, e, until := ParseLease("host/7 exec-1 2026-12-04T12:00:00Z"); h != "host/7" || e != "exec-1" || until.IsZero() {
		t.Errorf("ParseLease = %q %q %v", h, e, until)
	}
	for _, v := range []string{"", "host/7 exec-1", "host/7 exec-1 not-a-time", "a b c d"} {
		if h, _, until := ParseLease(v); h != "" || !until.IsZero() {
			t.Errorf("ParseLease(%q) = %q %v, want nothing", v, h, until)
		}
	}
}
