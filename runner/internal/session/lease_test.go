package session

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func podWith(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}}
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
