package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/runner"
)

// postStream posts an execution asking for a streamed answer; the caller reads and closes the body.
func postStream(t *testing.T, url string, v any, header ...string) *http.Response {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url+PathExecutions, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", MediaTypeNDJSON)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// lineReader reads a streamed answer one line at a time, checking each is one JSON object.
type lineReader struct {
	t  *testing.T
	sc *bufio.Scanner
}

func newLineReader(t *testing.T, resp *http.Response) *lineReader {
	t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != MediaTypeNDJSON {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d Content-Type %q, want 200 %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), MediaTypeNDJSON, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 64<<20)
	return &lineReader{t, sc}
}

// next returns the next line, decoded, and the raw one.
func (lr *lineReader) next() (StreamLine, map[string]any) {
	lr.t.Helper()
	if !lr.sc.Scan() {
		lr.t.Fatalf("the stream ended early: %v", lr.sc.Err())
	}
	var line StreamLine
	var raw map[string]any
	if err := json.Unmarshal(lr.sc.Bytes(), &line); err != nil {
		lr.t.Fatalf("line is not a StreamLine: %v: %s", err, lr.sc.Bytes())
	}
	_ = json.Unmarshal(lr.sc.Bytes(), &raw)
	return line, raw
}

// end checks that nothing follows the last line.
func (lr *lineReader) end() {
	lr.t.Helper()
	if lr.sc.Scan() {
		lr.t.Errorf("a line after the last one: %s", lr.sc.Bytes())
	}
}

// blockCleanup holds the runner's deletion of Jobs until release is closed (or a minute has
// passed), and reports on released whether release came first: output that reached the client
// while the Job was held was streamed, not sent with the result.
func blockCleanup(fc *fakeCluster) (release chan struct{}, released <-chan bool) {
	release = make(chan struct{})
	first := make(chan bool, 1)
	var once sync.Once
	fc.client.PrependReactor("delete", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		once.Do(func() {
			select {
			case <-release:
				first <- true
			case <-time.After(time.Minute):
				first <- false
			}
		})
		return false, nil, nil
	})
	return release, first
}

// The output reaches the client line by line, in order, while the execution is still going on;
// the last line is the same result a plain answer has.
func TestStreamDeliversOutputWhileTheExecutionRuns(t *testing.T) {
	t.Parallel()
	log := new(framed).out("one\n").err("two ✓\n").out("three\n").file("a.bin", []byte{0, 0xff}).end(4, false)
	ts := newTestServer(t, scenario{steps: ok, log: log}, runner.Options{}, Options{})
	release, released := blockCleanup(ts.fc)

	resp := postStream(t, ts.url, ExecuteRequest{Code: "print(1)", ExecutionID: "st-1"})
	if id := resp.Header.Get("X-Gkexec-Execution-Id"); id != "st-1" {
		t.Errorf("X-Gkexec-Execution-Id %q", id)
	}
	lr := newLineReader(t, resp)
	want := []StreamLine{{Type: LineOutput, Stream: "stdout", Data: "one\n"}, {Type: LineOutput, Stream: "stderr", Data: "two ✓\n"},
		{Type: LineOutput, Stream: "stdout", Data: "three\n"}}
	for i, w := range want {
		if got, _ := lr.next(); got.Type != w.Type || got.Stream != w.Stream || got.Data != w.Data || got.DataBase64 != nil {
			t.Errorf("line %d: %+v, want %+v", i, got, w)
		}
	}
	close(release)
	if !<-released {
		t.Error("the output arrived only after the execution was over")
	}
	last, raw := lr.next()
	lr.end()
	if last.Type != LineResult || last.Result == nil || last.Result.ExitCode != 4 {
		t.Fatalf("last line %+v, want the result with exit code 4", last)
	}

	// The same execution again, answered in plain JSON once the first is gone.
	waitFor(t, "cleanup", func() bool { return len(ts.fc.leftovers()) == 0 })
	plain := postJSON(t, ts.url, ExecuteRequest{Code: "print(1)", ExecutionID: "st-1"}).result(t)
	streamed := raw["result"].(map[string]any)
	for _, m := range []map[string]any{plain, streamed} {
		if phases, _ := m["phase_seconds"].(map[string]any); len(phases) != len(runner.ColdPhaseNames) {
			t.Errorf("phase_seconds %v, want every cold phase", m["phase_seconds"])
		}
		delete(m, "timings") // when this run did what
		delete(m, "phase_seconds")
		delete(m, "pod_name") // each run's Job has a Pod of its own
	}
	if !reflect.DeepEqual(plain, streamed) {
		t.Errorf("the result line differs from the plain answer:\nstreamed %v\n   plain %v", streamed, plain)
	}
}

