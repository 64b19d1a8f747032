package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/bench"
	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/autoscale"
)

const (
	flagExecutions   = "executions"
	flagConcurrency  = "concurrency"
	flagExpect       = "expect"
	flagFloor        = "floor"
	flagModes        = "modes"
	flagPace         = "pace"
	flagScenario     = "scenario"
	flagPoolReplicas = "pool-replicas"
	flagPoolPriority = "pool-priority"
	flagBurstRun     = "burst-run"
	flagAttachProf   = "attach-profile"
	flagBenchScale   = "pool-autoscale"
	flagBenchMin     = "pool-min"
)

// Executions measured per mode without --scenario (with one: bench.ScenarioExecutions).
const defaultBenchExecutions = 20

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure end-to-end latency, time to first output, throughput and API cost: cold, warm, session and the cluster's own floor",
		Description: `Runs N executions at concurrency C through one runner per mode, then (with --floor, the
default) the same workload as bare Pods with the same image, RuntimeClass and command, created,
watched and deleted directly: the fastest a cold start can be. Modes (--modes):
   cold        every execution creates its Job (the warm pool is not used)
   warm-ready  the runner holds a warm sandbox claimed and attached ahead of each request
   warm-claim  the runner claims and attaches a warm sandbox when the request comes
   session     every execution runs in one session opened before them (one at a time: concurrent
               arrivals wait their turn)
Scenarios (--scenario), as the public sandbox benchmarks (computesdk/benchmarks) run them; each sets
the arrivals instead of -C, measures 100 executions per mode unless -N says otherwise, runs code that
prints at once then sleeps 0.2 s unless -c says otherwise, and measures the time to the first
streamed chunk of output beside the time to the result (for the floor: to its log's first byte):
   sequential  one at a time, back to back (or one every --pace)
   staggered   one every --pace (default 200ms), none waiting for another
   burst       all at once
Warm modes and sessions need a warm pool: an installed one, or --pool-replicas N to create one for
the run (and delete it after), by default at the lower PriorityClass the sandbox-namespace module
and manifests give it (--pool-priority); with --burst-run, as many executions as the pool holds start
at once, then the time for the pool to be full again is measured. Reports p50/p95/p99/max latency,
throughput, the share that ran warm, the per-phase breakdown, Kubernetes API requests per execution
(counted at the client's transport), watches opened, and the runner's CPU time and peak RSS, with
ratios to the floor. The floor and --pool-replicas need pods and deployments create/delete in the
namespace, and --pool-priority priorityclasses create/delete (run them as an admin, not as the agent).

Examples:
   gkexec bench -n bench --executions 20 --concurrency 1
   gkexec bench -n bench --pool-replicas 4 --modes cold,warm-ready,warm-claim --pace 500ms --burst-run
   gkexec bench -n bench --scenario burst --pool-replicas 4 --modes cold,warm-ready,warm-claim,session --json
   gkexec bench -n bench --executions 50 --concurrency 50 --json`,
		Flags: append(append([]cli.Flag{
			&cli.IntFlag{Name: flagExecutions, Aliases: []string{"N"}, Value: defaultBenchExecutions, Usage: "executions to measure per mode (with --scenario: 100 unless given)"},
			&cli.IntFlag{Name: flagConcurrency, Aliases: []string{"C"}, Value: 1, Usage: "executions at once (not with --scenario, which sets it)"},
			&cli.StringFlag{Name: flagScenario, Usage: "how the executions arrive: sequential, staggered or burst (see above)"},
			&cli.StringFlag{Name: flagCode, Aliases: []string{"c"}, Value: "print(1)", Usage: "the code each execution runs (with --scenario: print(1, flush=True), then 0.2 s of sleep, unless given)"},
			&cli.StringFlag{Name: flagExpect, Value: "1", Usage: "stdout must contain this, or the execution counts as failed"},
			&cli.BoolFlag{Name: flagFloor, Value: true, Usage: "also measure bare Pods (the floor)"},
			&cli.StringSliceFlag{Name: flagModes, Value: cli.NewStringSlice(string(bench.ModeCold)), Usage: "modes to measure: cold, warm-ready, warm-claim, session"},
			&cli.DurationFlag{Name: flagPace, Usage: "start one execution at most every PACE (default back to back; --scenario staggered: 200ms)"},
			&cli.IntFlag{Name: flagPoolReplicas, Usage: "create a warm pool of this many Pods for the run (0: use the installed one)"},
			&cli.BoolFlag{Name: flagPoolPriority, Value: true, Usage: "run the pool --pool-replicas creates at the module's lower PriorityClass (gkexec-warm-pool-NAMESPACE, created for the run if missing); false: the default priority"},
			&cli.BoolFlag{Name: flagBurstRun, Usage: "after the modes, start as many executions as the pool holds at once, then time its refill"},
			&cli.BoolFlag{Name: flagBenchScale, Usage: "size the pool --pool-replicas creates by demand (runner/autoscale, run by the benchmark), from --pool-min up to --pool-replicas"},
			&cli.IntFlag{Name: flagBenchMin, Value: 1, Usage: "with --pool-autoscale: the pool's minimum"},
			&cli.IntFlag{Name: flagAttachProf, Usage: "before the modes, open this many attach streams to an idle pool Pod and time each step (TCP, TLS, upgrade, first ping; only pings are sent)"},
			&cli.BoolFlag{Name: flagJSON, Usage: "print the report as JSON"},
		}, clusterFlags()...), sandboxFlags()...),
		Action: benchAction,
	}
}

