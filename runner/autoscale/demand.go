package autoscale

import (
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gkexec/gkexec/runner"
)

// keptRefills is how many recent refill times the estimate is made of.
const keptRefills = 20

// tracker turns what the Pod watch shows into the pool's demand, its refill times and its idle
// Pods. It is told each Pod as seen (observe) and each Pod gone (forget); live is false for the
// Pods of the watch's first list, whose past is read from their timestamps instead of the clock.
type tracker struct {
	pool    string
	horizon time.Duration // how long demand is kept

	mu       sync.Mutex
	counted  map[types.UID]bool      // Pods counted as a claim or a miss
	seen     map[types.UID]bool      // pool Pods seen idle: a refill is measured from the first sight
	starting map[types.UID]time.Time // pool Pods not yet ready: since when
	idle     map[types.UID]bool      // idle, ready pool Pods
	demand   []time.Time             // oldest first
	refills  []time.Duration         // the last keptRefills, oldest first
	totals   totals
	changed  chan struct{} // signalled (never blocking) when demand arrives
}

// totals are what the tracker saw live since it started, for the metrics.
type totals struct {
	claims  uint64
	misses  map[string]uint64
	refills Histogram
}

func newTracker(pool string, horizon time.Duration) *tracker {
	return &tracker{pool: pool, horizon: horizon, counted: map[types.UID]bool{}, seen: map[types.UID]bool{},
		starting: map[types.UID]time.Time{}, idle: map[types.UID]bool{},
		totals: totals{misses: map[string]uint64{}, refills: newHistogram()}, changed: make(chan struct{}, 1)}
}

// demands says whether a claim of a pool Pod is demand: a runner renewing the sandbox it holds
// is not.
func demands(claimedFor string) bool { return claimedFor != runner.ClaimedForRenewal }

// missDemands says whether a cold fallback's reason is demand a larger pool would have served.
func missDemands(reason string) bool {
	return reason == runner.PoolMissEmpty || reason == runner.PoolMissRaced
}

func (t *tracker) observe(pod *corev1.Pod, now time.Time, live bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	uid := pod.UID
	if pod.Labels[runner.LabelPool] == t.pool {
		if pod.Labels[runner.LabelPoolState] != runner.PoolStateIdle {
			delete(t.idle, uid)
			delete(t.starting, uid)
			if t.counted[uid] || !demands(pod.Annotations[runner.AnnotationClaimedFor]) {
				return
			}
			t.counted[uid] = true
			at := now
			if !live {
				claimed, err := time.Parse(time.RFC3339, pod.Annotations[runner.AnnotationClaimedAt])
				if err != nil {
					return
				}
				at = claimed
			} else {
				t.totals.claims++
			}
			t.add(at, now)
			return
		}
		defer func() { t.seen[uid] = true }()
		switch {
		case pod.DeletionTimestamp != nil:
			delete(t.idle, uid)
			delete(t.starting, uid)
		case ready(pod):
			t.idle[uid] = true
			if since, ok := t.starting[uid]; ok {
				delete(t.starting, uid)
				t.refills = append(t.refills, now.Sub(since))
				if len(t.refills) > keptRefills {
					t.refills = t.refills[1:]
				}
				t.totals.refills.observe(now.Sub(since).Seconds())
			}
		default:
			delete(t.idle, uid)
			if !t.seen[uid] {
				// Seen first here: its refill runs from now (live) or from its creation.
				since := now
				if !live {
					since = pod.CreationTimestamp.Time
				}
				t.starting[uid] = since
			}
		}
		return
	}
	pool, reason, ok := runner.PoolMissOf(pod.Annotations)
	if !ok || pool != t.pool || t.counted[uid] {
		return
	}
	t.counted[uid] = true
	if live {
		t.totals.misses[reason]++
	}
	if missDemands(reason) {
		at := now
		if !live {
			at = pod.CreationTimestamp.Time
		}
		t.add(at, now)
	}
}

// add records demand at at, dropping what is older than the horizon.
func (t *tracker) add(at, now time.Time) {
	i, _ := slices.BinarySearchFunc(t.demand, at, func(a, b time.Time) int { return a.Compare(b) })
	t.demand = slices.Insert(t.demand, i, at)
	old := 0
	for old < len(t.demand) && now.Sub(t.demand[old]) > t.horizon {
		old++
	}
	t.demand = t.demand[old:]
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

func (t *tracker) forget(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.counted, uid)
	delete(t.seen, uid)
	delete(t.starting, uid)
	delete(t.idle, uid)
}

// snapshot is the demand, the recent refills and the idle ready Pods now.
func (t *tracker) snapshot() (demand []time.Time, refills []time.Duration, idle int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.demand), slices.Clone(t.refills), len(t.idle)
}

// totals returns a copy of what the tracker saw live.
func (t *tracker) copyTotals() totals {
	t.mu.Lock()
	defer t.mu.Unlock()
	return totals{claims: t.totals.claims, misses: maps.Clone(t.totals.misses), refills: t.totals.refills.clone()}
}

func ready(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
