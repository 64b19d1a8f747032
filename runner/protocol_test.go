package runner

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDecoderCapsAndKeepsForeignLines(t *testing.T) {
	t.Parallel()
	log := new(framed).out("12345").out("67890").err("e").Bytes()
	log = append(log, "plain text from a crashed interpreter\n"...)
	d := newDecoder(8, DefaultMaxFileBytes)
	if err := d.readFrom(bytes.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	var res Result
	d.apply(&res)
	if string(res.Stdout) != "12345678" || !res.StdoutTruncated {
		t.Errorf("stdout %q truncated=%v, want capped at 8 bytes", res.Stdout, res.StdoutTruncated)
	}
	if !strings.HasPrefix(string(res.Stderr), "eplain t") || !res.StderrTruncated {
		t.Errorf("stderr %q truncated=%v", res.Stderr, res.StderrTruncated)
	}
}

func TestDecoderStopsAtTheEndRecord(t *testing.T) {
	t.Parallel()
	log := new(framed).out("a").end(endRecord{ExitCode: 2})
	log = append(log, new(framed).out("after the end").Bytes()...)
	d := newDecoder(1<<20, DefaultMaxFileBytes)
	if err := d.readFrom(bytes.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	var res Result
	d.apply(&res)
	if string(res.Stdout) != "a" || res.ExitCode != 2 {
		t.Errorf("stdout %q exit %d", res.Stdout, res.ExitCode)
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
			f := new(framed).file("a", a).file("b", b).file("c", []byte("xyz"))
			log := f.Bytes()
			if tc.withEnd {
				log = f.end(endRecord{}) // the end record says nothing was truncated: the sandbox ignored its cap
			}
			d := newDecoder(1<<20, 3*(1+fileEntryBytes)) // room for three entries and 195 bytes of data
			if err := d.readFrom(bytes.NewReader(log)); err != nil {
				t.Fatal(err)
			}
			var res Result
			d.apply(&res)
			want := []File{
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
	f := new(framed)
	for i := range 1000 {
		f.file(strconv.Itoa(i), []byte{byte(i)})
	}
	d := newDecoder(1<<20, 10*fileEntryBytes)
	if err := d.readFrom(bytes.NewReader(f.end(endRecord{}))); err != nil {
		t.Fatal(err)
	}
	var res Result
	d.apply(&res)
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
			log := append([]byte(tc.line+"\n"), new(framed).out("after").end(endRecord{ExitCode: 4})...)
			d := newDecoder(100, DefaultMaxFileBytes)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := d.readFrom(bytes.NewReader(log))
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("decoding a %d-byte line allocated %d bytes: the line was buffered", len(tc.line), alloc)
			}
			var res Result
			d.apply(&res)
			if string(res.Stderr) != tc.wantStderr || !res.StderrTruncated {
				t.Errorf("stderr %.40q... (%d bytes) truncated=%v, want the line's first 100 bytes and true", res.Stderr, len(res.Stderr), res.StderrTruncated)
			}
			if string(res.Stdout) != "after" || res.ExitCode != 4 {
				t.Errorf("stdout %q exit %d: the records after the long line were lost", res.Stdout, res.ExitCode)
			}
		})
	}
}

func TestDecoderRejectsFileDataWithoutHeader(t *testing.T) {
	t.Parallel()
	d := newDecoder(10, DefaultMaxFileBytes)
	if err := d.readFrom(bytes.NewReader(new(framed).rec('D', []byte("x")).Bytes())); err == nil {
		t.Error("want an error for file data without a header")
	}
}

// TestEntrypointWithRealPython runs sandbox/entrypoint.py with the machine's python3 and decodes
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
		check      func(*testing.T, Result)
	}{
		{"streams, exit code, files", `
import os, sys
print("out ✓"); print("err", file=sys.stderr)
print(open("sub/in.txt").read())
os.makedirs("output/d", exist_ok=True)
open("output/d/b.bin", "wb").write(bytes(range(256)))
sys.exit(3)`, "10", func(t *testing.T, r Result) {
			if string(r.Stdout) != "out ✓\ninput ✓\n" || string(r.Stderr) != "err\n" || r.ExitCode != 3 {
				t.Errorf("stdout %q stderr %q exit %d", r.Stdout, r.Stderr, r.ExitCode)
			}
			if len(r.Files) != 1 || r.Files[0].Path != "d/b.bin" || len(r.Files[0].Data) != 256 || r.Files[0].Data[255] != 255 {
				t.Errorf("files %+v", r.Files)
			}
		}},
		{"timeout kills and keeps output", "print('started', flush=True)\nwhile True: pass", "1", func(t *testing.T, r Result) {
			if !r.TimedOut || r.ExitCode != 137 || string(r.Stdout) != "started\n" {
				t.Errorf("timedOut %v exit %d stdout %q", r.TimedOut, r.ExitCode, r.Stdout)
			}
		}},
		{"background child does not hold the result", "import subprocess\nsubprocess.Popen(['sleep', '60'])\nprint('done')", "20", func(t *testing.T, r Result) {
			if r.TimedOut || string(r.Stdout) != "done\n" || r.CodeDuration.Seconds() > 10 {
				t.Errorf("timedOut %v stdout %q took %v", r.TimedOut, r.Stdout, r.CodeDuration)
			}
		}},
		{"output flood is capped", "import sys\nsys.stdout.write('x' * 5000000)", "20", func(t *testing.T, r Result) {
			if len(r.Stdout) != 1000 || !r.StdoutTruncated {
				t.Errorf("stdout %d bytes truncated=%v, want 1000 and true", len(r.Stdout), r.StdoutTruncated)
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
			cmd := exec.Command(python, "-I", "-S", "sandbox/entrypoint.py")
			cmd.Env = []string{"GKEXEC_CODE=" + code, "GKEXEC_INPUTS=" + inputs, "GKEXEC_WORKDIR=" + ws,
				"GKEXEC_OUTPUT_DIR=" + filepath.Join(ws, "output"), "GKEXEC_TIMEOUT_SECONDS=" + tc.timeout,
				"GKEXEC_MAX_OUTPUT_BYTES=1000", "PATH=/usr/bin:/bin"}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("entrypoint: %v", err)
			}
			d := newDecoder(1000, DefaultMaxFileBytes)
			if err := d.readFrom(bytes.NewReader(out)); err != nil {
				t.Fatal(err)
			}
			if d.end == nil {
				t.Fatalf("no end record in %q", out)
			}
			var res Result
			d.apply(&res)
			tc.check(t, res)
		})
	}
}

