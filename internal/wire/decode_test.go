package wire

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestDecoderCapsAndKeepsForeignLines(t *testing.T) {
	t.Parallel()
	log := new(logb).out("12345").out("67890").err("e").Bytes()
	log = append(log, "plain text from a crashed interpreter\n"...)
	d := NewDecoder(8, defaultMaxFiles, nil)
	if err := d.Decode(bytes.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	res := d.Output()
	if string(res.Stdout) != "12345678" || !res.StdoutTruncated {
		t.Errorf("stdout %q truncated=%v, want capped at 8 bytes", res.Stdout, res.StdoutTruncated)
	}
	if !strings.HasPrefix(string(res.Stderr), "eplain t") || !res.StderrTruncated {
		t.Errorf("stderr %q truncated=%v", res.Stderr, res.StderrTruncated)
	}
}

func TestDecoderStopsAtTheEndRecord(t *testing.T) {
	t.Parallel()
	log := new(logb).out("a").end(End{ExitCode: 2})
	log = append(log, new(logb).out("after the end").Bytes()...)
	d := NewDecoder(1<<20, defaultMaxFiles, nil)
	if err := d.Decode(bytes.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	res := d.Output()
	if string(res.Stdout) != "a" || res.End == nil || res.End.ExitCode != 2 {
		t.Errorf("stdout %q end %+v", res.Stdout, res.End)
	}
}

func TestDecoderCapsOutputFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		withEnd bool
	}{{"with end record", true}, {"log cut before the end record", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := bytes.Repeat([]byte("a"), 100), bytes.Repeat([]byte("b"), 100)
			f := new(logb).file("a", a).file("b", b).file("c", []byte("xyz"))
			log := f.Bytes()
			if tc.withEnd {
				log = f.end(End{}) // the end record says nothing was truncated: the sandbox ignored its cap
			}
			d := NewDecoder(1<<20, 3*(1+FileEntryBytes), nil) // room for three entries and 195 bytes of data
			if err := d.Decode(bytes.NewReader(log)); err != nil {
				t.Fatal(err)
			}
			res := d.Output()
			want := []OutputFile{
				{Path: "a", Size: 100, Data: a},
				{Path: "b", Size: 100, Data: b[:95], Truncated: true},
				{Path: "c", Size: 3, Truncated: true},
			}
			if len(res.Files) != len(want) {
				t.Fatalf("files %+v, want %+v", res.Files, want)
			}
			for i, w := range want {
				g := res.Files[i]
				if g.Path != w.Path || g.Size != w.Size || string(g.Data) != string(w.Data) || g.Truncated != w.Truncated {
					t.Errorf("file %d = {%s %d %q truncated=%v}, want {%s %d %q truncated=%v}",
						i, g.Path, g.Size, g.Data, g.Truncated, w.Path, w.Size, w.Data, w.Truncated)
				}
			}
			if !res.FilesTruncated {
				t.Error("FilesTruncated = false, want true: the decoder dropped file data")
			}
		})
	}
}

// TestDecoderBoundsTheFileList: empty files cost no data but each costs an entry; the list is
// bounded by the file cap too, and a dropped file's data never lands in the file before it.
func TestDecoderBoundsTheFileList(t *testing.T) {
	t.Parallel()
	f := new(logb)
	for i := range 1000 {
		f.file(strconv.Itoa(i), []byte{byte(i)})
	}
	d := NewDecoder(1<<20, 10*FileEntryBytes, nil)
	if err := d.Decode(bytes.NewReader(f.end(End{}))); err != nil {
		t.Fatal(err)
	}
	res := d.Output()
	if len(res.Files) == 0 || len(res.Files) >= 10 || !res.FilesTruncated {
		t.Fatalf("%d files, FilesTruncated=%v; want fewer than 10 (the cap holds 10 entries, paths included) and true", len(res.Files), res.FilesTruncated)
	}
	for i, file := range res.Files {
		if file.Path != strconv.Itoa(i) || len(file.Data) != 1 || file.Data[0] != byte(i) {
			t.Errorf("file %d = {%s %v}, want {%d [%d]}", i, file.Path, file.Data, i, i)
		}
	}
}

// TestDecoderBoundsOneLine feeds lines far longer than any the entrypoint writes: they are kept
// as stderr up to the cap, not decoded as records, and never buffered whole.
func TestDecoderBoundsOneLine(t *testing.T) {
	// Not parallel: it measures the bytes allocated while decoding.
	const huge = 32 << 20
	payload := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("s"), 96<<10)) // a 128 KiB line
	for _, tc := range []struct {
		name, line, wantStderr string
	}{
		{"a plain line with no newline for 32 MiB", strings.Repeat("z", huge), strings.Repeat("z", 100)},
		{"a record longer than any the entrypoint writes", "O:" + payload, "O:" + payload[:98]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := append([]byte(tc.line+"\n"), new(logb).out("after").end(End{ExitCode: 4})...)
			d := NewDecoder(100, defaultMaxFiles, nil)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := d.Decode(bytes.NewReader(log))
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("decoding a %d-byte line allocated %d bytes: the line was buffered", len(tc.line), alloc)
			}
			res := d.Output()
			if string(res.Stderr) != tc.wantStderr || !res.StderrTruncated {
				t.Errorf("stderr %.40q... (%d bytes) truncated=%v, want the line's first 100 bytes and true", res.Stderr, len(res.Stderr), res.StderrTruncated)
			}
			if string(res.Stdout) != "after" || res.End == nil || res.End.ExitCode != 4 {
				t.Errorf("stdout %q end %+v: the records after the long line were lost", res.Stdout, res.End)
			}
		})
	}
}

