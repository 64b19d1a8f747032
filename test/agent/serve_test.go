//go:build integration

package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/server"
)

// serveProcess is `gkexec serve` (the binary under test) running as the agent, on loopback.
type serveProcess struct {
	url, token string
	cmd        *exec.Cmd
	log        *lockedBuffer
	exited     chan struct{}
	exitErr    error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// startServe starts the server with the agent's kubeconfig and a fresh token, waits until it
// answers /healthz, and stops it (SIGTERM) when the test ends if the test did not.
func startServe(t *testing.T, c *cluster, args ...string) *serveProcess {
	t.Helper()
	p := &serveProcess{url: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), token: "tok-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		log: &lockedBuffer{}, exited: make(chan struct{})}
	all := append([]string{"serve", "--kubeconfig", c.agentKubeconfig, "--namespace", c.namespace,
		"--listen", strings.TrimPrefix(p.url, "http://"), "--start-timeout", "3m"}, args...)
	p.cmd = exec.Command(c.bin, all...)
	p.cmd.Env = append(os.Environ(), "GKEXEC_SERVE_TOKEN="+p.token)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exitErr = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("gkexec serve log:\n%s", p.log.String())
		}
	})
	waitFor(t, "gkexec serve to answer /healthz", 30*time.Second, func() bool {
		resp, err := http.Get(p.url + server.PathHealthz)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return p
}

// stop sends SIGTERM and waits; it returns the exit code.
func (p *serveProcess) stop(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(90 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("gkexec serve did not exit within 90s of SIGTERM")
		}
	}
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode()
	}
	return 0
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
	took   time.Duration
}

func (r reply) errorCode() string {
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// post, execute, get and do never stop the test, so that goroutines may call them (t.Fatal must
// not be called from one): a request that fails is a reply with status -1 and the error as raw.
func (p *serveProcess) post(t *testing.T, ctx context.Context, contentType string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+server.PathExecutions, bytes.NewReader(body))
	if err != nil {
		return reply{status: -1, raw: []byte(err.Error())}
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, req)
}

func (p *serveProcess) execute(t *testing.T, ctx context.Context, v any) reply {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		return reply{status: -1, raw: []byte(err.Error())}
	}
	return p.post(t, ctx, "application/json", b)
}

func (p *serveProcess) get(t *testing.T, path string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.url+path, nil)
	if err != nil {
		return reply{status: -1, raw: []byte(err.Error())}
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	return do(t, req)
}

// metrics reads /metrics into sample -> value ("name{labels}" as the server writes it); a sample
// the server has not written yet (a counter of an outcome never seen) reads as 0.
func (p *serveProcess) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	r := p.get(t, server.PathMetrics)
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", r.status, r.raw)
	}
	return parseMetrics(t, r.raw)
}

func parseMetrics(t *testing.T, raw []byte) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics line %q is not a sample", line)
		}
		m[line[:i]] = v
	}
	return m
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{status: -1, raw: []byte(err.Error())}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw, took: time.Since(start)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// objectsOf lists the runner's objects for one execution ID.
func (c *cluster) objectsOf(t *testing.T, id string) []string {
	t.Helper()
	sel := metav1.ListOptions{LabelSelector: labels.Set{runner.LabelExecutionID: id}.String()}
	ctx := context.Background()
	var out []string
	cms, _ := c.admin.CoreV1().ConfigMaps(c.namespace).List(ctx, sel)
	for _, o := range cms.Items {
		out = append(out, "configmap/"+o.Name)
	}
	jobs, _ := c.admin.BatchV1().Jobs(c.namespace).List(ctx, sel)
	for _, o := range jobs.Items {
		out = append(out, "job/"+o.Name)
	}
	pods, _ := c.admin.CoreV1().Pods(c.namespace).List(ctx, sel)
	for _, o := range pods.Items {
		out = append(out, "pod/"+o.Name+" "+string(o.Status.Phase))
	}
	return out
}

func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%s", prefix, strconv.FormatInt(time.Now().UnixNano(), 36))
}

