//go:build integration

package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/mcp"
	"github.com/gkexec/gkexec/server"
)

// `gkexec mcp` (the binary under test) as the agent ServiceAccount, driven by MCP clients: the Go
// SDK's own over stdio and over streamable HTTP, and the TypeScript SDK's (test/mcpclient), which
// nobody here wrote. Sessions run cold here (the suite's pool has no idle Pods).

// mcpArgs are the command's arguments as the agent.
func (c *cluster) mcpArgs(extra ...string) []string {
	return append([]string{"mcp", "--kubeconfig", c.agentKubeconfig, "--namespace", c.namespace, "--start-timeout", "3m", "--timeout", "60s"}, extra...)
}

// mcpFigure draws a PNG with the standard library (the image has no matplotlib) and says so.
const mcpFigure = `import os, struct, time, zlib
print("drawing", flush=True)
time.sleep(1)
w, h = 64, 32
rows = b"".join(b"\x00" + b"".join(bytes((x * 4 % 256, y * 8 % 256, 128)) for x in range(w)) for y in range(h))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
os.makedirs("output", exist_ok=True)
open("output/figure.png", "wb").write(png)
print("saved figure.png")
`

func testMCPStdio(t *testing.T, c *cluster) {
	var stderr lockedBuffer
	cmd := exec.Command(c.bin, c.mcpArgs()...)
	cmd.Stderr = &stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gkexec mcp stderr:\n%s", stderr.String())
		}
	})
	var mu sync.Mutex
	var streamed strings.Builder
	client := sdk.NewClient(&sdk.Implementation{Name: "gkexec-e2e", Version: "v0"}, &sdk.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *sdk.ProgressNotificationClientRequest) {
			mu.Lock()
			defer mu.Unlock()
			streamed.WriteString(r.Params.Message)
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs, err := client.Connect(ctx, &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect to gkexec mcp over stdio: %v", err)
	}
	defer cs.Close()

	t.Run("run_code_with_a_figure", func(t *testing.T) {
		res, out := callMCP(t, cs, mcp.ToolRunCode, map[string]any{"code": mcpFigure}, sdk.Meta{"progressToken": "fig"})
		if res.IsError || out["status"] != mcp.StatusOK || !strings.Contains(fmt.Sprint(out["stdout"]), "saved figure.png") {
			t.Fatalf("run_code: %s", mcpText(res))
		}
		img := imageOf(res)
		if img == nil || img.MIMEType != "image/png" || !bytes.HasPrefix(img.Data, []byte("\x89PNG")) {
			t.Errorf("no PNG image content in %d blocks", len(res.Content))
		}
		// The SDK's client handles notifications on a goroutine of their own: the last may follow
		// the result it preceded on the wire.
		got := func() string { mu.Lock(); defer mu.Unlock(); return streamed.String() }
		for deadline := time.Now().Add(5 * time.Second); got() != "drawing\nsaved figure.png\n" && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if got() != "drawing\nsaved figure.png\n" {
			t.Errorf("progress streamed %q, want the output", got())
		}
	})
	t.Run("session_keeps_state", func(t *testing.T) {
		res, out := callMCP(t, cs, mcp.ToolOpenSession, map[string]any{})
		if res.IsError {
			t.Fatalf("open_session: %s", mcpText(res))
		}
		id := out["session_id"].(string)
		defer callMCP(t, cs, mcp.ToolCloseSession, map[string]any{"session_id": id})
		if res, _ := callMCP(t, cs, mcp.ToolUploadFile, map[string]any{"session_id": id, "path": "data/n.txt", "content": "41"}); res.IsError {
			t.Fatalf("upload_file: %s", mcpText(res))
		}
		if res, _ := callMCP(t, cs, mcp.ToolRunInSession, map[string]any{"session_id": id, "code": "x = int(open('data/n.txt').read())"}); res.IsError {
			t.Fatalf("x = ...: %s", mcpText(res))
		}
		res, out = callMCP(t, cs, mcp.ToolRunInSession, map[string]any{"session_id": id, "code": "x += 1\nprint(x)\nopen('output/x.txt', 'w').write(str(x))"})
		if res.IsError || out["stdout"] != "42\n" {
			t.Fatalf("x += 1: %s, want 42 from the session's state", mcpText(res))
		}
		res, out = callMCP(t, cs, mcp.ToolDownloadFile, map[string]any{"session_id": id, "path": "/workspace/output/x.txt"})
		if er, ok := lastContent(res).(*sdk.EmbeddedResource); res.IsError || !ok || er.Resource.Text != "42" {
			t.Errorf("download_file: %s", mcpText(res))
		}
		if res, _ := callMCP(t, cs, mcp.ToolDownloadFile, map[string]any{"session_id": id, "path": "/etc/passwd"}); !res.IsError || !strings.HasPrefix(mcpText(res), server.CodeInvalidRequest) {
			t.Errorf("download_file outside the workspace: %s, want invalid_request", mcpText(res))
		}
	})
	t.Run("errors", func(t *testing.T) {
		// What the code did is a result.
		res, out := callMCP(t, cs, mcp.ToolRunCode, map[string]any{"code": "import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)"})
		if res.IsError || out["status"] != mcp.StatusError || out["exit_code"] != 3.0 || out["stderr"] != "boom\n" {
			t.Errorf("exit 3: %s, want a result with status error", mcpText(res))
		}
		// What kept it from running is a tool error the model can act on.
		res, _ = callMCP(t, cs, mcp.ToolRunInSession, map[string]any{"session_id": "closed-long-ago", "code": "print(1)"})
		if !res.IsError || !strings.HasPrefix(mcpText(res), server.CodeSessionNotFound) || !strings.Contains(mcpText(res), "open_session") {
			t.Errorf("unknown session: %s, want session_not_found naming open_session", mcpText(res))
		}
	})
}

