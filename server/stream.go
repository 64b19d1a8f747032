package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gkexec/gkexec/runner"
)

// wantsStream reports whether the request's Accept header names MediaTypeNDJSON (with a
// q-value above zero).
func wantsStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(part)
			if err != nil || mt != MediaTypeNDJSON {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q <= 0 {
				continue
			}
			return true
		}
	}
	return false
}

// streamAnswer writes a streamed execution's answer: a StreamLine per chunk of output as the
// runner delivers it, each flushed at once, then the result or error line. The 200 and the
// headers go out with the first line, so that a failure before any output keeps its own status
// and body. Output comes from a goroutine of the runner's while the handler waits in Execute;
// when the runner ends an execution it may return while an output line is being written, so
// lines are written one at a time (mu), and none after the last.
type streamAnswer struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	id string
	// writeTimeout bounds writing one line (Options.WriteTimeout); stalled ends the execution when
	// a line could not be written (the caller stopped reading, or went away).
	writeTimeout time.Duration
	stalled      func()

	mu      sync.Mutex
	enc     *json.Encoder
	started bool
	// ended: the result or error line is out (or the caller stopped reading): nothing follows.
	ended bool
	// held is, by stream, the start of a character whose other bytes the next chunk brings.
	held [3][]byte
}

// output is the runner's Request.Output.
func (a *streamAnswer) output(s runner.Stream, p []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ended {
		return
	}
	b := p
	if len(a.held[s]) > 0 {
		b = append(a.held[s][:len(a.held[s]):len(a.held[s])], p...) // a copy: p is the runner's
	}
	n := len(b) - incompleteTail(b)
	a.held[s] = bytes.Clone(b[n:])
	if n > 0 {
		a.write(outputLine(s, b[:n]))
	}
}

// begun reports whether the first line is out (false for a nil answer: not streaming).
func (a *streamAnswer) begun() bool {
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.started
}

func (a *streamAnswer) result(res runner.Result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushHeld()
	a.write(StreamLine{Type: LineResult, Result: &res})
	a.ended = true
}

func (a *streamAnswer) failure(e *APIError, partial *runner.Result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.Status == StatusClientClosedRequest {
		a.ended = true
		return // nobody is listening
	}
	a.flushHeld()
	a.write(StreamLine{Type: LineError, Status: e.Status, Error: e, ExecutionID: a.id, Result: partial})
	a.ended = true
}

// flushHeld sends what was held back and never became a character, as the exact bytes.
func (a *streamAnswer) flushHeld() {
	for _, s := range []runner.Stream{runner.Stdout, runner.Stderr} {
		if len(a.held[s]) > 0 {
			a.write(outputLine(s, a.held[s]))
			a.held[s] = nil
		}
	}
}

func (a *streamAnswer) write(line StreamLine) {
	if !a.started {
		h := a.w.Header()
		h.Set("Content-Type", MediaTypeNDJSON)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Gkexec-Execution-Id", a.id)
		a.w.WriteHeader(http.StatusOK)
		a.enc = json.NewEncoder(a.w) // one object and a newline per Encode
		a.enc.SetEscapeHTML(false)
		a.started = true
	}
	if a.ended {
		return
	}
	// A write to a caller that went away, or that reads nothing for writeTimeout, fails here:
	// the answer is over, and so is the execution (stalled).
	_ = a.rc.SetWriteDeadline(time.Now().Add(a.writeTimeout))
	err := a.enc.Encode(line)
	if err == nil {
		err = a.rc.Flush()
	}
	if err != nil {
		a.ended = true
		if a.stalled != nil {
			a.stalled()
		}
	}
}

// errStalledReader ends an execution whose streamed answer could not be written.
var errStalledReader = errors.New("the caller read nothing of the streamed answer for the write timeout")

// outputLine is a chunk as text when it is valid UTF-8, else as its exact bytes.
func outputLine(s runner.Stream, p []byte) StreamLine {
	line := StreamLine{Type: LineOutput, Stream: s.String()}
	if utf8.Valid(p) {
		line.Data = string(p)
	} else {
		line.DataBase64 = p
	}
	return line
}

// incompleteTail is the length of the UTF-8 sequence that b ends in the middle of: a lead byte and
// fewer continuation bytes than it announces (0 when b ends on a whole character, or on bytes
// that are not UTF-8 whatever follows them).
func incompleteTail(b []byte) int {
	for i := len(b) - 1; i >= 0 && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return 0
			}
			return len(b) - i
		}
	}
	return 0
}
