package runner

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

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
