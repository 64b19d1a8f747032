package autoscale

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// at is t0 plus s seconds.
func at(s ...float64) []time.Time {
	out := make([]time.Time, len(s))
	for i, v := range s {
		out[i] = t0.Add(time.Duration(v * float64(time.Second)))
	}
	return out
}

func TestRecommend(t *testing.T) {
	t.Parallel()
	p := Policy{Min: 1, Max: 8, Spare: 1, Cooldown: time.Minute}
	now := t0.Add(100 * time.Second)
	cases := []struct {
		name   string
		demand []time.Time
		refill time.Duration
		p      Policy
		want   int32
	}{
		{name: "no demand: the minimum", refill: 3 * time.Second, p: p, want: 1},
		{name: "no demand, minimum 0: empty", refill: 3 * time.Second, p: Policy{Max: 8, Spare: 1, Cooldown: time.Minute}, want: 0},
		{name: "one claim: it and a spare", demand: at(99), refill: 3 * time.Second, p: p, want: 2},
		{name: "from zero, one miss: it and a spare", demand: at(99), refill: 3 * time.Second, p: Policy{Max: 8, Spare: 1, Cooldown: time.Minute}, want: 2},
		{name: "a burst of 4 within a refill", demand: at(98, 98.1, 98.2, 98.3), refill: 3 * time.Second, p: p, want: 5},
		{name: "the same 4 spread wider than a refill", demand: at(80, 84, 88, 92), refill: 3 * time.Second, p: p, want: 2},
		{name: "a steady 1/s, refill 3 s: ceil(rate × refill)", demand: at(90, 91, 92, 93, 94, 95, 96, 97, 98, 99), refill: 3 * time.Second, p: p, want: 4},
		{name: "a steady 1/s, refill 2.5 s", demand: at(90, 91, 92, 93, 94, 95, 96, 97, 98, 99), refill: 2500 * time.Millisecond, p: p, want: 4},
		{name: "a burst still within the cooldown keeps the pool up", demand: at(45, 45.1, 45.2), refill: 3 * time.Second, p: p, want: 4},
		{name: "a burst a cooldown old no longer counts", demand: at(39, 39.1, 39.2), refill: 3 * time.Second, p: p, want: 1},
		{name: "a window straddling the cooldown's start counts once it ends within", demand: at(39, 39.5, 40.5), refill: 3 * time.Second, p: p, want: 4},
		{name: "clamped to the maximum", demand: at(99, 99, 99, 99, 99, 99, 99, 99, 99, 99), refill: 3 * time.Second, p: p, want: 8},
		{name: "the minimum above the demand", demand: at(99), refill: 3 * time.Second, p: Policy{Min: 3, Max: 8, Spare: 0, Cooldown: time.Minute}, want: 3},
		{name: "no spare", demand: at(98, 99), refill: 3 * time.Second, p: Policy{Min: 0, Max: 8, Cooldown: time.Minute}, want: 2},
		{name: "demand after now is not counted", demand: at(101, 102, 103), refill: 3 * time.Second, p: p, want: 1},
		{name: "unsorted", demand: at(99, 97.5, 98, 60, 98.5), refill: 3 * time.Second, p: p, want: 5},
		{name: "a refill time of 0 is taken as MinRefill", demand: at(99, 99.2, 99.4, 99.6), refill: 0, p: p, want: 4},
		{name: "a long refill widens the window", demand: at(80, 84, 88, 92), refill: 30 * time.Second, p: p, want: 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Recommend(c.demand, c.refill, c.p, now); got != c.want {
				t.Errorf("Recommend = %d, want %d", got, c.want)
			}
		})
	}
}

// TestRecommendUpAtOnceDownAfterTheCooldownNeverFlapping plays demand through time and checks
// the size the recommendation takes at every tick: up on the first claim of a burst, down only a
// cooldown after the demand fell, and never back and forth under a demand that comes and goes
// faster than the cooldown.
func TestRecommendUpAtOnceDownAfterTheCooldownNeverFlapping(t *testing.T) {
	t.Parallel()
	p := Policy{Min: 1, Max: 10, Spare: 1, Cooldown: 30 * time.Second}
	refill := 3 * time.Second
	// A burst of 6 at 10 s; then one claim every 10 s (below the pool's size) until 120 s.
	demand := at(10, 10.05, 10.1, 10.15, 10.2, 10.25)
	for s := 20.0; s <= 120; s += 10 {
		demand = append(demand, at(s)...)
	}
	var sizes []int32
	var times []float64
	for tick := 0.0; tick <= 200; tick += 0.25 {
		now := t0.Add(time.Duration(tick * float64(time.Second)))
		got := Recommend(demand, refill, p, now)
		if len(sizes) == 0 || got != sizes[len(sizes)-1] {
			sizes, times = append(sizes, got), append(times, tick)
		}
	}
	// 1 before the burst; 2 at its first claim (the ticks are 0.25 s apart: the other five land
	// in the next); 2 once the burst is a cooldown old (its last window ended at 10.25 s); 1 once
	// the last claim is (120 + 30 s).
	wantSizes := []int32{1, 2, 7, 2, 1}
	wantTimes := []float64{0, 10, 10.25, 40.5, 150.25}
	if !slices.Equal(sizes, wantSizes) || !slices.Equal(times, wantTimes) {
		t.Errorf("sizes %v at %v s, want %v at %v s", sizes, times, wantSizes, wantTimes)
	}
	ups, downs := 0, 0
	for i := 1; i < len(sizes); i++ {
		if sizes[i] > sizes[i-1] {
			ups++
			if downs > 0 {
				t.Errorf("the size went up again after going down: %v at %v s", sizes, times)
			}
		} else {
			downs++
		}
	}
}

func TestRefillEstimate(t *testing.T) {
	t.Parallel()
	s := func(v ...float64) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x*float64(time.Second)))
		}
		return out
	}
	cases := []struct {
		name    string
		samples []time.Duration
		want    time.Duration
	}{
		{"none measured: the assumed one", nil, 5 * time.Second},
		{"one", s(2), 2 * time.Second},
		{"p90 of 10 is the 9th", s(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 9 * time.Second},
		{"p90 of 3 is the largest", s(3, 1, 2), 3 * time.Second},
		{"p90 of 20 is the 18th, whatever the order", s(20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 18 * time.Second},
	}
	for _, c := range cases {
		if got := RefillEstimate(c.samples, 5*time.Second); got != c.want {
			t.Errorf("%s: RefillEstimate = %s, want %s", c.name, got, c.want)
		}
	}
}
