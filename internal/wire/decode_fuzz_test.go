package wire

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// FuzzDecoder feeds the decoder arbitrary logs: it never panics, never holds more than its caps
// allow, and what Output gives stays within the caps. The seed corpus in testdata/fuzz/FuzzDecoder
// holds real entrypoint output (see TestEntrypointWithRealPython for how it is run); go test runs
// the seeds, go test -fuzz FuzzDecoder ./internal/wire explores from them.
func FuzzDecoder(f *testing.F) {
	f.Add(new(logb).out("a").err("b").file("f", []byte{1}).end(End{ExitCode: 1}))
	f.Add([]byte("X:not base64\nO:\n\n"))
	f.Add(append([]byte("O:"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 300))+"\r\n"), new(logb).file("x", []byte("yz")).end(End{})...))
	const (
		maxOutput = 64
		maxFiles  = 2*FileEntryBytes + 40 // two entries with short paths, or one with a long one
		maxLine   = 256                   // small, so that the fuzzer reaches over-long lines
	)
	f.Fuzz(func(t *testing.T, log []byte) {
		d := NewDecoder(maxOutput, maxFiles, nil)
		d.maxLine = maxLine
		_ = d.Decode(bytes.NewReader(log))

		if cap(d.stdout) > maxOutput || cap(d.stderr) > maxOutput {
			t.Fatalf("stdout/stderr buffers hold %d/%d bytes, cap %d", cap(d.stdout), cap(d.stderr), maxOutput)
		}
		if cap(d.fileData) > maxFiles {
			t.Fatalf("file data buffer holds %d bytes, cap %d", cap(d.fileData), maxFiles)
		}
		var entries int64
		for _, s := range d.files {
			entries += int64(len(s.path)) + FileEntryBytes
		}
		if entries > maxFiles || entries != d.fileEntries {
			t.Fatalf("file list costs %d bytes (counted %d), cap %d", entries, d.fileEntries, maxFiles)
		}
		if n := base64.StdEncoding.DecodedLen(maxLine); cap(d.scratch) > n {
			t.Fatalf("scratch buffer holds %d bytes, a line decodes to %d at most", cap(d.scratch), n)
		}

		res := d.Output()
		if len(res.Stdout) > maxOutput || len(res.Stderr) > maxOutput {
			t.Fatalf("result stdout/stderr %d/%d bytes, cap %d", len(res.Stdout), len(res.Stderr), maxOutput)
		}
		var data int
		for _, file := range res.Files {
			data += len(file.Data)
			if file.Truncated && !res.FilesTruncated {
				t.Fatalf("file %q is truncated but FilesTruncated is false", file.Path)
			}
		}
		if data > maxFiles {
			t.Fatalf("result files hold %d bytes, cap %d", data, maxFiles)
		}
		if d.filesCut && !res.FilesTruncated {
			t.Fatal("the decoder dropped file data or entries but FilesTruncated is false")
		}
	})
}
