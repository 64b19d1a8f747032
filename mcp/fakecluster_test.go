package mcp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/internal/wire/wiretest"
	"github.com/gkexec/gkexec/runner"
)

// The tools are tested on a real runner.Runner over internal/fakecluster (a Job controller and
// kubelet on client-go's fake clientset). Warm sandboxes and sessions are reached over
// pods/attach, which a fake clientset cannot serve: attachServer is the API server's attach
// endpoint, over the same WebSocket protocol, in front of internal/wire/wiretest's Pods — the
// real entrypoint.py under the machine's python3 — so the code the tools send really runs.

// TestMain quiets client-go's attach, which logs every stream it sees closed (klog).
func TestMain(m *testing.M) {
	klog.SetSlogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

// cluster is a fake cluster, its attach endpoint, and the runner on them.
type cluster struct {
	t      *testing.T
	fc     *fakecluster.Cluster
	attach *attachServer
	opts   runner.Options
	run    *runner.Runner
}

// newCluster starts a fake cluster whose cold executions play sc, and a runner on it with o.
func newCluster(t *testing.T, sc fakecluster.Scenario, o runner.Options) *cluster {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fakecluster.Namespace}}
	c := &cluster{t: t, fc: fakecluster.New(t, sc, ns), attach: newAttachServer(t)}
	o.Namespace, o.Client = fakecluster.Namespace, c.fc.Client
	o.RESTConfig = &rest.Config{Host: c.attach.url}
	o.WarmPoolReady = -1 // claim on request: a test's pool Pods are for its own calls
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	r, err := runner.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	c.opts, c.run = r.Options(), r
	return c
}

// warmPod adds an idle, ready pool Pod named name, played by a real entrypoint: the next
// execution or session claims it.
func (c *cluster) warmPod(name string) *wiretest.Pod {
	c.t.Helper()
	d, err := runner.WarmPoolDeployment(c.opts, 1)
	if err != nil {
		c.t.Fatal(err)
	}
	created := metav1.NewTime(time.Now().Add(-time.Minute))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.opts.Namespace, UID: types.UID("uid-" + name),
			Labels: d.Spec.Template.Labels, CreationTimestamp: created},
		Spec: d.Spec.Template.Spec,
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &created,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: d.Spec.Template.Spec.Containers[0].Name,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
	if _, err := c.fc.Client.CoreV1().Pods(c.opts.Namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	p := wiretest.NewPod(c.t)
	c.attach.add(name, p)
	return p
}

// client connects an MCP client, the SDK's own, to a Server on the runner over an in-memory
// transport; opts may set the client's handlers.
func (c *cluster) client(opts *sdk.ClientOptions) (*Server, *sdk.ClientSession) {
	c.t.Helper()
	return c.clientOf(Options{}, opts)
}

// clientOf is client with the Server's options so (its Runner and Version set here).
func (c *cluster) clientOf(so Options, opts *sdk.ClientOptions) (*Server, *sdk.ClientSession) {
	c.t.Helper()
	so.Runner, so.Version = c.run, "test"
	s, err := New(so)
	if err != nil {
		c.t.Fatal(err)
	}
	st, ct := sdk.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := s.MCP().Connect(ctx, st, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "v0"}, opts).Connect(ctx, ct, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = cs.Close(); _ = ss.Wait() })
	return s, cs
}

// noPodsLeft fails the test unless every sandbox Pod is deleted within a few seconds (a used warm
// Pod is deleted after the answer, off its critical path).
func (c *cluster) noPodsLeft() {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.pods()) > 0 {
		if time.Now().After(deadline) {
			c.t.Errorf("pods left: %v", c.pods())
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pods are the sandbox Pods in the namespace.
func (c *cluster) pods() []string {
	pods, _ := c.fc.Client.CoreV1().Pods(c.opts.Namespace).List(context.Background(), metav1.ListOptions{})
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	return names
}

// attachServer serves pods/attach over the WebSocket remotecommand protocol (the one client-go
// tries first), connecting each attach to the wiretest Pod of that name.
type attachServer struct {
	url  string
	mu   sync.Mutex
	pods map[string]*wiretest.Pod
}

func newAttachServer(t *testing.T) *attachServer {
	a := &attachServer{pods: map[string]*wiretest.Pod{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/namespaces/{ns}/pods/{name}/attach", a.serve)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	a.url = hs.URL
	return a
}

func (a *attachServer) add(name string, p *wiretest.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pods[name] = p
}

func (a *attachServer) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	pod := a.pods[r.PathValue("name")]
	a.mu.Unlock()
	if pod == nil || !wsstream.IsWebSocketRequest(r) {
		http.Error(w, fmt.Sprintf("no attachable pod %q", r.PathValue("name")), http.StatusNotFound)
		return
	}
	// stdin, stdout, stderr, the error channel, resize: as the kubelet's streaming server has them.
	channels := []wsstream.ChannelType{wsstream.ReadChannel, wsstream.WriteChannel, wsstream.WriteChannel, wsstream.WriteChannel, wsstream.ReadChannel}
	protocols := map[string]wsstream.ChannelProtocolConfig{}
	for _, v := range []string{"v5.channel.k8s.io", "v4.channel.k8s.io"} {
		protocols[v] = wsstream.ChannelProtocolConfig{Binary: true, Channels: channels}
	}
	conn := wsstream.NewConn(protocols)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		return
	}
	defer conn.Close()
	// The attach lasts until the client hangs up, which ends stdin.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_ = pod.Attach(ctx, r.PathValue("name"), cancelOnEnd{streams[0], cancel}, streams[1])
}

// cancelOnEnd cancels when its reader ends.
type cancelOnEnd struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c cancelOnEnd) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil {
		c.cancel()
	}
	return n, err
}

// call calls a tool and fails the test on a protocol error (a tool error is a result).
func call(t *testing.T, cs *sdk.ClientSession, tool string, args any, meta ...sdk.Meta) *sdk.CallToolResult {
	t.Helper()
	p := &sdk.CallToolParams{Name: tool, Arguments: args}
	if len(meta) > 0 {
		p.Meta = meta[0]
	}
	res, err := cs.CallTool(context.Background(), p)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return res
}

// text is a result's first text content.
func text(res *sdk.CallToolResult) string {
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			return tc.Text
		}
	}
	return ""
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