func testMCPHTTP(t *testing.T, c *cluster) {
	url, token := startMCPHTTP(t, c)
	connect := func(token string) (*sdk.ClientSession, error) {
		tr := &sdk.StreamableClientTransport{Endpoint: url, MaxRetries: -1, HTTPClient: &http.Client{Transport: withBearer(token)}}
		return sdk.NewClient(&sdk.Implementation{Name: "gkexec-e2e", Version: "v0"}, nil).Connect(context.Background(), tr, nil)
	}
	if _, err := connect("wrong-" + token); err == nil {
		t.Error("a wrong token connected")
	}
	cs, err := connect(token)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, out := callMCP(t, cs, mcp.ToolDescribeSandbox, map[string]any{})
	if res.IsError || out["namespace"] != c.namespace || !strings.Contains(mcpText(res), `"name":"python"`) {
		t.Errorf("describe_sandbox: %s", mcpText(res))
	}
	res, out = callMCP(t, cs, mcp.ToolRunCode, map[string]any{"code": "import platform\nprint(platform.python_version())"})
	if res.IsError || out["status"] != mcp.StatusOK || !regexp.MustCompile(`^3\.\d+\.\d+\n$`).MatchString(fmt.Sprint(out["stdout"])) {
		t.Errorf("run_code over HTTP: %s", mcpText(res))
	}
}

// testMCPTypeScriptClient runs test/mcpclient (the TypeScript SDK's client) against the command
// over stdio and over HTTP; it checks each step itself and prints a transcript with timings.
func testMCPTypeScriptClient(t *testing.T, c *cluster) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is required for the third-party MCP client (test/mcpclient); hack/install-prereqs.sh installs it")
	}
	script := filepath.Join(c.root, "test", "mcpclient", "run.sh")
	run := func(t *testing.T, env []string, args ...string) {
		cmd := exec.Command(script, args...)
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			t.Log(sc.Text())
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, stderr.String())
		}
		if !strings.Contains(string(out), `"step":"done"`) {
			t.Fatalf("the client did not finish:\n%s\n%s", out, stderr.String())
		}
	}
	t.Run("stdio", func(t *testing.T) { run(t, nil, append([]string{"stdio", c.bin}, c.mcpArgs()...)...) })
	t.Run("http", func(t *testing.T) {
		url, token := startMCPHTTP(t, c)
		run(t, []string{"GKEXEC_MCP_TOKEN=" + token}, "http", url)
	})
}

// startMCPHTTP starts `gkexec mcp --listen` with a fresh token and returns its URL; it stops it
// (SIGTERM, then expects exit 0) when the test ends.
func startMCPHTTP(t *testing.T, c *cluster) (url, token string) {
	t.Helper()
	token = "mcp-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cmd := exec.Command(c.bin, c.mcpArgs("--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)))...)
	cmd.Env = append(os.Environ(), "GKEXEC_MCP_TOKEN="+token)
	var log lockedBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("gkexec mcp --listen exited with %v after SIGINT, want 0", err)
			}
		case <-time.After(90 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("gkexec mcp --listen did not exit within 90 s of SIGINT")
		}
		if t.Failed() {
			t.Logf("gkexec mcp log:\n%s", log.String())
		}
	})
	addr := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+/mcp)`)
	waitFor(t, "gkexec mcp to listen", 30*time.Second, func() bool {
		m := addr.FindStringSubmatch(log.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	return url, token
}

// callMCP calls a tool; a protocol error fails the test, a tool error is returned. out is the
// structured content, when there is one.
func callMCP(t *testing.T, cs *sdk.ClientSession, tool string, args map[string]any, meta ...sdk.Meta) (*sdk.CallToolResult, map[string]any) {
	t.Helper()
	p := &sdk.CallToolParams{Name: tool, Arguments: args}
	if len(meta) > 0 {
		p.Meta = meta[0]
	}
	started := time.Now()
	res, err := cs.CallTool(context.Background(), p)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	t.Logf("%s in %s: %.300s", tool, time.Since(started).Round(time.Millisecond), mcpText(res))
	var out map[string]any
	if res.StructuredContent != nil {
		b, _ := json.Marshal(res.StructuredContent)
		_ = json.Unmarshal(b, &out)
	}
	return res, out
}

func mcpText(res *sdk.CallToolResult) string {
	if len(res.Content) > 0 {
		if tc, ok := res.Content[0].(*sdk.TextContent); ok {
			return tc.Text
		}
	}
	return ""
}

func imageOf(res *sdk.CallToolResult) *sdk.ImageContent {
	for _, c := range res.Content {
		if img, ok := c.(*sdk.ImageContent); ok {
			return img
		}
	}
	return nil
}

func lastContent(res *sdk.CallToolResult) sdk.Content {
	if len(res.Content) == 0 {
		return nil
	}
	return res.Content[len(res.Content)-1]
}

// withBearer is a RoundTripper that sends the token.
type withBearer string

func (b withBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}
