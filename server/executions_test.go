package server

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/runner"
)

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
