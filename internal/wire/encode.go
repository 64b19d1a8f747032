package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Frame is one record line.
func Frame(tag Tag, payload []byte) []byte {
	return AppendFrame(nil, tag, payload)
}

// AppendFrame appends one record line to b.
func AppendFrame(b []byte, tag Tag, payload []byte) []byte {
	b = append(b, byte(tag), ':')
	b = base64.StdEncoding.AppendEncode(b, payload)
	return append(b, '\n')
}

// FrameJSON is one record line whose payload is v in JSON.
func FrameJSON(tag Tag, v any) []byte {
	b, _ := json.Marshal(v)
	return Frame(tag, b)
}

// Ping and Interrupt are the runner's one-line records.
var (
	Ping      = Frame(TagPing, nil)
	Interrupt = Frame(TagInterrupt, nil)
)

// PingWith is a ping that asks something of the sandbox.
func PingWith(req PingRequest) []byte { return FrameJSON(TagPing, req) }

// Begin is the record that starts execution id's records in a session's stream, byte for byte as
// the entrypoint writes it.
func Begin(id string) []byte { return FrameJSON(TagBegin, BeginRecord{ExecutionID: id}) }

// Request is what a sandbox is asked to run: the code, its input files and its limits. A cold
// sandbox gets it in its ConfigMap and environment; a warm or session sandbox over stdin (Encode).
type Request struct {
	// ExecutionID names the execution; in a session it frames the execution's records.
	ExecutionID  string
	Code         string
	Files        map[string][]byte
	Timeout      time.Duration
	MaxOutput    int64
	MaxFile      int64
	MaxProcesses int64 // 0: no limit
	// Language of the code (Languages); empty is Python.
	Language string
}

// requestChunk keeps request lines short, like the entrypoint's output lines.
const requestChunk = 48 << 10

// Encode frames the request for a sandbox's stdin: Q, C, then I and D per input file in path
// order, then G. inSession names the execution in the header, so that a session frames its
// records with a Begin.
func (r Request) Encode(inSession bool) []byte {
	var b bytes.Buffer
	put := func(tag Tag, data []byte) {
		for first := true; first || len(data) > 0; first = false {
			n := min(len(data), requestChunk)
			b.Write(Frame(tag, data[:n]))
			data = data[n:]
		}
	}
	h := RequestHeader{TimeoutSeconds: r.Timeout.Seconds(), MaxOutputBytes: r.MaxOutput,
		MaxFileBytes: r.MaxFile, MaxProcesses: max(r.MaxProcesses, 0), Language: r.Language}
	if inSession {
		h.ExecutionID = r.ExecutionID
	}
	header, _ := json.Marshal(h)
	put(TagRequest, header)
	put(TagCode, []byte(r.Code))
	for _, name := range slices.Sorted(maps.Keys(r.Files)) {
		in, _ := json.Marshal(InputHeader{Path: name})
		put(TagInput, in)
		put(TagData, r.Files[name])
	}
	put(TagGo, nil)
	return b.Bytes()
}
