package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/gkexec/gkexec/runner"
)

// fakeSessions stands in for the runner's sessions where a live sandbox would be needed: the fake
// clientset cannot attach.
type fakeSessions struct {
	mu     sync.Mutex
	opened []runner.SessionOptions
	ran    []string // session IDs executed in
	langs  []string // the languages of their requests
	closed []string
	err    error         // returned by every call when set
	res    runner.Result // returned by ExecuteInSession
	output []string      // written to Request.Output, on stdout, before returning
}

func (f *fakeSessions) OpenSession(_ context.Context, so runner.SessionOptions) (SessionInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opened = append(f.opened, so)
	if f.err != nil {
		return SessionInfo{}, f.err
	}
	return SessionInfo{SessionID: so.ID, Sandbox: runner.SandboxWarm, PodName: "pod-" + so.ID}, nil
}

func (f *fakeSessions) ExecuteInSession(_ context.Context, id string, req runner.Request) (runner.Result, error) {
	f.mu.Lock()
	f.ran = append(f.ran, id)
	f.langs = append(f.langs, req.Language)
	f.mu.Unlock()
	for _, o := range f.output {
		if req.Output != nil {
			req.Output(runner.Stdout, []byte(o))
		}
	}
	res := f.res
	res.ExecutionID = req.ExecutionID
	return res, f.err
}

func (f *fakeSessions) CloseSession(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = append(f.closed, id)
	return f.err
}

// newSessionServer is a Server whose sessions are fs (the runner's own when fs is nil).
func newSessionServer(t *testing.T, fs *fakeSessions, so Options) string {
	t.Helper()
	fc := newFakeCluster(t, scenario{steps: ok})
	// A REST config that goes nowhere: the runner then offers sessions, and the fake clientset
	// answers its lookups.
	so.Runner = fc.runner(runner.Options{RESTConfig: &rest.Config{Host: "http://127.0.0.1:1"}})
	s, err := New(so)
	if err != nil {
		t.Fatal(err)
	}
	if fs != nil {
		s.sessions = fs
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

func call(t *testing.T, method, url string, body string, header ...string) answer {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequest(method, url, rd)
	} else {
		req, err = http.NewRequest(method, url, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return answer{resp.StatusCode, resp.Header, b.Bytes()}
}

func TestSessionRoutesNeedTheToken(t *testing.T) {
	t.Parallel()
	fs := &fakeSessions{}
	url := newSessionServer(t, fs, Options{Token: "s3cret"})
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPost, PathSessions, `{}`},
		{http.MethodPost, PathSessions + "/abc/executions", `{"code":"print(1)"}`},
		{http.MethodDelete, PathSessions + "/abc", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			a := call(t, tc.method, url+tc.path, tc.body)
			if a.status != http.StatusUnauthorized || a.errorCode(t) != CodeUnauthorized {
				t.Fatalf("without a token: %d %s, want 401 unauthorized", a.status, a.body)
			}
			a = call(t, tc.method, url+tc.path, tc.body, "Authorization", "Bearer s3cret")
			if a.status == http.StatusUnauthorized || a.status == http.StatusNotFound || a.status == http.StatusMethodNotAllowed {
				t.Fatalf("with the token: %d %s, want the route served", a.status, a.body)
			}
		})
	}
	if len(fs.opened) != 1 || len(fs.ran) != 1 || len(fs.closed) != 1 {
		t.Errorf("unauthenticated calls reached the sessions, or authenticated ones did not: opened %v ran %v closed %v", fs.opened, fs.ran, fs.closed)
	}
}

func TestSessionBadIDs(t *testing.T) {
	t.Parallel()
	fs := &fakeSessions{}
	url := newSessionServer(t, fs, Options{})
	long := strings.Repeat("a", MaxSessionIDLength+1)
	for _, tc := range []struct{ name, method, path, body string }{
		{"exec uppercase", http.MethodPost, PathSessions + "/Bad-ID/executions", `{"code":"1"}`},
		{"exec too long", http.MethodPost, PathSessions + "/" + long + "/executions", `{"code":"1"}`},
		{"exec underscore", http.MethodPost, PathSessions + "/a_b/executions", `{"code":"1"}`},
		{"delete dot", http.MethodDelete, PathSessions + "/a.b", ""},
		{"delete too long", http.MethodDelete, PathSessions + "/" + long, ""},
		{"open uppercase", http.MethodPost, PathSessions, `{"session_id":"ABC"}`},
		{"open too long", http.MethodPost, PathSessions, `{"session_id":"` + long + `"}`},
		{"open negative idle", http.MethodPost, PathSessions, `{"idle_timeout_seconds":-1}`},
		{"open unknown field", http.MethodPost, PathSessions, `{"id":"abc"}`},
		{"open empty body", http.MethodPost, PathSessions, ` `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, tc.method, url+tc.path, tc.body)
			if a.status != http.StatusBadRequest {
				t.Fatalf("%d %s, want 400", a.status, a.body)
			}
			if code := a.errorCode(t); code != CodeInvalidRequest && code != CodeInvalidJSON {
				t.Errorf("code %q, want invalid_request or invalid_json", code)
			}
		})
	}
	if len(fs.opened)+len(fs.ran)+len(fs.closed) != 0 {
		t.Errorf("bad requests reached the sessions: opened %v ran %v closed %v", fs.opened, fs.ran, fs.closed)
	}
}

