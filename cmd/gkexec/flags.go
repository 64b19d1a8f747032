package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
)

// Flag names shared by the commands that talk to a cluster; kubectl's where kubectl has one.
const (
	flagKubeconfig        = "kubeconfig"
	flagContext           = "context"
	flagNamespace         = "namespace"
	flagImage             = "image"
	flagImagePullPolicy   = "image-pull-policy"
	flagTimeout           = "timeout"
	flagStartTimeout      = "start-timeout"
	flagMaxInFlight       = "max-in-flight"
	flagCPURequest        = "cpu-request"
	flagMemoryRequest     = "memory-request"
	flagCPULimit          = "cpu-limit"
	flagMemoryLimit       = "memory-limit"
	flagEphemeralStorage  = "ephemeral-storage-limit"
	flagScratchSize       = "scratch-size"
	flagMaxOutputBytes    = "max-output-bytes"
	flagMaxFileBytes      = "max-file-bytes"
	flagMaxProcesses      = "max-processes"
	flagRuntimeClass      = "runtime-class"
	flagNoRuntimeClass    = "no-runtime-class"
	flagNoSandboxSelector = "no-sandbox-node-selector"
	flagNodeSelector      = "node-selector"
	flagToleration        = "toleration"
	flagUnschedGrace      = "unschedulable-grace"
	flagRunAsUser         = "run-as-user"
	flagLabel             = "label"
	flagAnnotation        = "annotation"
	flagTTL               = "ttl-after-finished"
	flagKeep              = "keep"
	flagQPS               = "qps"
	flagBurst             = "burst"
	flagVerbose           = "verbose"
	flagCleanupTimeout    = "cleanup-timeout"
	flagWarmPool          = "warm-pool"
	flagNoWarmPool        = "no-warm-pool"
	flagWarmReady         = "warm-ready"
	flagWarmHold          = "warm-hold"
	flagWarmMaxIdleAge    = "warm-max-idle-age"
	flagSessionIdle       = "session-idle-timeout"
	flagSessionLifetime   = "session-max-lifetime"
)

func env(name string) []string {
	return []string{"GKEXEC_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

// clusterFlags select the cluster and namespace; every command that talks to one has them.
func clusterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagKubeconfig, Usage: "kubeconfig file (default: in-cluster config, then KUBECONFIG or ~/.kube/config)", EnvVars: env(flagKubeconfig), TakesFile: true},
		&cli.StringFlag{Name: flagContext, Usage: "kubeconfig context", EnvVars: env(flagContext)},
		&cli.StringFlag{Name: flagNamespace, Aliases: []string{"n"}, Value: runner.DefaultNamespace, Usage: "the sandbox namespace: where the sandboxes, their ConfigMaps and Jobs, and the warm pool are (the gateway watches and publishes into it)", EnvVars: env(flagNamespace)},
		&cli.Float64Flag{Name: flagQPS, Value: runner.DefaultQPS, Usage: "client-side API rate limit, requests per second", EnvVars: env(flagQPS)},
		&cli.IntFlag{Name: flagBurst, Value: runner.DefaultBurst, Usage: "client-side API burst", EnvVars: env(flagBurst)},
		&cli.BoolFlag{Name: flagVerbose, Aliases: []string{"v"}, Usage: "log each phase to stderr", EnvVars: env(flagVerbose)},
	}
}

