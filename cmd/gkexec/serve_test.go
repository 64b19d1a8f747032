package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestServeRejectsBadSetupsBeforeListening(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"argument":                 {"serve", "extra"},
		"exposed without a token":  {"serve", "--listen", "0.0.0.0:0"},
		"empty token file":         {"serve", "--token-file", empty},
		"missing token file":       {"serve", "--token-file", filepath.Join(dir, "none")},
		"zero concurrency":         {"serve", "--max-concurrent", "0"},
		"bad sandbox option":       {"serve", "--kubeconfig", "/nonexistent", "--cpu-limit", "lots"},
		"listen address malformed": {"serve", "--listen", "nonsense"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCLI(t, "", args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, stderr)
			}
		})
	}
}

func TestReadTokenAndExposure(t *testing.T) { // not parallel: t.Setenv
	file := filepath.Join(t.TempDir(), "token")
	_ = os.WriteFile(file, []byte("s3cret\n"), 0o600)
	const unset, set = "GKEXEC_TEST_TOKEN_UNSET", "GKEXEC_TEST_TOKEN"
	t.Setenv(set, " fromenv ")
	if tok, err := readToken(file, unset); err != nil || tok != "s3cret" {
		t.Errorf("token file: %q %v", tok, err)
	}
	if tok, err := readToken("", set); err != nil || tok != "fromenv" {
		t.Errorf("token from env: %q %v", tok, err)
	}
	if _, err := readToken(file, set); err == nil || !strings.Contains(err.Error(), set) {
		t.Errorf("both a file and the variable: %v, want refused, naming the variable", err)
	}
	for listen, ok := range map[string]bool{"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:1": true,
		":8080": false, "0.0.0.0:8080": false, "10.0.0.5:8080": false} {
		if err := checkExposure(listen, "", envServeToken); (err == nil) != ok {
			t.Errorf("checkExposure(%q) = %v, want allowed=%v", listen, err, ok)
		}
		if err := checkExposure(listen, "tok", envServeToken); err != nil {
			t.Errorf("with a token %q must be allowed: %v", listen, err)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server's logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The whole command on an unreachable cluster: it serves, reports not ready, refuses bad bodies
// without touching the cluster, and exits 0 when its context ends (SIGTERM in main).
func TestServeServesAndExitsCleanly(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	_ = os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)
	var out, errOut syncBuffer
	app := newApp(strings.NewReader(""), &out, &errOut)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	exited := make(chan int, 1)
	go func() {
		exited <- runApp(ctx, app, []string{"gkexec", "serve", "--listen", "127.0.0.1:0", "--kubeconfig", kubeconfig, "-n", "agent-sandbox"})
	}()

	addr := regexp.MustCompile(`msg=serving listen=(127\.0\.0\.1:\d+)`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; {
		if m := addr.FindStringSubmatch(errOut.String()); m != nil {
			base = "http://" + m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no listen address logged: %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	check := func(method, path, body string, want int) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
		}
	}
	check("GET", "/healthz", "", 200)
	check("GET", "/readyz", "", 503)
	check("POST", "/v1/executions", "{not json", 400)
	check("GET", "/v1/config", "", 200)

	stop()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit %d after shutdown, want 0; stderr: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after its context ended")
	}
	if out.String() != "" {
		t.Errorf("serve wrote to stdout: %q", out.String())
	}
}
