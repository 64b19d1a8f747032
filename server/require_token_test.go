package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// RequireToken applies serve's rules to a handler of another API.
func TestRequireTokenGuardsAnotherHandler(t *testing.T) {
	t.Parallel()
	reached := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	for _, tc := range []struct {
		name, token, host, header string
		status                    int
	}{
		{"token, right", "s3cret", "mcp.example", "Bearer s3cret", http.StatusTeapot},
		{"token, wrong", "s3cret", "127.0.0.1", "Bearer guess", http.StatusUnauthorized},
		{"token, none", "s3cret", "127.0.0.1", "", http.StatusUnauthorized},
		{"no token, loopback", "", "localhost:8080", "", http.StatusTeapot},
		{"no token, rebound name", "", "attacker.example", "", http.StatusForbidden},
	} {
		req := httptest.NewRequest(http.MethodPost, "http://"+tc.host+"/mcp", nil)
		req.Host = tc.host
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		rec := httptest.NewRecorder()
		RequireToken(tc.token, reached).ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, rec.Code, tc.status, rec.Body)
		}
		if tc.status == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}
}