func testServe(t *testing.T, c *cluster) {
	p := startServe(t, c, "--max-concurrent", "2", "--timeout", "8s")

	t.Run("probes_and_config", func(t *testing.T) {
		if r := p.get(t, server.PathHealthz); r.status != 200 {
			t.Errorf("/healthz: %d %s", r.status, r.raw)
		}
		// Ready needs the API server and every RBAC verb, checked with the agent's own identity.
		r := p.get(t, server.PathReadyz)
		if r.status != 200 || r.body["ready"] != true {
			t.Errorf("/readyz as the agent: %d %s", r.status, r.raw)
		}
		r = p.get(t, server.PathConfig)
		if r.body["namespace"] != c.namespace || r.body["timeout_seconds"] != 8.0 || r.body["max_concurrent"] != 2.0 {
			t.Errorf("/v1/config: %s", r.raw)
		}
	})

	t.Run("execution", func(t *testing.T) {
		id := uniqueID("serve-ok")
		r := p.execute(t, context.Background(), map[string]any{"execution_id": id,
			"code":  "import sys\ndata = open('in.bin', 'rb').read()\nprint(len(data), data[:2].hex())\nprint('warn', file=sys.stderr)\nopen('output/copy.bin', 'wb').write(data)",
			"files": map[string]string{"in.bin": base64.StdEncoding.EncodeToString([]byte{0xca, 0xfe, 0, 1})}})
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		b := r.body
		if b["stdout"] != "4 cafe\n" || b["stderr"] != "warn\n" || b["exit_code"] != 0.0 || b["outcome"] != "success" || b["execution_id"] != id {
			t.Errorf("result %s", r.raw)
		}
		files, _ := b["files"].([]any)
		if len(files) != 1 || files[0].(map[string]any)["content_base64"] != base64.StdEncoding.EncodeToString([]byte{0xca, 0xfe, 0, 1}) {
			t.Errorf("files %v", b["files"])
		}
		if r.header.Get("X-Gkexec-Execution-Id") != id {
			t.Errorf("X-Gkexec-Execution-Id %q", r.header.Get("X-Gkexec-Execution-Id"))
		}
	})

	t.Run("what_the_code_did_is_a_result", func(t *testing.T) {
		for _, tc := range []struct{ code, outcome string }{
			{"import sys; print('bye'); sys.exit(3)", "error"},
			{"import time\nprint('tick', flush=True)\ntime.sleep(120)", "timeout"},
		} {
			r := p.execute(t, context.Background(), map[string]any{"code": tc.code})
			if r.status != 200 || r.body["outcome"] != tc.outcome {
				t.Errorf("%q: %d %s, want 200 with outcome %s", tc.code, r.status, r.raw, tc.outcome)
			}
		}
	})

	t.Run("bad_requests_create_nothing", func(t *testing.T) {
		id := uniqueID("serve-bad")
		body := func(v any) []byte { b, _ := json.Marshal(v); return b }
		cases := []struct {
			name        string
			contentType string
			body        []byte
			status      int
			code        string
		}{
			{"not json", "application/json", []byte("print(1)"), 400, server.CodeInvalidJSON},
			{"unknown field", "application/json", body(map[string]any{"code": "1", "execution_id": id, "timeout": 5}), 400, server.CodeInvalidJSON},
			{"bad base64", "application/json", body(map[string]any{"code": "1", "execution_id": id, "files": map[string]string{"a": "%%%"}}), 400, server.CodeInvalidJSON},
			{"empty code", "application/json", body(map[string]any{"code": "", "execution_id": id}), 400, server.CodeInvalidRequest},
			{"path escapes", "application/json", body(map[string]any{"code": "1", "execution_id": id, "files": map[string]string{"../x": ""}}), 400, server.CodeInvalidRequest},
			{"wrong media type", "text/plain", body(map[string]any{"code": "1", "execution_id": id}), 415, server.CodeUnsupportedMedia},
			{"more than a ConfigMap", "application/json", body(map[string]any{"code": strings.Repeat("#", 1<<20), "execution_id": id}), 413, server.CodeRequestTooLarge},
			{"more than the body limit", "application/json", body(map[string]any{"code": strings.Repeat("#", 3<<20), "execution_id": id}), 413, server.CodeRequestTooLarge},
		}
		for _, tc := range cases {
			r := p.post(t, context.Background(), tc.contentType, tc.body)
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.raw, tc.status, tc.code)
			}
		}
		if left := c.objectsOf(t, id); len(left) != 0 {
			t.Errorf("bad requests created %v", left)
		}
		r := do(t, mustRequest(t, http.MethodPost, p.url+server.PathExecutions, body(map[string]any{"code": "1"}), "application/json", "Bearer wrong"))
		if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("wrong token: %d %s", r.status, r.raw)
		}
	})

	t.Run("concurrency_bound", func(t *testing.T) {
		ids := []string{uniqueID("serve-busy-a"), uniqueID("serve-busy-b")}
		var wg sync.WaitGroup
		replies := make([]reply, len(ids))
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				replies[i] = p.execute(t, context.Background(), map[string]any{"code": "import time; time.sleep(4); print('done')", "execution_id": id})
			}()
		}
		waitFor(t, "both executions to be created", time.Minute, func() bool {
			return len(c.objectsOf(t, ids[0])) > 0 && len(c.objectsOf(t, ids[1])) > 0
		})
		r := p.execute(t, context.Background(), map[string]any{"code": "print(1)"})
		if r.status != 429 || r.errorCode() != server.CodeBusy || r.header.Get("Retry-After") == "" {
			t.Errorf("third execution while two run: %d %v %s, want 429 busy with Retry-After", r.status, r.header, r.raw)
		}
		metrics := string(p.get(t, server.PathMetrics).raw)
		for _, line := range []string{"gkexec_serve_executions_in_flight 2", `gkexec_serve_executions_total{outcome="busy"} 1`} {
			if !strings.Contains(metrics, line+"\n") {
				t.Errorf("/metrics lacks %q:\n%s", line, metrics)
			}
		}
		wg.Wait()
		for i, r := range replies {
			if r.status != 200 || r.body["stdout"] != "done\n" {
				t.Errorf("execution %s: %d %s", ids[i], r.status, r.raw)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		// Counters move by exactly what this subtest did, whatever ran before it.
		before := p.metrics(t)
		const succeed = 2
		for range succeed {
			if r := p.execute(t, context.Background(), map[string]any{"code": "print(1)"}); r.status != 200 || r.body["outcome"] != "success" {
				t.Fatalf("print(1): %d %s", r.status, r.raw)
			}
		}
		if r := p.execute(t, context.Background(), map[string]any{"code": "import sys; sys.exit(3)"}); r.status != 200 || r.body["outcome"] != "error" {
			t.Fatalf("sys.exit(3): %d %s", r.status, r.raw)
		}
		after := p.metrics(t)
		for sample, want := range map[string]float64{
			`gkexec_serve_executions_total{outcome="success"}`:                   succeed,
			`gkexec_serve_executions_total{outcome="error"}`:                     1,
			`gkexec_serve_executions_total{outcome="timeout"}`:                   0,
			`gkexec_serve_executions_total{outcome="busy"}`:                      0,
			`gkexec_serve_request_duration_seconds_count`:                        succeed + 1,
			`gkexec_serve_execution_phase_seconds_count{phase="run"}`:            succeed + 1,
			`gkexec_serve_execution_phase_seconds_bucket{phase="run",le="+Inf"}`: succeed + 1,
		} {
			if got := after[sample] - before[sample]; got != want {
				t.Errorf("%s went from %v to %v (+%v), want +%v", sample, before[sample], after[sample], got, want)
			}
		}
		if got := after["gkexec_serve_execution_phase_seconds_sum{phase=\"run\"}"] - before["gkexec_serve_execution_phase_seconds_sum{phase=\"run\"}"]; got <= 0 {
			t.Errorf("the run phase's seconds grew by %v, want > 0", got)
		}
		if got, ok := after["gkexec_serve_executions_in_flight"]; !ok || got != 0 {
			t.Errorf("executions in flight %v (exported: %v), want 0 once every execution answered", got, ok)
		}
	})

	t.Run("latency_overhead", func(t *testing.T) { measureOverhead(t, c, p) })

	t.Run("shutdown_with_executions_in_flight", func(t *testing.T) { testServeShutdown(t, c) })
}

