package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/doctor"
)

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
		WorkDir: "/workspace", OutputDir: "/workspace/output", Languages: []string{"bash", "javascript", "python"}}
	if !reflect.DeepEqual(cfg, want) {
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
	for _, c := range doctor.Run(context.Background(), r, doctor.Options{}) {
		names[c.Name] = true
	}
	for _, want := range requiredChecks(testNamespace) {
		if !names[want] {
			t.Errorf("doctor.Run has no check %q (has %v)", want, names)
		}
	}
}
