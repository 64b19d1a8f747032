package bench

import (
	"fmt"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// Scenario is how a run's executions arrive: the three modes of the public sandbox benchmarks
// (computesdk/benchmarks), so that gkexec's figures read against theirs.
type Scenario string

const (
	// Sequential: one execution at a time, each started when the one before returned (or at most
	// one every Pace, when set). The baseline: no contention.
	Sequential Scenario = "sequential"
	// Staggered: one execution starts every Pace (default 200 ms), none waits for another, so the
	// load ramps up as long as executions take longer than the stagger.
	Staggered Scenario = "staggered"
	// Burst: every execution starts at once.
	Burst Scenario = "burst"
)

// Scenarios lists them in the order a full run measures them.
var Scenarios = []Scenario{Sequential, Staggered, Burst}

const (
	// ScenarioExecutions is how many executions a scenario measures per mode by default, as the
	// public benchmarks do.
	ScenarioExecutions = 100
	// DefaultStagger spaces a staggered scenario's arrivals.
	DefaultStagger = 200 * time.Millisecond
)

// FirstOutputCode is what a scenario runs by default: it prints at once, then works a little, so
// that the time to the first streamed chunk of output (Request.Output) and the time to the result
// are two different figures. The floor runs it too.
const FirstOutputCode = "print(1, flush=True)\nimport time\ntime.sleep(0.2)\n"

// ParseScenario accepts a scenario's name.
func ParseScenario(name string) (Scenario, error) {
	for _, s := range Scenarios {
		if string(s) == name {
			return s, nil
		}
	}
	return "", fmt.Errorf("%w: scenario %q: want sequential, staggered or burst", runner.ErrInvalidOptions, name)
}

// Arrivals is the concurrency and pace of n executions arriving as the scenario says; pace is the
// caller's (0 for the scenario's default). A burst has no pace.
func (s Scenario) Arrivals(n int, pace time.Duration) (concurrency int, spacing time.Duration, err error) {
	if n <= 0 {
		return 0, 0, fmt.Errorf("%w: scenario %s: executions %d: must be positive", runner.ErrInvalidOptions, s, n)
	}
	if pace < 0 {
		return 0, 0, fmt.Errorf("%w: scenario %s: pace %s: must not be negative", runner.ErrInvalidOptions, s, pace)
	}
	switch s {
	case Sequential:
		return 1, pace, nil
	case Staggered:
		if pace == 0 {
			pace = DefaultStagger
		}
		return n, pace, nil
	case Burst:
		if pace != 0 {
			return 0, 0, fmt.Errorf("%w: scenario burst starts every execution at once: a pace (%s) makes it staggered", runner.ErrInvalidOptions, pace)
		}
		return n, 0, nil
	}
	return 0, 0, fmt.Errorf("%w: scenario %q: want sequential, staggered or burst", runner.ErrInvalidOptions, string(s))
}

// Describe says in a few words how the scenario's executions arrive.
func (s Scenario) Describe(n int, pace time.Duration) string {
	switch s {
	case Sequential:
		if pace > 0 {
			return fmt.Sprintf("%d, one at a time, one every %s", n, pace)
		}
		return fmt.Sprintf("%d, one at a time", n)
	case Staggered:
		return fmt.Sprintf("%d, one every %s", n, pace)
	case Burst:
		return fmt.Sprintf("%d at once", n)
	}
	return fmt.Sprintf("%d", n)
}
