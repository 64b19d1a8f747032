// Package bench measures the runner against the cluster's own floor: the same workload run as a
// bare Pod, created, watched and deleted directly. Every figure is reported as a ratio to it.
package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/runner"
)

// Config is one benchmark run.
type Config struct {
	// Executions through the runner, and how many at once.
	Executions  int
	Concurrency int
	// Code to run; its stdout must contain Expect (a check that every execution really ran).
	Code   string
	Expect string
	// Floor also runs the same number of bare Pods at the same concurrency.
	Floor bool
	// Options for the runner; the benchmark wraps its transport to count API requests.
	Options runner.Options
	// Pace, if set, spaces the arrivals: one execution starts at most every Pace (paced arrivals,
	// as from an agent that thinks between calls); otherwise they go back to back.
	Pace time.Duration
	// Progress, if set, is called after each execution.
	Progress func(done, total int)
}

// Report is what a run measured.
type Report struct {
	Executions  int `json:"executions"`
	Concurrency int `json:"concurrency"`
	Failures    int `json:"failures"`
	// Warm counts the executions that ran in a warm pool sandbox; the rest ran cold.
	Warm int `json:"warm"`
	// PaceSeconds is the spacing of arrivals; 0 for back to back.
	PaceSeconds float64 `json:"pace_seconds,omitempty"`
	// FirstErrors holds up to five distinct failure messages.
	FirstErrors []string `json:"first_errors,omitempty"`

	Runner Series  `json:"runner"`
	Floor  *Series `json:"floor,omitempty"`
	// Ratio of the runner's figures to the floor's (p50, p95, throughput); 0 without a floor.
	RatioP50        float64 `json:"ratio_p50,omitempty"`
	RatioP95        float64 `json:"ratio_p95,omitempty"`
	RatioThroughput float64 `json:"ratio_throughput,omitempty"`

	// Phases of the runner's executions (see runner.Timings.Phases), slowest first.
	Phases []Phase `json:"phases"`

	APIRequests        int64       `json:"api_requests"`
	APIRequestsPerExec float64     `json:"api_requests_per_execution"`
	APIRequestKinds    []KindCount `json:"api_request_kinds"`
	WatchesOpened      int64       `json:"watches_opened"`
	MaxOpenWatches     int64       `json:"max_open_watches"`

	RunnerCPUSeconds float64 `json:"runner_cpu_seconds"`
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
}

// Series summarises end-to-end latencies.
type Series struct {
	P50        Seconds `json:"p50"`
	P95        Seconds `json:"p95"`
	P99        Seconds `json:"p99"`
	Max        Seconds `json:"max"`
	Mean       Seconds `json:"mean"`
	Wall       Seconds `json:"wall"`
	Throughput float64 `json:"throughput_per_second"`
}

// Phase is one phase's distribution.
type Phase struct {
	Name string  `json:"name"`
	P50  Seconds `json:"p50"`
	P95  Seconds `json:"p95"`
	Mean Seconds `json:"mean"`
}

// Seconds marshals a duration as fractional seconds.
type Seconds time.Duration

func (s Seconds) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(time.Duration(s).Seconds(), 'f', 4, 64)), nil
}

func (s Seconds) String() string { return fmt.Sprintf("%.2fs", time.Duration(s).Seconds()) }

