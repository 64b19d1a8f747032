package gateway

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConnectionLimitsAnswer503(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{maxConns: 4, maxPerSource: 2})
	// Two open connections from one sandbox hold its slots (an HTTP exchange shows each is
	// accepted); the third is refused with an answer, not left waiting.
	for range 2 {
		c := h.dialProxy(t, addrWide)
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufioReader(c), nil)
		must(t, err)
		resp.Body.Close()
	}
	c := h.dialProxy(t, addrWide)
	resp, err := http.ReadResponse(bufioReader(c), nil)
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	expectDenied(t, resp, string(body), ReasonTooManyConnections)
	// Another sandbox still gets in.
	r, b, err := get(t, h.client(addrNarrow, ""), h.url("http", "allowed.test"), nil)
	must(t, err)
	if r.StatusCode != http.StatusOK {
		t.Errorf("another source: %d %s", r.StatusCode, b)
	}
	if !strings.Contains(metricsOf(t, h), "gkexec_gateway_connections_refused_total 1\n") {
		t.Error("refusal not counted")
	}
}

func TestOversizedHeaderIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	before := h.plain.count()
	resp, _, err := get(t, h.client(addrWide, ""), h.url("http", "allowed.test"), http.Header{"X-Big": {strings.Repeat("a", DefaultMaxHeaderBytes+4096)}})
	must(t, err)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || h.plain.count() != before {
		t.Errorf("%d; want 431 and nothing forwarded", resp.StatusCode)
	}
}

// Shutdown lets tunnels drain for ShutdownTimeout, then cuts them; Serve returns.
func TestShutdownCutsOpenTunnels(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{shutdown: 200 * time.Millisecond})
	resp, c, br := h.connect(t, addrWide, "allowed.test:"+strconv.Itoa(h.tlsServer.port), "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	tc := tls.Client(&bufferedConn{Conn: c, r: br}, &tls.Config{ServerName: "allowed.test", RootCAs: h.roots})
	must(t, tc.Handshake())
	start := time.Now()
	h.stop(t)
	if d := time.Since(start); d < 200*time.Millisecond || d > 10*time.Second {
		t.Errorf("Serve returned after %s; want after the 200ms drain", d)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := tc.Read(make([]byte, 1)); err == nil {
		t.Error("the tunnel is still open")
	}
	if _, err := net.DialTimeout("tcp", h.proxy, time.Second); err == nil {
		t.Error("the proxy still accepts connections")
	}
}

// A sandbox that opens connections and sends little (slowloris) holds them only for
// ReadHeaderTimeout, or, in a tunnel, ClientHelloTimeout; the per-source cap bounds how many.
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{readHeader: 300 * time.Millisecond, helloWait: 300 * time.Millisecond})
	cutWithin := func(t *testing.T, c net.Conn, r io.Reader) []byte {
		t.Helper()
		start := time.Now()
		got, err := io.ReadAll(r) // dialProxy's 10 s deadline would be an error
		if err != nil {
			t.Fatalf("the gateway did not close the connection: %v after %s", err, time.Since(start))
		}
		return got
	}

	t.Run("a header that never ends", func(t *testing.T) {
		c := h.dialProxy(t, addrWide)
		_, _ = io.WriteString(c, "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.te")
		cutWithin(t, c, c)
	})
	t.Run("a tunnel without a ClientHello", func(t *testing.T) {
		resp, c, br := h.connect(t, addrWide, "allowed.test:"+strconv.Itoa(h.tlsServer.port), "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT: %d", resp.StatusCode)
		}
		if got := cutWithin(t, c, br); string(got) != string(accessDeniedAlert) {
			t.Errorf("got %q; want the access_denied alert", got)
		}
		if st, _ := h.gw.Stats("wide"); !hasDenied(st, "allowed.test", ReasonNotTLS) {
			t.Errorf("stats: %+v; want a denial %s", st.Denied, ReasonNotTLS)
		}
	})
	t.Run("an intercepted handshake that stops after the ClientHello", func(t *testing.T) {
		resp, c, br := h.connect(t, addrWide, "api.test:"+strconv.Itoa(h.tlsServer.port), "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT: %d", resp.StatusCode)
		}
		// The ClientHello goes out; the client never answers the server's flight.
		stall := &stallAfterHello{Conn: c, stop: make(chan struct{})}
		done := make(chan struct{})
		t.Cleanup(func() { close(stall.stop); <-done })
		go func() {
			defer close(done)
			_ = tls.Client(stall, &tls.Config{ServerName: "api.test", RootCAs: h.roots}).Handshake()
		}()
		cutWithin(t, c, br)
	})
}

// stallAfterHello sends its first write (the ClientHello); every later write, and every read,
// waits until stop is closed, then fails.
type stallAfterHello struct {
	net.Conn
	wrote bool
	stop  chan struct{}
}

func (s *stallAfterHello) Write(p []byte) (int, error) {
	if s.wrote {
		<-s.stop
		return 0, net.ErrClosed
	}
	s.wrote = true
	return s.Conn.Write(p)
}

func (s *stallAfterHello) Read([]byte) (int, error) {
	<-s.stop
	return 0, net.ErrClosed
}
