package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/bench"
	"github.com/gkexec/gkexec/runner"
)

const (
	flagExecutions   = "executions"
	flagConcurrency  = "concurrency"
	flagExpect       = "expect"
	flagFloor        = "floor"
	flagModes        = "modes"
	flagPace         = "pace"
	flagPoolReplicas = "pool-replicas"
	flagBurstRun     = "burst-run"
)

// Benchmark modes: where the runner takes its sandboxes.
const (
	modeCold      = "cold"       // always a new Job
	modeWarmReady = "warm-ready" // a warm sandbox held claimed and attached ahead
	modeWarmClaim = "warm-claim" // a warm sandbox claimed and attached on request
)

// benchResult is the JSON report: one bench.Report per mode, then the burst.
type benchResult struct {
	Modes map[string]*bench.Report `json:"modes"`
	Order []string                 `json:"order"`
	Burst *burstResult             `json:"burst,omitempty"`
}

type burstResult struct {
	Size          int           `json:"size"`
	Warm          int           `json:"warm"`
	P50           bench.Seconds `json:"p50"`
	Max           bench.Seconds `json:"max"`
	RefillSeconds float64       `json:"refill_seconds"`
	PodsPerSecond float64       `json:"refill_pods_per_second"`
}

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure end-to-end latency, throughput and API cost: cold, warm and the cluster's own floor",
		Description: `Runs N executions at concurrency C through one runner per mode, then (with --floor, the
default) the same workload as bare Pods with the same image, RuntimeClass and command, created,
watched and deleted directly: the fastest a cold start can be. Modes (--modes):
   cold        every execution creates its Job (the warm pool is not used)
   warm-ready  the runner holds a warm sandbox claimed and attached ahead of each request
   warm-claim  the runner claims and attaches a warm sandbox when the request comes
Warm modes need a warm pool: an installed one, or --pool-replicas N to create one for the run
(and delete it after); with --burst-run, as many executions as the pool holds start at once, then the
time for the pool to be full again is measured. Reports p50/p95/p99/max latency, throughput,
the share that ran warm, the per-phase breakdown, Kubernetes API requests per execution (counted
at the client's transport), watches opened, and the runner's CPU time and peak RSS, with ratios
to cold and to the floor. The floor and --pool-replicas need pods and deployments create/delete
in the namespace (run them as an admin, not as the agent).

Examples:
   gkexec bench -n bench --executions 20 --concurrency 1
   gkexec bench -n bench --pool-replicas 4 --modes cold,warm-ready,warm-claim --pace 500ms --burst-run
   gkexec bench -n bench --executions 50 --concurrency 50 --json`,
		Flags: append(append([]cli.Flag{
			&cli.IntFlag{Name: flagExecutions, Aliases: []string{"N"}, Value: 20, Usage: "executions to measure per mode"},
			&cli.IntFlag{Name: flagConcurrency, Aliases: []string{"C"}, Value: 1, Usage: "executions at once"},
			&cli.StringFlag{Name: flagCode, Aliases: []string{"c"}, Value: "print(1)", Usage: "the code each execution runs"},
			&cli.StringFlag{Name: flagExpect, Value: "1", Usage: "stdout must contain this, or the execution counts as failed"},
			&cli.BoolFlag{Name: flagFloor, Value: true, Usage: "also measure bare Pods (the floor)"},
			&cli.StringSliceFlag{Name: flagModes, Value: cli.NewStringSlice(modeCold), Usage: "modes to measure: cold, warm-ready, warm-claim"},
			&cli.DurationFlag{Name: flagPace, Usage: "start one execution at most every PACE (paced arrivals; default back to back)"},
			&cli.IntFlag{Name: flagPoolReplicas, Usage: "create a warm pool of this many Pods for the run (0: use the installed one)"},
			&cli.BoolFlag{Name: flagBurstRun, Usage: "after the modes, start as many executions as the pool holds at once, then time its refill"},
			&cli.BoolFlag{Name: flagJSON, Usage: "print the report as JSON"},
		}, clusterFlags()...), sandboxFlags()...),
		Action: benchAction,
	}
}

