package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// modeNames are the table's words for the modes.
var modeNames = map[string]string{
	string(ModeCold):      "cold (a Job each)",
	string(ModeWarmReady): "warm, held ready",
	string(ModeWarmClaim): "warm, claimed on request",
	string(ModeSession):   "session (one, opened ahead)",
}

// Markdown writes suites as one table, a row per mode and one for the floor of the same run, then
// what the rows cannot say (session openings, the pool's burst and refill, failures).
func Markdown(w io.Writer, suites []*Suite) error {
	var b strings.Builder
	b.WriteString("| scenario | sandbox | ok | ran warm | p50 | p95 | p99 | max | first output p50 / p95 / p99 | p50 / floor p50 | throughput |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	var notes []string
	for _, s := range suites {
		scenario := s.Scenario
		if s.Arrivals != "" {
			scenario = fmt.Sprintf("**%s** (%s)", s.Scenario, s.Arrivals)
		}
		for _, mode := range s.Order {
			rep := s.Modes[mode]
			name := modeNames[mode]
			if name == "" {
				name = mode
			}
			ratio := "—"
			if rep.RatioP50 > 0 {
				ratio = fmt.Sprintf("%.2fx", rep.RatioP50)
			}
			fmt.Fprintf(&b, "| %s | %s | %d/%d | %d | %s | %s | %s | %s | %s | %s | %.2f/s |\n",
				scenario, name, rep.Executions-rep.Failures, rep.Executions, rep.Warm,
				duration(rep.Runner.P50), duration(rep.Runner.P95), duration(rep.Runner.P99), duration(rep.Runner.Max),
				firstOutput(rep.FirstOutput), ratio, rep.Runner.Throughput)
			scenario = ""
			if rep.SessionOpen > 0 {
				notes = append(notes, fmt.Sprintf("%s: the session opened in %s.", s.Scenario, duration(rep.SessionOpen)))
			}
			if rep.Failures > 0 {
				notes = append(notes, fmt.Sprintf("%s, %s: %d failed: %s", s.Scenario, mode, rep.Failures, strings.Join(rep.FirstErrors, "; ")))
			}
		}
		if f := s.Floor; f != nil {
			fmt.Fprintf(&b, "| %s | floor (bare Pod) | %d/%d | — | %s | %s | %s | %s | %s | 1 | %.2f/s |\n",
				scenario, f.Count, f.Count+s.FloorFailures,
				duration(f.P50), duration(f.P95), duration(f.P99), duration(f.Max), firstOutput(s.FloorFirstOutput), f.Throughput)
		}
		if s.FloorFailures > 0 {
			notes = append(notes, fmt.Sprintf("%s, floor: %d bare Pods failed.", s.Scenario, s.FloorFailures))
		}
		if bu := s.Burst; bu != nil {
			notes = append(notes, fmt.Sprintf("%s: a burst as large as the pool (%d at once, claimed on request) ran %d warm, p50 %s, max %s; the pool was full again %.1f s after it started.",
				s.Scenario, bu.Size, bu.Warm, duration(bu.P50), duration(bu.Max), bu.RefillSeconds))
		}
	}
	for _, n := range notes {
		b.WriteString("\n- " + n)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func firstOutput(s *Series) string {
	if s == nil || s.Count == 0 {
		return "—"
	}
	return fmt.Sprintf("%s / %s / %s", duration(s.P50), duration(s.P95), duration(s.P99))
}

// duration writes milliseconds below a second, seconds above, to three significant digits or so.
func duration(s Seconds) string {
	d := time.Duration(s)
	switch {
	case d <= 0:
		return "—"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
