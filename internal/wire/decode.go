package wire

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

// MaxLineBytes bounds one record line, newline included. The entrypoint writes 6 KiB chunks, 8
// KiB of base64, and small JSON headers; a longer line is not one of its records, whatever it
// starts with.
const MaxLineBytes = 64 << 10

// MaxLogBytes bounds a sandbox's framed output: the kubelet rotates a container log at 10 MiB by
// default, and anything rotated away is lost to the logs API, so the framed output of one
// execution must stay below that.
const MaxLogBytes = 9 << 20

// FileEntryBytes is what one output file's entry costs beside its path and data; entries are
// charged to the file budget too, so that a flood of empty files is bounded.
const FileEntryBytes = 64

// Decoder accumulates one execution's records. It is not safe for concurrent use.
//
// Memory is bounded by design, whatever the sandbox writes. After each line it holds at most
//
//	2·maxOutput                  stdout and stderr
//	+ maxFiles                   file data, one buffer for all files
//	+ maxFiles                   the file list: paths + FileEntryBytes per file
//	+ MaxLineBytes               the line reader's buffer (64 KiB)
//	+ MaxLineBytes·3/4           the base64 scratch buffer (48 KiB)
//
// = 2·maxOutput + 2·maxFiles + 112 KiB (10.1 MiB with the runner's defaults). A buffer that
// grows briefly holds its old array beside the new one; Output shares the buffers, it copies
// nothing.
type Decoder struct {
	stdout, stderr       []byte
	stdoutCut, stderrCut bool
	filesCut             bool // file data or entries were dropped, here or by the sandbox
	files                []fileSpan
	fileData             []byte // every file's bytes, back to back
	fileEntries          int64  // charged to the file list
	current              int    // index in files of the file D records go to; -1: dropped
	end                  *End
	begun                bool // a begin record came: the sandbox has the whole request
	// limit guards against a sandbox that ignores its caps: stdout and stderr are cut here too,
	// and fileLimit cuts the file data and the file list.
	limit, fileLimit int64
	maxLine          int // MaxLineBytes; the fuzz test lowers it to reach long lines quickly
	scratch          []byte
	// foreign counts lines that are not records (e.g. a Python that failed to start prints a
	// plain traceback); they are kept as stderr so the user sees them.
	foreign int
	out     *Streamer
}

// fileSpan is an output file whose bytes are fileData[start:end].
type fileSpan struct {
	path       string
	size       int64
	truncated  bool
	start, end int
}

// NewDecoder caps stdout and stderr at maxOutput bytes each and output files at maxFiles bytes in
// all, whatever the sandbox sends; out (nil for none) is handed the kept output as it is decoded.
func NewDecoder(maxOutput, maxFiles int64, out *Streamer) *Decoder {
	return &Decoder{limit: maxOutput, fileLimit: maxFiles, maxLine: MaxLineBytes, current: -1, out: out}
}

// ErrMalformedRecord: a record the entrypoint cannot have written.
var ErrMalformedRecord = errors.New("malformed record")

// line decodes one line (without its newline).
func (d *Decoder) line(line []byte) error {
	if len(line) < 2 || line[1] != ':' || len(line) >= d.maxLine {
		return d.plain(line)
	}
	tag, payload := Tag(line[0]), line[2:]
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
	case TagBegin:
		d.begun = true
	case TagPing, TagSession:
		// A warm sandbox's answer to the runner's ping and a session's opening: in its log, not
		// news.
	case TagStdout:
		at := len(d.stdout)
		d.stdout, cut = appendCapped(d.stdout, data, d.limit)
		d.stdoutCut = d.stdoutCut || cut
		d.out.deliver(Stdout, at, d.stdout[at:])
	case TagStderr:
		d.appendStderr(data)
	case TagFile:
		var h FileHeader
		if err := json.Unmarshal(data, &h); err != nil {
			return fmt.Errorf("%w: file header: %v", ErrMalformedRecord, err)
		}
		d.filesCut = d.filesCut || h.Truncated // the sandbox cut it: true even if the log ends early
		cost := int64(len(h.Path)) + FileEntryBytes
		if d.fileEntries+cost > d.fileLimit {
			d.current, d.filesCut = -1, true
			return nil
		}
		d.fileEntries += cost
		d.current = len(d.files)
		d.files = append(d.files, fileSpan{path: h.Path, size: h.Size, truncated: h.Truncated,
			start: len(d.fileData), end: len(d.fileData)})
	case TagData:
		if len(d.files) == 0 && !d.filesCut {
			return fmt.Errorf("%w: file data before any file header", ErrMalformedRecord)
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
	case TagEnd:
		var end End
		if err := json.Unmarshal(data, &end); err != nil {
			return fmt.Errorf("%w: end record: %v", ErrMalformedRecord, err)
		}
		d.end = &end
	default:
		return d.plain(line)
	}
	return nil
}

