package mcp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
)

// bearer adds a token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// httpClient connects the SDK's client over the streamable HTTP transport with token.
func httpClient(t *testing.T, url, token string, opts *sdk.ClientOptions) (*sdk.ClientSession, error) {
	t.Helper()
	tr := &sdk.StreamableClientTransport{Endpoint: url, MaxRetries: -1, HTTPClient: &http.Client{Transport: bearer{token}}}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "v0"}, opts).Connect(context.Background(), tr, nil)
	if err == nil {
		t.Cleanup(func() { _ = cs.Close() })
	}
	return cs, err
}

func TestHTTPNeedsTheTokenAndStreamsProgress(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{})
	c.warmPod("pool-a")
	s, err := New(Options{Runner: c.run})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(PathMCP, s.Handler("s3cret"))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)

	if _, err := httpClient(t, hs.URL+PathMCP, "guess", nil); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("wrong token: %v, want Unauthorized (401)", err)
	}
	var mu sync.Mutex
	var streamed strings.Builder
	cs, err := httpClient(t, hs.URL+PathMCP, "s3cret", &sdk.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *sdk.ProgressNotificationClientRequest) {
		mu.Lock()
		defer mu.Unlock()
		streamed.WriteString(r.Params.Message)
	}})
	if err != nil {
		t.Fatal(err)
	}
	res := call(t, cs, ToolRunCode, map[string]any{"code": "import time\nprint('a', flush=True)\ntime.sleep(0.2)\nprint('b')"}, sdk.Meta{"progressToken": 7})
	var out Execution
	structured(t, res, &out)
	if res.IsError || out.Stdout != "a\nb\n" {
		t.Fatalf("run_code over HTTP: %s", text(res))
	}
	// The SDK's client handles notifications on a goroutine of their own: the last may follow the
	// result it preceded on the wire.
	got := func() string { mu.Lock(); defer mu.Unlock(); return streamed.String() }
	for deadline := time.Now().Add(5 * time.Second); got() != "a\nb\n" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got() != "a\nb\n" {
		t.Errorf("progress over HTTP streamed %q, want the output", got())
	}
}

// Without a token, only requests addressed to a loopback name are served (DNS rebinding).
func TestHTTPWithoutATokenServesLoopbackNamesOnly(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{})
	s, err := New(Options{Runner: c.run})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler(""))
	t.Cleanup(hs.Close)
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	for host, want := range map[string]int{"attacker.example": http.StatusForbidden, "localhost": http.StatusOK} {
		req, _ := http.NewRequest(http.MethodPost, hs.URL, strings.NewReader(body))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: status %d, want %d", host, resp.StatusCode, want)
		}
	}
}