// A character split between two chunks is sent whole with the second; bytes that are not UTF-8
// come as base64; a stream that ends in the middle of a character has those bytes sent, exact,
// before the result. Text is never broken, and the bytes add up to the result's.
func TestStreamKeepsCharactersWholeAndBytesExact(t *testing.T) {
	t.Parallel()
	log := new(framed).
		rec('O', []byte("a\xe2\x9c")). // "a" and the first two bytes of ✓ (e2 9c 93)
		rec('O', []byte("\x93b")).
		rec('O', []byte{0xff, 0, 'z'}).
		rec('E', []byte("\xf0\x9f")). // half of 😀, never finished
		end(0, false)
	ts := newTestServer(t, scenario{steps: ok, log: log}, runner.Options{}, Options{})
	lr := newLineReader(t, postStream(t, ts.url, ExecuteRequest{Code: "print(1)"}))
	type chunk struct {
		stream string
		text   bool
		data   string
	}
	want := []chunk{{"stdout", true, "a"}, {"stdout", true, "✓b"}, {"stdout", false, "\xff\x00z"}, {"stderr", false, "\xf0\x9f"}}
	got := map[string][]byte{}
	for i, w := range want {
		line, raw := lr.next()
		_, hasText := raw["data"]
		_, hasBase64 := raw["data_base64"]
		data := line.Data
		if !w.text {
			data = string(line.DataBase64)
		}
		if line.Type != LineOutput || line.Stream != w.stream || hasText != w.text || hasBase64 == w.text || data != w.data {
			t.Errorf("line %d: %v, want %s %q as %s", i, raw, w.stream, w.data, map[bool]string{true: "data", false: "data_base64"}[w.text])
		}
		if hasText && (!utf8.ValidString(line.Data) || strings.ContainsRune(line.Data, utf8.RuneError)) {
			t.Errorf("line %d: broken text %q", i, line.Data)
		}
		got[line.Stream] = append(got[line.Stream], data...)
	}
	last, _ := lr.next()
	lr.end()
	if last.Type != LineResult || last.Result == nil {
		t.Fatalf("last line %+v, want the result", last)
	}
	if string(last.Result.Stdout) != "a✓b\xff\x00z" || string(last.Result.Stderr) != "\xf0\x9f" ||
		!bytes.Equal(got["stdout"], last.Result.Stdout) || !bytes.Equal(got["stderr"], last.Result.Stderr) {
		t.Errorf("streamed stdout %q stderr %q, result stdout %q stderr %q: want them equal and exact", got["stdout"], got["stderr"], last.Result.Stdout, last.Result.Stderr)
	}
}

// Every way of cutting output into three chunks gives the exact bytes, and valid UTF-8 always as
// text, in whole characters.
func TestStreamAnswerOverEverySplit(t *testing.T) {
	t.Parallel()
	for _, text := range [][]byte{
		[]byte("é✓😀x"),        // 2, 3 and 4 byte characters
		[]byte("é✓\xff😀\xf0"), // and bytes that are not UTF-8
	} {
		valid := utf8.Valid(text)
		for i := 0; i <= len(text); i++ {
			for j := i; j <= len(text); j++ {
				rec := httptest.NewRecorder()
				a := &streamAnswer{w: rec, rc: http.NewResponseController(rec), id: "x"}
				for _, part := range [][]byte{text[:i], text[i:j], text[j:]} {
					if len(part) > 0 {
						a.output(runner.Stdout, bytes.Clone(part))
					}
				}
				a.result(runner.Result{Stdout: text})
				var all []byte
				sc := bufio.NewScanner(rec.Body)
				for sc.Scan() {
					var line StreamLine
					if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
						t.Fatalf("%q split at %d,%d: %v: %s", text, i, j, err, sc.Bytes())
					}
					switch {
					case line.Type != LineOutput:
						continue
					case line.DataBase64 != nil && valid:
						t.Errorf("%q split at %d,%d: valid text sent as base64 %q", text, i, j, line.DataBase64)
					case line.DataBase64 == nil && strings.ContainsRune(line.Data, utf8.RuneError):
						t.Errorf("%q split at %d,%d: broken text %q", text, i, j, line.Data)
					}
					all = append(all, line.Data...)
					all = append(all, line.DataBase64...)
				}
				if !bytes.Equal(all, text) {
					t.Errorf("%q split at %d,%d: bytes %q", text, i, j, all)
				}
			}
		}
	}
}

