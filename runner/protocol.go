package runner

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// The sandbox entrypoint (sandbox/entrypoint.py) frames everything into the container log as
// lines "<tag>:<base64>". decoder turns that stream back into a Result.

// endRecord is the entrypoint's last line.
type endRecord struct {
	ExitCode        int     `json:"exit_code"`
	Signal          int     `json:"signal"`
	TimedOut        bool    `json:"timed_out"`
	StdoutTruncated bool    `json:"stdout_truncated"`
	StderrTruncated bool    `json:"stderr_truncated"`
	FilesTruncated  bool    `json:"files_truncated"`
	StartedAt       float64 `json:"started_at"`
	FinishedAt      float64 `json:"finished_at"`
	MaxRSSKiB       int64   `json:"max_rss_kib"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	// SessionOver says why a session ended with this execution ("" while it goes on).
	SessionOver string `json:"session_over,omitempty"`
}

type fileHeader struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	Truncated bool   `json:"truncated"`
}

// maxLineBytes bounds one log line, newline included. The entrypoint writes 6 KiB chunks, 8 KiB of
// base64, and small JSON headers; a longer line is not one of its records, whatever it starts with.
const maxLineBytes = 64 << 10

// fileEntryBytes is what one output file's entry costs beside its path and data; entries are
// charged to a budget of their own so that a flood of empty files is bounded too.
const fileEntryBytes = 64

// decoder accumulates records. It is not safe for concurrent use.
//
// Memory is bounded by design, whatever the sandbox writes. After each line it holds at most
//
//	2·MaxOutputBytes             stdout and stderr
//	+ MaxFileBytes               file data, one buffer for all files
//	+ MaxFileBytes               the file list: paths + fileEntryBytes per file
//	+ maxLineBytes               the line reader's buffer (64 KiB)
//	+ maxLineBytes·3/4           the base64 scratch buffer (48 KiB)
//
// = 2·MaxOutputBytes + 2·MaxFileBytes + 112 KiB (10.1 MiB with the defaults). A buffer that grows
// briefly holds its old array beside the new one, and apply copies stdout and stderr into the
// Result (2·MaxOutputBytes more, held by the caller); file data is shared, not copied.
type decoder struct {
	stdout, stderr       []byte
	stdoutCut, stderrCut bool
	filesCut             bool // file data or entries were dropped, here or by the sandbox
	files                []fileSpan
	fileData             []byte // every file's bytes, back to back
	fileEntries          int64  // charged to the file list
	current              int    // index in files of the file D records go to; -1: dropped
	end                  *endRecord
	// limit guards against a sandbox that ignores its caps: stdout and stderr are cut here too,
	// and fileLimit cuts the file data and the file list.
	limit, fileLimit int64
	maxLine          int // maxLineBytes; the fuzz test lowers it to reach long lines quickly
	scratch          []byte
	// foreign counts lines that are not records (e.g. a Python that failed to start prints a plain
	// traceback); they are kept as stderr so the user sees them.
	foreign int
	// out delivers stdout and stderr as they are kept (Request.Output); nil delivers nothing.
	out *streamer
}

// streamer hands the kept bytes of stdout and stderr to Request.Output as they are decoded. It
// counts what it delivered per stream, so that a second decoder reading the same output again
// (exchange's re-read of a broken stream) delivers only what the first did not.
type streamer struct {
	fn   func(Stream, []byte)
	sent [3]int // by Stream: bytes delivered
}

func newStreamer(fn func(Stream, []byte)) *streamer {
	if fn == nil {
		return nil
	}
	return &streamer{fn: fn}
}

// deliver hands over kept, the bytes a decoder just appended to stream s at offset at.
func (o *streamer) deliver(s Stream, at int, kept []byte) {
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

// fileSpan is an output file whose bytes are fileData[start:end].
type fileSpan struct {
	path       string
	size       int64
	truncated  bool
	start, end int
}

// newDecoder caps stdout and stderr at maxOutput bytes each and output files at maxFiles bytes
// in all, whatever the sandbox sends.
func newDecoder(maxOutput, maxFiles int64) *decoder {
	return &decoder{limit: maxOutput, fileLimit: maxFiles, maxLine: maxLineBytes, current: -1}
}

var errMalformedRecord = errors.New("malformed record")

// line decodes one log line (without its newline).
func (d *decoder) line(line []byte) error {
	if len(line) < 2 || line[1] != ':' || len(line) >= d.maxLine {
		return d.plain(line)
	}
	tag, payload := line[0], line[2:]
	n := base64.StdEncoding.DecodedLen(len(payload))
	if cap(d.scratch) < n {
		d.scratch = make([]byte, n)
	}
	n, err := base64.StdEncoding.Decode(d.scratch[:n], payload)
	if err != nil {
		return d.plain(line)
	}
	data := d.scratch[:n]
	var cut bool
	switch tag {
	case 'P', 'B', 'S':
		// A warm sandbox's answer to the runner's ping, a session's begin record and its opening
		// (the session's reader consumes B before the decoder starts): in its log, not news.
	case 'O':
		at := len(d.stdout)
		d.stdout, cut = appendCapped(d.stdout, data, d.limit)
		d.stdoutCut = d.stdoutCut || cut
		d.out.deliver(Stdout, at, d.stdout[at:])
	case 'E':
		d.appendStderr(data)
	case 'F':
		var h fileHeader
		if err := json.Unmarshal(data, &h); err != nil {
			return fmt.Errorf("%w: file header: %v", errMalformedRecord, err)
		}
		d.filesCut = d.filesCut || h.Truncated // the sandbox cut it: true even if the log ends early
		cost := int64(len(h.Path)) + fileEntryBytes
		if d.fileEntries+cost > d.fileLimit {
			d.current, d.filesCut = -1, true
			return nil
		}
		d.fileEntries += cost
		d.current = len(d.files)
		d.files = append(d.files, fileSpan{path: h.Path, size: h.Size, truncated: h.Truncated,
			start: len(d.fileData), end: len(d.fileData)})
	case 'D':
		if len(d.files) == 0 && !d.filesCut {
			return fmt.Errorf("%w: file data before any file header", errMalformedRecord)
		}
		if d.current < 0 {
			return nil // the header was dropped at the cap
		}
		f := &d.files[d.current]
		d.fileData, cut = appendCapped(d.fileData, data, d.fileLimit)
		f.end = len(d.fileData)
		if cut {
			f.truncated, d.filesCut = true, true
		}
	case 'X':
		var end endRecord
		if err := json.Unmarshal(data, &end); err != nil {
			return fmt.Errorf("%w: end record: %v", errMalformedRecord, err)
		}
		d.end = &end
	default:
		return d.plain(line)
	}
	return nil
}

// plain keeps a line that is not a record as stderr.
func (d *decoder) plain(line []byte) error {
	d.foreign++
	d.plainPart(line)
	d.plainPart([]byte{'\n'})
	return nil
}

func (d *decoder) plainPart(part []byte) { d.appendStderr(part) }

func (d *decoder) appendStderr(data []byte) {
	var cut bool
	at := len(d.stderr)
	d.stderr, cut = appendCapped(d.stderr, data, d.limit)
	d.stderrCut = d.stderrCut || cut
	d.out.deliver(Stderr, at, d.stderr[at:])
}

// appendCapped appends at most limit-len(b) bytes of data to b, never growing b's capacity past
// limit, and reports whether any were dropped.
func appendCapped(b, data []byte, limit int64) ([]byte, bool) {
	room := max(limit-int64(len(b)), 0)
	cut := room < int64(len(data))
	if cut {
		data = data[:room]
	}
	if need := len(b) + len(data); need > cap(b) {
		grown := make([]byte, len(b), int(min(max(int64(2*cap(b)), int64(need), 512), limit)))
		copy(grown, b)
		b = grown
	}
	return append(b, data...), cut
}

// readFrom consumes a log stream until EOF or the end record. It returns io.EOF-free errors only.
func (d *decoder) readFrom(r io.Reader) error {
	br := bufio.NewReaderSize(r, d.maxLine)
	for d.end == nil {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			err = d.longLine(br, line)
		} else if line = bytes.TrimRight(line, "\r\n"); len(line) > 0 {
			if derr := d.line(line); derr != nil {
				return derr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// longLine consumes a line that filled the reader's buffer, whose start is head: no record is that
// long, so it is kept as stderr up to the cap as it streams by, and never buffered whole.
func (d *decoder) longLine(br *bufio.Reader, head []byte) error {
	d.foreign++
	d.plainPart(head)
	var err error = bufio.ErrBufferFull
	for err == bufio.ErrBufferFull {
		var part []byte
		part, err = br.ReadSlice('\n')
		d.plainPart(bytes.TrimRight(part, "\r\n"))
	}
	d.plainPart([]byte{'\n'})
	return err
}

// apply copies what was decoded into a Result. File data is shared with the decoder, not copied.
func (d *decoder) apply(res *Result) {
	res.StdoutTruncated, res.StderrTruncated = d.stdoutCut, d.stderrCut
	res.Stdout = append([]byte(nil), d.stdout...)
	res.Stderr = append([]byte(nil), d.stderr...)
	res.Files = make([]File, len(d.files))
	for i, f := range d.files {
		res.Files[i] = File{Path: f.path, Size: f.size, Truncated: f.truncated}
		if f.end > f.start {
			res.Files[i].Data = d.fileData[f.start:f.end:f.end]
		}
	}
	res.FilesTruncated = d.filesCut
	if d.end == nil {
		return
	}
	e := d.end
	res.ExitCode, res.Signal, res.TimedOut = e.ExitCode, e.Signal, e.TimedOut
	res.StdoutTruncated = e.StdoutTruncated || d.stdoutCut
	res.StderrTruncated = e.StderrTruncated || d.stderrCut
	res.FilesTruncated = e.FilesTruncated || d.filesCut
	res.CodeDuration = secondsBetween(e.StartedAt, e.FinishedAt)
	res.MaxRSSBytes = e.MaxRSSKiB * 1024
}

func secondsBetween(a, b float64) time.Duration {
	if b <= a {
		return 0
	}
	return time.Duration((b - a) * float64(time.Second))
}
