package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// BurstReport is a burst as large as the warm pool, claimed on request, and the pool's refill.
type BurstReport struct {
	Size int     `json:"size"`
	Warm int     `json:"warm"`
	P50  Seconds `json:"p50"`
	Max  Seconds `json:"max"`
	// RefillSeconds runs from the burst's start until the pool is full again.
	RefillSeconds float64 `json:"refill_seconds"`
	PodsPerSecond float64 `json:"refill_pods_per_second"`
}

// RunPoolBurst starts as many executions of code as the pool holds at once, from a full pool
// (claim on request), and measures how long the pool's Deployment takes, from the burst's start,
// to be full again.
func RunPoolBurst(ctx context.Context, opts runner.Options, pool *Pool, code string) (*BurstReport, error) {
	if pool.Replicas() <= 0 {
		return nil, fmt.Errorf("%w: a burst as large as the pool needs a pool", runner.ErrInvalidOptions)
	}
	opts.WarmPoolReady = -1
	r, err := runner.New(opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	if _, err := pool.WaitFull(ctx); err != nil {
		return nil, err
	}
	n := pool.Replicas()
	results := make([]runner.Result, n)
	errs := make([]error, n)
	took := make([]time.Duration, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			results[i], errs[i] = r.Execute(ctx, runner.Request{Code: code})
			took[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	if _, err := pool.WaitFull(ctx); err != nil {
		return nil, err
	}
	refill := time.Since(start)
	b := &BurstReport{Size: n, RefillSeconds: refill.Seconds()}
	slices.Sort(took)
	b.P50, b.Max = Seconds(took[(len(took)-1)/2]), Seconds(took[len(took)-1])
	for i, res := range results {
		if errs[i] != nil {
			return nil, fmt.Errorf("burst execution %d: %w", i, errs[i])
		}
		if res.Sandbox == runner.SandboxWarm {
			b.Warm++
		}
	}
	b.PodsPerSecond = float64(b.Warm) / refill.Seconds()
	return b, nil
}