// sandboxFlags shape the sandbox; one per runner.Options field.
func sandboxFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagImage, Value: runner.DefaultImage, Usage: "sandbox image (needs python3, which runs gkexec's entrypoint; bash and node to run those languages)", EnvVars: env(flagImage)},
		&cli.StringFlag{Name: flagImagePullPolicy, Value: string(corev1.PullIfNotPresent), Usage: "Always, IfNotPresent or Never", EnvVars: env(flagImagePullPolicy)},
		&cli.DurationFlag{Name: flagTimeout, Value: runner.DefaultTimeout, Usage: "kill the code after this long", EnvVars: env(flagTimeout)},
		&cli.DurationFlag{Name: flagStartTimeout, Value: runner.DefaultStartTimeout, Usage: "give up if the sandbox has not started after this long", EnvVars: env(flagStartTimeout)},
		&cli.IntFlag{Name: flagMaxInFlight, EnvVars: env(flagMaxInFlight), Usage: "cold sandboxes in flight at most; more wait in line, first come first served (0: as many as the namespace's ResourceQuota admits, learned from the scheduler without one; -1: unbounded)"},
		&cli.StringFlag{Name: flagCPURequest, Value: runner.DefaultCPURequest, EnvVars: env(flagCPURequest), Usage: "CPU request"},
		&cli.StringFlag{Name: flagMemoryRequest, Value: runner.DefaultMemoryRequest, EnvVars: env(flagMemoryRequest), Usage: "memory request"},
		&cli.StringFlag{Name: flagCPULimit, Value: runner.DefaultCPULimit, EnvVars: env(flagCPULimit), Usage: "CPU limit"},
		&cli.StringFlag{Name: flagMemoryLimit, Value: runner.DefaultMemoryLimit, EnvVars: env(flagMemoryLimit), Usage: "memory limit (exceeding it is reported as oom_killed)"},
		&cli.StringFlag{Name: flagEphemeralStorage, Value: runner.DefaultEphemeralStorageLimit, EnvVars: env(flagEphemeralStorage), Usage: "ephemeral-storage limit"},
		&cli.StringFlag{Name: flagScratchSize, Value: runner.DefaultScratchSizeLimit, EnvVars: env(flagScratchSize), Usage: "size of each writable volume, /tmp and /workspace (memory backed)"},
		&cli.Int64Flag{Name: flagMaxOutputBytes, Value: runner.DefaultMaxOutputBytes, EnvVars: env(flagMaxOutputBytes), Usage: "cap on stdout and on stderr, each"},
		&cli.Int64Flag{Name: flagMaxFileBytes, Value: runner.DefaultMaxFileBytes, EnvVars: env(flagMaxFileBytes), Usage: "cap on the total size of output files"},
		&cli.Int64Flag{Name: flagMaxProcesses, Value: runner.DefaultMaxProcesses, EnvVars: env(flagMaxProcesses), Usage: "RLIMIT_NPROC for the code (negative: none)"},
		&cli.StringFlag{Name: flagRuntimeClass, Value: runner.DefaultRuntimeClassName, EnvVars: env(flagRuntimeClass), Usage: "RuntimeClass of the sandbox pod"},
		&cli.BoolFlag{Name: flagNoRuntimeClass, EnvVars: env(flagNoRuntimeClass), Usage: "run without a RuntimeClass (NOT a sandbox; for clusters without gVisor)"},
		&cli.BoolFlag{Name: flagNoSandboxSelector, EnvVars: env(flagNoSandboxSelector), Usage: "drop the node selector and toleration for GKE Sandbox nodes"},
		&cli.StringSliceFlag{Name: flagNodeSelector, EnvVars: env(flagNodeSelector), Usage: "extra node selector `KEY=VALUE` (repeatable)"},
		&cli.StringSliceFlag{Name: flagToleration, EnvVars: env(flagToleration), Usage: "extra toleration `KEY[=VALUE]:EFFECT` (repeatable; EFFECT NoSchedule, PreferNoSchedule or NoExecute)"},
		&cli.DurationFlag{Name: flagUnschedGrace, Value: runner.DefaultUnschedulableGrace, EnvVars: env(flagUnschedGrace), Usage: "fail when no node matches the pod for this long (raise it for autoscaled pools)"},
		&cli.Int64Flag{Name: flagRunAsUser, Value: runner.DefaultRunAsUser, EnvVars: env(flagRunAsUser), Usage: "non-root UID and GID of the code"},
		&cli.StringSliceFlag{Name: flagLabel, EnvVars: env(flagLabel), Usage: "extra label `KEY=VALUE` on every object (repeatable)"},
		&cli.StringSliceFlag{Name: flagAnnotation, EnvVars: env(flagAnnotation), Usage: "extra annotation `KEY=VALUE` on every object (repeatable)"},
		&cli.DurationFlag{Name: flagTTL, Value: runner.DefaultTTLAfterFinished, EnvVars: env(flagTTL), Usage: "Job ttlSecondsAfterFinished, a backstop if gkexec dies"},
		&cli.BoolFlag{Name: flagKeep, EnvVars: env(flagKeep), Usage: "keep the Job and ConfigMap (or the warm Pod) afterwards, for debugging"},
		&cli.DurationFlag{Name: flagCleanupTimeout, Value: runner.DefaultCleanupTimeout, EnvVars: env(flagCleanupTimeout), Usage: "retry deleting what an execution made for this long"},
		&cli.StringFlag{Name: flagWarmPool, Value: runner.DefaultWarmPool, EnvVars: env(flagWarmPool), Usage: "warm pool to take pre-started sandboxes from when one matches (else cold)"},
		&cli.BoolFlag{Name: flagNoWarmPool, EnvVars: env(flagNoWarmPool), Usage: "always run cold, never from the warm pool (sessions run in Jobs of their own)"},
		&cli.IntFlag{Name: flagWarmReady, Value: runner.DefaultWarmPoolReady, EnvVars: env(flagWarmReady), Usage: "warm sandboxes to hold claimed and attached ahead of demand (-1: claim on request)"},
		&cli.DurationFlag{Name: flagWarmHold, Value: runner.DefaultWarmPoolHold, EnvVars: env(flagWarmHold), Usage: "release a held warm sandbox after this long"},
		&cli.DurationFlag{Name: flagWarmMaxIdleAge, Value: runner.DefaultWarmPoolMaxIdleAge, EnvVars: env(flagWarmMaxIdleAge), Usage: "recycle idle pool pods older than this"},
		&cli.DurationFlag{Name: flagSessionIdle, Value: runner.DefaultSessionIdleTimeout, EnvVars: env(flagSessionIdle), Usage: "end a session that has run nothing for this long (the ceiling of a session's own idle timeout)"},
		&cli.DurationFlag{Name: flagSessionLifetime, Value: runner.DefaultSessionMaxLifetime, EnvVars: env(flagSessionLifetime), Usage: "end a session this long after it opened (the ceiling of a session's own maximum lifetime)"},
	}
}

