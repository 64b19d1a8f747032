package autoscale

import "sort"

// RefillBuckets are the upper bounds (seconds) of the refill time histogram: a warm start on an
// idle node (about a second) to a node pool scaling up (minutes).
var RefillBuckets = []float64{0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300}

// Histogram counts observations in RefillBuckets, Prometheus style.
type Histogram struct {
	// Counts per bucket, not cumulative; the last is past the largest bound (+Inf).
	Counts []uint64
	Sum    float64
	Count  uint64
}

func newHistogram() Histogram { return Histogram{Counts: make([]uint64, len(RefillBuckets)+1)} }

func (h *Histogram) observe(v float64) {
	h.Counts[sort.SearchFloat64s(RefillBuckets, v)]++
	h.Sum += v
	h.Count++
}

func (h Histogram) clone() Histogram {
	h.Counts = append([]uint64(nil), h.Counts...)
	return h
}
