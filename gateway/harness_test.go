package gateway

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests' network rule: every byte goes to 127.0.0.0/8. The "internet" is httptest servers
// on loopback under names the gateway's HostsResolver maps there; sandboxes are clients bound
// to distinct loopback source addresses.

const (
	secretName  = "apikey"
	secretValue = "s3cr3t-Value_0123456789"
)

// Source addresses of the test sandboxes.
var (
	addrWide    = netip.MustParseAddr("127.0.0.2") // the namespace's whole list
	addrNarrow  = netip.MustParseAddr("127.0.0.3") // narrowed to allowed.test
	addrNone    = netip.MustParseAddr("127.0.0.4") // narrowed to nothing
	addrUnknown = netip.MustParseAddr("127.0.0.5") // no sandbox
	addrToken   = netip.MustParseAddr("127.0.0.6") // no sandbox by address; the token sandbox uses it
)

const sandboxToken = "tok-0123456789abcdef"

// seen is what an upstream test server received.
type seen struct {
	Host    string      `json:"host"`
	Path    string      `json:"path"`
	Query   string      `json:"query"`
	Header  http.Header `json:"header"`
	TLS     bool        `json:"tls"`
	Server  string      `json:"server"`
	Remote  string      `json:"remote"`
	Payload string      `json:"payload"`
}

// serverConnKey holds, in a test server's request context, the connection it came on.
type serverConnKey struct{}

// upstream is a loopback test server that records what it receives and answers it as JSON.
type upstream struct {
	name string
	srv  *httptest.Server
	port int
	mu   sync.Mutex
	got  []seen
}

func (u *upstream) handler(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/bench" {
		_, _ = io.WriteString(w, "ok")
		return
	}
	if r.URL.Path == "/bench-nagle" {
		// Nagle's algorithm on, and the answer in two writes: the headers, then the body.
		if c, ok := r.Context().Value(serverConnKey{}).(net.Conn); ok {
			if tc, ok := c.(*tls.Conn); ok {
				c = tc.NetConn()
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(false)
			}
		}
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		_, _ = io.WriteString(w, "ok")
		return
	}
	body, _ := io.ReadAll(r.Body)
	s := seen{Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), TLS: r.TLS != nil, Server: u.name, Remote: r.RemoteAddr, Payload: string(body)}
	u.mu.Lock()
	u.got = append(u.got, s)
	u.mu.Unlock()
	switch r.URL.Path {
	case "/hangup":
		// The destination fails mid-request: what the gateway says of it must not carry the
		// credential the request held.
		panic(http.ErrAbortHandler)
	case "/reflect-gzip":
		// The credential compressed, under a Content-Encoding whose first line says identity.
		w.Header()["Content-Encoding"] = []string{"identity", "gzip"}
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, r.Header.Get("Authorization"))
		_ = zw.Close()
		return
	case "/reflect-trailer":
		// The credential in a trailer, after the body.
		w.Header().Set("Trailer", "X-Reflected")
		_, _ = io.WriteString(w, "body\n")
		w.Header().Set("X-Reflected", r.Header.Get("Authorization"))
		return
	case "/reflect-early":
		// The credential in an informational (103 Early Hints) answer, before the real one.
		w.Header().Set("X-Reflected", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("X-Reflected")
		_, _ = io.WriteString(w, "body\n")
		return
	}
	if r.URL.Path == "/reflect" {
		// A host that echoes the credential it got: in a header, and in the body.
		w.Header().Set("X-Reflected", r.Header.Get("Authorization"))
		fmt.Fprintf(w, "you sent %s and %s\n", r.Header.Get("Authorization"), r.URL.RawQuery)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

func (u *upstream) last(t *testing.T) seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.got) == 0 {
		t.Fatalf("%s received nothing", u.name)
	}
	return u.got[len(u.got)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}

