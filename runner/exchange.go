package runner

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/sandbox"
)

// reopenBackoff is how long the runner waits between two attempts to read a sandbox's output
// again after its stream broke, at most.
const reopenBackoff = 2 * time.Second

// exchange runs x's request in sb: it opens the sandbox's channel, decodes the framed records
// until the end record, and enforces the runner's own deadline (Timeout plus a grace for the
// sandbox to report its own timeout). If the stream ends without an end record it recovers
// (recover). It returns only infrastructure errors; what the code did is left in x for finish.
func (r *Runner) exchange(ctx context.Context, x *execution, sb sandbox.Sandbox) error {
	q := newOutputQueue(x.req.Output)
	out := wire.NewStreamer(q.deliver())
	dec := wire.NewDecoder(r.opts.MaxOutputBytes, r.opts.MaxFileBytes, out)
	x.dec = dec
	runDeadline := time.NewTimer(x.timeout + r.env.KillGrace)
	defer runDeadline.Stop()

	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	readDone := make(chan error, 1)
	go func() {
		stream, err := sb.Open(streamCtx, &x.Execution)
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
		q.abandon()
		stopStream()
		<-readDone
		x.killed = true
		x.mark(&x.finished)
		return nil
	case <-ctx.Done():
		q.abandon()
		stopStream()
		<-readDone
		return ctx.Err()
	}
	switch {
	case dec.End() != nil:
		x.mark(&x.finished)
		x.logsRead = x.finished
	case readErr != nil && (ctx.Err() != nil || errors.Is(readErr, ErrForbidden)):
		q.abandon()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return readErr
	default:
		x.streamErr = readErr
		if err := r.recover(ctx, x, sb, out, runDeadline.C); err != nil || x.killed {
			q.abandon()
			return err
		}
	}
	// The result is in: hand the callback what it has not had yet, but not past the deadline.
	q.flush(ctx, runDeadline.C)
	return nil
}

