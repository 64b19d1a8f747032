package gateway

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// A bound host's answer is scrubbed wherever it can carry the credential back: besides the
// headers and the body, the trailers and informational (1xx) answers.
func TestScrubbingCoversTrailersAndInformationalAnswers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	c := h.client(addrWide, "")
	auth := "Bearer " + placeholder

	t.Run("trailer", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, h.url("https", "api.test")+"/reflect-trailer", nil)
		must(t, err)
		req.Header.Set("Authorization", auth)
		resp, err := c.Do(req)
		must(t, err)
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if h.tlsServer.last(t).Header.Get("Authorization") != "Bearer "+secretValue {
			t.Fatal("the server did not get the secret")
		}
		if got := resp.Trailer.Get("X-Reflected"); got != auth {
			t.Errorf("trailer X-Reflected %q; want %q (scrubbed)", got, auth)
		}
	})
	t.Run("103 Early Hints", func(t *testing.T) {
		var mu sync.Mutex
		var early []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, header textproto.MIMEHeader) error {
			mu.Lock()
			defer mu.Unlock()
			early = append(early, header.Values("X-Reflected")...)
			return nil
		}}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
			http.MethodGet, h.url("https", "api.test")+"/reflect-early", nil)
		must(t, err)
		req.Header.Set("Authorization", auth)
		resp, err := c.Do(req)
		must(t, err)
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		if len(early) == 0 {
			t.Fatal("the 103 answer did not come through")
		}
		for _, v := range early {
			if strings.Contains(v, secretValue) || v != auth {
				t.Errorf("103 X-Reflected %q; want %q (scrubbed)", v, auth)
			}
		}
	})
}

// A request that carried a secret and failed upstream: neither the answer the sandbox reads
// nor the gateway's logs and metrics may hold the value.
func TestUpstreamFailureHoldsNoSecret(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	c := h.client(addrWide, "")
	resp, body, err := get(t, c, h.url("https", "api.test")+"/hangup?key="+placeholder,
		http.Header{"Authorization": {"Bearer " + placeholder}})
	must(t, err)
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get(HeaderError) == "" {
		t.Fatalf("%d %s; want a 502 with %s", resp.StatusCode, body, HeaderError)
	}
	for what, text := range map[string]string{"answer": body + fmt.Sprint(resp.Header), "logs": h.logs.String(), "metrics": metricsOf(t, h)} {
		if strings.Contains(text, secretValue) || strings.Contains(text, url.QueryEscape(secretValue)) {
			t.Errorf("the %s hold the secret: %s", what, text)
		}
	}
}

// A body the gateway cannot read is refused, whatever line of Content-Encoding says so.
func TestUnscrubbableEncodingIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	resp, body, err := get(t, h.client(addrWide, ""), h.url("https", "api.test")+"/reflect-gzip",
		http.Header{"Authorization": {"Bearer " + placeholder}})
	must(t, err)
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get(HeaderError) != UpstreamUnscrubable {
		t.Errorf("%d %s=%q; want 502 %s", resp.StatusCode, HeaderError, resp.Header.Get(HeaderError), UpstreamUnscrubable)
	}
	if zr, err := gzip.NewReader(strings.NewReader(body)); err == nil {
		plain, _ := io.ReadAll(zr)
		if strings.Contains(string(plain), secretValue) {
			t.Error("the sandbox got the secret, compressed")
		}
	}
}

// The gateway encodes the value itself in "Authorization: Basic": a host that echoes that
// header hands back base64 the sandbox can decode, so the encoding it made is scrubbed too
// (back to what the sandbox sent).
func TestScrubbingCoversTheBasicCredentialItMade(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	sent := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+placeholder))
	made := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+secretValue))
	resp, body, err := get(t, h.client(addrWide, ""), h.url("https", "api.test")+"/reflect", http.Header{"Authorization": {sent}})
	must(t, err)
	if got := h.tlsServer.last(t).Header.Get("Authorization"); got != made {
		t.Fatalf("the server got %q; want %q", got, made)
	}
	if got := resp.Header.Get("X-Reflected"); got != sent {
		t.Errorf("X-Reflected %q; want %q (what the sandbox sent)", got, sent)
	}
	if strings.Contains(body, made[len("Basic "):]) || !strings.Contains(body, sent) {
		t.Errorf("body %q: want the encoded credential scrubbed back to %q", body, sent)
	}
}
