package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// authenticated requires the bearer token, when one is configured. Both sides are hashed first
// so that the comparison takes the same time whatever the lengths. Without a token the server
// listens on loopback only, and it serves only requests addressed to a loopback name: a web page
// that rebinds its own DNS name to 127.0.0.1 would otherwise reach it as same-origin.
func (s *Server) authenticated(next http.Handler) http.Handler {
	if s.opts.Token == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !loopbackHost(r.Host) {
				s.writeError(w, newAPIError(http.StatusForbidden, CodeHostNotAllowed,
					"request addressed to %q: without a token only loopback names are served (127.0.0.1, [::1], localhost); set a token to serve other names", r.Host), "", nil)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gkexec"`)
			s.writeError(w, newAPIError(http.StatusUnauthorized, CodeUnauthorized,
				"missing or wrong bearer token: send the header Authorization: Bearer <token> (gkexec serve --token-file)"), "", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names the loopback interface.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport // no port
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RequireToken guards another HTTP API with serve's rules for /v1/, so that an API served beside
// it (gkexec mcp) admits exactly the callers serve would: with a token, only requests that bear it
// (401 and WWW-Authenticate otherwise); without one, only requests addressed to a loopback name
// (403 host_not_allowed otherwise). Refusals are serve's JSON error bodies.
func RequireToken(token string, next http.Handler) http.Handler {
	s := &Server{opts: Options{Token: token}, token: sha256.Sum256([]byte(token))}
	s.opts.setDefaults()
	return s.authenticated(next)
}