// plain keeps a line that is not a record as stderr.
func (d *Decoder) plain(line []byte) error {
	d.foreign++
	d.appendStderr(line)
	d.appendStderr([]byte{'\n'})
	return nil
}

func (d *Decoder) appendStderr(data []byte) {
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

// Decode consumes a stream of records until EOF or the end record. It returns io.EOF-free errors
// only.
func (d *Decoder) Decode(r io.Reader) error {
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

// longLine consumes a line that filled the reader's buffer, whose start is head: no record is
// that long, so it is kept as stderr up to the cap as it streams by, and never buffered whole.
func (d *Decoder) longLine(br *bufio.Reader, head []byte) error {
	d.foreign++
	d.appendStderr(head)
	var err error = bufio.ErrBufferFull
	for err == bufio.ErrBufferFull {
		var part []byte
		part, err = br.ReadSlice('\n')
		d.appendStderr(bytes.TrimRight(part, "\r\n"))
	}
	d.appendStderr([]byte{'\n'})
	return err
}

// End is the end record, nil until it was decoded.
func (d *Decoder) End() *End { return d.end }

// Begun reports whether a begin record came: the sandbox had the whole request (a one-shot's
// begin record precedes its output; a session's reader consumes its own before decoding).
func (d *Decoder) Begun() bool { return d.begun }

// Output is what a Decoder kept. Its slices share the decoder's buffers.
type Output struct {
	Stdout, Stderr                                   []byte
	StdoutTruncated, StderrTruncated, FilesTruncated bool
	Files                                            []OutputFile
	// End is the end record; nil when the stream ended before it.
	End *End
}

// OutputFile is one output file; Data is at most Size bytes (fewer when Truncated).
type OutputFile struct {
	Path      string
	Size      int64
	Truncated bool
	Data      []byte
}

// Output is what was decoded so far. A stream or file is truncated when the decoder cut it or the
// sandbox says it did.
func (d *Decoder) Output() Output {
	o := Output{Stdout: d.stdout, Stderr: d.stderr, StdoutTruncated: d.stdoutCut, StderrTruncated: d.stderrCut,
		FilesTruncated: d.filesCut, Files: make([]OutputFile, len(d.files)), End: d.end}
	for i, f := range d.files {
		o.Files[i] = OutputFile{Path: f.path, Size: f.size, Truncated: f.truncated}
		if f.end > f.start {
			o.Files[i].Data = d.fileData[f.start:f.end:f.end]
		}
	}
	if e := d.end; e != nil {
		o.StdoutTruncated = o.StdoutTruncated || e.StdoutTruncated
		o.StderrTruncated = o.StderrTruncated || e.StderrTruncated
		o.FilesTruncated = o.FilesTruncated || e.FilesTruncated
	}
	return o
}

// CodeDuration is the code's run time as the sandbox measured it.
func (e *End) CodeDuration() time.Duration {
	if e.FinishedAt <= e.StartedAt {
		return 0
	}
	return time.Duration((e.FinishedAt - e.StartedAt) * float64(time.Second))
}
