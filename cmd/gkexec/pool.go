package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/autoscale"
)

const (
	flagPoolMin       = "min"
	flagPoolMax       = "max"
	flagPoolSpare     = "spare"
	flagPoolCooldown  = "cooldown"
	flagPoolAutoscale = "pool-autoscale"
)

func poolCommand() *cli.Command {
	return &cli.Command{
		Name:  "pool",
		Usage: "manage the warm pool",
		Subcommands: []*cli.Command{{
			Name:  "autoscale",
			Usage: "size the warm pool by demand until SIGTERM or SIGINT (runner/autoscale)",
			Description: `Follows the pool's demand in the namespace — claims of its Pods by every runner, and cold sandboxes
started because it was empty or claimed first — and sets the pool Deployment's replicas, through
its scale subresource, to the most demand seen within one refill time plus a spare, between a
minimum and a maximum: up at once, down after a cooldown of lower demand. Any number of processes
may run it (and gkexec serve does, when the Deployment asks for it): one at a time, elected
through a Lease, writes the size.

The policy is the Deployment's (gkexec.dev/autoscale-min, -max, -spare, -cooldown: the module's
warm_pool.autoscale, manifests/components/warm-pool-autoscale); --max (with --min, --spare,
--cooldown) overrides it. Needs runner.PoolAutoscaleRules() beside the warm pool's rules.

Examples:
   gkexec pool autoscale -n agent-sandbox
   gkexec pool autoscale -n agent-sandbox --warm-pool default --min 0 --max 6 --cooldown 2m -v`,
			Flags: append(clusterFlags(),
				&cli.StringFlag{Name: flagWarmPool, Value: runner.DefaultWarmPool, EnvVars: env(flagWarmPool), Usage: "the warm pool to size"},
				&cli.IntFlag{Name: flagPoolMax, EnvVars: env("pool-" + flagPoolMax), Usage: "at most this many idle Pods; setting it sizes the pool by these flags instead of the Deployment's policy"},
				&cli.IntFlag{Name: flagPoolMin, Value: 1, EnvVars: env("pool-" + flagPoolMin), Usage: "at least this many idle Pods (0: none until demand comes); with --max"},
				&cli.IntFlag{Name: flagPoolSpare, Value: autoscale.DefaultSpare, EnvVars: env("pool-" + flagPoolSpare), Usage: "idle Pods beyond the demand seen within one refill time; with --max"},
				&cli.DurationFlag{Name: flagPoolCooldown, Value: autoscale.DefaultCooldown, EnvVars: env("pool-" + flagPoolCooldown), Usage: "shrink only after the demand stayed lower this long; with --max"},
			),
			Action: poolAutoscaleAction,
		}},
	}
}

func poolAutoscaleAction(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageError("pool autoscale takes no arguments, got %q", c.Args().Slice())
	}
	var policy *autoscale.Policy
	if c.IsSet(flagPoolMax) {
		p := autoscale.Policy{Min: int32(c.Int(flagPoolMin)), Max: int32(c.Int(flagPoolMax)), Spare: int32(c.Int(flagPoolSpare)), Cooldown: c.Duration(flagPoolCooldown)}
		if err := p.Validate(); err != nil {
			return usageError("%v", err)
		}
		policy = &p
	} else if c.IsSet(flagPoolMin) || c.IsSet(flagPoolSpare) || c.IsSet(flagPoolCooldown) {
		return usageError("--%s, --%s and --%s need --%s (without it the policy is the Deployment's)", flagPoolMin, flagPoolSpare, flagPoolCooldown, flagPoolMax)
	}
	opts := runner.Options{KubeconfigPath: c.String(flagKubeconfig), KubeconfigContext: c.String(flagContext),
		Namespace: c.String(flagNamespace), QPS: float32(c.Float64(flagQPS)), Burst: c.Int(flagBurst)}
	client, err := runner.NewClient(opts)
	if err != nil {
		return cli.Exit(err, exitCodeFor(err))
	}
	log := serveLogger(c, c.App.ErrWriter)
	a, err := autoscale.New(autoscale.Config{Client: client, Namespace: opts.Namespace, Pool: c.String(flagWarmPool),
		Identity: processIdentity(), Policy: policy, Log: log})
	if err != nil {
		return usageError("%v", err)
	}
	if err := a.Run(c.Context); err != nil {
		return cli.Exit(err, exitCodeFor(err))
	}
	return nil
}

// processIdentity names this process in the autoscaler's Lease: two processes with one hostname
// and PID, in two containers, are still two.
func processIdentity() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), runner.NewExecutionID()[:6])
}

// startAutoscaler sizes r's warm pool by demand in the background when its Deployment asks for
// it (and this identity may read it); it returns nil, saying why at debug level, when it does not.
func startAutoscaler(c *cli.Context, r *runner.Runner, log *slog.Logger) *autoscale.Autoscaler {
	opts := r.Options()
	if opts.NoWarmPool || !c.Bool(flagPoolAutoscale) {
		return nil
	}
	if _, err := autoscale.ReadPolicy(c.Context, r.Client(), opts.Namespace, opts.WarmPool); err != nil {
		// Not autoscaled, or not this identity's to size (no runner.PoolAutoscaleRules): either
		// way the installation's size stands.
		log.Debug("the warm pool keeps its size", "why", err)
		return nil
	}
	a, err := autoscale.New(autoscale.Config{Client: r.Client(), Namespace: opts.Namespace, Pool: opts.WarmPool,
		Identity: processIdentity(), Log: log})
	if err != nil {
		log.Warn("the warm pool is not sized by demand", "error", err)
		return nil
	}
	go func() {
		if err := a.Run(c.Context); err != nil && c.Context.Err() == nil {
			log.Warn("the warm pool is no longer sized by demand", "error", err)
		}
	}()
	return a
}