func mustRequest(t *testing.T, method, url string, body []byte, contentType, auth string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", auth)
	return req
}

// testServeShutdown: SIGTERM while executions run cancels them, answers their callers 503, waits
// until the runner has deleted their objects, and exits 0.
func testServeShutdown(t *testing.T, c *cluster) {
	p := startServe(t, c)
	ids := []string{uniqueID("serve-term-a"), uniqueID("serve-term-b")}
	replies := make(chan reply, len(ids))
	for _, id := range ids {
		go func() {
			replies <- p.execute(t, context.Background(), map[string]any{"code": "import time; time.sleep(300)", "execution_id": id})
		}()
	}
	// Wait until both sandboxes run: the deepest point to interrupt.
	waitFor(t, "both sandbox pods running", 3*time.Minute, func() bool {
		for _, id := range ids {
			if !slices.ContainsFunc(c.objectsOf(t, id), func(s string) bool { return strings.HasSuffix(s, " Running") }) {
				return false
			}
		}
		return true
	})
	start := time.Now()
	code := p.stop(t)
	took := time.Since(start)
	if code != 0 {
		t.Errorf("gkexec serve exited %d after SIGTERM, want 0", code)
	}
	for range ids {
		r := <-replies
		if r.status != 503 || r.errorCode() != server.CodeShuttingDown {
			t.Errorf("in-flight execution: %d %s, want 503 shutting_down", r.status, r.raw)
		}
	}
	// The server returned only after the runner's deletions were accepted: the ConfigMaps and
	// Jobs are gone or going; the Pods follow their Jobs (background propagation).
	for _, id := range ids {
		var left []string
		waitFor(t, "the pods to follow their jobs", time.Minute, func() bool { left = c.objectsOf(t, id); return len(left) == 0 })
	}
	t.Logf("SIGTERM with 2 executions in flight: exited %d after %s, nothing left", code, took.Round(time.Millisecond))
	if !strings.Contains(p.log.String(), "no execution in flight") {
		t.Errorf("the log does not confirm the drain:\n%s", p.log.String())
	}
}