// benchConfig maps the flags onto a bench.SuiteConfig, refusing what contradicts itself before
// any cluster is contacted.
func benchConfig(c *cli.Context, opts runner.Options) (bench.SuiteConfig, error) {
	cfg := bench.SuiteConfig{
		Executions: c.Int(flagExecutions), Concurrency: c.Int(flagConcurrency), Pace: c.Duration(flagPace),
		Code: c.String(flagCode), Expect: c.String(flagExpect), Floor: c.Bool(flagFloor), Options: opts,
	}
	for _, name := range c.StringSlice(flagModes) {
		m, err := bench.ParseMode(name)
		if err != nil {
			return cfg, usageError("--%s %q: want cold, warm-ready, warm-claim or session", flagModes, name)
		}
		cfg.Modes = append(cfg.Modes, m)
	}
	if c.Bool(flagBurstRun) && c.Int(flagPoolReplicas) <= 0 {
		return cfg, usageError("--%s needs --%s: the burst is as large as the pool", flagBurstRun, flagPoolReplicas)
	}
	if !c.IsSet(flagScenario) {
		return cfg, nil
	}
	scenario, err := bench.ParseScenario(c.String(flagScenario))
	if err != nil {
		return cfg, usageError("--%s %q: want sequential, staggered or burst", flagScenario, c.String(flagScenario))
	}
	if c.IsSet(flagConcurrency) {
		return cfg, usageError("--%s sets the concurrency: leave out --%s", flagScenario, flagConcurrency)
	}
	if !c.IsSet(flagExecutions) {
		cfg.Executions = bench.ScenarioExecutions
	}
	if !c.IsSet(flagCode) {
		cfg.Code = bench.FirstOutputCode
	}
	if cfg.Concurrency, cfg.Pace, err = scenario.Arrivals(cfg.Executions, cfg.Pace); err != nil {
		return cfg, usageError("%v", err)
	}
	cfg.Scenario, cfg.FirstOutput = scenario, true
	return cfg, nil
}

