package gateway

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// The namespace sets the widest list; a sandbox narrows it and never widens it.
func TestSandboxNarrowsNeverWidens(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	for _, tc := range []struct {
		name   string
		src    netip.Addr
		token  string
		url    string
		reason Reason // empty: allowed
	}{
		{"namespace-wide sandbox reaches the wildcard", addrWide, "", h.url("http", "a.wild.test"), ""},
		{"narrowed sandbox reaches its own list", addrNarrow, "", h.url("http", "allowed.test"), ""},
		{"narrowed sandbox over HTTPS too", addrNarrow, "", h.url("https", "allowed.test"), ""},
		{"narrowed sandbox refused what the namespace allows", addrNarrow, "", h.url("http", "a.wild.test"), ReasonNarrowed},
		{"narrowed sandbox refused what the namespace allows, HTTPS", addrNarrow, "", h.url("https", "echo.test"), ReasonNarrowed},
		{"a wider list is refused: its host is not the namespace's", addrNarrow, "", h.url("http", "denied.test"), ReasonNotAllowed},
		{"a wider list is refused: its port is not the namespace's", addrNarrow, "", "http://a.wild.test:1/", ReasonPortNotAllowed},
		{"sandbox narrowed to nothing", addrNone, "", h.url("http", "allowed.test"), ReasonNarrowed},
		{"unknown sandbox refused everything", addrUnknown, "", h.url("http", "allowed.test"), ReasonUnknownSandbox},
		{"unknown sandbox refused everything, HTTPS", addrUnknown, "", h.url("https", "allowed.test"), ReasonUnknownSandbox},
		{"token identifies a sandbox", addrToken, sandboxToken, h.url("https", "allowed.test"), ""},
		{"token sandbox narrowed", addrToken, sandboxToken, h.url("http", "a.wild.test"), ReasonNarrowed},
		{"bad token", addrToken, "not-a-token", h.url("http", "allowed.test"), ReasonBadToken},
		{"another sandbox's token", addrWide, sandboxToken, h.url("http", "allowed.test"), ReasonIdentityMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.client(tc.src, tc.token)
			if strings.HasPrefix(tc.url, "https") && tc.reason != "" {
				// A refused CONNECT: read it raw, the client library hides the answer.
				auth := ""
				if tc.token != "" {
					auth = "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("sandbox:"+tc.token)) + "\r\n"
				}
				resp, _, _ := h.connect(t, tc.src, strings.TrimPrefix(tc.url, "https://"), auth)
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				expectDenied(t, resp, string(body), tc.reason)
				return
			}
			resp, body, err := get(t, c, tc.url, nil)
			must(t, err)
			if tc.reason == "" {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%d %s", resp.StatusCode, body)
				}
				return
			}
			expectDenied(t, resp, body, tc.reason)
		})
	}
}

func TestRequireTokenIgnoresSourceAddresses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{requireToken: true})
	resp, body, err := get(t, h.client(addrWide, ""), h.url("http", "allowed.test"), nil)
	must(t, err)
	expectDenied(t, resp, body, ReasonUnknownSandbox)
	resp, body, err = get(t, h.client(addrToken, sandboxToken), h.url("http", "allowed.test"), nil)
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with the token: %d %s", resp.StatusCode, body)
	}
}

// What the runner reads per sandbox: its allowed and denied destinations, and the metrics.
func TestAdminReportsPerSandbox(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	c := h.client(addrNarrow, "")
	for range 2 {
		_, _, _ = get(t, c, h.url("http", "allowed.test"), nil)
	}
	_, _, _ = get(t, c, h.url("http", "a.wild.test"), nil)
	_, _, _ = get(t, c, h.url("https", "allowed.test"), nil)
	_, _, _ = get(t, h.client(addrUnknown, ""), h.url("http", "allowed.test"), nil)

	code, body := h.adminGet(t, PathSandboxes+"/narrow")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var v SandboxView
	must(t, json.Unmarshal([]byte(body), &v))
	plain, tlsPort := h.plain.port, h.tlsServer.port
	wantAllowed := []Destination{{Host: "allowed.test", Port: plain, Count: 2}, {Host: "allowed.test", Port: tlsPort, Count: 1}}
	slices.SortFunc(wantAllowed, func(a, b Destination) int { return a.Port - b.Port })
	wantDenied := []Destination{{Host: "a.wild.test", Port: plain, Reason: ReasonNarrowed, Count: 1}}
	if !v.Known || v.ID != "narrow" || v.Addr != addrNarrow.String() || v.Allow == nil ||
		!slices.Equal(v.Stats.Allowed, wantAllowed) || !slices.Equal(v.Stats.Denied, wantDenied) ||
		v.Stats.AllowedTotal != 3 || v.Stats.DeniedTotal != 1 {
		t.Errorf("got %s", body)
	}
	code, body = h.adminGet(t, PathSandboxes+"?addr="+addrUnknown.String())
	if code != http.StatusOK || !strings.Contains(body, `"reason": "unknown-sandbox"`) || !strings.Contains(body, `"unidentified"`) {
		t.Errorf("by address of an unknown sandbox: %d %s", code, body)
	}
	if code, _ := h.adminGet(t, PathSandboxes+"/nobody"); code != http.StatusNotFound {
		t.Errorf("an unknown ID: %d", code)
	}
	lines := []string{
		`gkexec_gateway_decisions_total{kind="http",decision="allowed"} 2`,
		`gkexec_gateway_decisions_total{kind="tunnel",decision="allowed"} 1`,
		`gkexec_gateway_decisions_total{kind="http",decision="denied",reason="narrowed"} 1`,
		`gkexec_gateway_decisions_total{kind="http",decision="denied",reason="unknown-sandbox"} 1`,
		`gkexec_gateway_tunnels_open 0`, // once the tunnel's end has reached the gateway
	}
	eventually(t, func() bool {
		metrics := metricsOf(t, h)
		for _, line := range lines {
			if !strings.Contains(metrics, line+"\n") {
				return false
			}
		}
		return true
	})
	req, _ := http.NewRequest(http.MethodDelete, "http://"+h.admin+PathSandboxes+"/narrow/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if _, seen := h.gw.Stats("narrow"); resp.StatusCode != http.StatusNoContent || seen {
		t.Errorf("forget: %d, still seen %v", resp.StatusCode, seen)
	}
	if code, body := h.adminGet(t, PathCA); code != http.StatusOK || !strings.Contains(body, "BEGIN CERTIFICATE") {
		t.Errorf("CA: %d %s", code, body)
	}
}