func TestDecoderRejectsFileDataWithoutHeader(t *testing.T) {
	t.Parallel()
	d := NewDecoder(10, defaultMaxFiles, nil)
	if err := d.Decode(bytes.NewReader(new(logb).rec(TagData, []byte("x")).Bytes())); err == nil {
		t.Error("want an error for file data without a header")
	}
}

// TestEntrypointWithRealPython runs entrypoint.py with the machine's python3 and decodes
// what it writes: the framing contract between the two halves, end to end.
func TestEntrypointWithRealPython(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required for this test (the sandbox image runs the same entrypoint)")
	}
	dir := t.TempDir()
	code := filepath.Join(dir, "main.py")
	inputs := filepath.Join(dir, "inputs")
	work := filepath.Join(dir, "work")
	for _, d := range []string{filepath.Join(inputs, "sub"), work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(inputs, "sub", "in.txt"), []byte("input ✓"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, code string
		timeout    string
		check      func(*testing.T, Output)
	}{
		{"streams, exit code, files", `
import os, sys
print("out ✓"); print("err", file=sys.stderr)
print(open("sub/in.txt").read())
os.makedirs("output/d", exist_ok=True)
open("output/d/b.bin", "wb").write(bytes(range(256)))
sys.exit(3)`, "10", func(t *testing.T, r Output) {
			if string(r.Stdout) != "out ✓\ninput ✓\n" || string(r.Stderr) != "err\n" || r.End.ExitCode != 3 {
				t.Errorf("stdout %q stderr %q exit %d", r.Stdout, r.Stderr, r.End.ExitCode)
			}
			if len(r.Files) != 1 || r.Files[0].Path != "d/b.bin" || len(r.Files[0].Data) != 256 || r.Files[0].Data[255] != 255 {
				t.Errorf("files %+v", r.Files)
			}
		}},
		{"timeout kills and keeps output", "print('started', flush=True)\nwhile True: pass", "1", func(t *testing.T, r Output) {
			if !r.End.TimedOut || r.End.ExitCode != 137 || string(r.Stdout) != "started\n" {
				t.Errorf("timedOut %v exit %d stdout %q", r.End.TimedOut, r.End.ExitCode, r.Stdout)
			}
		}},
		{"background child does not hold the result", "import subprocess\nsubprocess.Popen(['sleep', '60'])\nprint('done')", "20", func(t *testing.T, r Output) {
			if r.End.TimedOut || string(r.Stdout) != "done\n" || r.End.CodeDuration().Seconds() > 10 {
				t.Errorf("timedOut %v stdout %q took %v", r.End.TimedOut, r.Stdout, r.End.CodeDuration())
			}
		}},
		{"output flood is capped", "import sys\nsys.stdout.write('x' * 5000000)", "20", func(t *testing.T, r Output) {
			// Past the cap the entrypoint still reads (and drops) what the code writes, so the code
			// never blocks on a full pipe and ends on its own, long before its timeout.
			if len(r.Stdout) != 1000 || !r.StdoutTruncated || r.End.TimedOut {
				t.Errorf("stdout %d bytes truncated=%v timedOut=%v, want 1000, true, false", len(r.Stdout), r.StdoutTruncated, r.End.TimedOut)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(code, []byte(tc.code), 0o644); err != nil {
				t.Fatal(err)
			}
			ws := filepath.Join(work, strconv.Itoa(len(tc.name)))
			_ = os.MkdirAll(ws, 0o755)
			cmd := exec.Command(python, "-I", "-S", "entrypoint.py")
			cmd.Env = []string{"GKEXEC_CODE=" + code, "GKEXEC_INPUTS=" + inputs, "GKEXEC_WORKDIR=" + ws,
				"GKEXEC_OUTPUT_DIR=" + filepath.Join(ws, "output"), "GKEXEC_TIMEOUT_SECONDS=" + tc.timeout,
				"GKEXEC_MAX_OUTPUT_BYTES=1000", "PATH=/usr/bin:/bin"}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("entrypoint: %v", err)
			}
			d := NewDecoder(1000, defaultMaxFiles, nil)
			if err := d.Decode(bytes.NewReader(out)); err != nil {
				t.Fatal(err)
			}
			if d.end == nil {
				t.Fatalf("no end record in %q", out)
			}
			res := d.Output()
			tc.check(t, res)
		})
	}
}