func benchAction(c *cli.Context) error {
	opts, err := optionsFromFlags(c, c.App.ErrWriter)
	if err != nil {
		return usageError("%v", err)
	}
	modes := c.StringSlice(flagModes)
	for _, m := range modes {
		if m != modeCold && m != modeWarmReady && m != modeWarmClaim {
			return usageError("--%s %q: want cold, warm-ready or warm-claim", flagModes, m)
		}
	}
	progress := func(mode string) func(done, total int) {
		return func(done, total int) {
			if done%10 == 0 || done == total {
				fmt.Fprintf(c.App.ErrWriter, "bench %s: %d/%d executions\n", mode, done, total)
			}
		}
	}
	client, err := runner.NewClient(opts)
	if err != nil {
		return cli.Exit(err, exitCodeFor(err))
	}
	replicas := c.Int(flagPoolReplicas)
	if replicas > 0 {
		remove, err := bench.InstallPool(c.Context, client, opts, int32(replicas), 5*time.Minute)
		if err != nil {
			return cli.Exit(err, exitCodeFor(err))
		}
		defer remove()
	}
	out := benchResult{Modes: map[string]*bench.Report{}, Order: modes}
	for i, mode := range modes {
		mo := opts
		switch mode {
		case modeCold:
			mo.NoWarmPool = true
		case modeWarmReady:
			mo.WarmPoolReady = 1
		case modeWarmClaim:
			mo.WarmPoolReady = -1
		}
		if replicas > 0 && mode != modeCold {
			// Each warm mode starts from a full pool.
			if _, err := bench.WaitPoolReady(c.Context, client, opts.Namespace, opts.WarmPool, replicas, 5*time.Minute); err != nil {
				return cli.Exit(err, exitCodeFor(err))
			}
		}
		rep, err := bench.Run(c.Context, bench.Config{
			Executions: c.Int(flagExecutions), Concurrency: c.Int(flagConcurrency), Pace: c.Duration(flagPace),
			Code: c.String(flagCode), Expect: c.String(flagExpect), Floor: c.Bool(flagFloor) && i == len(modes)-1, Options: mo,
			Progress: progress(mode),
		})
		if err != nil {
			return cli.Exit(fmt.Errorf("mode %s: %w", mode, err), exitCodeFor(err))
		}
		out.Modes[mode] = rep
	}
	if c.Bool(flagBurstRun) {
		if replicas == 0 {
			return usageError("--%s needs --%s: the burst is as large as the pool", flagBurstRun, flagPoolReplicas)
		}
		if out.Burst, err = burst(c, client, opts, replicas); err != nil {
			return cli.Exit(err, exitCodeFor(err))
		}
	}
	if c.Bool(flagJSON) {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	} else {
		printResult(c.App.Writer, out)
	}
	for _, mode := range modes {
		if rep := out.Modes[mode]; rep.Failures > 0 {
			return cli.Exit(fmt.Sprintf("mode %s: %d of %d executions failed: %s", mode, rep.Failures, rep.Executions, strings.Join(rep.FirstErrors, "; ")), exitRunner)
		}
	}
	return nil
}

// burst starts as many executions as the pool holds at once (claim on request), and measures
// how long the pool's Deployment takes, from the burst's start, to be full again.
func burst(c *cli.Context, client kubernetes.Interface, opts runner.Options, replicas int) (*burstResult, error) {
	ctx := c.Context
	opts.WarmPoolReady = -1
	r, err := runner.New(opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	if _, err := bench.WaitPoolReady(ctx, client, opts.Namespace, opts.WarmPool, replicas, 5*time.Minute); err != nil {
		return nil, err
	}
	results := make([]runner.Result, replicas)
	errs := make([]error, replicas)
	took := make([]time.Duration, replicas)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			results[i], errs[i] = r.Execute(ctx, runner.Request{Code: c.String(flagCode)})
			took[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	if _, err := bench.WaitPoolReady(ctx, client, opts.Namespace, opts.WarmPool, replicas, 5*time.Minute); err != nil {
		return nil, err
	}
	refill := time.Since(start)
	b := &burstResult{Size: replicas, RefillSeconds: refill.Seconds()}
	slices.Sort(took)
	b.P50, b.Max = bench.Seconds(took[(len(took)-1)/2]), bench.Seconds(took[len(took)-1])
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

func printResult(w io.Writer, out benchResult) {
	var cold *bench.Report
	for _, mode := range out.Order {
		rep := out.Modes[mode]
		if mode == modeCold {
			cold = rep
		}
		fmt.Fprintf(w, "== %s: %d of %d ran warm\n", mode, rep.Warm, rep.Executions-rep.Failures)
		printReport(w, rep)
		fmt.Fprintln(w)
	}
	if cold != nil && len(out.Order) > 1 {
		fmt.Fprintln(w, "ratio to cold (p50, p95):")
		for _, mode := range out.Order {
			if rep := out.Modes[mode]; mode != modeCold && cold.Runner.P50 > 0 && cold.Runner.P95 > 0 {
				fmt.Fprintf(w, "  %-11s %.3fx  %.3fx\n", mode, float64(rep.Runner.P50)/float64(cold.Runner.P50), float64(rep.Runner.P95)/float64(cold.Runner.P95))
			}
		}
	}
	if b := out.Burst; b != nil {
		fmt.Fprintf(w, "\nburst of %d at once: %d warm, p50 %s, max %s; pool full again %.2f s after the burst started (%.2f pods/s)\n",
			b.Size, b.Warm, b.P50, b.Max, b.RefillSeconds, b.PodsPerSecond)
	}
}

func printReport(w io.Writer, r *bench.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "%d executions, concurrency %d, %d failed\n\n", r.Executions, r.Concurrency, r.Failures)
	fmt.Fprintln(tw, "\tp50\tp95\tp99\tmax\tmean\tthroughput/s\t")
	row := func(name string, s bench.Series) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t\n", name, s.P50, s.P95, s.P99, s.Max, s.Mean, s.Throughput)
	}
	row("gkexec", r.Runner)
	if r.Floor != nil {
		row("floor (bare pod)", *r.Floor)
		fmt.Fprintf(tw, "ratio\t%.2fx\t%.2fx\t\t\t\t%.2fx\t\n", r.RatioP50, r.RatioP95, r.RatioThroughput)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nphases (slowest first)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tp50\tp95\tmean\t")
	for _, p := range r.Phases {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", p.Name, p.P50, p.P95, p.Mean)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nAPI requests: %d (%.1f per execution); watches opened %d, at most %d open\n",
		r.APIRequests, r.APIRequestsPerExec, r.WatchesOpened, r.MaxOpenWatches)
	for _, k := range r.APIRequestKinds {
		fmt.Fprintf(w, "  %5d  %s\n", k.Count, k.Request)
	}
	fmt.Fprintf(w, "runner: %.2f s CPU, peak RSS %.1f MiB\n", r.RunnerCPUSeconds, r.PeakRSSMiB)
}
