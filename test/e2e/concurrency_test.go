//go:build integration || gke

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/random"

	"github.com/gkexec/gkexec/runner"
)

// concurrentExecutions is how many executions stage 7 runs at once through one runner.
const concurrentExecutions = 20

// testConcurrency is stage 7: executions in parallel through one runner (one set of shared
// watches) each get their own output back.
func testConcurrency(t *testing.T, tg *target) {
	opts := tg.options()
	// More sandboxes than a small node fits at once queue for capacity; that is allowed to take time.
	opts.StartTimeout = 10 * time.Minute
	r := tg.newRunner(t, opts)

	type outcome struct {
		token, id string
		res       runner.Result
		err       error
		took      time.Duration
	}
	outcomes := make([]outcome, concurrentExecutions)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range outcomes {
		token := fmt.Sprintf("token-%02d-%s", i, random.UniqueID())
		id := executionID(fmt.Sprintf("conc%02d", i))
		outcomes[i] = outcome{token: token, id: id}
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			// Each prints its token on both streams and in a file, after a moment, so that the
			// executions overlap.
			code := fmt.Sprintf("import sys, time\ntime.sleep(1)\nprint(%q)\nprint(%q, file=sys.stderr)\nopen('output/token', 'w').write(%q)\n", token, token, token)
			res, err := r.Execute(context.Background(), runner.Request{Code: code, ExecutionID: id})
			outcomes[i].res, outcomes[i].err, outcomes[i].took = res, err, time.Since(began)
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent executions in %s", concurrentExecutions, time.Since(start).Round(time.Second))

	pods := map[string]string{}
	var ids []string
	for _, o := range outcomes {
		ids = append(ids, o.id)
		if o.err != nil {
			t.Errorf("%s: %v", o.id, o.err)
			continue
		}
		want := o.token + "\n"
		if string(o.res.Stdout) != want || string(o.res.Stderr) != want {
			t.Errorf("%s: stdout %q, stderr %q; want its own token %q on both", o.id, o.res.Stdout, o.res.Stderr, o.token)
		}
		if len(o.res.Files) != 1 || string(o.res.Files[0].Data) != o.token {
			t.Errorf("%s: files %v, want its token", o.id, fileSummary(o.res.Files))
		}
		if o.res.ExecutionID != o.id || !strings.Contains(o.res.PodName, o.id) {
			t.Errorf("%s: result of execution %s, pod %s", o.id, o.res.ExecutionID, o.res.PodName)
		}
		if other, dup := pods[o.res.PodName]; dup {
			t.Errorf("%s and %s report the same pod %s", o.id, other, o.res.PodName)
		}
		pods[o.res.PodName] = o.id
	}
	tg.assertNoLeftovers(t, ids...)
}
