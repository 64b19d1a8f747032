package wire

import "fmt"

// Stream is one of the code's two output streams.
type Stream uint8

const (
	Stdout Stream = 1
	Stderr Stream = 2
)

func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return fmt.Sprintf("stream(%d)", uint8(s))
}

// Streamer hands the kept bytes of stdout and stderr to a callback as they are decoded. It counts
// what it delivered per stream, so that a second decoder reading the same output again (the
// re-read of a broken stream) delivers only what the first did not.
type Streamer struct {
	fn   func(Stream, []byte)
	sent [3]int // by Stream: bytes delivered
}

// NewStreamer delivers to fn; nil when fn is nil (a nil Streamer delivers nothing).
func NewStreamer(fn func(Stream, []byte)) *Streamer {
	if fn == nil {
		return nil
	}
	return &Streamer{fn: fn}
}

// deliver hands over kept, the bytes a decoder just appended to stream s at offset at.
func (o *Streamer) deliver(s Stream, at int, kept []byte) {
	if o == nil {
		return
	}
	if skip := o.sent[s] - at; skip > 0 {
		kept = kept[min(skip, len(kept)):]
		at += skip
	}
	if len(kept) == 0 || at != o.sent[s] {
		return
	}
	o.fn(s, kept)
	o.sent[s] += len(kept)
}
