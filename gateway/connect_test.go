package gateway

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConnectPassesAllowedTLSThroughUntouched(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	for _, host := range []string{"allowed.test", "a.wild.test"} {
		resp, body, err := get(t, h.client(addrWide, ""), h.url("https", host)+"/x", nil)
		must(t, err)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", host, resp.StatusCode, body)
		}
		// The sandbox talked TLS with the destination itself: its certificate, not the gateway's.
		if issuer := resp.TLS.PeerCertificates[0].Issuer.CommonName; issuer != "test upstream CA" {
			t.Errorf("%s: certificate issued by %q: the tunnel was intercepted", host, issuer)
		}
		if s := h.tlsServer.last(t); !s.TLS || s.Host != net.JoinHostPort(host, strconv.Itoa(h.tlsServer.port)) {
			t.Errorf("%s: upstream saw %+v", host, s)
		}
	}
}

func TestConnectRefusesBeforeTheTunnel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	tlsPort := strconv.Itoa(h.tlsServer.port)
	adminPort := strconv.Itoa(portOf(t, mustAddr(t, h.admin)))
	for _, tc := range []struct {
		src       string
		authority string
		reason    Reason
	}{
		{"wide", "denied.test:" + tlsPort, ReasonNotAllowed},
		{"wide", "wild.test:" + tlsPort, ReasonNotAllowed},
		{"wide", "allowed.test:22", ReasonPortNotAllowed},
		{"wide", "127.0.0.1:" + tlsPort, ReasonPortNotAllowed},
		{"wide", "127.0.0.9:" + tlsPort, ReasonRawIP},
		{"wide", "[::1]:" + tlsPort, ReasonRawIP},
		{"wide", "private.test:" + tlsPort, ReasonPrivateAddress},
		{"wide", "admin.test:" + adminPort, ReasonGatewayItself},
		{"unknown", "allowed.test:" + tlsPort, ReasonUnknownSandbox},
		{"narrow", "a.wild.test:" + tlsPort, ReasonNarrowed},
	} {
		t.Run(tc.src+" "+tc.authority, func(t *testing.T) {
			src := map[string]netip.Addr{"wide": addrWide, "unknown": addrUnknown, "narrow": addrNarrow}[tc.src]
			before := h.tlsServer.count()
			resp, _, br := h.connect(t, src, tc.authority, "")
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_ = br
			expectDenied(t, resp, string(body), tc.reason)
			if h.tlsServer.count() != before {
				t.Error("the upstream was reached")
			}
		})
	}
}

// A tunnel opened for an allowed host must carry TLS for that host: a ClientHello naming
// another (a fronted domain on the same CDN), naming none, or no TLS at all is cut with a TLS
// access_denied alert, and nothing reaches the destination.
func TestConnectChecksTheClientHello(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	authority := "allowed.test:" + strconv.Itoa(h.tlsServer.port)
	for _, tc := range []struct {
		name       string
		serverName string // "" with insecure: no SNI at all
		plain      bool
		reason     Reason
	}{
		{name: "SNI of another host", serverName: "denied.test", reason: ReasonSNIMismatch},
		{name: "SNI of another allowed host", serverName: "a.wild.test", reason: ReasonSNIMismatch},
		{name: "no SNI", serverName: "", reason: ReasonSNIMissing},
		{name: "not TLS", plain: true, reason: ReasonNotTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.tlsServer.count()
			resp, c, br := h.connect(t, addrWide, authority, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("CONNECT: %d", resp.StatusCode)
			}
			var err error
			if tc.plain {
				_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
				var got []byte
				got, err = io.ReadAll(br)
				if string(got) != string(accessDeniedAlert) {
					t.Errorf("got %q; want the access_denied alert", got)
				}
			} else {
				cfg := &tls.Config{ServerName: tc.serverName, RootCAs: h.roots}
				if tc.serverName == "" {
					cfg.InsecureSkipVerify = true // the only way Go sends no SNI
				}
				err = tls.Client(&bufferedConn{Conn: c, r: br}, cfg).Handshake()
				if err == nil || !strings.Contains(err.Error(), "access denied") {
					t.Errorf("handshake: %v; want the access_denied alert", err)
				}
			}
			_ = err
			if h.tlsServer.count() != before {
				t.Error("the destination was reached")
			}
			if st, _ := h.gw.Stats("wide"); !hasDenied(st, "allowed.test", tc.reason) {
				t.Errorf("stats: %+v; want a denial %s", st.Denied, tc.reason)
			}
		})
	}
}

func TestConnectClosesIdleTunnels(t *testing.T) {
	t.Parallel()
	// A second idle, not less: the idle clock already runs during the TLS handshake.
	h := newHarness(t, harnessOptions{tunnelIdle: time.Second})
	resp, c, br := h.connect(t, addrWide, "allowed.test:"+strconv.Itoa(h.tlsServer.port), "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	tc := tls.Client(&bufferedConn{Conn: c, r: br}, &tls.Config{ServerName: "allowed.test", RootCAs: h.roots})
	must(t, tc.Handshake())
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err := tc.Read(make([]byte, 1))
	if err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("read after %s: %v; want the tunnel closed after ~1s idle", time.Since(start), err)
	}
}

func hasDenied(s Stats, host string, reason Reason) bool {
	for _, d := range s.Denied {
		if d.Host == host && d.Reason == reason {
			return true
		}
	}
	return false
}

// bufferedConn reads through the reader that already consumed the CONNECT answer.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
