package gateway

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

var placeholder = Placeholder(secretName)

func TestSecretReachesOnlyItsBoundHost(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	c := h.client(addrWide, "")
	auth := http.Header{"Authorization": {"Bearer " + placeholder}, "X-Api-Key": {placeholder}}

	t.Run("bound host gets the value", func(t *testing.T) {
		resp, body, err := get(t, c, h.url("https", "api.test")+"/v1?key="+url.QueryEscape(placeholder)+"&raw="+placeholder, auth)
		must(t, err)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		s := h.tlsServer.last(t)
		if got := s.Header.Get("Authorization"); got != "Bearer "+secretValue {
			t.Errorf("the server got Authorization %q; want the secret", got)
		}
		if got := s.Header.Get("X-Api-Key"); got != secretValue {
			t.Errorf("the server got X-Api-Key %q", got)
		}
		if want := "key=" + url.QueryEscape(secretValue) + "&raw=" + url.QueryEscape(secretValue); s.Query != want {
			t.Errorf("the server got the query %q; want %q", s.Query, want)
		}
		// The sandbox talked to the gateway's interception, and got the answer scrubbed.
		if issuer := resp.TLS.PeerCertificates[0].Issuer.CommonName; issuer != "test gateway CA" {
			t.Errorf("certificate issued by %q; want the gateway's CA", issuer)
		}
		if strings.Contains(body, secretValue) || !strings.Contains(body, placeholder) {
			t.Errorf("the sandbox read %s: the echoed secret was not scrubbed", body)
		}
	})
	t.Run("a host that reflects the secret", func(t *testing.T) {
		resp, body, err := get(t, c, h.url("https", "api.test")+"/reflect?k="+placeholder, auth)
		must(t, err)
		if h.tlsServer.last(t).Header.Get("Authorization") != "Bearer "+secretValue {
			t.Fatal("the server did not get the secret")
		}
		if strings.Contains(body, secretValue) || strings.Contains(resp.Header.Get("X-Reflected"), secretValue) {
			t.Errorf("the secret reached the sandbox: header %q body %q", resp.Header.Get("X-Reflected"), body)
		}
		if want := "you sent Bearer " + placeholder + " and k=" + placeholder + "\n"; body != want {
			t.Errorf("body %q; want %q", body, want)
		}
	})
	t.Run("basic auth", func(t *testing.T) {
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+placeholder))
		_, _, err := get(t, c, h.url("https", "api.test")+"/", http.Header{"Authorization": {basic}})
		must(t, err)
		if got := h.tlsServer.last(t).Header.Get("Authorization"); got != "Basic "+base64.StdEncoding.EncodeToString([]byte("user:"+secretValue)) {
			t.Errorf("the server got %q", got)
		}
	})
	t.Run("unbound host gets the placeholder", func(t *testing.T) {
		resp, body, err := get(t, c, h.url("https", "echo.test")+"/?key="+placeholder, auth)
		must(t, err)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		s := h.tlsServer.last(t)
		if s.Header.Get("Authorization") != "Bearer "+placeholder || s.Query != "key="+placeholder {
			t.Errorf("echo.test got %q and %q; want the placeholder untouched", s.Header.Get("Authorization"), s.Query)
		}
		if issuer := resp.TLS.PeerCertificates[0].Issuer.CommonName; issuer != "test upstream CA" {
			t.Errorf("an unbound host's tunnel was intercepted (issuer %q)", issuer)
		}
	})
	t.Run("another secret's host gets its placeholder", func(t *testing.T) {
		_, _, err := get(t, c, h.url("https", "other-api.test")+"/", auth)
		must(t, err)
		if got := h.tlsServer.last(t).Header.Get("Authorization"); got != "Bearer "+placeholder {
			t.Errorf("other-api.test got %q; want the placeholder of a secret not bound to it", got)
		}
	})
	t.Run("plain HTTP to the bound host gets the placeholder", func(t *testing.T) {
		_, _, err := get(t, c, h.url("http", "api.test")+"/", auth)
		must(t, err)
		if got := h.plain.last(t).Header.Get("Authorization"); got != "Bearer "+placeholder {
			t.Errorf("plain HTTP got %q: a secret must never leave in clear text", got)
		}
	})
	t.Run("absolute https URI sent in clear to the gateway", func(t *testing.T) {
		conn := h.dialProxy(t, addrWide)
		u := h.url("https", "api.test") + "/abs"
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", u, placeholder)
		resp, err := http.ReadResponse(bufioReader(conn), nil)
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || strings.Contains(string(body), secretValue) {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if got := h.tlsServer.last(t).Header.Get("Authorization"); got != "Bearer "+secretValue {
			t.Errorf("got %q; the gateway's own TLS leg carries the secret", got)
		}
	})
	if !strings.Contains(metricsOf(t, h), `gkexec_gateway_secret_substitutions_total{secret="apikey"}`) {
		t.Error("no substitution counted")
	}
}

// Inside an intercepted tunnel, a request must be for the tunnel's host: else a tunnel opened
// for a bound host could carry its secret to whatever Host the code names.
func TestInterceptedTunnelRefusesAnotherHost(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	resp, c, br := h.connect(t, addrWide, "api.test:"+strconv.Itoa(h.tlsServer.port), "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	tc := tls.Client(&bufferedConn{Conn: c, r: br}, &tls.Config{ServerName: "api.test", RootCAs: h.roots})
	before := h.tlsServer.count()
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: echo.test\r\nAuthorization: Bearer %s\r\n\r\n", placeholder)
	r, err := http.ReadResponse(bufioReader(tc), nil)
	must(t, err)
	body, _ := io.ReadAll(r.Body)
	expectDenied(t, r, string(body), ReasonHostMismatch)
	if h.tlsServer.count() != before {
		t.Error("the request reached a server")
	}
}

func metricsOf(t *testing.T, h *harness) string {
	t.Helper()
	code, body := h.adminGet(t, PathMetrics)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	return body
}
