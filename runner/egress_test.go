package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/gateway"
	"github.com/gkexec/gkexec/internal/egress"
	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/internal/wire/wiretest"
	"github.com/gkexec/gkexec/runner/internal/gatewayclient"
)

func TestAllowDomainsAreCheckedBeforeAnythingIsCreated(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{})
	r := fc.runner(Options{})
	for _, bad := range [][]string{{"*"}, {"*.com"}, {"pypi.org files.pythonhosted.org"}, {"http://pypi.org"}, {"pypi.org:99999"}, {""}} {
		_, err := r.Execute(context.Background(), Request{Code: "x", AllowDomains: bad})
		if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "AllowDomains") {
			t.Errorf("AllowDomains %q: %v, want ErrInvalidRequest naming AllowDomains", bad, err)
		}
	}
	if _, err := r.OpenSession(context.Background(), SessionOptions{AllowDomains: []string{"*"}}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("a session's bad AllowDomains: %v", err)
	}
	if hasAction(fc.client.Actions(), "create", "jobs") || hasAction(fc.client.Actions(), "create", "configmaps") {
		t.Error("objects were created for refused requests")
	}
	if err := r.CheckRequest(Request{Code: "x", AllowDomains: []string{"pypi.org", "*.pythonhosted.org", "api.example.com:8443", "203.0.113.7"}}); err != nil {
		t.Errorf("valid entries refused: %v", err)
	}
}

// A sandbox carries its narrowing from its creation on.
func TestTheNarrowingIsOnTheSandboxPod(t *testing.T) {
	t.Parallel()
	t.Run("cold", func(t *testing.T) {
		t.Parallel()
		fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).end(endRecord{})})
		r := fc.runner(Options{})
		if _, err := r.Execute(context.Background(), Request{Code: "x", ExecutionID: "nc", AllowDomains: []string{"pypi.org", "*.pythonhosted.org"}}); err != nil {
			t.Fatal(err)
		}
		job := createdJob(t, fc)
		if got := job.Spec.Template.Annotations[egress.AnnotationAllow]; got != "pypi.org *.pythonhosted.org" {
			t.Errorf("the Job's Pod narrowing %q", got)
		}
	})
	// A narrowed execution never takes a pool Pod, whose annotation a claim would change only
	// after the fact: it runs cold, its Pod created narrowed.
	t.Run("warm pool", func(t *testing.T) {
		t.Parallel()
		o := Options{Namespace: fakecluster.Namespace}
		fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).end(endRecord{})},
			poolPod(t, o, "pool-a", time.Minute))
		r := warmRunner(t, fc, o, fakeAttach(new(framed).end(endRecord{})))
		res, err := r.Execute(context.Background(), Request{Code: "x", ExecutionID: "nw", AllowDomains: []string{"pypi.org"}})
		if err != nil || res.Sandbox != SandboxCold {
			t.Fatalf("a narrowed execution with a pool Pod idle: %v, sandbox %q; want cold", err, res.Sandbox)
		}
		if got := createdJob(t, fc).Spec.Template.Annotations[egress.AnnotationAllow]; got != "pypi.org" {
			t.Errorf("the Job's Pod narrowing %q", got)
		}
		if res, err := r.Execute(context.Background(), Request{Code: "x", ExecutionID: "uw"}); err != nil || res.Sandbox != SandboxWarm {
			t.Errorf("an execution that keeps the namespace's list: %v, sandbox %q; want warm", err, res.Sandbox)
		}
		if claim := claimPatch(fc); strings.Contains(claim, egress.AnnotationAllow) {
			t.Errorf("the claim %s touches the narrowing", claim)
		}
	})
}

func createdJob(t *testing.T, fc *fakeCluster) *batchv1.Job {
	t.Helper()
	for _, a := range fc.client.Actions() {
		if c, ok := a.(k8stesting.CreateAction); ok && a.GetResource().Resource == "jobs" {
			return c.GetObject().(*batchv1.Job)
		}
	}
	t.Fatal("no Job was created")
	return nil
}

func claimPatch(fc *fakeCluster) string {
	for _, a := range fc.client.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetResource().Resource == "pods" && strings.Contains(string(p.GetPatch()), PoolStateClaimed) {
			return string(p.GetPatch())
		}
	}
	return ""
}

// fakeGateway stands in for the gateway's admin API behind the port-forward: it counts what the
// test says each sandbox did.
type fakeGateway struct {
	mu    sync.Mutex
	stats map[string]gateway.Stats
	err   error
}

func (g *fakeGateway) get(_ context.Context, _, _ string, _ int, path string) (int, []byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, nil, g.err
	}
	id := strings.TrimPrefix(path, gateway.PathSandboxes+"/")
	s, ok := g.stats[id]
	if !ok {
		return http.StatusNotFound, nil, nil
	}
	b, _ := json.Marshal(gateway.SandboxView{Known: true, ID: id, Stats: s})
	return http.StatusOK, b, nil
}

func (g *fakeGateway) set(pod string, allowed, denied uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats[pod] = gateway.Stats{Sandbox: pod,
		Allowed: []gateway.Destination{{Host: "pypi.org", Port: 443, Count: allowed}}, AllowedTotal: allowed,
		Denied: []gateway.Destination{{Host: "evil.test", Port: 443, Reason: gateway.ReasonNotAllowed, Count: denied}}, DeniedTotal: denied}
}

