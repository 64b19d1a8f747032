package autoscale

import (
	"slices"
	"time"
)

// MinRefill is the shortest refill time Recommend works with: no sandbox starts faster, and a
// window of nothing would see no demand at all.
const MinRefill = 500 * time.Millisecond

// Recommend is the pool's size for the demand seen, at now: the most demand (claims and misses)
// within any one refill time that ended in the last cooldown, plus the spare, within
// [Min, Max]; Min when there was none.
//
// Why the peak within one refill time: a claimed Pod is replaced at once, and the replacement is
// ready one refill time later, so the pool runs dry exactly when more is claimed within a refill
// time than it holds. For a steady rate that peak is ceil(rate × refill); for a burst it is the
// burst. Why over the cooldown: scaling up follows the first claims of a burst at once, but a
// peak counts until it is a cooldown old, so the pool shrinks only after the demand stayed lower
// that long, and a demand that comes and goes within a cooldown never makes it flap.
//
// demand need not be sorted; times after now are ignored.
func Recommend(demand []time.Time, refill time.Duration, p Policy, now time.Time) int32 {
	refill = max(refill, MinRefill)
	since := now.Add(-p.Cooldown)
	var times []time.Time
	for _, t := range demand {
		if !t.After(now) && t.After(since.Add(-refill)) {
			times = append(times, t)
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	peak, first := 0, 0
	for i, t := range times {
		for !times[first].After(t.Add(-refill)) { // the window is (t - refill, t]
			first++
		}
		if t.Before(since) {
			continue // a window that ended before the cooldown
		}
		peak = max(peak, i-first+1)
	}
	if peak == 0 {
		return p.Min
	}
	return min(max(int32(peak)+p.Spare, p.Min), p.Max)
}

// RefillEstimate is the refill time to plan for: the 90th percentile of the recent refills
// measured (a Pod's creation to its readiness), or assumed when none was.
func RefillEstimate(samples []time.Duration, assumed time.Duration) time.Duration {
	if len(samples) == 0 {
		return assumed
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	// Nearest rank: the smallest sample at or above 90 % of them.
	rank := (len(s)*9 + 9) / 10
	return s[rank-1]
}