// On the runner's own sessions over the fake cluster: no Pod carries the session.
func TestUnknownSessionIsNotFound(t *testing.T) {
	t.Parallel()
	url := newSessionServer(t, nil, Options{})
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPost, PathSessions + "/nosuch/executions", `{"code":"print(1)"}`},
		{http.MethodDelete, PathSessions + "/nosuch", ""},
	} {
		t.Run(tc.method, func(t *testing.T) {
			a := call(t, tc.method, url+tc.path, tc.body)
			if a.status != http.StatusNotFound || a.errorCode(t) != CodeSessionNotFound {
				t.Fatalf("%d %s, want 404 session_not_found", a.status, a.body)
			}
		})
	}
	c := NewClient(url, "")
	if _, err := c.ExecuteInSession(context.Background(), "nosuch", runner.Request{Code: "1"}); !errors.Is(err, runner.ErrSessionNotFound) {
		t.Errorf("client ExecuteInSession: %v, want ErrSessionNotFound", err)
	}
	if err := c.CloseSession(context.Background(), "nosuch"); !errors.Is(err, runner.ErrSessionNotFound) {
		t.Errorf("client CloseSession: %v, want ErrSessionNotFound", err)
	}
}

func TestSessionErrorMapping(t *testing.T) {
	t.Parallel()
	started := runner.Result{Stdout: []byte("partial"), Timings: runner.Timings{Started: time.Now()}}
	timedOut := started
	timedOut.TimedOut = true
	for _, tc := range []struct {
		name       string
		err        error
		res        runner.Result
		status     int
		code       string
		retryable  bool
		wantResult bool
	}{
		{"not found", fmt.Errorf("%w: session x", runner.ErrSessionNotFound), runner.Result{}, 404, CodeSessionNotFound, false, false},
		{"busy", fmt.Errorf("%w: held by host/1", runner.ErrSessionBusy), runner.Result{}, 409, CodeSessionBusy, true, false},
		{"ended", fmt.Errorf("%w: interpreter died", runner.ErrSessionEnded), started, 410, CodeSessionEnded, false, true},
		{"ended before start", fmt.Errorf("%w: expired", runner.ErrSessionEnded), runner.Result{}, 410, CodeSessionEnded, false, false},
		{"timeout that ended it", fmt.Errorf("%w: %w: not interruptible", runner.ErrTimeout, runner.ErrSessionEnded), timedOut, 410, CodeSessionEnded, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := newSessionServer(t, &fakeSessions{err: tc.err, res: tc.res}, Options{})
			a := call(t, http.MethodPost, url+PathSessions+"/s1/executions", `{"code":"x=1"}`)
			var body ErrorBody
			if err := json.Unmarshal(a.body, &body); err != nil {
				t.Fatalf("%d %s: %v", a.status, a.body, err)
			}
			if a.status != tc.status || body.Error.Code != tc.code || body.Error.Retryable != tc.retryable {
				t.Fatalf("%d %s retryable=%v, want %d %s retryable=%v: %s", a.status, body.Error.Code, body.Error.Retryable, tc.status, tc.code, tc.retryable, a.body)
			}
			if got := body.Result != nil; got != tc.wantResult {
				t.Errorf("result in the body: %v, want %v: %s", got, tc.wantResult, a.body)
			}
			if tc.retryable && a.header.Get("Retry-After") == "" {
				t.Errorf("retryable %d without Retry-After", a.status)
			}
			// The client gives back the runner's sentinel.
			_, err := NewClient(url, "").ExecuteInSession(context.Background(), "s1", runner.Request{Code: "x=1"})
			if !errorsIsAny(err, tc.err) {
				t.Errorf("client error %v does not wrap %v", err, tc.err)
			}
		})
	}
	// apiErrorFor alone, for the table's order: a timeout that ended the session is session_ended.
	if e := apiErrorFor(fmt.Errorf("%w: %w", runner.ErrTimeout, runner.ErrSessionEnded)); e.Code != CodeSessionEnded || e.Status != http.StatusGone {
		t.Errorf("apiErrorFor(timeout+ended) = %d %s, want 410 session_ended", e.Status, e.Code)
	}
}

// errorsIsAny: err wraps the first session sentinel that want wraps.
func errorsIsAny(err, want error) bool {
	for _, s := range []error{runner.ErrSessionNotFound, runner.ErrSessionBusy, runner.ErrSessionEnded} {
		if errors.Is(want, s) {
			return errors.Is(err, s)
		}
	}
	return false
}