func TestIncompleteTail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{
		"": 0, "a": 0, "é": 0, "\xc3": 1, "a\xe2\x9c": 2, "\xe2": 1, "✓": 0,
		"\xf0\x9f\x98": 3, "😀": 0, "\x80\x80\x80": 0, "\xff": 0, "a\xc0": 0,
	} {
		if got := incompleteTail([]byte(in)); got != want {
			t.Errorf("incompleteTail(%q) = %d, want %d", in, got, want)
		}
	}
}

// A failure once output has begun is the last line, with the status a plain answer would have and
// the partial result; one before any output keeps its plain status and body.
func TestStreamErrorAfterOutputIsTheLastLine(t *testing.T) {
	t.Parallel()
	died := scenario{steps: append(ok[:2:2], terminated("Error", 2)), log: new(framed).out("so far\n").Bytes()} // no end record
	ts := newTestServer(t, died, runner.Options{}, Options{})
	lr := newLineReader(t, postStream(t, ts.url, ExecuteRequest{Code: "print(1)", ExecutionID: "died-1"}))
	if line, _ := lr.next(); line.Type != LineOutput || line.Data != "so far\n" {
		t.Errorf("first line %+v, want the output", line)
	}
	last, _ := lr.next()
	lr.end()
	if last.Type != LineError || last.Status != http.StatusServiceUnavailable || last.Error == nil || last.Error.Code != CodeSandboxFailed ||
		!last.Error.Retryable || last.Error.Message == "" || last.ExecutionID != "died-1" {
		t.Fatalf("last line %+v, want an error line: 503 sandbox_failed", last)
	}
	if last.Result == nil || string(last.Result.Stdout) != "so far\n" {
		t.Errorf("partial result %+v, want the output so far", last.Result)
	}
	waitFor(t, "the failure counted", func() bool {
		return strings.Contains(string(get(t, ts.url+PathMetrics).body), `gkexec_serve_executions_total{outcome="sandbox_failed"} 1`)
	})

	image := newTestServer(t, scenario{steps: []func(*corev1.Pod){scheduled, waiting("ErrImageNeverPull")}}, runner.Options{}, Options{})
	resp := postStream(t, image.url, ExecuteRequest{Code: "print(1)"})
	body, _ := io.ReadAll(resp.Body)
	var e ErrorBody
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/json" ||
		json.Unmarshal(body, &e) != nil || e.Error.Code != CodeImagePull {
		t.Errorf("failure before any output: %d %q %s, want the plain 503 image_pull answer", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// Streaming changes only how a result is sent: auth, limits and metrics are those of a plain answer.
func TestStreamKeepsAuthLimitsAndMetrics(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{steps: ok, log: new(framed).out("1\n").end(0, false)}, runner.Options{},
		Options{Token: "s3cret", MaxConcurrent: 1, RetryAfter: 3 * time.Second})
	plain := func(resp *http.Response, status int, code string) {
		t.Helper()
		body, _ := io.ReadAll(resp.Body)
		var e ErrorBody
		if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &e) != nil || e.Error.Code != code {
			t.Errorf("%d %q %s, want a plain %d %s", resp.StatusCode, resp.Header.Get("Content-Type"), body, status, code)
		}
	}
	plain(postStream(t, ts.url, ExecuteRequest{Code: "print(1)"}), 401, CodeUnauthorized)
	plain(postStream(t, ts.url, ExecuteRequest{Code: " "}, "Authorization", "Bearer s3cret"), 400, CodeInvalidRequest)
	if made := ts.fc.created(); len(made) != 0 {
		t.Errorf("created %v for refused requests", made)
	}

	lr := newLineReader(t, postStream(t, ts.url, ExecuteRequest{Code: "print(1)"}, "Authorization", "Bearer s3cret"))
	if line, _ := lr.next(); line.Type != LineOutput || line.Data != "1\n" {
		t.Errorf("first line %+v", line)
	}
	if line, _ := lr.next(); line.Type != LineResult {
		t.Errorf("last line %+v, want the result", line)
	}
	lr.end()

	// With the one slot taken, a streamed request is refused like any other.
	noPod := newTestServer(t, scenario{noPod: true}, runner.Options{}, Options{MaxConcurrent: 1, RetryAfter: 3 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	held := hold(t, ctx, noPod.url, "held-1")
	waitFor(t, "the slot taken", func() bool { return noPod.fc.jobCount() == 1 })
	busy := postStream(t, noPod.url, ExecuteRequest{Code: "print(1)"})
	if ra := busy.Header.Get("Retry-After"); ra != "3" {
		t.Errorf("Retry-After %q, want 3", ra)
	}
	plain(busy, 429, CodeBusy)
	cancel()
	<-held

	m := string(get(t, ts.url+PathMetrics).body)
	for _, line := range []string{`gkexec_serve_executions_total{outcome="success"} 1`, `gkexec_serve_executions_total{outcome="invalid_request"} 1`,
		`gkexec_serve_sandboxes_total{sandbox="cold"} 1`, "gkexec_serve_executions_in_flight 0"} {
		if !strings.Contains(m, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if strings.Contains(m, `outcome="unauthorized"`) {
		t.Errorf("/metrics counts the unauthenticated request, which a plain one is not")
	}
	if m := string(get(t, noPod.url+PathMetrics).body); !strings.Contains(m, `gkexec_serve_executions_total{outcome="busy"} 1`+"\n") {
		t.Errorf("/metrics does not count the streamed request refused busy")
	}
}

func TestWantsStream(t *testing.T) {
	t.Parallel()
	for accept, want := range map[string]bool{
		"": false, "application/json": false, "*/*": false, "application/x-ndjson": true,
		"application/json, application/x-ndjson;q=0.5": true, "application/x-ndjson; q=0": false, "Application/X-NDJSON": true,
	} {
		r := httptest.NewRequest(http.MethodPost, PathExecutions, nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		if got := wantsStream(r); got != want {
			t.Errorf("Accept %q: stream %v, want %v", accept, got, want)
		}
	}
}

// stuckWriter is a connection whose reader stopped reading: a write blocks until the write
// deadline set through http.ResponseController, as a net.Conn's does.
type stuckWriter struct {
	header   http.Header
	mu       sync.Mutex
	deadline time.Time
}

func (w *stuckWriter) Header() http.Header { return w.header }
func (w *stuckWriter) WriteHeader(int)     {}
func (w *stuckWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	d := w.deadline
	w.mu.Unlock()
	if d.IsZero() {
		select {} // no deadline: blocked for good, as before serve set one
	}
	time.Sleep(time.Until(d))
	return 0, errors.New("i/o timeout")
}
func (w *stuckWriter) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	w.deadline = t
	w.mu.Unlock()
	return nil
}

// TestAStalledReaderEndsTheStreamAndTheExecution: a caller that stops reading a streamed answer
// holds neither the runner's output callback nor the execution past the write timeout.
func TestAStalledReaderEndsTheStreamAndTheExecution(t *testing.T) {
	t.Parallel()
	w := &stuckWriter{header: http.Header{}}
	stalled := make(chan struct{})
	a := &streamAnswer{w: w, rc: http.NewResponseController(w), id: "x", writeTimeout: 200 * time.Millisecond,
		stalled: func() { close(stalled) }}
	done := make(chan struct{})
	go func() {
		a.output(runner.Stdout, []byte("a line nobody reads\n"))
		a.output(runner.Stdout, []byte("and another\n"))
		a.result(runner.Result{ExecutionID: "x"})
		close(done)
	}()
	select {
	case <-stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the stalled write never ended the execution")
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the answer's later lines waited for a reader that is gone")
	}
}