// harness is a gateway on loopback with its upstreams, CA and sandboxes.
type harness struct {
	gw               *Gateway
	proxy, admin     string // host:port
	plain, tlsServer *upstream
	upstreamCA       *CA
	gatewayCA        *CA
	roots            *x509.CertPool // what sandboxes trust: the gateway's CA and the upstream CA
	logs             *syncBuffer
	// stop ends Serve's context and waits for it to return (at most 10s); idempotent.
	stop func(t testing.TB)
}

type harnessOptions struct {
	maxConns, maxPerSource int
	tunnelIdle, shutdown   time.Duration
	readHeader, helloWait  time.Duration
	// wrapDir, if set, wraps the sandboxes' directory (to make sandboxes leave).
	wrapDir      func(Directory) Directory
	requireToken bool
	extraAllow   []Rule
}

func newHarness(t testing.TB, ho harnessOptions) *harness {
	t.Helper()
	now := time.Now()
	h := &harness{logs: &syncBuffer{}}
	upCert, upKey, err := GenerateCA(CAOptions{CommonName: "test upstream CA"}, now)
	must(t, err)
	h.upstreamCA, err = LoadCA(upCert, upKey, now)
	must(t, err)
	gwCert, gwKey, err := GenerateCA(CAOptions{CommonName: "test gateway CA", PermittedDomains: []string{"api.test", "other-api.test"}}, now)
	must(t, err)
	h.gatewayCA, err = LoadCA(gwCert, gwKey, now)
	must(t, err)
	upstreamRoots := x509.NewCertPool()
	upstreamRoots.AddCert(h.upstreamCA.Certificate())
	h.roots = x509.NewCertPool()
	h.roots.AddCert(h.upstreamCA.Certificate())
	h.roots.AddCert(h.gatewayCA.Certificate())

	h.plain = &upstream{name: "plain"}
	h.plain.srv = httptest.NewServer(http.HandlerFunc(h.plain.handler))
	t.Cleanup(h.plain.srv.Close)
	h.plain.port = portOf(t, h.plain.srv.Listener.Addr())
	h.tlsServer = &upstream{name: "tls"}
	h.tlsServer.srv = httptest.NewUnstartedServer(http.HandlerFunc(h.tlsServer.handler))
	h.tlsServer.srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, serverConnKey{}, c)
	}
	h.tlsServer.srv.TLS = &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return h.upstreamCA.leaf(hello.ServerName, time.Now())
	}}
	// Tunnels refused after the gateway dialled the destination close before any handshake.
	h.tlsServer.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	h.tlsServer.srv.StartTLS()
	t.Cleanup(h.tlsServer.srv.Close)
	h.tlsServer.port = portOf(t, h.tlsServer.srv.Listener.Addr())

	proxyL, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	adminL, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	h.proxy, h.admin = proxyL.Addr().String(), adminL.Addr().String()
	adminPort, proxyPort := portOf(t, adminL.Addr()), portOf(t, proxyL.Addr())

	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	resolver := HostsResolver{
		"allowed.test": lo, "denied.test": lo, "a.wild.test": lo, "b.c.wild.test": lo, "wild.test": lo,
		"api.test": lo, "other-api.test": lo, "echo.test": lo, "admin.test": lo, "private.test": lo,
		"metadata.test": {netip.MustParseAddr("169.254.169.254")},
		"rebind.test":   {netip.MustParseAddr("10.1.2.3")},
	}
	both := []int{h.plain.port, h.tlsServer.port}
	allow := []Rule{
		{Host: "allowed.test", Ports: both, AllowPrivate: true},
		{Host: "*.wild.test", Ports: both, AllowPrivate: true},
		{Host: "api.test", Ports: both, AllowPrivate: true},
		{Host: "other-api.test", Ports: both, AllowPrivate: true},
		{Host: "echo.test", Ports: both, AllowPrivate: true},
		{Host: "admin.test", Ports: []int{adminPort, proxyPort}, AllowPrivate: true},
		{Host: "private.test", Ports: both},                                 // no AllowPrivate: loopback refused
		{Host: "metadata.test", Ports: []int{80}, AllowPrivate: true},       // link-local: never
		{Host: "rebind.test", Ports: both},                                  // private address
		{Host: "127.0.0.1", Ports: []int{h.plain.port}, AllowPrivate: true}, // an address, named
	}
	allow = append(allow, ho.extraAllow...)
	narrow, err := NewAllowList([]Rule{{Host: "allowed.test", Ports: both}, {Host: "denied.test"}, {Host: "*.wild.test", Ports: []int{1}}})
	must(t, err)
	tokenList, err := NewAllowList([]Rule{{Host: "allowed.test", Ports: both}})
	must(t, err)
	dir, err := NewStaticDirectory([]Sandbox{
		{ID: "wide", Addr: addrWide},
		{ID: "narrow", Addr: addrNarrow, Allow: narrow},
		{ID: "none", Addr: addrNone, Allow: &AllowList{}},
		{ID: "tok", TokenSHA256: TokenHash(sandboxToken), Allow: tokenList},
	})
	must(t, err)
	var directory Directory = dir
	if ho.wrapDir != nil {
		directory = ho.wrapDir(dir)
	}
	h.gw, err = New(Options{
		Allow: allow, Directory: directory, Resolver: resolver, RequireToken: ho.requireToken,
		Secrets:      []SecretBinding{{Name: secretName, Hosts: []string{"api.test"}, Query: true}, {Name: "other", Hosts: []string{"other-api.test"}}},
		SecretValues: StaticSecrets{secretName: secretValue, "other": "other-secret-value"},
		CA:           h.gatewayCA, UpstreamRootCAs: upstreamRoots,
		MaxConns: ho.maxConns, MaxConnsPerSource: ho.maxPerSource,
		TunnelIdleTimeout: ho.tunnelIdle, ShutdownTimeout: ho.shutdown,
		ReadHeaderTimeout: ho.readHeader, ClientHelloTimeout: ho.helloWait,
		Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.gw.Serve(ctx, proxyL, adminL) }()
	var once sync.Once
	h.stop = func(t testing.TB) {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Serve did not return after its context ended")
			}
		})
	}
	t.Cleanup(func() { h.stop(t) })
	return h
}

