package gateway

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Requests pipelined on one kept-alive connection are judged one by one: a first allowed
// request opens nothing for the next, in plain HTTP as inside an intercepted tunnel, where
// the second request names another host and must not get the tunnel host's secret.
func TestPipelinedRequestsAreEachJudged(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	read := func(t *testing.T, br *bufio.Reader) (*http.Response, string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}

	t.Run("plain HTTP", func(t *testing.T) {
		c := h.dialProxy(t, addrNarrow) // narrowed to allowed.test
		port := strconv.Itoa(h.plain.port)
		fmt.Fprintf(c, "GET http://allowed.test:%s/one HTTP/1.1\r\nHost: allowed.test:%s\r\n\r\n", port, port)
		fmt.Fprintf(c, "GET http://echo.test:%s/two HTTP/1.1\r\nHost: allowed.test:%s\r\n\r\n", port, port)
		br := bufio.NewReader(c)
		if resp, body := read(t, br); resp.StatusCode != http.StatusOK {
			t.Fatalf("first: %d %s", resp.StatusCode, body)
		}
		before := h.plain.count()
		resp, body := read(t, br)
		expectDenied(t, resp, body, ReasonNarrowed)
		if h.plain.count() != before {
			t.Error("the second request reached a server")
		}
	})
	t.Run("intercepted tunnel", func(t *testing.T) {
		resp, c, br := h.connect(t, addrWide, "api.test:"+strconv.Itoa(h.tlsServer.port), "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT: %d", resp.StatusCode)
		}
		tc := tls.Client(&bufferedConn{Conn: c, r: br}, &tls.Config{ServerName: "api.test", RootCAs: h.roots})
		fmt.Fprintf(tc, "GET /one HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer %s\r\n\r\n", placeholder)
		fmt.Fprintf(tc, "GET https://echo.test:%d/two HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer %s\r\n\r\n", h.tlsServer.port, placeholder)
		tr := bufio.NewReader(tc)
		if resp, body := read(t, tr); resp.StatusCode != http.StatusOK || strings.Contains(body, secretValue) {
			t.Fatalf("first: %d %s", resp.StatusCode, body)
		}
		before := h.tlsServer.count()
		resp2, body := read(t, tr)
		expectDenied(t, resp2, body, ReasonHostMismatch)
		if h.tlsServer.count() != before {
			t.Error("the second request reached a server")
		}
	})
}

// An h2c upgrade would turn a forwarded plain-HTTP connection into HTTP/2 whose streams name
// their own hosts (:authority), past the gateway's Host rewriting: a CDN would route them
// anywhere. The gateway sends the request on without the offer.
func TestForwardDropsH2CUpgrade(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	c := h.dialProxy(t, addrWide)
	port := strconv.Itoa(h.plain.port)
	fmt.Fprintf(c, "GET http://allowed.test:%s/ HTTP/1.1\r\nHost: allowed.test:%s\r\nConnection: Upgrade, HTTP2-Settings\r\n"+
		"Upgrade: H2C, foo\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", port, port)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d; want the request served as HTTP/1.1", resp.StatusCode)
	}
	if got := h.plain.last(t).Header; got.Get("Upgrade") != "" || got.Get("Http2-Settings") != "" {
		t.Errorf("the destination got the h2c offer: %v", got)
	}
}

// leavingDirectory is a Directory whose sandboxes can leave (their Pod deleted or terminating).
type leavingDirectory struct {
	Directory
	mu   sync.Mutex
	gone map[string]bool
}

func (d *leavingDirectory) leave(id string) { d.mu.Lock(); d.gone[id] = true; d.mu.Unlock() }

func (d *leavingDirectory) left(sb Sandbox, ok bool) (Sandbox, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !ok || d.gone[sb.ID] {
		return Sandbox{}, false
	}
	return sb, true
}

func (d *leavingDirectory) ByAddr(a netip.Addr) (Sandbox, bool) { return d.left(d.Directory.ByAddr(a)) }
func (d *leavingDirectory) ByID(id string) (Sandbox, bool)      { return d.left(d.Directory.ByID(id)) }
func (d *leavingDirectory) ByTokenHash(h string) (Sandbox, bool) {
	return d.left(d.Directory.ByTokenHash(h))
}

// A sandbox that leaves the directory (its Pod deleted or terminating) gets nothing more,
// not even through an intercepted tunnel it opened before: the next request there is refused
// and no secret goes out.
func TestInterceptedTunnelEndsWithItsSandbox(t *testing.T) {
	t.Parallel()
	var dir *leavingDirectory
	h := newHarness(t, harnessOptions{wrapDir: func(d Directory) Directory {
		dir = &leavingDirectory{Directory: d, gone: map[string]bool{}}
		return dir
	}})
	resp, c, br := h.connect(t, addrWide, "api.test:"+strconv.Itoa(h.tlsServer.port), "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	tc := tls.Client(&bufferedConn{Conn: c, r: br}, &tls.Config{ServerName: "api.test", RootCAs: h.roots})
	tr := bufio.NewReader(tc)
	send := func() (*http.Response, string) {
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer %s\r\n\r\n", placeholder)
		r, err := http.ReadResponse(tr, nil)
		must(t, err)
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		return r, string(b)
	}
	if r, body := send(); r.StatusCode != http.StatusOK {
		t.Fatalf("first: %d %s", r.StatusCode, body)
	}
	dir.leave("wide")
	before := h.tlsServer.count()
	r, body := send()
	expectDenied(t, r, body, ReasonUnknownSandbox)
	if h.tlsServer.count() != before {
		t.Error("the request of a sandbox that left reached the server")
	}
}
