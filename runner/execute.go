package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
)

// execution is one Execute call in flight: its request and the facts gathered about it. Sources
// (the embedded sandbox.Execution) and exchange add facts; finish alone turns them into the Result.
type execution struct {
	sandbox.Execution
	// req is the caller's request, with its ID filled in.
	req     Request
	timeout time.Duration
	// requested, finished, logsRead and cleanedUp: the runner's own phase marks (the source's are
	// in Marks).
	requested, finished, logsRead, cleanedUp time.Time
	// dec holds what the sandbox said.
	dec *wire.Decoder
	// term is how the container ended, when the stream ended without an end record.
	term *corev1.ContainerStateTerminated
	// killed: the runner's own deadline passed and it deleted the sandbox.
	killed bool
	// streamErr: why the stream ended early, if it did.
	streamErr error
	// session is the session the execution ran in, if any; sessionOver why it ended with this
	// execution.
	session, sessionOver string
	// egress is what the egress gateway did for the sandbox, if the namespace has one.
	egress *Egress
}

func (x *execution) mark(at *time.Time) { *at = time.Now() }

// restart forgets the sandbox x was sent to, whose request never reached it, for another.
func (x *execution) restart() {
	x.dec, x.term, x.killed, x.streamErr = nil, nil, false, nil
	x.finished, x.logsRead = time.Time{}, time.Time{}
	x.Marks.Claimed, x.Marks.Attached, x.Marks.Started = time.Time{}, time.Time{}, time.Time{}
	x.Kind, x.Pod, x.Node = "", "", ""
}

// codeEnded: the sandbox reported the end of the code, and the runner did not have to kill it.
func (x *execution) codeEnded() bool { return x.dec != nil && x.dec.End() != nil && !x.killed }

// timings are the phase marks, the source's and the runner's, as the Result reports them.
func (x *execution) timings() Timings {
	m := x.Marks
	return Timings{Requested: x.requested, Admitted: m.Admitted, Created: m.Created, Claimed: m.Claimed,
		Scheduled: m.Scheduled, Attached: m.Attached, Started: m.Started, Finished: x.finished,
		LogsRead: x.logsRead, CleanedUp: x.cleanedUp}
}

// CheckRequest validates a request without running it: the same checks Execute makes before it
// creates anything.
func (r *Runner) CheckRequest(req Request) error {
	req, err := req.validate(&r.opts, NewExecutionID)
	if err != nil {
		return err
	}
	if n := podspec.RequestSize(wire.Request{Code: req.Code, Files: req.Files, Language: req.Language}); n > podspec.MaxConfigMapBytes {
		return fmt.Errorf("%w: %w: code and input files are %s, more than a ConfigMap holds (%s); pass large inputs another way or split the work",
			ErrInvalidRequest, ErrRequestTooLarge, describeSize(n), describeSize(podspec.MaxConfigMapBytes))
	}
	return nil
}

// Execute runs req.Code in a sandbox and returns what it produced. A non-zero exit code is a
// result, not an error. On timeout it returns the partial Result and an error wrapping ErrTimeout.
// The sandbox comes from the warm pool when a matching Pod is ready there, else from a new Job; it
// serves this one execution and is deleted (unless Options.KeepObjects) on every path: before
// Execute returns, except a warm Pod whose code ended, deleted just after (Close waits for it;
// what cannot be deleted then is counted in CleanupFailures). What could not be deleted before
// Execute returned is named in Result.LeftBehind.
func (r *Runner) Execute(ctx context.Context, req Request) (Result, error) {
	x, err := r.prepare(req)
	if err != nil {
		return r.finish(ctx, x, err)
	}
	end, err := r.begin(x.req.ExecutionID)
	if err != nil {
		return r.finish(ctx, x, err)
	}
	defer end()
	defer x.Leave()
	if _, err := r.watching(ctx); err != nil {
		return r.finish(ctx, x, err)
	}
	sb, err := r.acquire(ctx, x)
	if err != nil {
		return r.finish(ctx, x, err)
	}
	err = r.exchange(ctx, x, sb)
	if errors.Is(err, errUndelivered) {
		// Nothing ran in the warm sandbox. Delete it, so that the lost request can never run there
		// after all, and run the execution cold, in the same call.
		x.Log.Info("the warm sandbox never got the request: running it cold", "pod", x.Pod)
		left := sb.Release(x.Log)
		r.countLeft(left)
		x.restart()
		x.LeftBehind = left
		if sb, err = r.cold.Acquire(ctx, &x.Execution); err != nil {
			return r.finish(ctx, x, err)
		}
		err = r.exchange(ctx, x, sb)
	}
	// Read while the sandbox is deleted: a port-forward costs about what a delete does.
	egressRead := make(chan struct{})
	go func() { defer close(egressRead); r.readEgress(ctx, x, nil) }()
	switch {
	case r.opts.KeepObjects:
	case sb.Kind() == sandbox.Warm && err == nil && x.codeEnded():
		// The code is over and the Pod, out of the pool and with its stdin closed, can never serve
		// again: deleting it need not delay the result. Close waits for it; a Pod that cannot be
		// deleted expires at the deadline set when it was claimed.
		r.background(func() { r.countLeft(sb.Release(x.Log)) })
	default:
		left := sb.Release(x.Log)
		if len(left) == 0 {
			x.mark(&x.cleanedUp)
		}
		x.LeftBehind = append(x.LeftBehind, left...)
		r.countLeft(left)
	}
	<-egressRead
	return r.finish(ctx, x, err)
}