func BenchmarkDecodeLog(b *testing.B) {
	f := new(logb)
	chunk := strings.Repeat("y", 6*1024)
	for range 170 { // ~1 MiB of stdout, as the default cap allows
		f.out(chunk)
	}
	log := f.end(End{})
	b.SetBytes(int64(len(log)))
	b.ReportAllocs()
	for b.Loop() {
		d := NewDecoder(defaultMaxOutput, defaultMaxFiles, nil)
		if err := d.Decode(bytes.NewReader(log)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecoderSkipsThePing: a warm sandbox's log starts with its answer to the runner's ping; a
// re-read of that log (after a broken stream) must not show it as stderr.
func TestDecoderSkipsThePing(t *testing.T) {
	t.Parallel()
	log := append([]byte("P:\n"), new(logb).out("ok").end(End{})...)
	d := NewDecoder(defaultMaxOutput, defaultMaxFiles, nil)
	if err := d.Decode(bytes.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	res := d.Output()
	if string(res.Stdout) != "ok" || len(res.Stderr) != 0 || d.end == nil {
		t.Errorf("stdout %q stderr %q end %v", res.Stdout, res.Stderr, d.end != nil)
	}
}

// chunks records what a decoder hands to Request.Output.
type chunks struct {
	order  []Stream
	stream map[Stream][]byte
}

func (c *chunks) add(s Stream, p []byte) {
	if c.stream == nil {
		c.stream = map[Stream][]byte{}
	}
	c.order = append(c.order, s)
	c.stream[s] = append(c.stream[s], p...)
}

func TestDecoderStreamsWhatItKeeps(t *testing.T) {
	t.Parallel()
	log := new(logb).out("12345").err("e1").out("67890").err("e2").Bytes()
	log = append(log, "plain line\n"...)
	var got chunks
	d := NewDecoder(8, defaultMaxFiles, NewStreamer(got.add))
	if err := d.Decode(bytes.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	res := d.Output()
	if !bytes.Equal(got.stream[Stdout], res.Stdout) || !bytes.Equal(got.stream[Stderr], res.Stderr) {
		t.Errorf("streamed stdout %q stderr %q, result stdout %q stderr %q", got.stream[Stdout], got.stream[Stderr], res.Stdout, res.Stderr)
	}
	if want := []Stream{Stdout, Stderr, Stdout, Stderr, Stderr}; !reflect.DeepEqual(got.order, want) {
		t.Errorf("chunk order %v, want %v (the cap cuts stdout's second chunk to 3 bytes, nothing after)", got.order, want)
	}
}

func TestStreamerDeliversAReReadOnce(t *testing.T) {
	t.Parallel()
	full := new(logb).out("abc").err("x").out("def").err("y").end(End{})
	broken := new(logb).out("abc").err("x").out("de").Bytes() // the stream broke mid-record
	var got chunks
	out := NewStreamer(got.add)
	first := NewDecoder(1<<20, defaultMaxFiles, out)
	if err := first.Decode(bytes.NewReader(broken)); err != nil {
		t.Fatal(err)
	}
	again := NewDecoder(1<<20, defaultMaxFiles, out)
	if err := again.Decode(bytes.NewReader(full)); err != nil {
		t.Fatal(err)
	}
	if string(got.stream[Stdout]) != "abcdef" || string(got.stream[Stderr]) != "xy" {
		t.Errorf("stdout %q stderr %q, want each byte once: abcdef, xy", got.stream[Stdout], got.stream[Stderr])
	}
}

func TestDecoderWithoutOutputStreamsNothing(t *testing.T) {
	t.Parallel()
	if NewStreamer(nil) != nil {
		t.Fatal("a nil callback must give a nil streamer")
	}
	d := NewDecoder(1<<20, defaultMaxFiles, nil)
	if err := d.Decode(bytes.NewReader(new(logb).out("a").err("b").Bytes())); err != nil {
		t.Fatal(err)
	}
}

const (
	defaultMaxOutput = 1 << 20
	defaultMaxFiles  = 4 << 20
)

// logb builds a stream of records the way entrypoint.py writes it.
type logb struct{ bytes.Buffer }

func (l *logb) rec(tag Tag, payload []byte) *logb { l.Write(Frame(tag, payload)); return l }
func (l *logb) out(s string) *logb                { return l.rec(TagStdout, []byte(s)) }
func (l *logb) err(s string) *logb                { return l.rec(TagStderr, []byte(s)) }
func (l *logb) file(path string, data []byte) *logb {
	l.Write(FrameJSON(TagFile, FileHeader{Path: path, Size: int64(len(data))}))
	return l.rec(TagData, data)
}
func (l *logb) end(e End) []byte { l.Write(FrameJSON(TagEnd, e)); return l.Bytes() }
