package wire

import (
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestEntrypointSpeaksTheWire holds the two ends of the wire together: entrypoint.py's table of
// records and fields must be this package's, and the entrypoint may write a tag only through its
// table. A record or field added, renamed or dropped on one side alone fails here; the real-python
// tests (entrypoint_test.go, decode_test.go) prove the two then work together.
func TestEntrypointSpeaksTheWire(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required for this test (the sandbox image runs the same entrypoint)")
	}
	out, err := exec.Command(python, "-I", "-S", "-c", Entrypoint, "--wire").Output()
	if err != nil {
		t.Fatalf("entrypoint --wire: %v", err)
	}
	var py struct {
		Tags                                      map[string]string
		End, Request, Hello, Ping, Answer, Opened []string
		Languages                                 map[string]Language
	}
	if err := json.Unmarshal(out, &py); err != nil {
		t.Fatalf("entrypoint --wire printed %q: %v", out, err)
	}
	goTags := map[string]string{}
	for name, tag := range Tags {
		goTags[name] = string(rune(tag))
	}
	if !reflect.DeepEqual(py.Tags, goTags) {
		t.Errorf("record tags differ:\n entrypoint.py %v\n wire          %v", py.Tags, goTags)
	}
	if !reflect.DeepEqual(py.Languages, Languages) {
		t.Errorf("languages differ:\n entrypoint.py %v\n wire          %v", py.Languages, Languages)
	}
	for _, tc := range []struct {
		record string
		py     []string
		goType any
	}{{"end", py.End, End{}}, {"request", py.Request, RequestHeader{}}, {"hello", py.Hello, Hello{}},
		{"ping", py.Ping, PingRequest{}}, {"ping answer", py.Answer, PingAnswer{}}, {"session opened", py.Opened, SessionOpened{}}} {
		if want := jsonFields(tc.goType); !slices.Equal(tc.py, want) {
			t.Errorf("%s record fields differ:\n entrypoint.py %v\n wire          %v", tc.record, tc.py, want)
		}
	}

	src, err := os.ReadFile("entrypoint.py")
	if err != nil {
		t.Fatal(err)
	}
	if string(src) != Entrypoint {
		t.Fatal("Entrypoint is not entrypoint.py: rebuild")
	}
	bare := regexp.MustCompile(`b"[A-Z]`)
	for i, line := range strings.Split(string(src), "\n") {
		if strings.HasPrefix(line, "T_") {
			continue // the table itself
		}
		if bare.MatchString(line) {
			t.Errorf("entrypoint.py:%d writes a tag as a bare literal; use its T_ constant: %s", i+1, strings.TrimSpace(line))
		}
	}
}

// jsonFields are the JSON names of a struct's fields, in order.
func jsonFields(v any) []string {
	var names []string
	typ := reflect.TypeOf(v)
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

// TestFrameIsWhatTheEntrypointWrites: the Go framing of a record is byte for byte the
// entrypoint's, so that a session's begin record can be matched exactly.
func TestFrameIsWhatTheEntrypointWrites(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required for this test")
	}
	script := Entrypoint[:strings.Index(Entrypoint, "\nif __name__ ==")] + "\nemit_json(T_BEGIN, {\"execution_id\": \"abc-1\"})\nOUT.flush()\n"
	out, err := exec.Command(python, "-I", "-S", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := string(Begin("abc-1")); string(out) != want {
		t.Errorf("entrypoint writes %q, Begin is %q", out, want)
	}
}
