package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// expectDenied checks a refusal the code can read: 403 (or want's status), the reason in the
// header, and a one-line body that ends with it.
func expectDenied(t *testing.T, resp *http.Response, body string, reason Reason) {
	t.Helper()
	if resp == nil {
		t.Fatalf("no answer; want a refusal %s", reason)
	}
	want := (&denial{reason: reason}).status()
	if resp.StatusCode != want || resp.Header.Get(HeaderDenied) != string(reason) {
		t.Fatalf("got %d %s=%q (%q); want %d %s", resp.StatusCode, HeaderDenied, resp.Header.Get(HeaderDenied), body, want, reason)
	}
	if strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "("+string(reason)+")\n") {
		t.Errorf("body %q: want one line ending with the reason", body)
	}
}

func TestForwardAllowsOnlyTheAllowList(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	c := h.client(addrWide, "")
	port := strconv.Itoa(h.plain.port)
	adminPort, proxyPort := strconv.Itoa(portOf(t, mustAddr(t, h.admin))), strconv.Itoa(portOf(t, mustAddr(t, h.proxy)))

	for _, host := range []string{"allowed.test", "a.wild.test", "b.c.wild.test", "127.0.0.1"} {
		t.Run("allowed "+host, func(t *testing.T) {
			resp, body, err := get(t, c, "http://"+net.JoinHostPort(host, port)+"/path?q=1", http.Header{"X-Forwarded-For": {"6.6.6.6"}})
			must(t, err)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			s := h.plain.last(t)
			if s.Host != net.JoinHostPort(host, port) || s.Path != "/path" || s.Query != "q=1" {
				t.Errorf("upstream saw %+v", s)
			}
			for _, hdr := range []string{"Proxy-Authorization", "X-Forwarded-For", "Forwarded", "Proxy-Connection"} {
				if v := s.Header.Get(hdr); v != "" {
					t.Errorf("upstream got %s: %q", hdr, v)
				}
			}
		})
	}
	for _, tc := range []struct{ url, reason string }{
		{"http://denied.test:" + port + "/", string(ReasonNotAllowed)},
		{"http://wild.test:" + port + "/", string(ReasonNotAllowed)}, // a wildcard is not its apex
		{"http://unlisted.example:" + port + "/", string(ReasonNotAllowed)},
		{"http://allowed.test:1/", string(ReasonPortNotAllowed)},
		{"http://allowed.test/", string(ReasonPortNotAllowed)},                                     // default port 80 is not in its rule
		{"http://127.0.0.1:" + strconv.Itoa(h.tlsServer.port) + "/", string(ReasonPortNotAllowed)}, // named on another port
		{"http://127.0.0.2:" + port + "/", string(ReasonRawIP)},
		{"http://[::1]:" + port + "/", string(ReasonRawIP)},
		{"http://2130706433:" + port + "/", string(ReasonRawIP)}, // 127.0.0.1 in disguise
		{"http://0x7f.1:" + port + "/", string(ReasonRawIP)},
		{"http://private.test:" + port + "/", string(ReasonPrivateAddress)},        // loopback, rule without AllowPrivate
		{"http://rebind.test:" + port + "/", string(ReasonPrivateAddress)},         // 10.1.2.3
		{"http://metadata.test/computeMetadata/v1/", string(ReasonPrivateAddress)}, // 169.254.169.254, even with AllowPrivate
		{"http://admin.test:" + adminPort + "/metrics", string(ReasonGatewayItself)},
		{"http://admin.test:" + proxyPort + "/", string(ReasonGatewayItself)},
	} {
		t.Run("denied "+tc.url, func(t *testing.T) {
			before := h.plain.count()
			resp, body, err := get(t, c, tc.url, nil)
			must(t, err)
			expectDenied(t, resp, body, Reason(tc.reason))
			if h.plain.count() != before {
				t.Error("the upstream received the refused request")
			}
		})
	}
}

func mustAddr(t *testing.T, s string) net.Addr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", s)
	must(t, err)
	return a
}

func TestForwardRefusesWhatIsNoProxyRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	for name, tc := range map[string]struct {
		request string
		reason  Reason
	}{
		"origin-form":     {"GET /metrics HTTP/1.1\r\nHost: " + h.proxy + "\r\n\r\n", ReasonNotProxyRequest},
		"ftp scheme":      {"GET ftp://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", ReasonBadScheme},
		"bad host":        {"GET http://exa_mple..test/ HTTP/1.1\r\nHost: x\r\n\r\n", ReasonBadHost},
		"connect no port": {"CONNECT allowed.test HTTP/1.1\r\nHost: allowed.test\r\n\r\n", ReasonBadHost},
	} {
		t.Run(name, func(t *testing.T) {
			c := h.dialProxy(t, addrWide)
			_, _ = io.WriteString(c, tc.request)
			resp, err := http.ReadResponse(bufioReader(c), nil)
			must(t, err)
			body, _ := io.ReadAll(resp.Body)
			expectDenied(t, resp, string(body), tc.reason)
		})
	}
}

func TestForwardAnswersUnreachableDestinations(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: allowed by a rule, refused by the kernel (loopback only).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closed := portOf(t, l.Addr())
	l.Close()
	h := newHarness(t, harnessOptions{extraAllow: []Rule{{Host: "allowed.test", Ports: []int{closed}, AllowPrivate: true}}})
	resp, body, err := get(t, h.client(addrWide, ""), fmt.Sprintf("http://allowed.test:%d/", closed), nil)
	must(t, err)
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get(HeaderError) != UpstreamConnect {
		t.Errorf("%d %s=%q %q; want 502 %s", resp.StatusCode, HeaderError, resp.Header.Get(HeaderError), body, UpstreamConnect)
	}
	if resp.Header.Get(HeaderDenied) != "" {
		t.Error("an unreachable destination is not a refusal")
	}
}
