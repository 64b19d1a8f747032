package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/mcp"
)

// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestMCPRejectsBadSetupsBeforeServing(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"argument":                 {"mcp", "extra"},
		"exposed without a token":  {"mcp", "--listen", "0.0.0.0:0"},
		"a token without --listen": {"mcp", "--token-file", token},
		"empty token file":         {"mcp", "--listen", "127.0.0.1:0", "--token-file", empty},
		"bad sandbox option":       {"mcp", "--kubeconfig", "/nonexistent", "--cpu-limit", "lots"},
		"listen address malformed": {"mcp", "--listen", "nonsense"},
		"allow-domain too wide":    {"mcp", "--kubeconfig", unreachableKubeconfig(t), "--allow-domain", "*"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "", args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, stderr)
			}
			if stdout != "" {
				t.Errorf("wrote to stdout, the protocol's: %q", stdout)
			}
		})
	}
}

// unreachableKubeconfig is a kubeconfig whose API server refuses connections at once.
func unreachableKubeconfig(t *testing.T) string {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	_ = os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)
	return kubeconfig
}

// The command over stdio: the SDK's client lists the tools and calls one through the process's
// standard input and output; closing its input ends the command with 0.
func TestMCPServesStdio(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var errOut syncBuffer
	app := newApp(inR, outW, &errOut)
	exited := make(chan int, 1)
	go func() {
		exited <- runApp(context.Background(), app, []string{"gkexec", "mcp", "--kubeconfig", unreachableKubeconfig(t), "-n", "agent-sandbox", "--timeout", "90s"})
		outW.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "v0"}, nil).Connect(ctx, &sdk.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatalf("connect: %v; stderr: %s", err, errOut.String())
	}
	if got := cs.InitializeResult().ServerInfo; got.Name != mcp.DefaultName || got.Version != version {
		t.Errorf("server %+v, want gkexec %s", got, version)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 7 {
		t.Fatalf("tools: %v %v", tools, err)
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: mcp.ToolDescribeSandbox, Arguments: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	text := res.Content[0].(*sdk.TextContent).Text
	// The flags reach the runner; the unreachable cluster is in the pool's state, not a failure.
	if res.IsError || !strings.Contains(text, `"namespace":"agent-sandbox"`) || !strings.Contains(text, `"timeout_seconds":90`) || !strings.Contains(text, "cannot list the pool's pods") {
		t.Errorf("describe_sandbox: %s", text)
	}
	inW.Close() // the client goes away
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit %d when the client closed stdin, want 0; stderr: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mcp did not exit when its input closed")
	}
}

// The command over HTTP: it serves at /mcp with the token, and exits 0 when its context ends
// (SIGTERM in main).
func TestMCPServesHTTPAndExitsCleanly(t *testing.T) {
	t.Setenv(envMCPToken, "s3cret")
	var out, errOut syncBuffer
	app := newApp(strings.NewReader(""), &out, &errOut)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	exited := make(chan int, 1)
	go func() {
		exited <- runApp(ctx, app, []string{"gkexec", "mcp", "--listen", "127.0.0.1:0", "--kubeconfig", unreachableKubeconfig(t), "-n", "agent-sandbox"})
	}()
	addr := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+/mcp)`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; {
		if m := addr.FindStringSubmatch(errOut.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no address printed: %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	connect := func(token string) (*sdk.ClientSession, error) {
		tr := &sdk.StreamableClientTransport{Endpoint: url, MaxRetries: -1, HTTPClient: &http.Client{Transport: bearerToken(token)}}
		return sdk.NewClient(&sdk.Implementation{Name: "test", Version: "v0"}, nil).Connect(ctx, tr, nil)
	}
	if _, err := connect("guess"); err == nil {
		t.Error("a wrong token connected")
	}
	cs, err := connect("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if tools, err := cs.ListTools(ctx, nil); err != nil || len(tools.Tools) != 7 {
		t.Errorf("tools over HTTP: %v %v", tools, err)
	}
	_ = cs.Close()
	stop()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit %d after shutdown, want 0; stderr: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mcp did not exit after its context ended")
	}
	if out.String() != "" {
		t.Errorf("mcp --listen wrote to stdout: %q", out.String())
	}
}

// bearerToken is a RoundTripper that sends the token.
type bearerToken string

func (b bearerToken) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}
