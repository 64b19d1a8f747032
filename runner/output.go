package runner

import (
	"context"
	"sync"
	"time"
)

// outputQueue hands the output to Request.Output on a goroutine of its own, so that a callback
// that blocks never holds the decoder, nor the runner's deadline or its kill. Chunks wait in a
// bounded queue: the decoder waits while it is full (the stream backs up, as it would with a
// slow synchronous callback), until the runner abandons the queue (its deadline, the caller's
// cancellation, an infrastructure error): then nothing more is delivered and nothing waits.
//
// Memory: outputQueueChunks copies of at most one record's payload (6 KiB from the entrypoint,
// MaxLineBytes from anything else), about 400 KiB with the entrypoint's chunks.
type outputQueue struct {
	fn     func(Stream, []byte)
	chunks chan outputChunk
	done   chan struct{} // closed when the deliverer has returned
	stop   chan struct{} // closed to deliver nothing more
	// closeOnce and stopOnce close chunks and stop once each.
	closeOnce, stopOnce sync.Once
}

type outputChunk struct {
	s Stream
	p []byte
}

const outputQueueChunks = 64

// newOutputQueue delivers to fn; nil (delivering nothing) when fn is nil.
func newOutputQueue(fn func(Stream, []byte)) *outputQueue {
	if fn == nil {
		return nil
	}
	q := &outputQueue{fn: fn, chunks: make(chan outputChunk, outputQueueChunks), done: make(chan struct{}), stop: make(chan struct{})}
	go q.run()
	return q
}

func (q *outputQueue) run() {
	defer close(q.done)
	for {
		select {
		case c, ok := <-q.chunks:
			if !ok {
				return
			}
			select {
			case <-q.stop:
				return
			default:
			}
			q.fn(c.s, c.p)
		case <-q.stop:
			return
		}
	}
}

// deliver is what the decoders call with each chunk they keep (p is theirs: it is copied).
func (q *outputQueue) deliver() func(Stream, []byte) {
	if q == nil {
		return nil
	}
	return func(s Stream, p []byte) {
		select {
		case q.chunks <- outputChunk{s, append([]byte(nil), p...)}:
		case <-q.stop:
		}
	}
}

// flush waits until every chunk is delivered, but no longer than until deadline or ctx's end;
// then it abandons what is left.
func (q *outputQueue) flush(ctx context.Context, deadline <-chan time.Time) {
	if q == nil {
		return
	}
	q.closeOnce.Do(func() { close(q.chunks) })
	select {
	case <-q.done:
	case <-deadline:
	case <-ctx.Done():
	}
	q.abandon()
}

// abandon delivers nothing more and returns at once; a call of the callback in progress is not
// waited for.
func (q *outputQueue) abandon() {
	if q == nil {
		return
	}
	q.stopOnce.Do(func() { close(q.stop) })
}
