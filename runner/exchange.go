package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/track"
)

// exchange runs x's request in sb: it opens the sandbox's channel, decodes the framed records
// until the end record, and enforces the runner's own deadline (Timeout plus a grace for the
// sandbox to report its own timeout). If the stream ends without an end record (the sandbox was
// OOM-killed or deleted, or the stream broke), the container's final state explains why. It
// returns only infrastructure errors; what the code did is left in x for finish.
func (r *Runner) exchange(ctx context.Context, x *execution, sb sandbox) error {
	out := wire.NewStreamer(x.req.Output)
	dec := wire.NewDecoder(r.opts.MaxOutputBytes, r.opts.MaxFileBytes, out)
	x.dec = dec
	runDeadline := time.NewTimer(x.timeout + r.killGrace)
	defer runDeadline.Stop()

	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	readDone := make(chan error, 1)
	go func() {
		stream, err := sb.open(streamCtx, x)
		if err != nil {
			readDone <- err
			return
		}
		defer stream.Close()
		readDone <- dec.Decode(stream)
	}()

	var readErr error
	select {
	case readErr = <-readDone:
	case <-runDeadline.C:
		stopStream()
		<-readDone
		x.killed = true
		x.mark(&x.timings.Finished)
		return nil
	case <-ctx.Done():
		stopStream()
		<-readDone
		return ctx.Err()
	}
	if dec.End() != nil {
		x.mark(&x.timings.Finished)
		x.timings.LogsRead = x.timings.Finished
		return nil
	}
	if readErr != nil && (ctx.Err() != nil || errors.Is(readErr, ErrForbidden)) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return readErr
	}
	x.streamErr = readErr
	// No end record: find out from the kubelet how the container ended.
	term, err := r.awaitTermination(ctx, sb.tracker())
	x.mark(&x.timings.Finished)
	if err != nil {
		return err
	}
	if term != nil {
		// A stream can break before the container ends (API server or kubelet restarts); the
		// finished container's whole output is still there to read once more.
		//
		// The re-read decodes beside the first decoder rather than replacing it, for two reasons.
		// It is not always a superset of what the first read: a warm sandbox's first stream is
		// the attach stream (the entrypoint's stdout from the attach on), the re-read its
		// container log (stdout and stderr merged, from the container's start), so neither byte
		// offsets nor contents line up. And even a cold sandbox's re-read, the same log from its
		// start, can break again short of where the first stopped; then the first is the better
		// partial result, and it is kept. The cost is bounded and brief: one more decoder
		// (2·MaxOutputBytes + 2·MaxFileBytes + 112 KiB, see decoder) for this rare path only,
		// and the loser is garbage as soon as the choice is made, before finish copies stdout
		// and stderr into the Result.
		if stream := sb.reopen(ctx); stream != nil {
			again := wire.NewDecoder(r.opts.MaxOutputBytes, r.opts.MaxFileBytes, out) // out delivers only what the first read did not
			if again.Decode(stream) == nil && again.End() != nil {
				x.dec = again
			}
			stream.Close()
		}
	}
	x.term = term
	x.mark(&x.timings.LogsRead)
	return nil
}

// awaitTermination waits for the kubelet to report the sandbox container's final state: the
// current state for a Job's Pod, the last one for a pool Pod whose container was restarted.
func (r *Runner) awaitTermination(ctx context.Context, t *track.Tracker) (*corev1.ContainerStateTerminated, error) {
	deadline := time.After(r.exitGrace)
	for {
		pod, gone, _, _ := t.Snapshot()
		if term := diagnose.Terminated(pod); term != nil {
			return term, nil
		}
		if gone || diagnose.PodFinished(pod) {
			return nil, nil
		}
		select {
		case <-t.Wake():
		case <-deadline:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// finish is where every execution's Result is completed, from the facts gathered in x and the
// error (if any) that ended it: the one place that decides exit code, signal, timeout, OOM and
// which error Execute returns.
func (r *Runner) finish(ctx context.Context, x *execution, err error) (Result, error) {
	res := Result{
		ExecutionID: x.req.ExecutionID, Session: x.session, Sandbox: x.kind, PodName: x.pod, NodeName: x.node,
		Timings: x.timings, LeftBehind: x.leftBehind, Files: []File{},
	}
	if x.dec != nil {
		res.takeOutput(x.dec.Output())
	}
	ns, pod := r.opts.Namespace, x.pod
	if err == nil {
		switch {
		case x.killed:
			res.TimedOut, res.ExitCode, res.Signal = true, 137, 9
			err = fmt.Errorf("%w: pod %s/%s ran past %s and was killed", ErrTimeout, ns, pod, x.timeout)
		case x.dec != nil && x.dec.End() != nil:
			switch {
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
		x.log.Warn("cleanup could not delete everything; run `gkexec gc`", "left_behind", res.LeftBehind)
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
