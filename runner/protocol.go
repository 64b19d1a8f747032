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
}

type fileHeader struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	Truncated bool   `json:"truncated"`
}

// decoder accumulates records. It is not safe for concurrent use.
type decoder struct {
	stdout, stderr       bytes.Buffer
	stdoutCut, stderrCut bool
	files                []File
	end                  *endRecord
	// limit guards against a sandbox that ignores its caps: stdout and stderr are cut here too.
	limit   int64
	scratch []byte
	// foreign counts lines that are not records (e.g. a Python that failed to start prints a plain
	// traceback); they are kept as stderr so the user sees them.
	foreign int
}

// newDecoder caps stdout and stderr at maxOutput bytes each and output files at maxFiles bytes
// in all, whatever the sandbox sends.
func newDecoder(maxOutput, maxFiles int64) *decoder {
	return &decoder{limit: maxOutput}
}

var errMalformedRecord = errors.New("malformed record")

// line decodes one log line (without its newline).
func (d *decoder) line(line []byte) error {
	if len(line) < 2 || line[1] != ':' {
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
	switch tag {
	case 'O':
		d.stdoutCut = appendCapped(&d.stdout, data, d.limit) || d.stdoutCut
	case 'E':
		d.stderrCut = appendCapped(&d.stderr, data, d.limit) || d.stderrCut
	case 'F':
		var h fileHeader
		if err := json.Unmarshal(data, &h); err != nil {
			return fmt.Errorf("%w: file header: %v", errMalformedRecord, err)
		}
		d.files = append(d.files, File{Path: h.Path, Size: h.Size, Truncated: h.Truncated})
	case 'D':
		if len(d.files) == 0 {
			return fmt.Errorf("%w: file data before any file header", errMalformedRecord)
		}
		f := &d.files[len(d.files)-1]
		f.Data = append(f.Data, data...)
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

func (d *decoder) plain(line []byte) error {
	d.foreign++
	line = append(line, '\n')
	d.stderrCut = appendCapped(&d.stderr, line, d.limit) || d.stderrCut
	return nil
}

// appendCapped appends at most limit-b.Len() bytes and reports whether any were dropped.
func appendCapped(b *bytes.Buffer, data []byte, limit int64) bool {
	room := limit - int64(b.Len())
	if room >= int64(len(data)) {
		b.Write(data)
		return false
	}
	b.Write(data[:max(room, 0)])
	return true
}

// readFrom consumes a log stream until EOF or the end record. It returns io.EOF-free errors only.
func (d *decoder) readFrom(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for d.end == nil {
		line, err := readLine(br)
		if len(line) > 0 {
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

// readLine returns one line without its newline, however long.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	return bytes.TrimRight(line, "\r\n"), err
}

// apply copies what was decoded into a Result.
func (d *decoder) apply(res *Result) {
	res.StdoutTruncated, res.StderrTruncated = d.stdoutCut, d.stderrCut
	res.Stdout = append([]byte(nil), d.stdout.Bytes()...)
	res.Stderr = append([]byte(nil), d.stderr.Bytes()...)
	res.Files = d.files
	if res.Files == nil {
		res.Files = []File{}
	}
	if d.end == nil {
		return
	}
	e := d.end
	res.ExitCode, res.Signal, res.TimedOut = e.ExitCode, e.Signal, e.TimedOut
	res.StdoutTruncated = e.StdoutTruncated || d.stdoutCut
	res.StderrTruncated = e.StderrTruncated || d.stderrCut
	res.FilesTruncated = e.FilesTruncated
	res.CodeDuration = secondsBetween(e.StartedAt, e.FinishedAt)
	res.MaxRSSBytes = e.MaxRSSKiB * 1024
}

func secondsBetween(a, b float64) time.Duration {
	if b <= a {
		return 0
	}
	return time.Duration((b - a) * float64(time.Second))
}
