package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// Image pull problems the kubelet reports as a waiting reason; none of them fixes itself quickly.
var imagePullReasons = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true,
	"InvalidImageName": true, "ImageInspectError": true, "RegistryUnavailable": true,
}

// Diagnosis is what the start phase learned from the Pod and its events.
type Diagnosis struct {
	Fatal error // non-nil: the Pod can never run; stop now
	// UnschedulableSelector: the scheduler says no node matches the Pod's selector or tolerations.
	UnschedulableSelector bool
	// NoRoom: the Pod is not scheduled, and the scheduler says no node has room for it
	// (Insufficient cpu or memory, Too many pods), in its condition or a FailedScheduling event.
	// Another sandbox's end, or a node being added, may make room.
	NoRoom bool
	// Summary describes the last state, for a timeout message.
	Summary string
}

// Diagnose looks for the failures that make waiting pointless, so that Execute fails in seconds
// with an actionable error instead of at the timeout.
func Diagnose(namespace, runtimeClass, jobName string, pod *corev1.Pod, events []*corev1.Event) Diagnosis {
	var d Diagnosis
	sort.Slice(events, func(i, j int) bool { return eventTime(events[i]).Before(eventTime(events[j])) })
	for _, ev := range events {
		msg := ev.Message
		if ev.InvolvedObject.Kind == "Pod" && ev.Reason == "FailedScheduling" && lacksRoom(msg) {
			d.NoRoom = true
		}
		switch {
		case ev.InvolvedObject.Kind == "Job" && ev.Reason == "FailedCreate":
			switch {
			case transientCreateFailure(msg):
				// The Job controller tries again; the summary keeps it, should the start time out.
			case strings.Contains(msg, "exceeded quota"):
				d.Fatal = fmt.Errorf("%w: job %s/%s could not create its pod: %s; wait for running executions to finish or raise the namespace's ResourceQuota",
					ErrQuotaExceeded, namespace, jobName, msg)
			case strings.Contains(msg, "RuntimeClass") && strings.Contains(msg, "not found"):
				d.Fatal = fmt.Errorf("%w: job %s/%s: %s; on GKE enable GKE Sandbox on a node pool, elsewhere apply manifests/overlays/non-gke (or pass --runtime-class)",
					ErrRuntimeClass, namespace, jobName, msg)
			case strings.Contains(msg, "PodSecurity"):
				d.Fatal = fmt.Errorf("%w: job %s/%s: Pod Security admission rejected the sandbox pod: %s", ErrSandboxFailed, namespace, jobName, msg)
			default:
				d.Fatal = fmt.Errorf("%w: job %s/%s could not create its pod: %s", ErrSandboxFailed, namespace, jobName, msg)
			}
		case ev.InvolvedObject.Kind == "Pod" && ev.Reason == "FailedCreatePodSandBox" &&
			(strings.Contains(msg, "no runtime for") || strings.Contains(strings.ToLower(msg), "runtime handler")):
			d.Fatal = fmt.Errorf("%w: pod %s/%s: the node has no container runtime handler for RuntimeClass %q: %s",
				ErrRuntimeClass, namespace, ev.InvolvedObject.Name, runtimeClass, msg)
		}
		if d.Fatal != nil {
			return d
		}
		d.Summary = fmt.Sprintf("last warning %s: %s", ev.Reason, msg)
	}
	if Scheduled(pod) {
		d.NoRoom = false // an earlier attempt's event
	}
	if pod == nil {
		if d.Summary == "" {
			d.Summary = "job " + jobName + " has not created its pod yet"
		}
		return d
	}
	state := describePod(pod)
	if d.Summary != "" {
		state += "; " + d.Summary
	}
	d.Summary = state
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable && !Scheduled(pod) {
			d.NoRoom = d.NoRoom || lacksRoom(c.Message)
			// A node that matches but is full ("1 Insufficient cpu, 2 node(s) didn't match Pod's
			// node affinity/selector") makes room in time: only nodes that all mismatch are final.
			d.UnschedulableSelector = selectorMismatch(c.Message) && !lacksRoom(c.Message)
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		w := cs.State.Waiting
		if w == nil {
			continue
		}
		switch {
		case imagePullReasons[w.Reason]:
			hint := "check the image name and that the node can pull it (registry access, credentials)"
			if w.Reason == "ErrImageNeverPull" {
				hint = "the image is not on the node and the pull policy is Never"
			}
			d.Fatal = fmt.Errorf("%w: pod %s/%s: image %q: %s: %s; %s", ErrImagePull, pod.Namespace, pod.Name, cs.Image, w.Reason, w.Message, hint)
		case w.Reason == "CreateContainerConfigError" || w.Reason == "CreateContainerError":
			d.Fatal = fmt.Errorf("%w: pod %s/%s: %s: %s", ErrSandboxFailed, pod.Namespace, pod.Name, w.Reason, w.Message)
		}
	}
	return d
}

