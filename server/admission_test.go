package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner"
)

func TestConcurrencyBoundAnswers429(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{noPod: true}, runner.Options{}, Options{MaxConcurrent: 2, RetryAfter: 3 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	first, second := hold(t, ctx, ts.url, "held-1"), hold(t, ctx, ts.url, "held-2")
	waitFor(t, "two executions in flight", func() bool { return ts.fc.jobCount() == 2 })

	a := postJSON(t, ts.url, ExecuteRequest{Code: "print(1)"})
	if a.status != http.StatusTooManyRequests || a.errorCode(t) != CodeBusy {
		t.Fatalf("third execution: %d %s, want 429 busy", a.status, a.body)
	}
	if ra := a.header.Get("Retry-After"); ra != "3" {
		t.Errorf("Retry-After %q, want 3", ra)
	}
	m := get(t, ts.url+PathMetrics)
	for _, line := range []string{"gkexec_serve_executions_in_flight 2", `gkexec_serve_executions_total{outcome="busy"} 1`, "gkexec_serve_max_concurrent 2"} {
		if !strings.Contains(string(m.body), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	cancel()
	<-first
	<-second
	waitFor(t, "cleanup", func() bool { return len(ts.fc.leftovers()) == 0 })
	// A client's cancel returns at once; the server gives a slot back after it has cleaned up.
	waitFor(t, "the slots given back", func() bool { return len(ts.sem) == 0 })
	// The slots are free again: the next execution is admitted (its Job appears).
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	third := hold(t, ctx, ts.url, "held-3")
	waitFor(t, "the next execution admitted", func() bool { return ts.fc.jobCount() == 1 })
	cancel()
	if a := <-third; a.status == http.StatusTooManyRequests {
		t.Errorf("still 429 after the executions ended")
	}
}

func TestExecutionIDInFlightIsAConflict(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{noPod: true}, runner.Options{}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := hold(t, ctx, ts.url, "same-id")
	waitFor(t, "the first execution", func() bool { return ts.fc.jobCount() == 1 })
	a := postJSON(t, ts.url, ExecuteRequest{Code: "print(2)", ExecutionID: "same-id"})
	if a.status != http.StatusConflict || a.errorCode(t) != CodeExecutionIDInUse {
		t.Fatalf("duplicate ID: %d %s, want 409", a.status, a.body)
	}
	cancel()
	<-first
	waitFor(t, "cleanup", func() bool { return len(ts.fc.leftovers()) == 0 })
}
