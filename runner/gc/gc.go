package gc

import (
	"context"
	"errors"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
)

// Leftover is an object a runner made and did not delete (its caller crashed or was killed).
type Leftover struct {
	Kind        string // "Job", "ConfigMap" or "Pod" (a claimed warm sandbox)
	Name        string
	ExecutionID string
	Age         time.Duration
	// Deleted: this call deleted it (the API server accepted the deletion; a Job's Pod follows).
	Deleted bool
	// Gone: it was deleted by someone else between the list and the delete (an object made
	// under its name since, a session opened again, is not it, and stays).
	Gone bool
	// Err says why it could not be deleted; it is still there.
	Err error

	uid types.UID // the object listed: a later one made under its name is not deleted
}

// Collect deletes the Jobs (with their Pods) and ConfigMaps that gkexec made in namespace and
// that are older than olderThan (their runner died), and, whatever their age, the sandboxes that
// ended by themselves: claimed warm pool Pods that left or reached their deadline, cold session
// Jobs that finished or whose Pod ended, markers of sessions that have no sandbox. Idle pool Pods
// are their Deployment's and stay. With dryRun it only lists them. It tries every object, even
// after a failure, and returns each with what became of it (Deleted, Gone or Err); the error joins
// every failure, a list's included, so a non-nil error means something is left.
func Collect(ctx context.Context, client kubernetes.Interface, namespace string, olderThan time.Duration, dryRun bool) ([]Leftover, error) {
	sel := metav1.ListOptions{LabelSelector: labels.Set{podspec.LabelManagedBy: podspec.ManagedByValue}.String()}
	now := time.Now()
	var found []Leftover
	var errs []error
	old := func(kind string, m metav1.ObjectMeta) {
		if age := now.Sub(m.CreationTimestamp.Time); age >= olderThan && m.DeletionTimestamp == nil {
			found = append(found, Leftover{Kind: kind, Name: m.Name, ExecutionID: m.Labels[podspec.LabelExecutionID], Age: age, uid: m.UID})
		}
	}
	// The session Pods, listed once when a session's Job or marker is first judged: both read them.
	var sessions *sessionSandboxes
	var sessionsErr error
	sessionsListed := func() (*sessionSandboxes, error) {
		if sessions == nil && sessionsErr == nil {
			if sessions, sessionsErr = listSessionSandboxes(ctx, client, namespace); sessionsErr != nil {
				errs = append(errs, sessionsErr)
			}
		}
		return sessions, sessionsErr
	}
	if jobs, err := client.BatchV1().Jobs(namespace).List(ctx, sel); err != nil {
		errs = append(errs, diagnose.APIError(err, "list", "jobs", namespace, ""))
	} else {
		for _, j := range jobs.Items {
			if j.Labels[podspec.LabelSession] != "" {
				// A cold session's Job is garbage once its sandbox ended the session (idle timeout,
				// lifetime) or its deadline did, whatever its age: its Pod ended (the kubelet's word,
				// as the janitor judges; the Job controller counts it in the Job's status seconds
				// later on a loaded node), or the Job finished.
				podEnded := false
				if s, err := sessionsListed(); err == nil {
					podEnded = s.endedJobs[j.UID]
				}
				if (j.Status.Succeeded+j.Status.Failed > 0 || podEnded) && j.DeletionTimestamp == nil {
					found = append(found, Leftover{Kind: "Job", Name: j.Name, ExecutionID: j.Labels[podspec.LabelExecutionID], Age: now.Sub(j.CreationTimestamp.Time), uid: j.UID})
				}
				continue
			}
			old("Job", j.ObjectMeta)
		}
	}
	if cms, err := client.CoreV1().ConfigMaps(namespace).List(ctx, sel); err != nil {
		errs = append(errs, diagnose.APIError(err, "list", "configmaps", namespace, ""))
	} else {
		for _, c := range cms.Items {
			if c.Labels[podspec.LabelComponent] != podspec.ComponentSession {
				old("ConfigMap", c.ObjectMeta)
				continue
			}
			// A session's marker holds its ID while the session has a sandbox; its sandbox owns
			// it, and takes it along. One left without is an opening that died half-way.
			s, err := sessionsListed()
			if err != nil {
				break
			}
			if !s.live[c.Labels[podspec.LabelSession]] {
				old("ConfigMap", c.ObjectMeta)
			}
		}
	}
	// Warm pool Pods claimed by a runner that died (or whose deletion failed).
	if pods, err := staleWarmSandboxes(ctx, client, namespace, olderThan, now); err != nil {
		errs = append(errs, err)
	} else {
		found = append(found, pods...)
	}
	sort.Slice(found, func(i, j int) bool {
		if found[i].Name != found[j].Name {
			return found[i].Name < found[j].Name
		}
		return found[i].Kind > found[j].Kind // the Job before its ConfigMap
	})
	if dryRun {
		return found, errors.Join(errs...)
	}
	for i := range found {
		l := &found[i]
		var err error
		var resource string
		// Exactly the object listed: between the list and the delete its ID may have been used
		// again (a session opened anew under it), and that object is not garbage.
		opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &l.uid}}
		switch l.Kind {
		case "Job":
			resource = "jobs"
			opts.PropagationPolicy = ptr.To(metav1.DeletePropagationBackground)
			err = client.BatchV1().Jobs(namespace).Delete(ctx, l.Name, opts)
		case "ConfigMap":
			resource = "configmaps"
			err = client.CoreV1().ConfigMaps(namespace).Delete(ctx, l.Name, opts)
		case "Pod":
			resource = "pods"
			err = client.CoreV1().Pods(namespace).Delete(ctx, l.Name, opts)
		}
		switch {
		case err == nil:
			l.Deleted = true
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err): // a Conflict: another object has its name now
			l.Gone = true
		default:
			l.Err = diagnose.APIError(err, "delete", resource, namespace, l.Name)
			errs = append(errs, l.Err)
		}
	}
	return found, errors.Join(errs...)
}

// sessionSandboxes is what the namespace's session Pods say: the sessions that have a sandbox
// Pod not finished nor going (live), and the cold session Jobs, by UID, whose Pod ended
// (sandbox.Ended, as the janitor judges): a session Job never replaces its Pod (backoffLimit 0),
// so its Pod's end is the Job's.
type sessionSandboxes struct {
	live      map[string]bool
	endedJobs map[types.UID]bool
}

func listSessionSandboxes(ctx context.Context, client kubernetes.Interface, namespace string) (*sessionSandboxes, error) {
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: podspec.LabelSession})
	if err != nil {
		return nil, diagnose.APIError(err, "list", "pods", namespace, "")
	}
	s := &sessionSandboxes{live: map[string]bool{}, endedJobs: map[types.UID]bool{}}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && !diagnose.PodFinished(&p) {
			s.live[p.Labels[podspec.LabelSession]] = true
		}
		if owner := metav1.GetControllerOf(&p); owner != nil && owner.Kind == "Job" && sandbox.Ended(&p) != "" {
			s.endedJobs[owner.UID] = true
		}
	}
	return s, nil
}