func TestResultJSONIsLosslessForBinaryOutput(t *testing.T) {
	t.Parallel()
	res := Result{ExecutionID: "x", Stdout: []byte("ok ✓"), Stderr: []byte{0xff, 'a'}, Files: []File{{Path: "a", Data: []byte{0}, Size: 1}}}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["stdout"] != "ok ✓" || m["stdout_base64"] != nil {
		t.Errorf("stdout fields: %v %v", m["stdout"], m["stdout_base64"])
	}
	if m["stderr_base64"] != "/2E=" {
		t.Errorf("stderr_base64 = %v, want /2E=", m["stderr_base64"])
	}
	if m["outcome"] != "success" {
		t.Errorf("outcome = %v", m["outcome"])
	}
}

func BenchmarkDecodeLog(b *testing.B) {
	f := new(framed)
	chunk := strings.Repeat("y", 6*1024)
	for range 170 { // ~1 MiB of stdout, as the default cap allows
		f.out(chunk)
	}
	log := f.end(endRecord{})
	b.SetBytes(int64(len(log)))
	b.ReportAllocs()
	for b.Loop() {
		d := newDecoder(DefaultMaxOutputBytes, DefaultMaxFileBytes)
		if err := d.readFrom(bytes.NewReader(log)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestResultJSONRoundTrips(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 26, 8, 0, 0, 123456789, time.UTC)
	in := Result{ExecutionID: "rt", Stdout: []byte("ok ✓"), Stderr: []byte{0xff, 'a'}, ExitCode: 137, Signal: 9,
		TimedOut: true, StdoutTruncated: true, Files: []File{{Path: "d/a.bin", Data: []byte{0, 1}, Size: 5, Truncated: true}, {Path: "empty", Data: []byte{}}},
		PodName: "p", NodeName: "n", Timings: Timings{Requested: at, Created: at.Add(time.Second)},
		CodeDuration: 1500 * time.Millisecond, MaxRSSBytes: 4096}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Result
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip changed the result:\n in %+v\nout %+v", in, out)
	}
}

// TestDecoderSkipsThePing: a warm sandbox's log starts with its answer to the runner's ping; a
// re-read of that log (after a broken stream) must not show it as stderr.
func TestDecoderSkipsThePing(t *testing.T) {
	t.Parallel()
	log := append([]byte("P:\n"), new(framed).out("ok").end(endRecord{})...)
	d := newDecoder(DefaultMaxOutputBytes, DefaultMaxFileBytes)
	if err := d.readFrom(bytes.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	var res Result
	d.apply(&res)
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
	log := new(framed).out("12345").err("e1").out("67890").err("e2").Bytes()
	log = append(log, "plain line\n"...)
	var got chunks
	d := newDecoder(8, DefaultMaxFileBytes)
	d.out = newStreamer(got.add)
	if err := d.readFrom(bytes.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	var res Result
	d.apply(&res)
	if !bytes.Equal(got.stream[Stdout], res.Stdout) || !bytes.Equal(got.stream[Stderr], res.Stderr) {
		t.Errorf("streamed stdout %q stderr %q, result stdout %q stderr %q", got.stream[Stdout], got.stream[Stderr], res.Stdout, res.Stderr)
	}
	if want := []Stream{Stdout, Stderr, Stdout, Stderr, Stderr}; !reflect.DeepEqual(got.order, want) {
		t.Errorf("chunk order %v, want %v (the cap cuts stdout's second chunk to 3 bytes, nothing after)", got.order, want)
	}
}

func TestStreamerDeliversAReReadOnce(t *testing.T) {
	t.Parallel()
	full := new(framed).out("abc").err("x").out("def").err("y").end(endRecord{})
	broken := new(framed).out("abc").err("x").out("de").Bytes() // the stream broke mid-record
	var got chunks
	out := newStreamer(got.add)
	first := newDecoder(1<<20, DefaultMaxFileBytes)
	first.out = out
	if err := first.readFrom(bytes.NewReader(broken)); err != nil {
		t.Fatal(err)
	}
	again := newDecoder(1<<20, DefaultMaxFileBytes)
	again.out = out
	if err := again.readFrom(bytes.NewReader(full)); err != nil {
		t.Fatal(err)
	}
	if string(got.stream[Stdout]) != "abcdef" || string(got.stream[Stderr]) != "xy" {
		t.Errorf("stdout %q stderr %q, want each byte once: abcdef, xy", got.stream[Stdout], got.stream[Stderr])
	}
}

func TestDecoderWithoutOutputStreamsNothing(t *testing.T) {
	t.Parallel()
	if newStreamer(nil) != nil {
		t.Fatal("a nil callback must give a nil streamer")
	}
	d := newDecoder(1<<20, DefaultMaxFileBytes)
	if err := d.readFrom(bytes.NewReader(new(framed).out("a").err("b").Bytes())); err != nil {
		t.Fatal(err)
	}
}