// client is a sandbox's HTTP client: it goes through the gateway from src, trusts the
// gateway's CA and the upstream CA, and sends token (if any) as its proxy password.
func (h *harness) client(src netip.Addr, token string) *http.Client {
	proxyURL := &url.URL{Scheme: "http", Host: h.proxy}
	if token != "" {
		proxyURL.User = url.UserPassword("sandbox", token)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             http.ProxyURL(proxyURL),
			DialContext:       d.DialContext,
			TLSClientConfig:   &tls.Config{RootCAs: h.roots},
			DisableKeepAlives: true,
		},
		Timeout: 10 * time.Second,
	}
}

// dialProxy opens a raw connection to the gateway from src.
func (h *harness) dialProxy(t *testing.T, src netip.Addr) net.Conn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", h.proxy)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// connect sends a raw CONNECT and returns the gateway's answer and the connection.
func (h *harness) connect(t *testing.T, src netip.Addr, authority string, extra string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	c := h.dialProxy(t, src)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", authority, authority, extra)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	must(t, err)
	return resp, c, br
}

// adminGet reads an admin API path.
func (h *harness) adminGet(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + h.admin + path)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) url(scheme, host string) string {
	port := h.plain.port
	if scheme == "https" {
		port = h.tlsServer.port
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// get sends a GET through the gateway and returns the answer, its body read.
func get(t *testing.T, c *http.Client, u string, header http.Header) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	must(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

func portOf(t testing.TB, a net.Addr) int {
	t.Helper()
	_, p, err := net.SplitHostPort(a.String())
	must(t, err)
	n, err := strconv.Atoi(p)
	must(t, err)
	return n
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a buffer the gateway's logger and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
