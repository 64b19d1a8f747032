package runner

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// apiError turns an API error into one of the sentinels, naming the call so that the user knows
// which RBAC rule to add or what else to fix.
func apiError(err error, verb, resource, namespace, name string) error {
	obj := resource
	if name != "" {
		obj = resource + " " + namespace + "/" + name
	} else {
		obj = resource + " in namespace " + namespace
	}
	switch {
	case apierrors.IsForbidden(err):
		if strings.Contains(err.Error(), "exceeded quota") {
			return fmt.Errorf("%w: %s %s: %v", ErrQuotaExceeded, verb, obj, err)
		}
		return fmt.Errorf("%w: %s %s: the runner's identity lacks verb %q on %q in namespace %s; "+
			"grant it with the gkexec Role (terraform/modules/sandbox-namespace or manifests/) and check with `gkexec doctor`: %v",
			ErrForbidden, verb, obj, verb, resource, namespace, err)
	case apierrors.IsNotFound(err) && isNamespaceNotFound(err, namespace):
		return fmt.Errorf("%w: %s %s: namespace %q does not exist; create it (terraform/modules/sandbox-namespace or manifests/) or pass --namespace: %v",
			ErrNamespaceNotFound, verb, obj, namespace, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: %s %s: the API server rejected the credentials (expired token? wrong kubeconfig?): %v", ErrForbidden, verb, obj, err)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%w: %s %s: an execution with this ID exists already; use a new execution ID: %v", ErrInvalidRequest, verb, obj, err)
	case apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err):
		return fmt.Errorf("%w: %s %s: %v", ErrInvalidRequest, verb, obj, err)
	}
	if isUnreachable(err) {
		return fmt.Errorf("%w: %s %s: cannot reach the Kubernetes API server; is the cluster running, and do --kubeconfig/--context point at it? %v",
			ErrCluster, verb, obj, err)
	}
	return fmt.Errorf("%w: %s %s: %v", ErrCluster, verb, obj, err)
}

// isUnreachable: the API server did not answer at all (as opposed to answering with an error).
func isUnreachable(err error) bool {
	var netErr net.Error
	var opErr *net.OpError
	return errors.As(err, &opErr) || (errors.As(err, &netErr) && netErr.Timeout()) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host")
}

func isNamespaceNotFound(err error, namespace string) bool {
	if status, ok := err.(apierrors.APIStatus); ok {
		if d := status.Status().Details; d != nil && d.Kind == "namespaces" {
			return true
		}
	}
	return strings.Contains(err.Error(), fmt.Sprintf("namespaces %q not found", namespace))
}

// Image pull problems the kubelet reports as a waiting reason; none of them fixes itself quickly.
var imagePullReasons = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true,
	"InvalidImageName": true, "ImageInspectError": true, "RegistryUnavailable": true,
}

// diagnosis is what the start phase learned from the Pod and its events.
type diagnosis struct {
	fatal error // non-nil: the Pod can never run; stop now
	// unschedulableSelector: the scheduler says no node matches the Pod's selector or tolerations.
	unschedulableSelector bool
	// summary describes the last state, for a timeout message.
	summary string
}

// diagnose looks for the failures that make waiting pointless, so that Execute fails in seconds
// with an actionable error instead of at the timeout.
func diagnose(o *Options, jobName string, pod *corev1.Pod, events []*corev1.Event) diagnosis {
	var d diagnosis
	sort.Slice(events, func(i, j int) bool { return eventTime(events[i]).Before(eventTime(events[j])) })
	for _, ev := range events {
		msg := ev.Message
		switch {
		case ev.InvolvedObject.Kind == "Job" && ev.Reason == "FailedCreate":
			switch {
			case transientCreateFailure(msg):
				// The Job controller tries again; the summary keeps it, should the start time out.
			case strings.Contains(msg, "exceeded quota"):
				d.fatal = fmt.Errorf("%w: job %s/%s could not create its pod: %s; wait for running executions to finish or raise the namespace's ResourceQuota",
					ErrQuotaExceeded, o.Namespace, jobName, msg)
			case strings.Contains(msg, "RuntimeClass") && strings.Contains(msg, "not found"):
				d.fatal = fmt.Errorf("%w: job %s/%s: %s; on GKE enable GKE Sandbox on a node pool, elsewhere apply manifests/overlays/non-gke (or pass --runtime-class)",
					ErrRuntimeClass, o.Namespace, jobName, msg)
			case strings.Contains(msg, "PodSecurity"):
				d.fatal = fmt.Errorf("%w: job %s/%s: Pod Security admission rejected the sandbox pod: %s", ErrSandboxFailed, o.Namespace, jobName, msg)
			default:
				d.fatal = fmt.Errorf("%w: job %s/%s could not create its pod: %s", ErrSandboxFailed, o.Namespace, jobName, msg)
			}
		case ev.InvolvedObject.Kind == "Pod" && ev.Reason == "FailedCreatePodSandBox" &&
			(strings.Contains(msg, "no runtime for") || strings.Contains(strings.ToLower(msg), "runtime handler")):
			d.fatal = fmt.Errorf("%w: pod %s/%s: the node has no container runtime handler for RuntimeClass %q: %s",
				ErrRuntimeClass, o.Namespace, ev.InvolvedObject.Name, o.RuntimeClassName, msg)
		}
		if d.fatal != nil {
			return d
		}
		d.summary = fmt.Sprintf("last warning %s: %s", ev.Reason, msg)
	}
	if pod == nil {
		if d.summary == "" {
			d.summary = "job " + jobName + " has not created its pod yet"
		}
		return d
	}
	state := describePod(pod)
	if d.summary != "" {
		state += "; " + d.summary
	}
	d.summary = state
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			d.unschedulableSelector = selectorMismatch(c.Message)
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
			d.fatal = fmt.Errorf("%w: pod %s/%s: image %q: %s: %s; %s", ErrImagePull, pod.Namespace, pod.Name, cs.Image, w.Reason, w.Message, hint)
		case w.Reason == "CreateContainerConfigError" || w.Reason == "CreateContainerError":
			d.fatal = fmt.Errorf("%w: pod %s/%s: %s: %s", ErrSandboxFailed, pod.Namespace, pod.Name, w.Reason, w.Message)
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

// selectorMismatch tells "no node matches" from "no node has room": only the first is final.
func selectorMismatch(msg string) bool {
	for _, s := range []string{"didn't match Pod's node affinity/selector", "untolerated taint", "didn't match node selector"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
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

// containerStarted reports whether the sandbox container is running or already ran.
func containerStarted(pod *corev1.Pod) bool {
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

// terminated returns the sandbox container's final state, or nil while it runs. A warm pool
// Pod restarts its container (restartPolicy Always), so there the last state tells.
func terminated(pod *corev1.Pod) *corev1.ContainerStateTerminated {
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

func podFinished(pod *corev1.Pod) bool {
	return pod != nil && (pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed)
}

func scheduled(pod *corev1.Pod) bool {
	return pod != nil && pod.Spec.NodeName != ""
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
