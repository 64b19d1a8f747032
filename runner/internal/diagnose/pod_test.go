package diagnose

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTransientPodCreateFailures(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		`Error creating: Operation cannot be fulfilled on resourcequotas "gkexec-quota": the object has been modified; please apply your changes to the latest version and try again`: true,
		`Error creating: pods "x" is forbidden: exceeded quota: sandbox, requested: pods=1, used: pods=10, limited: pods=10`:                                                          false,
		`Error creating: pods "x" is forbidden: pod rejected: RuntimeClass "gvisor" not found`:                                                                                        false,
		`Error creating: pods "x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true`:                                                                       false,
	}
	for msg, want := range cases {
		if got := transientCreateFailure(msg); got != want {
			t.Errorf("transientCreateFailure(%q) = %v, want %v", msg, got, want)
		}
	}
}

func TestNoRoomAndNoMatchingNode(t *testing.T) {
	t.Parallel()
	const (
		full      = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
		tooMany   = "0/1 nodes are available: 1 Too many pods."
		noMatch   = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
		fullMatch = "0/3 nodes are available: 1 Insufficient memory, 2 node(s) didn't match Pod's node affinity/selector."
	)
	pending := func(msg string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gkexec-x-abcde", Namespace: "ns"},
			Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled,
				Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: msg}}}}
	}
	scheduled := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gkexec-x-abcde", Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: "n"},
		Status: corev1.PodStatus{Phase: corev1.PodPending}}
	failedScheduling := func(msg string) []*corev1.Event {
		return []*corev1.Event{{Type: corev1.EventTypeWarning, Reason: "FailedScheduling", Message: msg,
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "gkexec-x-abcde"}}}
	}
	cases := []struct {
		name                    string
		pod                     *corev1.Pod
		events                  []*corev1.Event
		noRoom, selectorIsWrong bool
	}{
		{name: "insufficient cpu", pod: pending(full), noRoom: true},
		{name: "too many pods", pod: pending(tooMany), noRoom: true},
		{name: "no node matches", pod: pending(noMatch), selectorIsWrong: true},
		{name: "the node that matches is full", pod: pending(fullMatch), noRoom: true},
		{name: "FailedScheduling before the condition", events: failedScheduling(full), noRoom: true},
		{name: "FailedScheduling of an earlier attempt", pod: scheduled, events: failedScheduling(full)},
		{name: "scheduled", pod: scheduled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := Diagnose("ns", "gvisor", "gkexec-x", tc.pod, tc.events)
			if d.NoRoom != tc.noRoom || d.UnschedulableSelector != tc.selectorIsWrong {
				t.Errorf("NoRoom %v, UnschedulableSelector %v; want %v, %v", d.NoRoom, d.UnschedulableSelector, tc.noRoom, tc.selectorIsWrong)
			}
		})
	}
}

// The scheduler says "untolerated taint" without naming it; the hint must point at the kubelet's
// own taints too, and only then.
func TestTaintHint(t *testing.T) {
	taint := "0/1 nodes are available: 1 node(s) had untolerated taint(s). preemption: 0/1 nodes are available"
	if h := TaintHint(taint); !strings.Contains(h, "disk, memory or PID pressure") || !strings.Contains(h, "kubectl describe node") {
		t.Errorf("TaintHint(untolerated taint) = %q; want it to name the kubelet's pressure taints", h)
	}
	if h := TaintHint("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector"); h != "" {
		t.Errorf("TaintHint(selector mismatch) = %q; want none", h)
	}
}