// optionsFromFlags maps flags onto runner.Options; validation is the runner's job.
func optionsFromFlags(c *cli.Context, stderr io.Writer) (runner.Options, error) {
	o := runner.Options{
		KubeconfigPath:    c.String(flagKubeconfig),
		KubeconfigContext: c.String(flagContext),
		Namespace:         c.String(flagNamespace),
		QPS:               float32(c.Float64(flagQPS)),
		Burst:             c.Int(flagBurst),
		Logger:            logger(c, stderr),
	}
	if !hasFlag(c, flagImage) {
		return o, nil // commands without sandbox flags use the defaults
	}
	o.Image = c.String(flagImage)
	o.ImagePullPolicy = corev1.PullPolicy(c.String(flagImagePullPolicy))
	o.Timeout = c.Duration(flagTimeout)
	o.StartTimeout = c.Duration(flagStartTimeout)
	o.MaxInFlight = c.Int(flagMaxInFlight)
	o.CPURequest, o.MemoryRequest = c.String(flagCPURequest), c.String(flagMemoryRequest)
	o.CPULimit, o.MemoryLimit = c.String(flagCPULimit), c.String(flagMemoryLimit)
	o.EphemeralStorageLimit = c.String(flagEphemeralStorage)
	o.ScratchSizeLimit = c.String(flagScratchSize)
	o.MaxOutputBytes, o.MaxFileBytes = c.Int64(flagMaxOutputBytes), c.Int64(flagMaxFileBytes)
	o.MaxProcesses = c.Int64(flagMaxProcesses)
	o.RuntimeClassName, o.NoRuntimeClass = c.String(flagRuntimeClass), c.Bool(flagNoRuntimeClass)
	o.DisableSandboxNodeSelector = c.Bool(flagNoSandboxSelector)
	o.UnschedulableGrace = c.Duration(flagUnschedGrace)
	o.RunAsUser = c.Int64(flagRunAsUser)
	o.RunAsGroup = o.RunAsUser
	o.TTLAfterFinished = c.Duration(flagTTL)
	o.KeepObjects = c.Bool(flagKeep)
	o.CleanupTimeout = c.Duration(flagCleanupTimeout)
	o.WarmPool, o.NoWarmPool = c.String(flagWarmPool), c.Bool(flagNoWarmPool)
	o.WarmPoolReady = c.Int(flagWarmReady)
	if o.WarmPoolReady == 0 || ((c.Command.Name == "run" || c.Command.Name == "doctor") && !c.IsSet(flagWarmReady)) {
		// 0 on the command line means none, not the default; and `run` and doctor's smoke check make one execution, for
		// which holding a second sandbox ready would only waste it.
		o.WarmPoolReady = -1
	}
	o.WarmPoolHold, o.WarmPoolMaxIdleAge = c.Duration(flagWarmHold), c.Duration(flagWarmMaxIdleAge)
	o.SessionIdleTimeout, o.SessionMaxLifetime = c.Duration(flagSessionIdle), c.Duration(flagSessionLifetime)
	var err error
	if o.NodeSelector, err = keyValues(flagNodeSelector, c.StringSlice(flagNodeSelector)); err != nil {
		return o, err
	}
	if o.Tolerations, err = tolerations(c.StringSlice(flagToleration)); err != nil {
		return o, err
	}
	if o.Labels, err = keyValues(flagLabel, c.StringSlice(flagLabel)); err != nil {
		return o, err
	}
	if o.Annotations, err = keyValues(flagAnnotation, c.StringSlice(flagAnnotation)); err != nil {
		return o, err
	}
	if o.Timeout <= 0 || o.StartTimeout <= 0 {
		// Options treat zero as "default"; on the command line zero is a mistake worth naming.
		return o, fmt.Errorf("--%s and --%s must be positive", flagTimeout, flagStartTimeout)
	}
	return o, nil
}

