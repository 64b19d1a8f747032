package sandbox

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/track"
)

// Ended says why a sandbox Pod is garbage by its own status — "" while it may still serve:
//
//   - a claimed pool Pod whose container was restarted: its entrypoint left (its session ended,
//     the runner holding it ready stopped pinging it, or nobody deleted it after its one
//     execution), and a restarted container never serves again;
//   - a claimed pool Pod, or a cold session's Job Pod, that ended (its activeDeadlineSeconds, its
//     session's end, an eviction).
//
// The kubelet reports all of it: no timestamp another machine wrote decides a deletion.
func Ended(pod *corev1.Pod) string {
	claimed := pod.Labels[podspec.LabelPoolState] == podspec.PoolStateClaimed
	session := pod.Labels[podspec.LabelSession] != ""
	if !claimed && !session {
		return ""
	}
	if diagnose.PodFinished(pod) {
		return "its pod ended: " + string(pod.Status.Phase)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == podspec.ContainerName && cs.RestartCount > 0 && claimed {
			why := "its container was restarted"
			if t := cs.LastTerminationState.Terminated; t != nil && t.Message != "" {
				why += " (" + t.Message + ")"
			}
			return why
		}
	}
	return ""
}

// janitorGrace is how long a sandbox must have looked ended to this runner before its janitor
// deletes it: another runner may still be reading what the sandbox wrote (an out-of-memory
// execution's log, read again).
const janitorGrace = 10 * time.Second

// Janitor deletes, while its runner lives, the sandboxes in the namespace that ended by
// themselves (Ended), whichever runner made them, unless this runner is using them: every runner
// runs one, so that a sandbox nobody will use again costs nothing for long while any runner is
// alive in the namespace. The grace is measured on this runner's own clock, from when it first
// saw the sandbox ended.
type Janitor struct {
	e     *Env
	grace time.Duration
	seen  map[types.UID]time.Time
	// forbidden: the identity may not delete Pods (no warm pool rules); it stops trying.
	forbidden bool
}

// NewJanitor is e's janitor; grace 0 means janitorGrace.
func NewJanitor(e *Env, grace time.Duration) *Janitor {
	if grace == 0 {
		grace = janitorGrace
	}
	return &Janitor{e: e, grace: grace, seen: map[types.UID]time.Time{}}
}

// Run sweeps whenever a sandbox Pod changes, and every few seconds, until stop is closed.
func (j *Janitor) Run(stop <-chan struct{}) {
	tick := time.NewTicker(j.grace/2 + time.Second)
	defer tick.Stop()
	for {
		changed := j.e.Hub.PodsChanged()
		j.Sweep()
		select {
		case <-stop:
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// Sweep deletes what has looked ended for the grace, once.
func (j *Janitor) Sweep() {
	now := time.Now()
	present := map[types.UID]bool{}
	for _, pod := range j.e.Hub.Pods() {
		why := Ended(pod)
		// A sandbox this runner uses is its own to judge (a warm execution reading an
		// out-of-memory container's log again); a session's, ended, is garbage whoever holds it.
		inUse := j.e.Hub.Tracks(track.PodKey(pod.Name)) && pod.Labels[podspec.LabelSession] == ""
		if why == "" || pod.DeletionTimestamp != nil || inUse {
			continue
		}
		present[pod.UID] = true
		first, ok := j.seen[pod.UID]
		if !ok {
			j.seen[pod.UID] = now
			continue
		}
		if now.Sub(first) < j.grace {
			continue
		}
		j.delete(pod, why)
	}
	for uid := range j.seen {
		if !present[uid] {
			delete(j.seen, uid)
		}
	}
}

func (j *Janitor) delete(pod *corev1.Pod, why string) {
	d := j.e.PodDeletion(pod)
	if session := pod.Labels[podspec.LabelSession]; session != "" && pod.Labels[podspec.LabelPool] == "" {
		// A cold session's: its own Job, not one a session opened again under the ID has made.
		d = j.e.JobDeletion(podspec.ObjectName(podspec.SessionSandboxID(session)), JobOf(pod))
	} else if j.forbidden {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.e.CleanupTimeout)
	defer cancel()
	err := d.del(ctx)
	switch {
	case err == nil:
		j.e.Log.Debug("deleted a sandbox that ended by itself", "object", d.what, "why", why)
	case errors.Is(diagnose.APIError(err, "delete", "", j.e.Namespace, ""), diagnose.ErrForbidden) && d.what[:4] == "pod/":
		j.forbidden = true
		j.e.Log.Debug("cannot delete sandboxes that ended by themselves: this identity may not delete pods (the warm pool's rules)", "error", err)
	default:
		j.e.Log.Debug("could not delete a sandbox that ended by itself; it is tried again", "object", d.what, "error", err)
	}
}