func TestSessionTimeoutThatKeepsTheSessionIsAResult(t *testing.T) {
	t.Parallel()
	res := runner.Result{TimedOut: true, ExitCode: -1, Timings: runner.Timings{Started: time.Now()}}
	url := newSessionServer(t, &fakeSessions{err: fmt.Errorf("%w: interrupted", runner.ErrTimeout), res: res}, Options{})
	a := call(t, http.MethodPost, url+PathSessions+"/s1/executions", `{"code":"while True: pass"}`)
	if a.status != http.StatusOK || a.result(t)["timed_out"] != true {
		t.Fatalf("%d %s, want 200 with timed_out", a.status, a.body)
	}
}

func TestSessionBodyLimits(t *testing.T) {
	t.Parallel()
	fs := &fakeSessions{}
	url := newSessionServer(t, fs, Options{MaxBodyBytes: 64})
	big := `{"code":"` + strings.Repeat("x", 100) + `"}`
	for _, path := range []string{PathSessions + "/s1/executions", PathSessions} {
		a := call(t, http.MethodPost, url+path, big)
		if a.status != http.StatusRequestEntityTooLarge || a.errorCode(t) != CodeRequestTooLarge {
			t.Errorf("POST %s with %d bytes: %d %s, want 413", path, len(big), a.status, a.body)
		}
	}
	a := call(t, http.MethodPost, url+PathSessions+"/s1/executions", `{"code":"1"}`, "Content-Type", "text/plain")
	if a.status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d, want 415", a.status)
	}
	if len(fs.opened)+len(fs.ran) != 0 {
		t.Errorf("oversized requests reached the sessions: opened %v ran %v", fs.opened, fs.ran)
	}
}

func TestSessionConcurrencyBound(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{steps: ok})
	s, err := New(Options{Runner: fc.runner(runner.Options{}), MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.sessions = &fakeSessions{}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	s.sem <- struct{}{} // the one place is taken
	for path, body := range map[string]string{PathSessions: `{}`, PathSessions + "/s1/executions": `{"code":"1"}`} {
		if a := call(t, http.MethodPost, hs.URL+path, body); a.status != http.StatusTooManyRequests {
			t.Errorf("POST %s at the bound: %d %s, want 429", path, a.status, a.body)
		}
	}
	if a := call(t, http.MethodDelete, hs.URL+PathSessions+"/s1", ""); a.status != http.StatusNoContent {
		t.Errorf("DELETE at the bound: %d %s, want 204 (closing frees a sandbox)", a.status, a.body)
	}
	<-s.sem
}

func TestSessionLifecycleThroughTheClient(t *testing.T) {
	t.Parallel()
	fs := &fakeSessions{res: runner.Result{Stdout: []byte("hello\n")}, output: []string{"hel", "lo\n"}}
	url := newSessionServer(t, fs, Options{Token: "tok"})
	c := NewClient(url, "tok")
	ctx := context.Background()
	info, err := c.OpenSession(ctx, runner.SessionOptions{ID: "agent-1", IdleTimeout: 90 * time.Second, MaxLifetime: time.Hour, Language: "bash"})
	if err != nil {
		t.Fatal(err)
	}
	if info != (SessionInfo{SessionID: "agent-1", Sandbox: runner.SandboxWarm, PodName: "pod-agent-1"}) {
		t.Errorf("OpenSession = %+v", info)
	}
	if want := (runner.SessionOptions{ID: "agent-1", IdleTimeout: 90 * time.Second, MaxLifetime: time.Hour, Language: "bash"}); len(fs.opened) != 1 || fs.opened[0] != want {
		t.Errorf("runner got %+v, want %+v", fs.opened, want)
	}

	res, err := c.ExecuteInSession(ctx, "agent-1", runner.Request{Code: "echo hello", Language: "bash"})
	if err != nil || string(res.Stdout) != "hello\n" || fs.langs[0] != "bash" {
		t.Fatalf("ExecuteInSession = %q, %v (language %q)", res.Stdout, err, fs.langs)
	}
	// Streaming takes the same path as /v1/executions.
	var got []string
	res, err = c.ExecuteInSession(ctx, "agent-1", runner.Request{Code: "print('hello')",
		Output: func(_ runner.Stream, p []byte) { got = append(got, string(p)) }})
	if err != nil || strings.Join(got, "|") != "hel|lo\n" || string(res.Stdout) != "hello\n" {
		t.Fatalf("streamed: chunks %q, result %q, %v", got, res.Stdout, err)
	}
	a := call(t, http.MethodPost, url+PathSessions+"/agent-1/executions", `{"code":"1"}`, "Authorization", "Bearer tok", "Accept", MediaTypeNDJSON)
	if ct := a.header.Get("Content-Type"); a.status != http.StatusOK || ct != MediaTypeNDJSON || !bytes.Contains(a.body, []byte(`"type":"result"`)) {
		t.Errorf("NDJSON answer: %d %s %s", a.status, ct, a.body)
	}

	if err := c.CloseSession(ctx, "agent-1"); err != nil {
		t.Fatal(err)
	}
	if len(fs.ran) != 3 || fs.ran[0] != "agent-1" || len(fs.closed) != 1 || fs.closed[0] != "agent-1" {
		t.Errorf("ran %v closed %v", fs.ran, fs.closed)
	}
}