func benchAction(c *cli.Context) error {
	opts, err := optionsFromFlags(c, c.App.ErrWriter)
	if err != nil {
		return usageError("%v", err)
	}
	cfg, err := benchConfig(c, opts)
	if err != nil {
		return err
	}
	cfg.Progress = func(mode bench.Mode, done, total int) {
		if done%10 == 0 || done == total {
			fmt.Fprintf(c.App.ErrWriter, "bench %s: %d/%d executions\n", mode, done, total)
		}
	}
	client, err := runner.NewClient(opts)
	if err != nil {
		return cli.Exit(err, exitCodeFor(err))
	}
	if replicas := c.Int(flagPoolReplicas); replicas > 0 {
		po := bench.PoolOptions{Replicas: int32(replicas), LowPriority: c.Bool(flagPoolPriority), Timeout: 5 * time.Minute}
		if c.Bool(flagBenchScale) {
			// A cooldown longer than any mode: the pool follows the demand up, and stays.
			po.Autoscale = &autoscale.Policy{Min: int32(c.Int(flagBenchMin)), Max: int32(replicas), Spare: autoscale.DefaultSpare, Cooldown: 10 * time.Minute}
			if err := po.Autoscale.Validate(); err != nil {
				return usageError("--%s, --%s: %v", flagBenchMin, flagPoolReplicas, err)
			}
		}
		cfg.Pool, err = bench.InstallPool(c.Context, client, opts, po)
		if err != nil {
			return cli.Exit(err, exitCodeFor(err))
		}
		defer cfg.Pool.Remove()
	}
	var attach *bench.AttachProfile
	if n := c.Int(flagAttachProf); n > 0 {
		if attach, err = bench.ProfilePoolAttach(c.Context, opts, n); err != nil {
			return cli.Exit(err, exitCodeFor(err))
		}
	}
	out, err := bench.RunSuite(c.Context, cfg)
	if err != nil {
		return cli.Exit(err, exitCodeFor(err))
	}
	out.Attach = attach
	if cfg.Pool != nil && cfg.Pool.Autoscaler != nil {
		out.Autoscale = bench.SummariseAutoscale(cfg.Pool.Autoscaler.Stats())
	}
	if c.Bool(flagBurstRun) {
		if out.Burst, err = bench.RunPoolBurst(c.Context, opts, cfg.Pool, cfg.Code); err != nil {
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
	for _, mode := range out.Order {
		if rep := out.Modes[mode]; rep.Failures > 0 {
			return cli.Exit(fmt.Sprintf("mode %s: %d of %d executions failed: %s", mode, rep.Failures, rep.Executions, strings.Join(rep.FirstErrors, "; ")), exitRunner)
		}
	}
	if out.FloorFailures > 0 {
		last := out.Modes[out.Order[len(out.Order)-1]]
		return cli.Exit(fmt.Sprintf("floor: %d of %d bare Pods failed: %s", out.FloorFailures, last.Executions, strings.Join(last.FloorErrors, "; ")), exitRunner)
	}
	return nil
}

func printResult(w io.Writer, out *bench.Suite) {
	if out.Scenario != "" {
		fmt.Fprintf(w, "scenario %s: %s\n\n", out.Scenario, out.Arrivals)
	}
	var cold *bench.Report
	for _, mode := range out.Order {
		rep := out.Modes[mode]
		if mode == string(bench.ModeCold) {
			cold = rep
		}
		fmt.Fprintf(w, "== %s: %d of %d ran warm\n", mode, rep.Warm, rep.Executions-rep.Failures)
		printReport(w, rep)
		fmt.Fprintln(w)
	}
	if out.Floor != nil && len(out.Order) > 1 {
		fmt.Fprintln(w, "ratio to the floor (p50, p95, first output p50):")
		for _, mode := range out.Order {
			rep := out.Modes[mode]
			fmt.Fprintf(w, "  %-11s %.3fx  %.3fx  %.3fx\n", mode, rep.RatioP50, rep.RatioP95, rep.RatioFirstOutputP50)
		}
	}
	if cold != nil && len(out.Order) > 1 {
		fmt.Fprintln(w, "ratio to cold (p50, p95):")
		for _, mode := range out.Order {
			if rep := out.Modes[mode]; mode != string(bench.ModeCold) && cold.Runner.P50 > 0 && cold.Runner.P95 > 0 {
				fmt.Fprintf(w, "  %-11s %.3fx  %.3fx\n", mode, float64(rep.Runner.P50)/float64(cold.Runner.P50), float64(rep.Runner.P95)/float64(cold.Runner.P95))
			}
		}
	}
	if a := out.Attach; a != nil {
		fmt.Fprintf(w, "\nattach to %s (%d times), p50 / p95:\n", a.Pod, a.Upgrade.Count)
		for _, step := range []struct {
			name string
			s    bench.Series
		}{{"build executors", a.Build}, {"TCP connect", a.Connect}, {"TLS handshake", a.TLS}, {"upgrade (API server, kubelet, runtime)", a.Upgrade},
			{"first ping", a.FirstPing}, {"ping on an open stream", a.Ping}, {"GET pod (no upgrade)", a.Get}} {
			fmt.Fprintf(w, "  %-40s %7.1f ms %7.1f ms\n", step.name, float64(step.s.P50)/1e6, float64(step.s.P95)/1e6)
		}
	}
	if a := out.Autoscale; a != nil {
		fmt.Fprintf(w, "\npool sized by demand (%d..%d): %d resizes, last recommended %d; %d claims and %d cold fallbacks seen; refill mean %.2f s, planned with %.2f s\n",
			a.Min, a.Max, a.Resizes, a.LastRecommended, a.Claims, a.Misses, a.RefillMean, a.RefillEstimate)
	}
	if b := out.Burst; b != nil {
		fmt.Fprintf(w, "\nburst of %d at once: %d warm, p50 %s, max %s; pool full again %.2f s after the burst started (%.2f pods/s)\n",
			b.Size, b.Warm, b.P50, b.Max, b.RefillSeconds, b.PodsPerSecond)
	}
}

func printReport(w io.Writer, r *bench.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "%d executions, concurrency %d, %d failed\n", r.Executions, r.Concurrency, r.Failures)
	if r.SessionOpen > 0 {
		fmt.Fprintf(w, "session opened in %s\n", r.SessionOpen)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "\tmin\tp50\tp95\tp99\tmax\tmean\tthroughput/s\t")
	row := func(name string, s bench.Series) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t\n", name, s.Min, s.P50, s.P95, s.P99, s.Max, s.Mean, s.Throughput)
	}
	row("gkexec", r.Runner)
	if r.FirstOutput != nil {
		row("gkexec, first output", *r.FirstOutput)
	}
	if r.Floor != nil {
		row("floor (bare pod)", *r.Floor)
		if r.FloorFirstOutput != nil {
			row("floor, first output", *r.FloorFirstOutput)
		}
		fmt.Fprintf(tw, "ratio\t\t%.2fx\t%.2fx\t\t\t\t%.2fx\t\n", r.RatioP50, r.RatioP95, r.RatioThroughput)
	}
	_ = tw.Flush()
	if r.FloorFailures > 0 {
		fmt.Fprintf(w, "floor: %d bare Pods failed: %s\n", r.FloorFailures, strings.Join(r.FloorErrors, "; "))
	}
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
