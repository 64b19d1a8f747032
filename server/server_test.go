package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

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

// holdsARole makes the identity hold a Role in the namespace, without the verbs the runner needs:
// a Forbidden is then missing RBAC, not a missing namespace (see runner's clarifyForbidden).
func holdsARole(fc *fakeCluster) {
	fc.client.PrependReactor("create", "selfsubjectrulesreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectRulesReview).DeepCopy()
		review.Status.ResourceRules = []authorizationv1.ResourceRule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}}}
		return true, review, nil
	})
}

func TestExecuteAnswersWithTheRunnersResult(t *testing.T) {
	t.Parallel()
	log := new(framed).out("hello ✓\n").err("note\n").file("plots/a.bin", []byte{0, 1, 0xff}).end(0, false)
	ts := newTestServer(t, scenario{steps: ok, log: log}, runner.Options{}, Options{})

	a := postJSON(t, ts.url, ExecuteRequest{Code: "print('hello ✓')", ExecutionID: "ok-1",
		Files: map[string]string{"data/in.csv": base64.StdEncoding.EncodeToString([]byte("a,b\n"))}})
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if id := a.header.Get("X-Gkexec-Execution-Id"); id != "ok-1" {
		t.Errorf("X-Gkexec-Execution-Id %q", id)
	}
	m := a.result(t)
	for key, want := range map[string]any{"execution_id": "ok-1", "stdout": "hello ✓\n", "stderr": "note\n",
		"exit_code": 0.0, "outcome": "success", "timed_out": false, "pod_name": "gkexec-ok-1-abcde"} {
		if m[key] != want {
			t.Errorf("%s = %#v, want %#v", key, m[key], want)
		}
	}
	files := m["files"].([]any)
	if len(files) != 1 || files[0].(map[string]any)["content_base64"] != base64.StdEncoding.EncodeToString([]byte{0, 1, 0xff}) {
		t.Errorf("files = %v", files)
	}
	if phases := m["phase_seconds"].(map[string]any); len(phases) != len(runner.ColdPhaseNames) {
		t.Errorf("phase_seconds = %v, want all of %v", phases, runner.ColdPhaseNames)
	}
	if left := ts.fc.leftovers(); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// What the code did, however badly, is a 200 result the agent reads; never an HTTP error.
func TestWhatTheCodeDidIsAResult(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		sc       scenario
		outcome  string
		exitCode float64
		field    string
	}{
		{"non-zero exit", scenario{steps: ok, log: new(framed).err("Traceback ...\nZeroDivisionError\n").end(1, false)}, "error", 1, "stderr"},
		{"timeout", scenario{steps: ok, log: new(framed).out("partial").end(137, true)}, "timeout", 137, "timed_out"},
		{"out of memory", scenario{steps: append(ok[:2:2], terminated("OOMKilled", 137)), log: new(framed).out("allocating\n").Bytes()}, "oom", 137, "oom_killed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, tc.sc, runner.Options{}, Options{})
			a := postJSON(t, ts.url, ExecuteRequest{Code: "1/0"})
			if a.status != http.StatusOK {
				t.Fatalf("status %d, want 200: %s", a.status, a.body)
			}
			m := a.result(t)
			if m["outcome"] != tc.outcome || m["exit_code"] != tc.exitCode {
				t.Errorf("outcome %v exit %v, want %s %v", m["outcome"], m["exit_code"], tc.outcome, tc.exitCode)
			}
			if v := m[tc.field]; v == "" || v == false || v == nil {
				t.Errorf("%s = %#v, want it set", tc.field, v)
			}
			if left := ts.fc.leftovers(); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func TestBadRequestsGetA4xxAndCreateNothing(t *testing.T) {
	t.Parallel()
	hugeCode := strings.Repeat("x", 1<<20) // fits the body cap, not the ConfigMap
	overCap := `{"code": "` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`
	cases := []struct {
		name        string
		contentType string
		body        string
		chunked     bool // no Content-Length: the cap is found while reading
		status      int
		code        string
		message     string
	}{
		{"not JSON", "application/json", `print(1)`, false, 400, CodeInvalidJSON, "not valid JSON"},
		{"empty body", "application/json", ``, false, 400, CodeInvalidJSON, "empty body"},
		{"truncated", "application/json", `{"code": "print(1)"`, false, 400, CodeInvalidJSON, "middle"},
		{"two objects", "application/json", `{"code": "1"} {"code": "2"}`, false, 400, CodeInvalidJSON, "exactly one"},
		{"unknown field", "application/json", `{"code": "1", "timeout": 5}`, false, 400, CodeInvalidJSON, "timeout"},
		{"wrong type", "application/json", `{"code": 1}`, false, 400, CodeInvalidJSON, "code"},
		{"files not base64", "application/json", `{"code": "1", "files": {"a.txt": "not base64!"}}`, false, 400, CodeInvalidJSON, "a.txt"},
		{"empty code", "application/json", `{"code": "  "}`, false, 400, CodeInvalidRequest, "Code is empty"},
		{"file escapes the workdir", "application/json", `{"code": "1", "files": {"../etc/passwd": ""}}`, false, 400, CodeInvalidRequest, "inside the working directory"},
		{"bad execution id", "application/json", `{"code": "1", "execution_id": "Not_A_Label"}`, false, 400, CodeInvalidRequest, "ExecutionID"},
		{"timeout above the server's", "application/json", `{"code": "1", "timeout_seconds": 301}`, false, 400, CodeInvalidRequest, "Timeout"},
		{"negative timeout", "application/json", `{"code": "1", "timeout_seconds": -1}`, false, 400, CodeInvalidJSON, "timeout_seconds"},
		{"text/plain", "text/plain", `{"code": "1"}`, false, 415, CodeUnsupportedMedia, "application/json"},
		{"no content type", "", `{"code": "1"}`, false, 415, CodeUnsupportedMedia, "application/json"},
		{"over the body cap", "application/json", overCap, false, 413, CodeRequestTooLarge, "ConfigMap"},
		{"over the body cap, chunked", "application/json", overCap, true, 413, CodeRequestTooLarge, "ConfigMap"},
		{"over a ConfigMap", "application/json", `{"code": "` + hugeCode + `"}`, false, 413, CodeRequestTooLarge, "ConfigMap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, scenario{steps: ok, log: new(framed).end(0, false)}, runner.Options{}, Options{})
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			a := post(t, context.Background(), ts.url, tc.contentType, body)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if code := a.errorCode(t); code != tc.code {
				t.Errorf("code %q, want %q", code, tc.code)
			}
			if !strings.Contains(string(a.body), tc.message) {
				t.Errorf("message does not mention %q: %s", tc.message, a.body)
			}
			if made := ts.fc.created(); len(made) != 0 {
				t.Errorf("created %v for a bad request", made)
			}
		})
	}
}

func TestRunnerErrorsMapOntoStatuses(t *testing.T) {
	t.Parallel()
	reject := func(verb, resource string, err error) func(*fakeCluster) {
		return func(fc *fakeCluster) {
			fc.client.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, err })
		}
	}
	gr := schema.GroupResource{Resource: "configmaps"}
	cases := []struct {
		name       string
		sc         scenario
		ro         runner.Options
		setup      func(*fakeCluster)
		status     int
		code       string
		retryAfter bool
	}{
		{name: "RBAC", setup: func(fc *fakeCluster) {
			reject("create", "configmaps", apierrors.NewForbidden(gr, "x", errors.New("denied")))(fc)
			holdsARole(fc)
		}, status: 403, code: CodeForbidden},
		{name: "quota", setup: reject("create", "configmaps", apierrors.NewForbidden(gr, "x", errors.New("exceeded quota: gkexec-quota"))),
			status: 503, code: CodeQuotaExceeded, retryAfter: true},
		{name: "namespace", setup: reject("create", "configmaps", apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, testNamespace)),
			status: 503, code: CodeNamespaceNotFound},
		{name: "API server error", setup: reject("create", "configmaps", apierrors.NewInternalError(errors.New("etcd down"))),
			status: 503, code: CodeClusterError, retryAfter: true},
		{name: "image", sc: scenario{steps: []func(*corev1.Pod){scheduled, waiting("ErrImageNeverPull")}},
			status: 503, code: CodeImagePull},
		{name: "never starts", sc: scenario{noPod: true}, ro: runner.Options{StartTimeout: 200 * time.Millisecond},
			status: 504, code: CodeStartTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, tc.sc, tc.ro, Options{})
			if tc.setup != nil {
				tc.setup(ts.fc)
			}
			a := postJSON(t, ts.url, ExecuteRequest{Code: "print(1)"})
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if code := a.errorCode(t); code != tc.code {
				t.Errorf("code %q, want %q", code, tc.code)
			}
			if got := a.header.Get("Retry-After") != ""; got != tc.retryAfter {
				t.Errorf("Retry-After %q, want present=%v", a.header.Get("Retry-After"), tc.retryAfter)
			}
			if left := ts.fc.leftovers(); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{steps: ok, log: new(framed).out("1\n").end(0, false)}, runner.Options{}, Options{Token: "s3cret"})
	cases := []struct {
		name   string
		header []string
		status int
	}{
		{"none", nil, 401},
		{"wrong", []string{"Authorization", "Bearer guess"}, 401},
		{"prefix of the right one", []string{"Authorization", "Bearer s3c"}, 401},
		{"not bearer", []string{"Authorization", "Basic s3cret"}, 401},
		{"right", []string{"Authorization", "Bearer s3cret"}, 200},
	}
	for _, tc := range cases {
		a := postJSON(t, ts.url, ExecuteRequest{Code: "print(1)"}, tc.header...)
		if a.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, a.status, tc.status, a.body)
		}
		if tc.status == 401 && a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}
	if a := get(t, ts.url+PathConfig); a.status != 401 {
		t.Errorf("GET /v1/config without the token: %d, want 401", a.status)
	}
	for _, p := range []string{PathHealthz, PathMetrics} {
		if a := get(t, ts.url+p); a.status != 200 {
			t.Errorf("GET %s without the token: %d, want 200 (probes stay open)", p, a.status)
		}
	}
	if made := ts.fc.created(); len(made) != 2 { // the one authorised execution: a ConfigMap and a Job
		t.Errorf("created %v, want only the authorised execution's configmap and job", made)
	}
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

func TestConcurrencyBoundAnswers429(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{noPod: true}, runner.Options{}, Options{MaxConcurrent: 2, RetryAfter: 3 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	first, second := hold(t, ctx, ts.url, "held-1"), hold(t, ctx, ts.url, "held-2")
	waitFor(t, "two executions in flight", func() bool { return ts.fc.jobCount() == 2 })

	a := postJSON(t, ts.url, ExecuteRequest{Code: "print(1)"})
	if a.status != http.StatusTooManyRequests || a.errorCode(t) != CodeBusy {
		t.Fatalf("third execution: %d %s, want 429 busy", a.status, a.body)
	}
	if ra := a.header.Get("Retry-After"); ra != "3" {
		t.Errorf("Retry-After %q, want 3", ra)
	}
	m := get(t, ts.url+PathMetrics)
	for _, line := range []string{"gkexec_serve_executions_in_flight 2", `gkexec_serve_executions_total{outcome="busy"} 1`, "gkexec_serve_max_concurrent 2"} {
		if !strings.Contains(string(m.body), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	cancel()
	<-first
	<-second
	waitFor(t, "cleanup", func() bool { return len(ts.fc.leftovers()) == 0 })
	// The slots are free again: the next execution is admitted (its Job appears).
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	third := hold(t, ctx, ts.url, "held-3")
	waitFor(t, "the next execution admitted", func() bool { return ts.fc.jobCount() == 1 })
	cancel()
	if a := <-third; a.status == http.StatusTooManyRequests {
		t.Errorf("still 429 after the executions ended")
	}
}

func TestExecutionIDInFlightIsAConflict(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{noPod: true}, runner.Options{}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := hold(t, ctx, ts.url, "same-id")
	waitFor(t, "the first execution", func() bool { return ts.fc.jobCount() == 1 })
	a := postJSON(t, ts.url, ExecuteRequest{Code: "print(2)", ExecutionID: "same-id"})
	if a.status != http.StatusConflict || a.errorCode(t) != CodeExecutionIDInUse {
		t.Fatalf("duplicate ID: %d %s, want 409", a.status, a.body)
	}
	cancel()
	<-first
	waitFor(t, "cleanup", func() bool { return len(ts.fc.leftovers()) == 0 })
}

func TestCallerGoingAwayCancelsAndCleansUp(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{noPod: true}, runner.Options{}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	ch := hold(t, ctx, ts.url, "gone")
	waitFor(t, "the execution", func() bool { return ts.fc.jobCount() == 1 })
	cancel()
	<-ch
	waitFor(t, "cleanup", func() bool { return len(ts.fc.leftovers()) == 0 })
	waitFor(t, "the canceled count", func() bool {
		return strings.Contains(string(get(t, ts.url+PathMetrics).body), `gkexec_serve_executions_total{outcome="canceled"} 1`)
	})
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

func TestHealthzAndConfig(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{}, runner.Options{Timeout: 42 * time.Second, Image: "python:3.12-slim"}, Options{MaxConcurrent: 3})
	if a := get(t, ts.url+PathHealthz); a.status != 200 || string(a.body) != "ok\n" {
		t.Errorf("/healthz: %d %q", a.status, a.body)
	}
	a := get(t, ts.url+PathConfig)
	var cfg Config
	if err := json.Unmarshal(a.body, &cfg); err != nil || a.status != 200 {
		t.Fatalf("/v1/config: %d %s", a.status, a.body)
	}
	want := Config{Namespace: testNamespace, Image: "python:3.12-slim", RuntimeClassName: "gvisor", TimeoutSeconds: 42,
		StartTimeoutSeconds: 120, CPURequest: "200m", MemoryRequest: "256Mi", CPULimit: "500m", MemoryLimit: "512Mi",
		MaxOutputBytes: 1 << 20, MaxFileBytes: 4 << 20, MaxBodyBytes: DefaultMaxBodyBytes, MaxConcurrent: 3,
		WorkDir: "/workspace", OutputDir: "/workspace/output"}
	if cfg != want {
		t.Errorf("config\n got %+v\nwant %+v", cfg, want)
	}
	if a := get(t, ts.url+PathExecutions); a.status != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", PathExecutions, a.status)
	}
	if made := ts.fc.created(); len(made) != 0 {
		t.Errorf("created %v", made)
	}
}

func TestReadyzReflectsAPIAndRBACAndIsCached(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{}, runner.Options{}, Options{ReadyCacheTTL: time.Hour})
	a := get(t, ts.url+PathReadyz)
	if a.status != 200 {
		t.Fatalf("/readyz: %d %s", a.status, a.body)
	}
	var st readyStatus
	_ = json.Unmarshal(a.body, &st)
	if !st.Ready || len(st.Checks) < 3 {
		t.Errorf("/readyz body %s", a.body)
	}
	// RuntimeClass and nodes fail on this empty fake cluster, yet the server is ready: they are
	// not the agent's to see, or not fixed by restarting it.
	reviews := func() int {
		n := 0
		for _, act := range ts.fc.client.Actions() {
			if act.GetResource().Resource == "selfsubjectaccessreviews" {
				n++
			}
		}
		return n
	}
	before := reviews()
	var wg sync.WaitGroup
	answers := make([]answer, 5)
	for i := range answers {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i] = get(t, ts.url+PathReadyz) }()
	}
	wg.Wait()
	for _, a := range answers {
		if a.status != http.StatusOK {
			t.Errorf("concurrent /readyz: %d %s, want 200 from the cache", a.status, a.body)
		}
	}
	if after := reviews(); after != before {
		t.Errorf("cached /readyz made %d more access reviews", after-before)
	}
}

func TestReadyzFailsWithoutRBAC(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{})
	fc.client.PrependReactor("create", "selfsubjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().DeepCopyObject()
		return true, review, nil // Allowed stays false
	})
	s, err := New(Options{Runner: fc.runner(runner.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	a := get(t, hs.URL+PathReadyz)
	if a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), "RBAC") {
		t.Errorf("/readyz without RBAC: %d %s, want 503 naming RBAC", a.status, a.body)
	}
}

// The readiness check selects doctor checks by name; this keeps the names in step.
func TestRequiredChecksExistInDoctor(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{})
	r := fc.runner(runner.Options{})
	names := map[string]bool{}
	for _, c := range r.Doctor(context.Background(), runner.DoctorOptions{}) {
		names[c.Name] = true
	}
	for _, want := range requiredChecks(testNamespace) {
		if !names[want] {
			t.Errorf("runner.Doctor has no check %q (has %v)", want, names)
		}
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

// Without a token only loopback names are served: a page that rebinds its DNS name to 127.0.0.1
// must not reach the API as same-origin.
func TestWithoutATokenOnlyLoopbackHostsAreServed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{steps: ok, log: new(framed).end(0, false)}, runner.Options{}, Options{})
	withToken := newTestServer(t, scenario{steps: ok, log: new(framed).end(0, false)}, runner.Options{}, Options{Token: "t"})
	for _, tc := range []struct {
		url, host, token string
		status           int
	}{
		{ts.url, "attacker.example:8080", "", 403},
		{ts.url, "127.0.0.1.attacker.example", "", 403},
		{ts.url, "localhost:8080", "", 200},
		{ts.url, "[::1]:8080", "", 200},
		{ts.url, "127.0.0.1", "", 200},
		{withToken.url, "agent.svc:8080", "t", 200},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.url+PathConfig, nil)
		req.Host = tc.host
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("Host %q (token %v): %d, want %d", tc.host, tc.token != "", resp.StatusCode, tc.status)
		}
	}
	if a := get(t, ts.url+PathHealthz); a.status != 200 {
		t.Errorf("probes answer any host: %d", a.status)
	}
}

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
