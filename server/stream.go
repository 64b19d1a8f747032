package server

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
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
// and body. Output comes from the runner's goroutine while the handler waits in Execute, and never
// after Execute returns, so the two never write at once.
type streamAnswer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	enc     *json.Encoder
	id      string
	started bool
	// held is, by stream, the start of a character whose other bytes the next chunk brings.
	held [3][]byte
}

// output is the runner's Request.Output.
func (a *streamAnswer) output(s runner.Stream, p []byte) {
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
func (a *streamAnswer) begun() bool { return a != nil && a.started }

func (a *streamAnswer) result(res runner.Result) {
	a.flushHeld()
	a.write(StreamLine{Type: LineResult, Result: &res})
}

func (a *streamAnswer) failure(e *APIError, partial *runner.Result) {
	if e.Status == StatusClientClosedRequest {
		return // nobody is listening
	}
	a.flushHeld()
	a.write(StreamLine{Type: LineError, Status: e.Status, Error: e, ExecutionID: a.id, Result: partial})
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
	// A write to a caller that went away fails here and is ignored: its context ends the
	// execution.
	_ = a.enc.Encode(line)
	_ = a.rc.Flush()
}

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
