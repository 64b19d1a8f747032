package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/autoscale"
)

// Mode is where a measured execution takes its sandbox.
type Mode string

const (
	// ModeCold: every execution creates its Job; the warm pool is not used.
	ModeCold Mode = "cold"
	// ModeWarmReady: the runner holds a warm sandbox claimed and attached ahead of each request.
	ModeWarmReady Mode = "warm-ready"
	// ModeWarmClaim: the runner claims and attaches a warm sandbox when the request comes.
	ModeWarmClaim Mode = "warm-claim"
	// ModeSession: every execution runs in one session, opened before them (on a warm pool Pod
	// when one is idle).
	ModeSession Mode = "session"
)

// Modes lists every mode, in the order a full run measures them.
var Modes = []Mode{ModeCold, ModeWarmReady, ModeWarmClaim, ModeSession}

// ParseMode accepts a mode's name.
func ParseMode(name string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == name {
			return m, nil
		}
	}
	return "", fmt.Errorf("%w: mode %q: want cold, warm-ready, warm-claim or session", runner.ErrInvalidOptions, name)
}

// Options are the runner's options for the mode.
func (m Mode) Options(o runner.Options) runner.Options {
	switch m {
	case ModeCold:
		o.NoWarmPool = true
	case ModeWarmReady:
		o.WarmPoolReady = 1
	case ModeWarmClaim, ModeSession:
		o.WarmPoolReady = -1
	}
	return o
}

// usesPool: the mode takes its sandboxes from the warm pool, so it starts from a full one.
func (m Mode) usesPool() bool { return m != ModeCold }

// SuiteConfig is one run: the same executions measured in each mode in turn, then as bare Pods
// (the floor), so that every mode is compared with the floor of the same run.
type SuiteConfig struct {
	// Scenario names how the executions arrive ("" when Concurrency and Pace were given as such);
	// Executions, Concurrency and Pace are its arrivals (Scenario.Arrivals).
	Scenario    Scenario
	Executions  int
	Concurrency int
	Pace        time.Duration
	Modes       []Mode
	Code        string
	Expect      string
	Floor       bool
	FirstOutput bool
	Options     runner.Options
	// Pool, if set, is the run's warm pool: each mode that uses it starts from it full.
	Pool *Pool
	// Progress, if set, is called after each execution.
	Progress func(mode Mode, done, total int)
}

// Suite is what a run measured: the JSON report of gkexec bench.
type Suite struct {
	// Scenario and Arrivals say how the executions arrived ("100 at once"); empty without a scenario.
	Scenario string `json:"scenario,omitempty"`
	Arrivals string `json:"arrivals,omitempty"`
	// Code is what every execution ran.
	Code string `json:"code,omitempty"`
	// PoolReplicas and PoolPriorityClass describe the warm pool installed for the run, if any.
	PoolReplicas      int    `json:"pool_replicas,omitempty"`
	PoolPriorityClass string `json:"pool_priority_class,omitempty"`
	// Modes holds one Report per mode, measured in Order. The last one also carries the floor
	// (Report.Floor); every one its ratios to it.
	Modes map[string]*Report `json:"modes"`
	Order []string           `json:"order"`
	// Floor is the bare Pods' latency (and time to first output) in the same run.
	Floor            *Series `json:"floor,omitempty"`
	FloorFirstOutput *Series `json:"floor_first_output,omitempty"`
	FloorFailures    int     `json:"floor_failures,omitempty"`
	// Burst is the burst as large as the pool, and its refill (RunPoolBurst).
	Burst *BurstReport `json:"burst,omitempty"`
	// Attach is where the time of an attach goes (ProfileAttach), measured before the modes.
	Attach *AttachProfile `json:"attach,omitempty"`
	// Autoscale is what the autoscaler of a pool sized by demand saw and did over the run.
	Autoscale *AutoscaleSummary `json:"autoscale,omitempty"`
}

// AutoscaleSummary is a pool sized by demand over a run.
type AutoscaleSummary struct {
	Min             int32   `json:"min"`
	Max             int32   `json:"max"`
	Resizes         uint64  `json:"resizes"`
	Claims          uint64  `json:"claims"`
	Misses          uint64  `json:"misses"`
	RefillMean      float64 `json:"refill_mean_seconds"`
	RefillEstimate  float64 `json:"refill_estimate_seconds"`
	LastRecommended int32   `json:"last_recommended"`
}

// SummariseAutoscale is s in a few numbers.
func SummariseAutoscale(s autoscale.Stats) *AutoscaleSummary {
	out := &AutoscaleSummary{Min: s.Policy.Min, Max: s.Policy.Max, Resizes: s.ScaledUp + s.ScaledDown, Claims: s.Claims,
		RefillEstimate: s.Refill.Seconds(), LastRecommended: s.Recommended}
	for _, n := range s.Misses {
		out.Misses += n
	}
	if s.Refills.Count > 0 {
		out.RefillMean = s.Refills.Sum / float64(s.Refills.Count)
	}
	return out
}

// RunSuite measures each mode in turn, then the floor, and compares every mode with it. On an
// error it returns what it measured so far.
func RunSuite(ctx context.Context, cfg SuiteConfig) (*Suite, error) {
	if len(cfg.Modes) == 0 {
		return nil, fmt.Errorf("%w: no mode to measure", runner.ErrInvalidOptions)
	}
	s := &Suite{Scenario: string(cfg.Scenario), Code: cfg.Code, Modes: map[string]*Report{}}
	if cfg.Scenario != "" {
		s.Arrivals = cfg.Scenario.Describe(cfg.Executions, cfg.Pace)
	}
	if cfg.Pool != nil {
		s.PoolReplicas, s.PoolPriorityClass = cfg.Pool.Replicas(), cfg.Pool.PriorityClass
	}
	for i, mode := range cfg.Modes {
		if cfg.Pool != nil && mode.usesPool() {
			if _, err := cfg.Pool.WaitFull(ctx); err != nil {
				return s, fmt.Errorf("mode %s: %w", mode, err)
			}
		}
		var progress func(done, total int)
		if cfg.Progress != nil {
			progress = func(done, total int) { cfg.Progress(mode, done, total) }
		}
		rep, err := Run(ctx, Config{
			Executions: cfg.Executions, Concurrency: cfg.Concurrency, Pace: cfg.Pace,
			Code: cfg.Code, Expect: cfg.Expect, FirstOutput: cfg.FirstOutput,
			Floor:   cfg.Floor && i == len(cfg.Modes)-1,
			Session: mode == ModeSession,
			Options: mode.Options(cfg.Options), Progress: progress,
		})
		if rep != nil {
			s.Modes[string(mode)] = rep
			s.Order = append(s.Order, string(mode))
		}
		if err != nil {
			return s, fmt.Errorf("mode %s: %w", mode, err)
		}
	}
	if last := s.Modes[s.Order[len(s.Order)-1]]; last.Floor != nil {
		s.Floor, s.FloorFirstOutput, s.FloorFailures = last.Floor, last.FloorFirstOutput, last.FloorFailures
		for _, rep := range s.Modes {
			rep.compare(s.Floor, s.FloorFirstOutput)
		}
	}
	return s, nil
}

// Failures counts the executions that failed in every mode, and the bare Pods.
func (s *Suite) Failures() int {
	n := s.FloorFailures
	for _, rep := range s.Modes {
		n += rep.Failures
	}
	return n
}
