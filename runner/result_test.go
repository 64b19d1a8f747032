package runner

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestResultJSONSharesFileData: file contents are the largest part of a Result (up to
// MaxFileBytes); the JSON form encodes them from the Result's own bytes instead of a copy.
func TestResultJSONSharesFileData(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte{0xff}, 1<<10)
	res := Result{Files: []File{{Path: "a.bin", Data: data, Size: int64(len(data))}}}
	out := res.jsonForm()
	if len(out.Files) != 1 || len(out.Files[0].Content) != len(data) || &out.Files[0].Content[0] != &data[0] {
		t.Errorf("the JSON form holds a copy of the file's bytes, not the Result's own")
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || len(back.Files) != 1 || !bytes.Equal(back.Files[0].Data, data) {
		t.Errorf("round trip: %v, files %d", err, len(back.Files))
	}
}

// BenchmarkResultMarshalJSON: B/op is the base64 text and the encoder's buffer, not a second
// copy of the files (4 MiB here, Options.MaxFileBytes' default).
func BenchmarkResultMarshalJSON(b *testing.B) {
	res := Result{Stdout: []byte("ok\n"), Files: []File{{Path: "big.bin", Data: make([]byte, DefaultMaxFileBytes), Size: DefaultMaxFileBytes}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := res.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}