// prepare checks req and starts the execution's facts: when it was asked for, its ID (a random
// one if none), its timeout and its logger.
func (r *Runner) prepare(req Request, logAttrs ...any) (*execution, error) {
	x := &execution{req: req}
	x.Log = r.log
	x.mark(&x.requested)
	if err := r.CheckRequest(req); err != nil {
		return x, err
	}
	if x.req.ExecutionID == "" {
		x.req.ExecutionID = NewExecutionID()
	}
	x.timeout = x.req.timeout(&r.opts)
	x.Log = r.log.With(append(logAttrs, "execution", x.req.ExecutionID, "namespace", r.opts.Namespace)...)
	x.EgressAllow = x.req.AllowDomains
	x.Request = wire.Request{ExecutionID: x.req.ExecutionID, Code: x.req.Code, Files: x.req.Files, Language: x.req.Language, Timeout: x.timeout,
		MaxOutput: r.opts.MaxOutputBytes, MaxFile: r.opts.MaxFileBytes, MaxProcesses: r.opts.MaxProcesses}
	return x, nil
}

// acquire takes a warm sandbox when one fits, and otherwise makes a cold one: an empty pool, no
// pool, or a request the pool cannot serve never fails an execution.
func (r *Runner) acquire(ctx context.Context, x *execution) (sandbox.Sandbox, error) {
	r.mu.Lock()
	warm := r.warm
	r.mu.Unlock()
	if warm != nil {
		sb, err := warm.Acquire(ctx, &x.Execution)
		if err == nil {
			r.pool.claimed()
			return sb, nil
		}
		if !errors.Is(err, sandbox.ErrNotServed) {
			return nil, err
		}
		x.Log.Debug("cold start", "why", err)
		x.Marks.Claimed, x.Marks.Attached = time.Time{}, time.Time{}
		x.PoolMiss = r.pool.missed(err)
	}
	return r.cold.Acquire(ctx, &x.Execution)
}

// finish is where every execution's Result is completed, from the facts gathered in x and the
// error (if any) that ended it: the one place that decides exit code, signal, timeout, OOM and
// which error Execute returns.
func (r *Runner) finish(ctx context.Context, x *execution, err error) (Result, error) {
	res := Result{
		ExecutionID: x.req.ExecutionID, Session: x.session, Sandbox: x.Kind, PodName: x.Pod, NodeName: x.Node,
		Timings: x.timings(), LeftBehind: x.LeftBehind, Files: []File{}, Egress: x.egress,
	}
	if x.dec != nil {
		res.takeOutput(x.dec.Output())
	}
	ns, pod := r.opts.Namespace, x.Pod
	if err == nil {
		switch {
		case x.killed:
			res.TimedOut, res.ExitCode, res.Signal = true, 137, 9
			err = fmt.Errorf("%w: pod %s/%s ran past %s and was killed", ErrTimeout, ns, pod, x.timeout)
		case x.dec != nil && x.dec.End() != nil:
			switch why := x.dec.End().Refused; {
			case why != "" && x.session != "":
				err = fmt.Errorf("%w: the sandbox refused it: %s; nothing ran, and session %s goes on", ErrInvalidRequest, why, x.session)
			case why != "":
				err = fmt.Errorf("%w: the sandbox refused it: %s; nothing ran (pod %s/%s)", ErrInvalidRequest, why, ns, pod)
			case res.TimedOut && x.session != "" && x.sessionOver == "":
				err = fmt.Errorf("%w: the code ran past %s and was interrupted; session %s goes on (pod %s/%s)", ErrTimeout, x.timeout, x.session, ns, pod)
			case res.TimedOut:
				err = fmt.Errorf("%w: the code ran past %s and was killed (pod %s/%s)", ErrTimeout, x.timeout, ns, pod)
			}
		case x.term == nil:
			err = fmt.Errorf("%w: pod %s/%s: the output ended without a result and the pod is gone%s", ErrSandboxFailed, ns, pod, streamCause(x.streamErr))
		case x.term.Reason == "OOMKilled":
			// The kernel's OOM killer sends SIGKILL. Under gVisor the whole sandbox goes and the
			// runtime reports exit code 128; report what a process killed that way exits with
			// everywhere else.
			res.OOMKilled, res.ExitCode, res.Signal = true, 137, 9
		case x.term.Reason == "DeadlineExceeded":
			res.TimedOut, res.ExitCode = true, int(x.term.ExitCode)
			err = fmt.Errorf("%w: pod %s/%s reached its deadline", ErrTimeout, ns, pod)
		default:
			res.ExitCode = int(x.term.ExitCode)
			err = fmt.Errorf("%w: pod %s/%s: the sandbox ended without a result: %s exit %d %s%s",
				ErrSandboxFailed, ns, pod, x.term.Reason, x.term.ExitCode, x.term.Message, streamCause(x.streamErr))
		}
	}
	if x.sessionOver != "" {
		if err == nil {
			err = fmt.Errorf("%w: session %s: %s; its sandbox was deleted", ErrSessionEnded, x.session, x.sessionOver)
		} else if !errors.Is(err, ErrSessionEnded) {
			err = fmt.Errorf("%w: session %s: %s; its sandbox was deleted: %w", ErrSessionEnded, x.session, x.sessionOver, err)
		}
	}
	// Whatever step the caller's cancellation interrupted, it is reported as a cancellation.
	if err != nil && ctx.Err() != nil && !errors.Is(err, ErrCanceled) && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrSessionEnded) {
		err = fmt.Errorf("%w: execution %s in namespace %s: %w", ErrCanceled, x.req.ExecutionID, ns, ctx.Err())
	}
	if len(res.LeftBehind) > 0 {
		x.Log.Warn("cleanup could not delete everything; run `gkexec gc`", "left_behind", res.LeftBehind)
	}
	return res, err
}

// streamCause says why the output stream ended early, when it broke rather than ended.
func streamCause(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf(" (reading its output: %v)", err)
}
