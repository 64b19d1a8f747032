//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// The code of the calls: each prints "started" as soon as it runs, so that the test knows it is
// in flight, and runs long enough to be running when the daemon stops: a warm call starts at once,
// and it must still run once the cold ones have started too (up to 10 s later on a loaded node; at
// 8 s a warm one-shot ended before the fault in a bare-clone run). The session's also uses
// the state set before the fault (x) and sets some (y) that is read after it.
const (
	oneShotCode   = "import time\nprint('started', flush=True)\ntime.sleep(25)\nprint('ok')\n"
	oneShotOut    = "started\nok\n"
	inSessionCode = "import time\nprint('started', flush=True)\ntime.sleep(25)\ny = x + 1\nprint(y)\n"
	inSessionOut  = "started\n8\n"
	lateCode      = "print('late')\n"
	lateOut       = "late\n"
	lateSessCode  = "print(x)\n"
	lateSessOut   = "7\n"
)

// call is one execution the fault tier makes, and what it must return.
//
// A call in flight when the daemon stops must return its real result: its sandbox is running,
// and the runner recovers its output however the stream to it broke (the container log read
// again, a session's execution replayed on a new attach).
//
// A call started while the daemon is down may instead return a clean retryable error, and must
// succeed when tried again once the daemon is back:
//   - ErrCluster: the API server did not answer (kube-apiserver down): nothing could be created,
//     claimed or leased, and the call says so at once rather than wait for the server;
//   - ErrSessionBusy (a session's call from another process): the session's execution in flight
//     holds its lease, as it would without a fault.
//
// Any other error is a failure: ErrSandboxFailed or ErrSessionEnded would tell the caller that a
// sandbox or a session that is still there is lost, ErrTimeout that the code ran too long.
type call struct {
	name string
	exec func(ctx context.Context, output func(runner.Stream, []byte)) (runner.Result, error)
	want string // the stdout of its real result
	kind string // the sandbox it must run in; "" for either
	late bool   // started during the fault

	started chan struct{} // closed once the code printed "started"
	once    sync.Once
	done    chan struct{}
	res     runner.Result
	err     error
	took    time.Duration
}

// oneShot is an Execute of r's; late: started during the fault.
func oneShot(name string, r *runner.Runner, kind string, late bool) *call {
	code, want := oneShotCode, oneShotOut
	if late {
		code, want = lateCode, lateOut
	}
	return newCall(name, kind, want, late, func(ctx context.Context, output func(runner.Stream, []byte)) (runner.Result, error) {
		return r.Execute(ctx, runner.Request{Code: code, Output: output})
	})
}

// inSession is an execution in s, in flight when the daemon stops.
func inSession(name string, s *runner.Session) *call {
	return newCall(name, s.Sandbox(), inSessionOut, false, func(ctx context.Context, output func(runner.Stream, []byte)) (runner.Result, error) {
		return s.Execute(ctx, runner.Request{Code: inSessionCode, Output: output})
	})
}

// lateInSession is an execution in s, started during the fault.
func lateInSession(name string, s *runner.Session) *call {
	return newCall(name, s.Sandbox(), lateSessOut, true, func(ctx context.Context, output func(runner.Stream, []byte)) (runner.Result, error) {
		return s.Execute(ctx, runner.Request{Code: lateSessCode, Output: output})
	})
}

func newCall(name, kind, want string, late bool, exec func(context.Context, func(runner.Stream, []byte)) (runner.Result, error)) *call {
	return &call{name: name, exec: exec, want: want, kind: kind, late: late, started: make(chan struct{}), done: make(chan struct{})}
}

// start runs the call on a goroutine of its own.
func (c *call) start() {
	var mu sync.Mutex
	var out []byte
	output := func(s runner.Stream, p []byte) {
		if s != runner.Stdout {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		out = append(out, p...)
		if strings.HasPrefix(string(out), "started\n") {
			c.once.Do(func() { close(c.started) })
		}
	}
	go func() {
		defer close(c.done)
		begin := time.Now()
		c.res, c.err = c.exec(context.Background(), output)
		c.took = time.Since(begin)
	}()
}

// awaitStarted waits until the call's code runs.
func (c *call) awaitStarted(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-c.started:
	case <-c.done:
		t.Fatalf("%s ended before the fault: %v, stdout %q", c.name, c.err, c.res.Stdout)
	case <-time.After(timeout):
		t.Fatalf("%s: its code did not start within %s", c.name, timeout)
	}
}

// check waits for the call and requires its real result.
func (c *call) check(t *testing.T) {
	t.Helper()
	<-c.done
	if problem := c.problem(); problem != "" {
		t.Errorf("%s (in flight): after %s, %s", c.name, c.took.Round(100*time.Millisecond), problem)
		return
	}
	how := c.res.Sandbox
	if t := c.res.Timings; how == runner.SandboxWarm && c.res.Session == "" && t.Claimed.Before(t.Requested) {
		how = "warm, held ready" // claimed before it was asked for
	}
	t.Logf("%s (in flight): its result, %s in %s, after %s", c.name, how, c.res.PodName, c.took.Round(100*time.Millisecond))
}

// checkOrRetry waits for a call started during the fault: its real result, or a retryable error
// and then its real result when tried again once the daemon is back. A call that failed otherwise
// is tried again too, to say whether what its error gave up (a sandbox, a session) was lost.
func (c *call) checkOrRetry(t *testing.T) {
	t.Helper()
	<-c.done
	first, took := c.err, c.took.Round(100*time.Millisecond)
	if first == nil {
		if problem := c.problem(); problem != "" {
			t.Errorf("%s: %s", c.name, problem)
			return
		}
		t.Logf("%s: its result, %s, after %s", c.name, c.res.Sandbox, took)
		return
	}
	begin := time.Now()
	c.res, c.err = c.exec(context.Background(), nil)
	c.took = time.Since(begin)
	again := c.problem()
	if again == "" {
		again = "its result"
	}
	switch {
	case !retryable(first):
		t.Errorf("%s: after %s, an error that is not retryable: %v (tried again once the daemon was back: %s)", c.name, took, first, again)
	case again != "its result":
		t.Errorf("%s: a retryable error after %s (%v), then tried again: %s", c.name, took, first, again)
	default:
		t.Logf("%s: a retryable error after %s (%v); tried again, its result", c.name, took, first)
	}
}

// problem says what is wrong with the call's outcome, "" when it is its real result.
func (c *call) problem() string {
	res := c.res
	switch {
	case c.err != nil:
		return "error " + c.err.Error()
	case string(res.Stdout) != c.want || res.ExitCode != 0:
		return fmt.Sprintf("exit %d, stdout %q, stderr %q; want exit 0, stdout %q", res.ExitCode, res.Stdout, res.Stderr, c.want)
	case c.kind != "" && res.Sandbox != c.kind:
		return "ran " + res.Sandbox + ", want " + c.kind
	case len(res.LeftBehind) > 0:
		return "left " + strings.Join(res.LeftBehind, ", ") + " behind"
	}
	return ""
}

// retryable: the errors a call started during the fault may return (see call).
func retryable(err error) bool {
	return errors.Is(err, runner.ErrCluster) || errors.Is(err, runner.ErrSessionBusy)
}
