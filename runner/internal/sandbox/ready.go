package sandbox

import (
	"context"
	"sync"
	"time"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// keepReady holds Config.WarmPoolReady sandboxes claimed and attached, refilling as they are
// taken and as the pool's Pods become ready, and replacing those held past WarmPoolHold.
func (w *WarmSource) keepReady() {
	defer w.stopped.Done()
	tick := time.NewTicker(min(w.e.WarmPoolHold/4, heldKeepalive/3))
	defer tick.Stop()
	for {
		w.fill()
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-w.e.Hub.PoolChanged():
		case <-tick.C:
			w.expire()
		}
	}
}

// heldKeepalive is how often, at least, a runner pings the sandboxes it holds ready: one whose
// pings stop (its runner is gone) leaves, and is deleted as garbage by any runner, or gc.
const heldKeepalive = 15 * time.Second

func (w *WarmSource) fill() {
	for failures := 0; failures < claimAttempts; {
		w.mu.Lock()
		n, waiters := len(w.ready), w.refillWaiters
		w.mu.Unlock()
		// Executions waiting for a refill get it first; the holding resumes after them.
		if n >= w.e.WarmPoolReady || waiters > 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), AttachTimeout)
		var marks Marks
		w.mu.Lock()
		w.filling++
		// A sandbox that replaces one an execution took is demand on the pool; one held at the
		// start, or replacing one held past its time, is not.
		claimFor := podspec.ClaimedForRenewal
		if w.owed > 0 {
			w.owed--
			claimFor = podspec.ClaimedForReady
		}
		w.mu.Unlock()
		a, err := w.ClaimAndAttach(ctx, Claim{For: claimFor, Hold: w.e.WarmPoolHold, Keepalive: heldKeepalive}, &marks)
		cancel()
		w.mu.Lock()
		w.filling--
		if err != nil && claimFor == podspec.ClaimedForReady {
			w.owed++
		}
		w.mu.Unlock()
		if err != nil {
			w.readied()
			failures++
			if fresh, _, _ := w.candidates(); len(fresh) == 0 {
				return
			}
			continue
		}
		sb := &warmSandbox{Attachment: a, claimed: marks.Claimed, attached: marks.Attached}
		w.mu.Lock()
		select {
		case <-w.stop:
			w.mu.Unlock()
			sb.Release(w.e.Log)
			return
		default:
		}
		w.ready = append(w.ready, sb)
		w.mu.Unlock()
		w.readied()
	}
}

// readied wakes the executions waiting for a sandbox being held ready: it is there, or failed.
func (w *WarmSource) readied() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.change)
	w.change = make(chan struct{})
}

// takeReady returns the oldest held sandbox whose stream still works. When none is held but one
// is being claimed and attached for holding (and no other execution waits for it), it waits for
// that one rather than claim a second Pod: right after Start, or a moment after the last was
// taken, the next is usually a few hundred milliseconds away.
func (w *WarmSource) takeReady(ctx context.Context) *warmSandbox {
	defer func() {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	waited := false
	for {
		for len(w.ready) > 0 {
			sb := w.ready[0]
			w.ready = w.ready[1:]
			if !sb.Broken() {
				w.owed = min(w.owed+1, w.e.WarmPoolReady)
				return sb
			}
			w.e.Background(func() { sb.Release(w.e.Log) })
		}
		if waited || w.filling <= w.waiting {
			return nil
		}
		w.waiting++
		change := w.change
		w.mu.Unlock()
		select {
		case <-change:
		case <-ctx.Done():
		case <-w.stop:
		}
		w.mu.Lock()
		w.waiting--
		waited = true
	}
}

// expire releases held sandboxes older than WarmPoolHold, or whose stream broke, and pings the
// others with the keepalive. They are out of the ready list while pinged: an execution never
// reads a stream a ping reads.
func (w *WarmSource) expire() {
	w.mu.Lock()
	held := w.ready
	w.ready = nil
	w.mu.Unlock()
	var keep, drop []*warmSandbox
	for _, sb := range held {
		if sb.Broken() || time.Since(sb.claimed) > w.e.WarmPoolHold {
			drop = append(drop, sb)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), AttachTimeout)
		err := sb.Ping(ctx, wire.PingRequest{KeepaliveSeconds: heldKeepalive.Seconds()})
		cancel()
		if err != nil {
			drop = append(drop, sb)
			continue
		}
		keep = append(keep, sb)
	}
	w.mu.Lock()
	w.ready = append(keep, w.ready...)
	w.mu.Unlock()
	for _, sb := range drop {
		sb.Release(w.e.Log)
	}
}

// Close stops refilling and deletes the held sandboxes.
func (w *WarmSource) Close() {
	w.mu.Lock()
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.mu.Unlock()
	w.stopped.Wait()
	w.mu.Lock()
	held := w.ready
	w.ready = nil
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, sb := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sb.Release(w.e.Log)
		}()
	}
	wg.Wait()
}

// Closed reports whether Close stopped the source.
func (w *WarmSource) Closed() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}
