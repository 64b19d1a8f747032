package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gkexec/gkexec/gateway"
)

// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestGatewayRejectsBadSetupsBeforeServing(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certOnly, notCA := filepath.Join(dir, "cert-only"), filepath.Join(dir, "not-ca")
	for _, d := range []string{certOnly, notCA} {
		_ = os.Mkdir(d, 0o700)
	}
	cert, key, _ := gateway.GenerateCA(gateway.CAOptions{}, time.Now())
	_ = os.WriteFile(filepath.Join(certOnly, "ca.crt"), cert, 0o600)
	_ = os.WriteFile(filepath.Join(notCA, "ca.crt"), []byte("x"), 0o600)
	_ = os.WriteFile(filepath.Join(notCA, "ca.key"), key, 0o600)
	good := write("good.yaml", "allow: [{host: pypi.org}]\nsandboxes: [{id: a, addr: 127.0.0.1}]\n")
	cases := map[string][]string{
		"no config":          {"gateway"},
		"missing config":     {"gateway", "--config", filepath.Join(dir, "none.yaml")},
		"misspelt field":     {"gateway", "--config", write("alow.yaml", "alow: [{host: pypi.org}]\n")},
		"bad rule":           {"gateway", "--config", write("star.yaml", "allow: [{host: '*'}]\n")},
		"secret without CA":  {"gateway", "--config", write("secret.yaml", "allow: [{host: api.example.com}]\nsecrets: [{name: key, hosts: [api.example.com]}]\nsandboxes: [{id: a, addr: 127.0.0.1}]\n")},
		"CA cert alone":      {"gateway", "--config", good, "--ca-dir", certOnly},
		"CA not a CA":        {"gateway", "--config", good, "--ca-dir", notCA},
		"bad upstream roots": {"gateway", "--config", good, "--upstream-ca", good, "--roots-file", ""},
		"argument":           {"gateway", "--config", good, "extra"},
		"both advertised":    {"gateway", "--config", good, "--listen", "127.0.0.1:0", "--admin-listen", "", "--advertise", "10.0.0.1", "--advertise-service", "gw", "--kubeconfig", "/nonexistent"},
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

func TestAdvertisedIsAnAddressAndPort(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]string{
		"10.1.2.3": "10.1.2.3:3128", "10.1.2.3:8080": "10.1.2.3:8080", "fd00::1": "[fd00::1]:3128", "[fd00::1]:99": "[fd00::1]:99",
		"gateway.svc": "", "": "",
	} {
		got, err := advertised(value, ":3128")
		if (err != nil) != (want == "") || got != want {
			t.Errorf("advertised(%q) = %q, %v; want %q", value, got, err, want)
		}
	}
	if got, _ := advertised("10.1.2.3", "127.0.0.1:4000"); got != "10.1.2.3:4000" {
		t.Errorf("an address alone takes the listener's port: %q", got)
	}
}

func TestGatewayCAWritesAPrivateKeyOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	code, stdout, stderr := runCLI(t, "", "gateway", "ca", "--out-dir", dir, "--domain", "api.example.com")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "ca.crt") || !strings.Contains(stdout, "ca.key") {
		t.Errorf("stdout %q does not name the files", stdout)
	}
	info, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v, mode %v; want 0600", err, info.Mode())
	}
	cert, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	key, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	ca, err := gateway.LoadCA(cert, key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := ca.Certificate().PermittedDNSDomains; len(got) != 1 || got[0] != "api.example.com" {
		t.Errorf("name constraints %v, want [api.example.com]", got)
	}
	if code, _, stderr := runCLI(t, "", "gateway", "ca", "--out-dir", dir); code != exitUsage || !strings.Contains(stderr, "exists") {
		t.Errorf("a second run: exit %d, %s; want a usage error saying the CA exists", code, stderr)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.key")); string(again) != string(key) {
		t.Error("the second run changed the key")
	}
}

// The command end to end on loopback, with the config's fixed directory instead of a Pod watch:
// an allowed destination answers, another is refused with the reason, the admin API counts both,
// and SIGTERM (the context) ends it with exit 0.
func TestGatewayServesAndExitsCleanly(t *testing.T) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "mirror") }))
	defer site.Close()
	_, port, _ := net.SplitHostPort(site.Listener.Addr().String())
	config := filepath.Join(t.TempDir(), "policy.yaml")
	_ = os.WriteFile(config, []byte(fmt.Sprintf(`allow:
  - {host: mirror.test, ports: [%s], allow_private: true}
hosts:
  mirror.test: [127.0.0.1]
sandboxes:
  - {id: sandbox-1, addr: 127.0.0.1}
`, port)), 0o600)

	var out, errOut syncBuffer
	app := newApp(strings.NewReader(""), &out, &errOut)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	exited := make(chan int, 1)
	go func() {
		exited <- runApp(ctx, app, []string{"gkexec", "gateway", "--config", config, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"})
	}()
	addrs := regexp.MustCompile(`msg=serving proxy=(127\.0\.0\.1:\d+) admin=(127\.0\.0\.1:\d+)`)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); m == nil; time.Sleep(20 * time.Millisecond) {
		if m = addrs.FindStringSubmatch(errOut.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("no listen addresses logged: %s", errOut.String())
		}
	}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: m[1]})}}
	get := func(c *http.Client, u string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := get(client, "http://mirror.test:"+port+"/"); resp.StatusCode != 200 || body != "mirror" {
		t.Errorf("allowed: %d %q", resp.StatusCode, body)
	}
	if resp, body := get(client, "http://elsewhere.test/"); resp.StatusCode != 403 || resp.Header.Get(gateway.HeaderDenied) != string(gateway.ReasonNotAllowed) {
		t.Errorf("not allowed: %d %q", resp.StatusCode, body)
	}
	if _, body := get(http.DefaultClient, "http://"+m[2]+"/v1/sandboxes/sandbox-1"); !strings.Contains(body, `"allowed_total": 1`) || !strings.Contains(body, `"denied_total": 1`) {
		t.Errorf("the admin API's counts: %s", body)
	}
	stop()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit %d after shutdown, want 0; stderr: %s", code, errOut.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the gateway did not exit after its context ended")
	}
	if out.String() != "" {
		t.Errorf("the gateway wrote to stdout: %q", out.String())
	}
}
