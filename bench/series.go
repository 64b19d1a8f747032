package bench

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Series summarises latencies.
type Series struct {
	// Count is how many latencies it summarises (the successful executions).
	Count      int     `json:"count"`
	Min        Seconds `json:"min"`
	P50        Seconds `json:"p50"`
	P95        Seconds `json:"p95"`
	P99        Seconds `json:"p99"`
	Max        Seconds `json:"max"`
	Mean       Seconds `json:"mean"`
	Wall       Seconds `json:"wall"`
	Throughput float64 `json:"throughput_per_second"`
}

// Seconds marshals a duration as fractional seconds.
type Seconds time.Duration

func (s Seconds) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(time.Duration(s).Seconds(), 'f', 4, 64)), nil
}

// UnmarshalJSON reads fractional seconds back (a report read by hack/bench-doc).
func (s *Seconds) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("seconds: %w", err)
	}
	*s = Seconds(time.Duration(math.Round(f * float64(time.Second))))
	return nil
}

func (s Seconds) String() string { return fmt.Sprintf("%.2fs", time.Duration(s).Seconds()) }

func summarise(ds []time.Duration, wall time.Duration) Series {
	if len(ds) == 0 {
		return Series{Wall: Seconds(wall)}
	}
	sorted := append([]time.Duration(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	s := Series{
		Count: len(sorted), Min: Seconds(sorted[0]),
		P50: Seconds(quantile(sorted, 0.50)), P95: Seconds(quantile(sorted, 0.95)), P99: Seconds(quantile(sorted, 0.99)),
		Max: Seconds(sorted[len(sorted)-1]), Mean: Seconds(sum / time.Duration(len(sorted))), Wall: Seconds(wall),
	}
	if wall > 0 {
		s.Throughput = float64(len(ds)) / wall.Seconds()
	}
	return s
}

// quantile uses the nearest-rank method on sorted data.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