// Run runs the benchmark: one warm-up execution each, then the runner's executions, then the floor.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Executions <= 0 || cfg.Concurrency <= 0 {
		return nil, fmt.Errorf("%w: executions and concurrency must be positive", runner.ErrInvalidOptions)
	}
	counter := newAPICounter()
	restCfg, err := runner.LoadRESTConfig(cfg.Options)
	if err != nil {
		return nil, err
	}
	floorClient, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, err
	}
	counted := *restCfg
	counted.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return counter.wrap(rt) }
	opts := cfg.Options
	opts.RESTConfig = &counted
	r, err := runner.New(opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()

	// Warm up: starts the shared watches and loads the image into the page cache. A runner that
	// holds warm sandboxes ready gets them before the measured executions.
	if _, err := r.Execute(ctx, runner.Request{Code: cfg.Code}); err != nil {
		return nil, fmt.Errorf("warm-up execution: %w", err)
	}
	if cfg.Pace > 0 {
		sleepCtx(ctx, cfg.Pace)
	}
	baseTotal, _ := counter.snapshot()
	baseKinds := counter.byKindCopy()
	cpu0 := cpuTime()

	rep := &Report{Executions: cfg.Executions, Concurrency: cfg.Concurrency, PaceSeconds: cfg.Pace.Seconds()}
	var mu sync.Mutex
	var latencies []time.Duration
	phases := map[string][]time.Duration{}
	errSeen := map[string]bool{}
	done := 0
	start := time.Now()
	parallel(ctx, cfg.Executions, cfg.Concurrency, cfg.Pace, func(i int) {
		t0 := time.Now()
		res, err := r.Execute(ctx, runner.Request{Code: cfg.Code})
		d := time.Since(t0)
		if err == nil && !strings.Contains(string(res.Stdout), cfg.Expect) {
			err = fmt.Errorf("stdout %q does not contain %q", res.Stdout, cfg.Expect)
		}
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("exit code %d: %s", res.ExitCode, res.Stderr)
		}
		mu.Lock()
		defer mu.Unlock()
		done++
		if err != nil {
			rep.Failures++
			if msg := err.Error(); !errSeen[msg] && len(rep.FirstErrors) < 5 {
				errSeen[msg] = true
				rep.FirstErrors = append(rep.FirstErrors, msg)
			}
		} else {
			latencies = append(latencies, d)
			if res.Sandbox == runner.SandboxWarm {
				rep.Warm++
			}
			for name, pd := range res.Timings.Phases() {
				phases[name] = append(phases[name], pd)
			}
		}
		if cfg.Progress != nil {
			cfg.Progress(done, cfg.Executions)
		}
	})
	rep.Runner = summarise(latencies, time.Since(start))
	rep.RunnerCPUSeconds = (cpuTime() - cpu0).Seconds()
	rep.PeakRSSMiB = peakRSSMiB()
	total, _ := counter.snapshot()
	rep.APIRequests = total - baseTotal
	rep.APIRequestsPerExec = float64(rep.APIRequests) / float64(cfg.Executions)
	rep.APIRequestKinds = counter.since(baseKinds)
	rep.WatchesOpened = counter.watchesEv.Load()
	rep.MaxOpenWatches = counter.maxOpen.Load()
	for _, name := range runner.PhaseNames {
		ds := phases[name]
		if len(ds) == 0 {
			continue
		}
		s := summarise(ds, 0)
		rep.Phases = append(rep.Phases, Phase{name, s.P50, s.P95, s.Mean})
	}
	sort.SliceStable(rep.Phases, func(i, j int) bool { return rep.Phases[i].Mean > rep.Phases[j].Mean })

	if cfg.Floor {
		fl := &floor{client: floorClient, opts: r.Options(), code: cfg.Code}
		if _, err := fl.run(ctx); err != nil {
			return rep, fmt.Errorf("floor warm-up: %w", err)
		}
		var fLat []time.Duration
		var ferr error
		fstart := time.Now()
		parallel(ctx, cfg.Executions, cfg.Concurrency, cfg.Pace, func(int) {
			d, err := fl.run(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				ferr = errors.Join(ferr, err)
				return
			}
			fLat = append(fLat, d)
		})
		if ferr != nil {
			return rep, fmt.Errorf("floor: %w", ferr)
		}
		s := summarise(fLat, time.Since(fstart))
		rep.Floor = &s
		rep.RatioP50 = ratio(rep.Runner.P50, s.P50)
		rep.RatioP95 = ratio(rep.Runner.P95, s.P95)
		if s.Throughput > 0 {
			rep.RatioThroughput = rep.Runner.Throughput / s.Throughput
		}
	}
	return rep, nil
}

func ratio(a, b Seconds) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// parallel runs fn(0..n-1) with at most c at once, starting one at most every pace.
func parallel(ctx context.Context, n, c int, pace time.Duration, fn func(int)) {
	sem := make(chan struct{}, c)
	var wg sync.WaitGroup
	next := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		if pace > 0 {
			sleepCtx(ctx, time.Until(next))
			next = next.Add(pace)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

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

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSSMiB reads the process's high-water mark of resident memory.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func (c *apiCounter) byKindCopy() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.byKind))
	for k, v := range c.byKind {
		m[k] = v
	}
	return m
}

// since returns the counts added after base, most frequent first.
func (c *apiCounter) since(base map[string]int) []KindCount {
	_, all := c.snapshot()
	var out []KindCount
	for _, k := range all {
		if n := k.Count - base[k.Request]; n > 0 {
			out = append(out, KindCount{k.Request, n})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out
}