// runnerFromFlags builds the runner the flags describe; its errors are ready to return from an Action.
func runnerFromFlags(c *cli.Context, stderr io.Writer) (*runner.Runner, error) {
	opts, err := optionsFromFlags(c, stderr)
	if err != nil {
		return nil, usageError("%v", err)
	}
	r, err := runner.New(opts)
	if err != nil {
		return nil, cli.Exit(err, exitCodeFor(err))
	}
	return r, nil
}

func hasFlag(c *cli.Context, name string) bool {
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// pickFlags are the named flags of flags, in their order there.
func pickFlags(flags []cli.Flag, names ...string) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		for _, n := range names {
			if f.Names()[0] == n {
				out = append(out, f)
			}
		}
	}
	return out
}

// dropFlags are flags without the named ones.
func dropFlags(flags []cli.Flag, names ...string) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if len(pickFlags([]cli.Flag{f}, names...)) == 0 {
			out = append(out, f)
		}
	}
	return out
}

func keyValues(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want KEY=VALUE", flag, p)
		}
		m[k] = v
	}
	return m, nil
}

// tolerations parses KEY[=VALUE]:EFFECT, the form `kubectl taint` uses for taints.
func tolerations(specs []string) ([]corev1.Toleration, error) {
	var out []corev1.Toleration
	for _, spec := range specs {
		kv, effect, ok := strings.Cut(spec, ":")
		key, value, hasValue := strings.Cut(kv, "=")
		switch corev1.TaintEffect(effect) {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			ok = false
		}
		if !ok || key == "" {
			return nil, fmt.Errorf("--%s %q: want KEY[=VALUE]:EFFECT with EFFECT NoSchedule, PreferNoSchedule or NoExecute", flagToleration, spec)
		}
		t := corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffect(effect)}
		if hasValue {
			t.Operator, t.Value = corev1.TolerationOpEqual, value
		}
		out = append(out, t)
	}
	return out, nil
}

// logger writes the runner's phase messages to stderr with -v; otherwise nowhere.
func logger(c *cli.Context, stderr io.Writer) *slog.Logger {
	if !c.Bool(flagVerbose) {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.String(slog.TimeKey, a.Value.Time().Format(time.TimeOnly+".000"))
			}
			return a
		},
	}))
}

// usageError is a bad flag or argument: nothing was created.
func usageError(format string, args ...any) error {
	return cli.Exit(fmt.Sprintf(format, args...), exitUsage)
}
