package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
)

// Starts reports whether line is a record of tag t.
func (t Tag) Starts(line []byte) bool {
	return len(line) >= 2 && line[0] == byte(t) && line[1] == ':'
}

// ParsePing reads a ping answer; ok is false when line is not one. An empty answer (a one-shot
// sandbox's) is the zero PingAnswer.
func ParsePing(line []byte) (answer PingAnswer, ok bool) {
	if !TagPing.Starts(line) {
		return answer, false
	}
	data, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(line[2:])))
	if err == nil && len(data) > 0 {
		_ = json.Unmarshal(data, &answer)
	}
	return answer, true
}

// ParseOpened reads the sandbox's answer to a Hello from line; ok is false when line is another
// record.
func ParseOpened(line []byte) (opened SessionOpened, ok bool) {
	if !TagSession.Starts(line) {
		return opened, false
	}
	data, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(line[2:])))
	if err == nil && len(data) > 0 {
		_ = json.Unmarshal(data, &opened)
	}
	return opened, true
}

// Records is one execution's records within a session's stream: it skips the stream up to the
// execution's begin record (what an interrupted earlier execution still wrote), then yields lines
// up to and including the end record, and then EOF.
type Records struct {
	next  func() ([]byte, error) // the stream's next line, newline included
	begin []byte
	begun bool
	buf   []byte
	done  bool
}

// NewRecords reads execution id's records from next.
func NewRecords(id string, next func() ([]byte, error)) *Records {
	return &Records{next: next, begin: Begin(id)}
}

func (r *Records) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		line, err := r.next()
		if err != nil {
			return 0, err
		}
		if !r.begun {
			r.begun = bytes.Equal(line, r.begin)
			continue
		}
		r.done = TagEnd.Starts(line)
		r.buf = line
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close does nothing: the session's stream outlives its executions.
func (r *Records) Close() error { return nil }
