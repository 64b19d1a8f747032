// Package bench measures the runner against the cluster's own floor: the same workload run as a
// bare Pod, created, watched and deleted directly. Every figure is reported as a ratio to it. A run
// (RunSuite) measures one Scenario — sequential, staggered or burst arrivals, as the public sandbox
// benchmarks do — in several Modes (cold, warm held ready, warm claimed on request, session), then
// the floor; Markdown writes the result as docs/performance.md shows it. For the warm modes it can
// install a pool of its own (InstallPool: at PoolPriorityClass, the class the installations give
// the pool, optionally sized by demand), time the steps of an attach to an idle pool Pod
// (ProfileAttach) and a burst as large as the pool with its refill (RunPoolBurst).
package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// Floor also runs the same number of bare Pods at the same concurrency and pace.
	Floor bool
	// FirstOutput measures the time from Execute to the first chunk of output handed to
	// Request.Output (for the floor: until its log's first byte can be read); the code should
	// print at once (FirstOutputCode does).
	FirstOutput bool
	// Session runs every execution in one session, opened (and timed) before them, instead of a
	// sandbox of its own. A session runs one execution at a time: concurrent arrivals wait their turn.
	Session bool
	// Options for the runner; the benchmark wraps its transport to count API requests. With
	// Options.Client set (a test's fake clientset) it uses that client and counts nothing.
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

	// FirstOutput is the time from Execute to the first streamed chunk (Config.FirstOutput), over
	// the successful executions that printed; FloorFirstOutput the floor's, and its p50 ratio.
	FirstOutput         *Series `json:"first_output,omitempty"`
	FloorFirstOutput    *Series `json:"floor_first_output,omitempty"`
	RatioFirstOutputP50 float64 `json:"ratio_first_output_p50,omitempty"`
	// FloorFailures counts the bare Pods that failed or did not finish; FloorErrors names up to five.
	FloorFailures int      `json:"floor_failures,omitempty"`
	FloorErrors   []string `json:"floor_errors,omitempty"`
	// SessionOpen is how long opening the session took (Config.Session): a warm claim and attach,
	// or a cold start.
	SessionOpen Seconds `json:"session_open,omitempty"`

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

// Phase is one phase's distribution.
type Phase struct {
	Name string  `json:"name"`
	P50  Seconds `json:"p50"`
	P95  Seconds `json:"p95"`
	Mean Seconds `json:"mean"`
}

// execFunc runs one measured execution: Runner.Execute, or Session.Execute.
type execFunc func(context.Context, runner.Request) (runner.Result, error)

// Run runs the benchmark: one warm-up execution, then the runner's executions, then the floor's
// warm-up and its bare Pods.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Executions <= 0 || cfg.Concurrency <= 0 {
		return nil, fmt.Errorf("%w: executions and concurrency must be positive", runner.ErrInvalidOptions)
	}
	counter := newAPICounter()
	opts := cfg.Options
	floorClient := opts.Client
	if opts.Client == nil {
		restCfg, err := runner.LoadRESTConfig(cfg.Options)
		if err != nil {
			return nil, err
		}
		if floorClient, err = kubernetes.NewForConfig(restCfg); err != nil {
			return nil, err
		}
		counted := *restCfg
		counted.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return counter.wrap(rt) }
		opts.RESTConfig = &counted
	}
	r, err := runner.New(opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()

	rep := &Report{Executions: cfg.Executions, Concurrency: cfg.Concurrency, PaceSeconds: cfg.Pace.Seconds()}
	execute := execFunc(r.Execute)
	if cfg.Session {
		// The shared watches first, so that the session's opening is timed on its own.
		if err := r.Start(ctx); err != nil {
			return nil, err
		}
		t0 := time.Now()
		s, err := r.OpenSession(ctx, runner.SessionOptions{})
		if err != nil {
			return nil, fmt.Errorf("open the session: %w", err)
		}
		rep.SessionOpen = Seconds(time.Since(t0))
		defer s.Close()
		execute = s.Execute
	}
	// Warm up: starts the shared watches and loads the image into the page cache. A runner that
	// holds warm sandboxes ready gets them before the measured executions.
	if _, err := execute(ctx, runner.Request{Code: cfg.Code}); err != nil {
		return nil, fmt.Errorf("warm-up execution: %w", err)
	}
	if cfg.Pace > 0 {
		sleepCtx(ctx, cfg.Pace)
	}
	baseTotal, _ := counter.snapshot()
	baseKinds := counter.byKindCopy()
	cpu0 := cpuTime()

	var mu sync.Mutex
	var latencies, firsts []time.Duration
	phases := map[string][]time.Duration{}
	errSeen := map[string]bool{}
	done := 0
	start := time.Now()
	parallel(ctx, cfg.Executions, cfg.Concurrency, cfg.Pace, func(int) {
		req := runner.Request{Code: cfg.Code}
		var first atomic.Int64 // nanoseconds from t0 to the first chunk; 0 until one came
		t0 := time.Now()
		if cfg.FirstOutput {
			req.Output = func(runner.Stream, []byte) { first.CompareAndSwap(0, int64(max(time.Since(t0), 1))) }
		}
		res, err := execute(ctx, req)
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
			if f := first.Load(); f > 0 {
				firsts = append(firsts, time.Duration(f))
			}
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
	if cfg.FirstOutput {
		s := summarise(firsts, 0)
		rep.FirstOutput = &s
	}
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
		fl := &floor{client: floorClient, opts: r.Options(), code: cfg.Code, firstOutput: cfg.FirstOutput}
		if _, err := fl.run(ctx); err != nil {
			return rep, fmt.Errorf("floor warm-up: %w", err)
		}
		var fLat, fFirst []time.Duration
		floorErrSeen := map[string]bool{}
		fstart := time.Now()
		parallel(ctx, cfg.Executions, cfg.Concurrency, cfg.Pace, func(int) {
			m, err := fl.run(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.FloorFailures++
				if msg := err.Error(); !floorErrSeen[msg] && len(rep.FloorErrors) < 5 {
					floorErrSeen[msg] = true
					rep.FloorErrors = append(rep.FloorErrors, msg)
				}
				return
			}
			fLat = append(fLat, m.latency)
			if m.firstOutput > 0 {
				fFirst = append(fFirst, m.firstOutput)
			}
		})
		if len(fLat) == 0 {
			return rep, fmt.Errorf("floor: every bare Pod failed: %s", strings.Join(rep.FloorErrors, "; "))
		}
		s := summarise(fLat, time.Since(fstart))
		var sf *Series
		if cfg.FirstOutput {
			f := summarise(fFirst, 0)
			sf = &f
		}
		rep.compare(&s, sf)
	}
	return rep, nil
}

// compare sets the floor's figures on the report, and the report's ratios to them.
func (rep *Report) compare(floor, floorFirst *Series) {
	rep.Floor, rep.FloorFirstOutput = floor, floorFirst
	rep.RatioP50 = ratio(rep.Runner.P50, floor.P50)
	rep.RatioP95 = ratio(rep.Runner.P95, floor.P95)
	rep.RatioThroughput = 0
	if floor.Throughput > 0 {
		rep.RatioThroughput = rep.Runner.Throughput / floor.Throughput
	}
	rep.RatioFirstOutputP50 = 0
	if rep.FirstOutput != nil && floorFirst != nil {
		rep.RatioFirstOutputP50 = ratio(rep.FirstOutput.P50, floorFirst.P50)
	}
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
