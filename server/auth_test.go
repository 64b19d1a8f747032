package server

import (
	"net/http"
	"testing"

	"github.com/gkexec/gkexec/runner"
)

func TestBearerToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{steps: ok, log: new(framed).out("1\n").end(0, false)}, runner.Options{}, Options{Token: "s3cret"})
	cases := []struct {
		name   string
		header []string
		status int
	}{
		{"none", nil, 401},
		{"wrong", []string{"Authorization", "Bearer guess"}, 401},
		{"prefix of the right one", []string{"Authorization", "Bearer s3c"}, 401},
		{"not bearer", []string{"Authorization", "Basic s3cret"}, 401},
		{"right", []string{"Authorization", "Bearer s3cret"}, 200},
	}
	for _, tc := range cases {
		a := postJSON(t, ts.url, ExecuteRequest{Code: "print(1)"}, tc.header...)
		if a.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, a.status, tc.status, a.body)
		}
		if tc.status == 401 && a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}
	if a := get(t, ts.url+PathConfig); a.status != 401 {
		t.Errorf("GET /v1/config without the token: %d, want 401", a.status)
	}
	for _, p := range []string{PathHealthz, PathMetrics} {
		if a := get(t, ts.url+p); a.status != 200 {
			t.Errorf("GET %s without the token: %d, want 200 (probes stay open)", p, a.status)
		}
	}
	if made := ts.fc.created(); len(made) != 2 { // the one authorised execution: a ConfigMap and a Job
		t.Errorf("created %v, want only the authorised execution's configmap and job", made)
	}
}

// Without a token only loopback names are served: a page that rebinds its DNS name to 127.0.0.1
// must not reach the API as same-origin.
func TestWithoutATokenOnlyLoopbackHostsAreServed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{steps: ok, log: new(framed).end(0, false)}, runner.Options{}, Options{})
	withToken := newTestServer(t, scenario{steps: ok, log: new(framed).end(0, false)}, runner.Options{}, Options{Token: "t"})
	for _, tc := range []struct {
		url, host, token string
		status           int
	}{
		{ts.url, "attacker.example:8080", "", 403},
		{ts.url, "127.0.0.1.attacker.example", "", 403},
		{ts.url, "localhost:8080", "", 200},
		{ts.url, "[::1]:8080", "", 200},
		{ts.url, "127.0.0.1", "", 200},
		{withToken.url, "agent.svc:8080", "t", 200},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.url+PathConfig, nil)
		req.Host = tc.host
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("Host %q (token %v): %d, want %d", tc.host, tc.token != "", resp.StatusCode, tc.status)
		}
	}
	if a := get(t, ts.url+PathHealthz); a.status != 200 {
		t.Errorf("probes answer any host: %d", a.status)
	}
}