// transientCreateFailure tells a Job's FailedCreate that its controller retries by itself from
// one that no retry can fix. Concurrent Pod creates race on a ResourceQuota's usage counters and
// the losers are refused with a Conflict on the quota object ("the object has been modified");
// the Job controller creates the Pod again on its next sync. A quota that is exhausted ("exceeded
// quota"), a missing RuntimeClass or a Pod Security rejection stays until someone acts.
func transientCreateFailure(msg string) bool {
	if strings.Contains(msg, "exceeded quota") {
		return false
	}
	return strings.Contains(msg, "Operation cannot be fulfilled on resourcequotas") ||
		strings.Contains(msg, "the object has been modified")
}

// lacksRoom: the scheduler's message says a node has no room left for the Pod — its requests do
// not fit ("Insufficient cpu", "Insufficient memory", any resource) or it runs as many Pods as it
// may ("Too many pods").
func lacksRoom(msg string) bool {
	return strings.Contains(msg, "Insufficient ") || strings.Contains(msg, "Too many pods")
}

// selectorMismatch tells "no node matches" from "no node has room": only the first is final.
func selectorMismatch(msg string) bool {
	for _, s := range []string{"didn't match Pod's node affinity/selector", "untolerated taint", "didn't match node selector"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// TaintHint adds, to an "untolerated taint" refusal, the taints no configuration fixes: the
// kubelet's own. A node under disk, memory or PID pressure, or not ready, is tainted until it
// recovers, and the scheduler's message does not say which taint it was.
func TaintHint(summary string) string {
	if !strings.Contains(summary, "untolerated taint") {
		return ""
	}
	return "; if such a node exists, it carries another taint: a node under disk, memory or PID pressure or not ready is tainted until it recovers (kubectl describe node shows its taints and conditions)"
}

func describePod(pod *corev1.Pod) string {
	parts := []string{fmt.Sprintf("pod %s/%s %s", pod.Namespace, pod.Name, pod.Status.Phase)}
	for _, c := range pod.Status.Conditions {
		if c.Status == corev1.ConditionFalse && c.Reason != "" && c.Reason != "PodCompleted" {
			parts = append(parts, fmt.Sprintf("%s=%s: %s", c.Type, c.Reason, c.Message))
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil:
			parts = append(parts, fmt.Sprintf("container waiting: %s %s", cs.State.Waiting.Reason, cs.State.Waiting.Message))
		case cs.State.Terminated != nil:
			parts = append(parts, fmt.Sprintf("container terminated: %s exit %d", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode))
		}
	}
	if pod.Status.Reason != "" {
		parts = append(parts, pod.Status.Reason+": "+pod.Status.Message)
	}
	return strings.Join(parts, ", ")
}

func eventTime(ev *corev1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	}
	return ev.CreationTimestamp.Time
}

// ContainerStarted reports whether the sandbox container is running or already ran.
func ContainerStarted(pod *corev1.Pod) bool {
	if pod == nil {
		return false
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return true
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == podspec.ContainerName && (cs.State.Running != nil || cs.State.Terminated != nil) {
			return true
		}
	}
	return false
}

// Terminated returns the sandbox container's final state, or nil while it runs. A warm pool
// Pod restarts its container (restartPolicy Always), so there the last state tells.
func Terminated(pod *corev1.Pod) *corev1.ContainerStateTerminated {
	if pod == nil {
		return nil
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != podspec.ContainerName {
			continue
		}
		if cs.State.Terminated != nil {
			return cs.State.Terminated
		}
		if cs.LastTerminationState.Terminated != nil {
			return cs.LastTerminationState.Terminated
		}
	}
	return nil
}

func PodFinished(pod *corev1.Pod) bool {
	return pod != nil && (pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed)
}

// RoomBeingMade: the scheduler has nominated a node for the unscheduled Pod, having preempted
// lower-priority Pods there (an idle warm pool's, which runs below executions): it lacks room only
// until they are gone.
func RoomBeingMade(pod *corev1.Pod) bool {
	return pod != nil && !Scheduled(pod) && pod.Status.NominatedNodeName != ""
}

func Scheduled(pod *corev1.Pod) bool {
	return pod != nil && pod.Spec.NodeName != ""
}

// IdleAndReady: running, ready, and never restarted (a restarted container's last state would
// be mistaken for the execution's end).
func IdleAndReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning || pod.Status.StartTime == nil {
		return false
	}
	ready := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == podspec.ContainerName && (cs.State.Running == nil || cs.RestartCount > 0) {
			return false
		}
	}
	return ready
}
