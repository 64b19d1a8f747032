package mcp

import (
	"errors"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/egress"
	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
)

// Options.AllowDomains narrows the egress of every sandbox the tools start, run_code's and
// open_session's, from the sandbox's creation on.
func TestAllowDomainsNarrowEverySandboxTheToolsStart(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{Steps: coldPod, Log: coldLog("ok\n", 0, false)}, runner.Options{NoWarmPool: true})
	_, cs := c.clientOf(Options{AllowDomains: []string{"pypi.org", "*.pythonhosted.org"}}, nil)
	if res := call(t, cs, ToolRunCode, map[string]any{"code": "print('ok')"}); res.IsError {
		t.Fatalf("run_code: %s", text(res))
	}
	const want = "pypi.org *.pythonhosted.org"
	jobs := createdJobs(c)
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs created, want 1", len(jobs))
	}
	if got := jobs[0].Spec.Template.Annotations[egress.AnnotationAllow]; got != want {
		t.Errorf("run_code's sandbox allows %q, want %q", got, want)
	}
	// The session's Job is created narrowed too (whether its sandbox answers here does not matter:
	// the narrowing is on it from the start).
	_ = call(t, cs, ToolOpenSession, map[string]any{})
	jobs = createdJobs(c)
	if len(jobs) != 2 {
		t.Fatalf("%d Jobs created, want run_code's and open_session's", len(jobs))
	}
	if got := jobs[1].Spec.Template.Annotations[egress.AnnotationAllow]; got != want {
		t.Errorf("open_session's sandbox allows %q, want %q", got, want)
	}
}

// A bad entry fails New, naming it, before any call.
func TestAllowDomainsAreCheckedAtStart(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{NoWarmPool: true})
	_, err := New(Options{Runner: c.run, AllowDomains: []string{"*"}})
	if !errors.Is(err, ErrInvalidOptions) || !contains(err.Error(), "AllowDomains") {
		t.Errorf("New with AllowDomains [*]: %v, want ErrInvalidOptions naming AllowDomains", err)
	}
}

// createdJobs are the Jobs the runner created, in order.
func createdJobs(c *cluster) []*batchv1.Job {
	var jobs []*batchv1.Job
	for _, a := range c.fc.Client.Actions() {
		if ca, ok := a.(k8stesting.CreateAction); ok && a.GetResource().Resource == "jobs" {
			if j, ok := ca.GetObject().(*batchv1.Job); ok {
				jobs = append(jobs, j)
			}
		}
	}
	return jobs
}
