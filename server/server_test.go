package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// testServer is a Server on a fake cluster behind an httptest.Server.
type testServer struct {
	*Server
	fc  *fakeCluster
	url string
}

func newTestServer(t *testing.T, sc scenario, ro runner.Options, so Options) *testServer {
	t.Helper()
	fc := newFakeCluster(t, sc)
	so.Runner = fc.runner(ro)
	s, err := New(so)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return &testServer{Server: s, fc: fc, url: hs.URL}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) result(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, a.body)
	}
	return m
}

func (a answer) errorCode(t *testing.T) string {
	t.Helper()
	var e ErrorBody
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("error answer is not JSON: %v: %s", err, a.body)
	}
	if e.Error.Message == "" {
		t.Errorf("error %q has no message", e.Error.Code)
	}
	return e.Error.Code
}

// post and get never stop the test, so that any goroutine may call them (t.Fatal must not be
// called from one): a request that fails is an answer with status -1 and the error as its body,
// which the caller's assertions on the status report.
func post(t *testing.T, ctx context.Context, url, contentType string, body io.Reader, header ...string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+PathExecutions, body)
	if err != nil {
		return answer{status: -1, body: []byte(err.Error())}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{status: -1, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func postJSON(t *testing.T, url string, v any, header ...string) answer {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return post(t, context.Background(), url, "application/json", bytes.NewReader(b), header...)
}

func get(t *testing.T, url string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return answer{status: -1, body: []byte(err.Error())}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{status: -1, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

// hold starts an execution that stays in flight (its Job never gets a Pod) until ctx ends, and
// returns a channel with its answer.
func hold(t *testing.T, ctx context.Context, url, id string) <-chan answer {
	t.Helper()
	ch := make(chan answer, 1)
	go func() {
		b, _ := json.Marshal(ExecuteRequest{Code: "import time; time.sleep(600)", ExecutionID: id})
		ch <- post(t, ctx, url, "application/json", bytes.NewReader(b))
	}()
	return ch
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShutdownCancelsInFlightExecutionsAndDeletesTheirObjects(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{noPod: true})
	s, err := New(Options{Runner: fc.runner(runner.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, nil) }()

	const n = 3
	var answers []<-chan answer
	for i := range n {
		answers = append(answers, hold(t, context.Background(), url, "inflight-"+string(rune('a'+i))))
	}
	waitFor(t, "executions in flight", func() bool { return fc.jobCount() == n })

	stop() // what SIGTERM does in `gkexec serve`
	for _, ch := range answers {
		a := <-ch
		if a.status != http.StatusServiceUnavailable || a.errorCode(t) != CodeShuttingDown {
			t.Errorf("in-flight execution got %d %s, want 503 shutting_down", a.status, a.body)
		}
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	// Serve returned, so every deletion has been made.
	if left := fc.leftovers(); len(left) != 0 {
		t.Errorf("left behind after shutdown: %v", left)
	}
	if _, err := http.Get(url + PathHealthz); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}

func TestShutdownRefusesNewExecutions(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{steps: ok, log: new(framed).end(0, false)}, runner.Options{}, Options{})
	if err := ts.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := postJSON(t, ts.url, ExecuteRequest{Code: "print(1)"})
	if a.status != http.StatusServiceUnavailable || a.errorCode(t) != CodeShuttingDown || a.header.Get("Retry-After") == "" {
		t.Errorf("after Shutdown: %d %v %s, want 503 shutting_down with Retry-After", a.status, a.header, a.body)
	}
	if a := get(t, ts.url+PathReadyz); a.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz after Shutdown: %d, want 503", a.status)
	}
	if made := ts.fc.created(); len(made) != 0 {
		t.Errorf("created %v after Shutdown", made)
	}
}

func TestProbeHandlerServesOnlyProbes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{}, runner.Options{}, Options{})
	hs := httptest.NewServer(ts.ProbeHandler())
	defer hs.Close()
	for _, p := range []string{PathHealthz, PathMetrics} {
		if a := get(t, hs.URL+p); a.status != 200 {
			t.Errorf("probe listener %s: %d", p, a.status)
		}
	}
	if a := postJSON(t, hs.URL, ExecuteRequest{Code: "print(1)"}); a.status != http.StatusNotFound {
		t.Errorf("probe listener POST %s: %d, want 404", PathExecutions, a.status)
	}
	if a := get(t, hs.URL+PathConfig); a.status != http.StatusNotFound {
		t.Errorf("probe listener GET %s: %d, want 404", PathConfig, a.status)
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	_, err := New(Options{MaxConcurrent: -1, RetryAfter: -time.Second})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("err = %v, want ErrInvalidOptions", err)
	}
	for _, field := range []string{"Runner", "MaxConcurrent", "RetryAfter"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
}