// publishedGateway is what a running gateway publishes in the sandbox namespace, and its Pod.
func publishedGateway() []runtime.Object {
	return []runtime.Object{
		&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: egress.ConfigMapProxy, Namespace: fakecluster.Namespace, Annotations: map[string]string{
				egress.AnnotationGatewayNamespace: "gw", egress.AnnotationAdminPort: "9090", egress.AnnotationGatewaySelector: egress.GatewaySelector}},
			Data: map[string]string{"HTTPS_PROXY": "http://10.0.0.9:3128"},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "gateway-0", Namespace: "gw", Labels: map[string]string{
				"app.kubernetes.io/name": egress.GatewayName, "app.kubernetes.io/component": egress.ComponentGateway}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		},
	}
}

func TestTheResultSaysWhatTheGatewayAllowedAndDenied(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).end(endRecord{})}, publishedGateway()...)
	r := fc.runner(Options{})
	gw := &fakeGateway{stats: map[string]gateway.Stats{}}
	gw.set("gkexec-eg1-abcde", 3, 1)
	r.gateway = gatewayclient.New(fc.client, fakecluster.Namespace, gw.get)

	res, err := r.Execute(context.Background(), Request{Code: "x", ExecutionID: "eg1"})
	if err != nil {
		t.Fatal(err)
	}
	e := res.Egress
	if e == nil || len(e.Allowed) != 1 || e.Allowed[0].Count != 3 || len(e.Denied) != 1 || e.Denied[0].Reason != gateway.ReasonNotAllowed || e.Error != "" {
		t.Fatalf("Egress %+v, want pypi.org allowed 3 times, evil.test denied once", e)
	}
	b, _ := json.Marshal(res)
	if !strings.Contains(string(b), `"egress":{"allowed":[{"host":"pypi.org","port":443,"count":3}],"denied":[{"host":"evil.test","port":443,"reason":"not-allowed","count":1}]}`) {
		t.Errorf("the JSON result: %s", b)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back.Egress == nil || back.Egress.Denied[0].Host != "evil.test" {
		t.Errorf("read back: %+v, %v", back.Egress, err)
	}

	// A gateway that cannot be asked leaves the result as it is, and says why.
	gw.mu.Lock()
	gw.err = errors.New("port-forward refused")
	gw.mu.Unlock()
	res, err = r.Execute(context.Background(), Request{Code: "x", ExecutionID: "eg2"})
	if err != nil || res.Egress == nil || !strings.Contains(res.Egress.Error, "port-forward refused") {
		t.Errorf("gateway unreachable: %v, Egress %+v; want the result, with the reason in Egress.Error", err, res.Egress)
	}
}

func TestWithoutAGatewayTheResultHasNoEgress(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: new(framed).end(endRecord{})})
	r := fc.runner(Options{})
	calls := 0
	r.gateway = gatewayclient.New(fc.client, fakecluster.Namespace, func(context.Context, string, string, int, string) (int, []byte, error) {
		calls++
		return 0, nil, fmt.Errorf("asked")
	})
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || res.Egress != nil || calls != 0 {
		t.Errorf("err %v Egress %+v calls %d: want no Egress and no call", err, res.Egress, calls)
	}
	if b, _ := json.Marshal(res); strings.Contains(string(b), "egress") {
		t.Errorf("the JSON result names egress: %s", b)
	}
}

// In a session, each execution gets what the gateway did since the previous one; the session's
// narrowing is set when it opens and cannot be changed by an execution.
func TestASessionsExecutionsEachGetTheirOwnEgress(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: fakecluster.Namespace}
	fc := newFakeCluster(t, scenario{}, append(publishedGateway(), poolPod(t, o, "pool-a", time.Minute))...)
	r := warmRunner(t, fc, o, wiretest.NewPod(t).Attach)
	gw := &fakeGateway{stats: map[string]gateway.Stats{}}
	r.gateway = gatewayclient.New(fc.client, fakecluster.Namespace, gw.get)
	ctx := context.Background()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "eg"})
	if err != nil {
		t.Fatal(err)
	}
	gw.set("pool-a", 2, 1)
	first, err := s.Execute(ctx, Request{Code: "print(1)\n"})
	if err != nil || first.Egress == nil || first.Egress.Allowed[0].Count != 2 || first.Egress.Denied[0].Count != 1 {
		t.Fatalf("first: %v %+v", err, first.Egress)
	}
	gw.set("pool-a", 5, 1)
	second, err := s.Execute(ctx, Request{Code: "print(2)\n"})
	if err != nil || second.Egress == nil || len(second.Egress.Allowed) != 1 || second.Egress.Allowed[0].Count != 3 || len(second.Egress.Denied) != 0 {
		t.Fatalf("second: %v %+v, want the 3 requests it made alone", err, second.Egress)
	}
	if _, err := s.Execute(ctx, Request{Code: "print(3)\n", AllowDomains: []string{"pypi.org"}}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("an execution narrowing a session's egress: %v, want ErrInvalidRequest", err)
	}
	_ = r.CloseSession(ctx, "eg")
}

// A narrowed session runs in a Job of its own whose Pod carries the narrowing, even with a pool
// Pod idle.
func TestANarrowedSessionRunsInAPodCreatedNarrowed(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: fakecluster.Namespace, WarmPoolReady: -1, RESTConfig: &rest.Config{Host: "http://127.0.0.1:1"}}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}}, poolPod(t, o, "pool-a", time.Minute))
	r := fc.runner(o)
	_, _ = r.OpenSession(context.Background(), SessionOptions{ID: "narrow", AllowDomains: []string{"api.example.com:8443"}})
	if claim := claimPatch(fc); claim != "" {
		t.Errorf("a narrowed session claimed a pool Pod: %s", claim)
	}
	if got := createdJob(t, fc).Spec.Template.Annotations[egress.AnnotationAllow]; got != "api.example.com:8443" {
		t.Errorf("the session Job's Pod narrowing %q", got)
	}
}