// recover finds the rest of an execution whose stream ended without an end record. Either the
// sandbox ended (out of memory, deleted, evicted) or only the stream broke (an API server or
// kubelet restart, a proxy): the runner reads the sandbox's output again — a cold or warm
// sandbox's container log, followed while it runs; a session's execution replayed on a new
// attach — while it watches for the container to end, until the end record comes, the kubelet
// says how the container ended, the Pod is gone, or the runner's deadline passes.
//
// The re-read decodes beside the first decoder rather than replacing it, for two reasons. It is
// not always a superset of what the first read: a warm sandbox's first stream is the attach
// stream (the entrypoint's stdout from the attach on), the re-read its container log (from the
// container's start), so neither byte offsets nor contents line up. And a re-read can break
// again short of where the first stopped; then the first is the better partial result, and it
// is kept. The cost is bounded: one more decoder (2·MaxOutputBytes + 2·MaxFileBytes + 112 KiB)
// at a time, on this rare path only; the Streamer delivers only what the first read did not.
func (r *Runner) recover(ctx context.Context, x *execution, sb sandbox.Sandbox, out *wire.Streamer, deadline <-chan time.Time) error {
	// ended takes the container's end as the kubelet reports it: its whole output is there to
	// read once more, unfollowed.
	ended := func(term *corev1.ContainerStateTerminated) error {
		x.mark(&x.finished)
		if term != nil {
			if stream := sb.Reopen(ctx, false); stream != nil {
				last := wire.NewDecoder(r.opts.MaxOutputBytes, r.opts.MaxFileBytes, out)
				if last.Decode(stream) == nil && last.End() != nil {
					x.dec = last
				}
				stream.Close()
			}
		}
		x.term = term
		x.mark(&x.logsRead)
		return nil
	}
	over := func() (bool, *corev1.ContainerStateTerminated) {
		pod, gone, _, _ := sb.Tracker().Snapshot()
		term := diagnose.Terminated(pod)
		return term != nil || gone || diagnose.PodFinished(pod), term
	}
	backoff := 100 * time.Millisecond
	delivered := r.watchDelivery(x, sb)
	for {
		// A session's sandbox attaches anew to reopen, and is then followed by a new tracker.
		t := sb.Tracker()
		if done, term := over(); done {
			return ended(term)
		}
		attempt, stop := context.WithCancel(ctx)
		again := wire.NewDecoder(r.opts.MaxOutputBytes, r.opts.MaxFileBytes, out)
		read := make(chan struct{})
		go func() {
			defer close(read)
			if stream := sb.Reopen(attempt, true); stream != nil {
				defer stream.Close()
				_ = again.Decode(stream)
			}
		}()
		var result error
		finished := false
	wait:
		for {
			select {
			case <-read:
				if again.End() != nil {
					x.dec = again
					x.mark(&x.finished)
					x.logsRead = x.finished
					finished = true
				}
				break wait
			case <-t.Wake():
				if done, term := over(); done {
					stop()
					<-read
					result, finished = ended(term), true
					break wait
				}
			case <-delivered.due:
				if delivered.lost(ctx, again, over) {
					stop()
					<-read
					return errUndelivered
				}
			case <-deadline:
				stop()
				<-read
				x.killed, finished = true, true
				x.mark(&x.finished)
				break wait
			case <-ctx.Done():
				stop()
				<-read
				result, finished = ctx.Err(), true
				break wait
			}
		}
		stop()
		if finished {
			return result
		}
		select {
		case <-time.After(backoff):
			backoff = min(backoff*2, reopenBackoff)
		case <-t.Wake():
		case <-deadline:
			x.killed = true
			x.mark(&x.finished)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// undeliveredAfter: a warm one-shot's request is taken as lost with its broken attach when, this
// long after it was sent, the sandbox's log still holds no begin record while its Pod runs on. An
// entrypoint takes a whole request in milliseconds.
const undeliveredAfter = 3 * time.Second

// errUndelivered: the request never reached the sandbox, so nothing ran; Execute runs it cold.
var errUndelivered = errors.New("the request never reached the warm sandbox")

// delivery finds out, for a warm one-shot whose stream broke before the sandbox said it had the
// whole request (its begin record), whether the request reached it at all: the attach that broke
// may have lost it (an API server restart as the runner took a sandbox it held ready).
type delivery struct {
	r   *Runner
	sb  sandbox.Sandbox
	due <-chan time.Time // when to look at the log; nil once the answer is known
}

func (r *Runner) watchDelivery(x *execution, sb sandbox.Sandbox) *delivery {
	d := &delivery{r: r, sb: sb}
	if sb.Kind() == sandbox.Warm && x.session == "" && !x.Marks.Started.IsZero() && !said(x.dec) {
		d.due = time.After(time.Until(x.Marks.Started.Add(undeliveredAfter)))
	}
	return d
}

// lost reads the sandbox's log once more: the request is lost if the log has no begin record
// while the Pod runs on. Until the log can be read (the API server is away), it looks again every
// second.
func (d *delivery) lost(ctx context.Context, following *wire.Decoder, over func() (bool, *corev1.ContainerStateTerminated)) bool {
	if said(following) {
		d.due = nil
		return false
	}
	log := d.sb.Reopen(ctx, false)
	if log == nil {
		d.due = time.After(time.Second)
		return false
	}
	defer log.Close()
	seen := wire.NewDecoder(d.r.opts.MaxOutputBytes, d.r.opts.MaxFileBytes, nil)
	_ = seen.Decode(log)
	if said(seen) {
		d.due = nil
		return false
	}
	if ended, _ := over(); ended {
		d.due = nil // the container's end says more; recover reads it
		return false
	}
	return true
}

// said: the sandbox said something of the execution — it had the request (its begin record) or
// the code wrote something.
func said(d *wire.Decoder) bool {
	o := d.Output()
	return d.Begun() || len(o.Stdout) > 0 || len(o.Stderr) > 0 || len(o.Files) > 0 || d.End() != nil
}