// measureOverhead compares the same trivial execution through `gkexec serve` and through the
// runner in-process (both as the agent), and the server's own share: the HTTP round trip minus
// the runner's time (requested to cleaned up) reported in the result.
func measureOverhead(t *testing.T, c *cluster, p *serveProcess) {
	const n = 5
	r := c.agentRunner(t, runner.Options{})
	var viaServe, direct, overhead []time.Duration
	for range n {
		rep := p.execute(t, context.Background(), map[string]any{"code": "print(1)"})
		if rep.status != 200 {
			t.Fatalf("serve: %d %s", rep.status, rep.raw)
		}
		tm := rep.body["timings"].(map[string]any)
		requested, _ := time.Parse(time.RFC3339Nano, tm["requested"].(string))
		// A warm execution's Pod is deleted after the answer: it has no cleaned_up; its last mark is.
		var last string
		for _, mark := range []string{"cleaned_up", "logs_read", "finished"} {
			if v, ok := tm[mark].(string); ok {
				last = v
				break
			}
		}
		cleaned, err := time.Parse(time.RFC3339Nano, last)
		if err != nil {
			t.Fatalf("serve: timings %v lack cleaned_up, logs_read and finished", tm)
		}
		viaServe = append(viaServe, rep.took)
		overhead = append(overhead, rep.took-cleaned.Sub(requested))

		start := time.Now()
		if _, err := r.Execute(context.Background(), runner.Request{Code: "print(1)"}); err != nil {
			t.Fatalf("runner: %v", err)
		}
		direct = append(direct, time.Since(start))
	}
	med := func(d []time.Duration) time.Duration { s := slices.Clone(d); slices.Sort(s); return s[len(s)/2] }
	t.Logf("print(1), median of %d: via gkexec serve %s, runner in-process %s; the server's own share (HTTP, JSON, auth) %s (max %s)",
		n, med(viaServe).Round(time.Millisecond), med(direct).Round(time.Millisecond), med(overhead).Round(100*time.Microsecond), slices.Max(overhead).Round(100*time.Microsecond))
	if m := med(overhead); m > 200*time.Millisecond {
		t.Errorf("the server adds %s per execution; want well under 200ms on loopback", m)
	}
}
