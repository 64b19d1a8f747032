package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/bench"
)

const (
	flagExecutions  = "executions"
	flagConcurrency = "concurrency"
	flagExpect      = "expect"
	flagFloor       = "floor"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure end-to-end latency, throughput and API cost against the cluster's own floor",
		Description: `Runs N executions at concurrency C through one runner, then (with --floor, the default) the
same workload as bare Pods with the same image, RuntimeClass and command, created, watched and
deleted directly: the fastest the cluster allows. Reports p50/p95/p99/max latency, throughput,
the per-phase breakdown, Kubernetes API requests per execution (counted at the client's
transport), watches opened, and the runner's CPU time and peak RSS, with ratios to the floor.
The floor needs pods create/delete in the namespace (run it as an admin, not as the agent).

Examples:
   gkexec bench -n bench --executions 20 --concurrency 1
   gkexec bench -n bench --executions 50 --concurrency 50 --json`,
		Flags: append(append([]cli.Flag{
			&cli.IntFlag{Name: flagExecutions, Aliases: []string{"N"}, Value: 20, Usage: "executions to measure"},
			&cli.IntFlag{Name: flagConcurrency, Aliases: []string{"C"}, Value: 1, Usage: "executions at once"},
			&cli.StringFlag{Name: flagCode, Aliases: []string{"c"}, Value: "print(1)", Usage: "the code each execution runs"},
			&cli.StringFlag{Name: flagExpect, Value: "1", Usage: "stdout must contain this, or the execution counts as failed"},
			&cli.BoolFlag{Name: flagFloor, Value: true, Usage: "also measure bare Pods (the floor)"},
			&cli.BoolFlag{Name: flagJSON, Usage: "print the report as JSON"},
		}, clusterFlags()...), sandboxFlags()...),
		Action: func(c *cli.Context) error {
			opts, err := optionsFromFlags(c, c.App.ErrWriter)
			if err != nil {
				return usageError("%v", err)
			}
			rep, err := bench.Run(c.Context, bench.Config{
				Executions: c.Int(flagExecutions), Concurrency: c.Int(flagConcurrency),
				Code: c.String(flagCode), Expect: c.String(flagExpect), Floor: c.Bool(flagFloor), Options: opts,
				Progress: func(done, total int) {
					if done%10 == 0 || done == total {
						fmt.Fprintf(c.App.ErrWriter, "bench: %d/%d executions\n", done, total)
					}
				},
			})
			if err != nil {
				return cli.Exit(err, exitCodeFor(err))
			}
			if c.Bool(flagJSON) {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				_ = enc.Encode(rep)
			} else {
				printReport(c.App.Writer, rep)
			}
			if rep.Failures > 0 {
				return cli.Exit(fmt.Sprintf("%d of %d executions failed: %s", rep.Failures, rep.Executions, strings.Join(rep.FirstErrors, "; ")), exitRunner)
			}
			return nil
		},
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
