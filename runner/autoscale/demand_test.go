package autoscale

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gkexec/gkexec/runner"
)

// sandboxPod is a sandbox Pod as the watch shows it.
type sandboxPod struct{ *corev1.Pod }

func newPod(name string) sandboxPod {
	return sandboxPod{&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name),
		Labels:      map[string]string{runner.LabelManagedBy: runner.ManagedByValue, runner.LabelComponent: runner.ComponentSandbox},
		Annotations: map[string]string{}, CreationTimestamp: metav1.NewTime(t0)}}}
}

// poolPod is a pool Pod in state, ready or not.
func poolPod(name, pool, state string, isReady bool) sandboxPod {
	p := newPod(name)
	p.Labels[runner.LabelPool], p.Labels[runner.LabelPoolState] = pool, state
	p.Status.Phase = corev1.PodPending
	if isReady {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	return p
}

func (p sandboxPod) claimedFor(what string, when time.Time) sandboxPod {
	p = sandboxPod{p.DeepCopy()}
	p.Labels[runner.LabelPoolState] = runner.PoolStateClaimed
	p.Annotations[runner.AnnotationClaimedFor] = what
	p.Annotations[runner.AnnotationClaimedAt] = when.UTC().Format(time.RFC3339)
	return p
}

func coldPod(name, miss string) sandboxPod {
	p := newPod(name)
	p.Annotations[runner.AnnotationPoolMiss] = miss
	return p
}

func TestTrackerCountsDemandFromEveryRunner(t *testing.T) {
	t.Parallel()
	tr := newTracker("default", time.Hour)
	sec := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

	// The watch's first list: an idle pod, one starting since t0, one claimed 5 s before the
	// list by an execution, one held by a renewal, and a cold fallback created at t0.
	tr.observe(poolPod("idle-1", "default", runner.PoolStateIdle, true).Pod, sec(10), false)
	tr.observe(poolPod("starting-1", "default", runner.PoolStateIdle, false).Pod, sec(10), false)
	tr.observe(poolPod("claimed-1", "default", runner.PoolStateIdle, true).claimedFor(runner.ClaimedForExecution, sec(5)).Pod, sec(10), false)
	tr.observe(poolPod("renewed-1", "default", runner.PoolStateIdle, true).claimedFor(runner.ClaimedForRenewal, sec(5)).Pod, sec(10), false)
	tr.observe(coldPod("cold-1", "default/"+runner.PoolMissEmpty).Pod, sec(10), false)

	// Live: starting-1 becomes ready (its refill ran from its creation, t0, to 12 s); idle-1 is
	// claimed for a session (twice seen: counted once); a cold fallback because of a race, one
	// because of a mismatch (not demand: a larger pool would not help), one of another pool, and
	// a cold Pod of no pool; a new pool Pod appears at 13 s and is ready at 15.5 s.
	tr.observe(poolPod("starting-1", "default", runner.PoolStateIdle, true).Pod, sec(12), true)
	claimed := poolPod("idle-1", "default", runner.PoolStateIdle, true).claimedFor(runner.ClaimedForSession, sec(12))
	tr.observe(claimed.Pod, sec(12), true)
	tr.observe(claimed.Pod, sec(12.5), true)
	tr.observe(coldPod("cold-2", "default/"+runner.PoolMissRaced).Pod, sec(13), true)
	tr.observe(coldPod("cold-3", "default/"+runner.PoolMissMismatch).Pod, sec(13), true)
	tr.observe(coldPod("cold-4", "other/"+runner.PoolMissEmpty).Pod, sec(13), true)
	tr.observe(newPod("cold-5").Pod, sec(13), true)
	tr.observe(poolPod("new-1", "default", runner.PoolStateIdle, false).Pod, sec(13), true)
	tr.observe(poolPod("new-1", "default", runner.PoolStateIdle, true).Pod, sec(15.5), true)
	// A Pod of another pool is none of this one's business.
	tr.observe(poolPod("theirs", "other", runner.PoolStateIdle, true).claimedFor(runner.ClaimedForExecution, sec(14)).Pod, sec(14), true)

	demand, refills, idle := tr.snapshot()
	if want := []time.Time{sec(5), t0, sec(12), sec(13)}; !slices.EqualFunc(demand, sortedTimes(want), time.Time.Equal) {
		t.Errorf("demand %v, want %v (the listed claim at its claimed-at, the listed miss at its creation, then live ones as seen)", demand, sortedTimes(want))
	}
	if want := []time.Duration{12 * time.Second, 2500 * time.Millisecond}; !slices.Equal(refills, want) {
		t.Errorf("refills %v, want %v", refills, want)
	}
	if idle != 2 {
		t.Errorf("idle ready %d, want 2 (starting-1 and new-1; idle-1 was claimed)", idle)
	}
	tot := tr.copyTotals()
	if tot.claims != 1 {
		t.Errorf("claims seen live %d, want 1 (the session's)", tot.claims)
	}
	if want := map[string]uint64{runner.PoolMissRaced: 1, runner.PoolMissMismatch: 1}; len(tot.misses) != 2 ||
		tot.misses[runner.PoolMissRaced] != 1 || tot.misses[runner.PoolMissMismatch] != 1 {
		t.Errorf("misses seen live %v, want %v", tot.misses, want)
	}
	if tot.refills.Count != 2 || tot.refills.Sum != 14.5 {
		t.Errorf("refill histogram count %d sum %g, want 2 and 14.5", tot.refills.Count, tot.refills.Sum)
	}

	// A Pod gone is forgotten: idle no more.
	tr.forget("uid-new-1")
	if _, _, idle := tr.snapshot(); idle != 1 {
		t.Errorf("idle ready %d after new-1 went, want 1", idle)
	}
}

func TestTrackerForgetsDemandPastItsHorizon(t *testing.T) {
	t.Parallel()
	tr := newTracker("default", time.Minute)
	for i := range 5 {
		pod := poolPod("p"+string(rune('a'+i)), "default", runner.PoolStateIdle, true)
		tr.observe(pod.claimedFor(runner.ClaimedForExecution, t0).Pod, t0.Add(time.Duration(i)*30*time.Second), true)
	}
	demand, _, _ := tr.snapshot()
	if want := []time.Time{t0.Add(60 * time.Second), t0.Add(90 * time.Second), t0.Add(120 * time.Second)}; !slices.EqualFunc(demand, want, time.Time.Equal) {
		t.Errorf("demand %v, want only the last minute's %v", demand, want)
	}
}

func sortedTimes(ts []time.Time) []time.Time {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return ts
}
