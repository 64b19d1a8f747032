package gateway

import (
	"fmt"
	"net/http"
	"strconv"
)

// Reason says why the gateway refused a destination. It is the value of the HeaderDenied
// header, the body's last word, the reason label of the metrics and the Reason of a denied
// Destination in Stats.
type Reason string

// Reasons for a refusal. The gateway answers each with 403 Forbidden (503 for
// ReasonTooManyConnections, 400 for ReasonBadRequest), except the checks made on a CONNECT
// tunnel's first bytes, after the 200: those end the tunnel with a TLS access_denied alert.
const (
	// ReasonUnknownSandbox: the request comes from no sandbox the gateway knows (by source
	// address or token): everything is refused.
	ReasonUnknownSandbox Reason = "unknown-sandbox"
	// ReasonBadToken: Proxy-Authorization carries a token no sandbox has.
	ReasonBadToken Reason = "bad-token"
	// ReasonIdentityMismatch: the token is another sandbox's than the source address's.
	ReasonIdentityMismatch Reason = "identity-mismatch"
	// ReasonNotAllowed: the namespace's allow-list has no rule for the host.
	ReasonNotAllowed Reason = "not-allowed"
	// ReasonNarrowed: the namespace allows the host, the sandbox's own narrower list does not.
	ReasonNarrowed Reason = "narrowed"
	// ReasonPortNotAllowed: the host is allowed on other ports only.
	ReasonPortNotAllowed Reason = "port-not-allowed"
	// ReasonRawIP: an IP address was asked for where no rule names that address.
	ReasonRawIP Reason = "raw-ip"
	// ReasonPrivateAddress: the host resolves to (or is) a loopback, private, link-local or
	// reserved address that its rule does not allow (SSRF protection).
	ReasonPrivateAddress Reason = "private-address"
	// ReasonGatewayItself: the destination is one of the gateway's own listeners.
	ReasonGatewayItself Reason = "gateway-itself"
	// ReasonBadHost: the host is not a valid DNS name or IP address.
	ReasonBadHost Reason = "bad-host"
	// ReasonBadScheme: an absolute URI with a scheme other than http or https.
	ReasonBadScheme Reason = "bad-scheme"
	// ReasonNotProxyRequest: a request for the gateway itself (origin-form, no CONNECT).
	ReasonNotProxyRequest Reason = "not-a-proxy-request"
	// ReasonHostMismatch: inside an intercepted tunnel, a request's Host is not the tunnel's host.
	ReasonHostMismatch Reason = "host-mismatch"
	// ReasonSNIMismatch: the TLS ClientHello's server name is not the CONNECT host.
	ReasonSNIMismatch Reason = "sni-mismatch"
	// ReasonSNIMissing: the ClientHello has no server name though CONNECT named a host.
	ReasonSNIMissing Reason = "sni-missing"
	// ReasonSNIEncrypted: the ClientHello carries an Encrypted Client Hello extension (ECH), whose
	// inner server name the gateway cannot read: its clear name could be an allowed host's while
	// the encrypted one names another site behind the same front.
	ReasonSNIEncrypted Reason = "sni-encrypted"
	// ReasonNotTLS: a CONNECT tunnel whose first bytes are not a TLS ClientHello: tunnels carry
	// TLS only (plain HTTP goes as an absolute-URI request, where the gateway sees it).
	ReasonNotTLS Reason = "not-tls"
	// ReasonTooManyConnections: the gateway's, or this source's, connection limit is reached.
	ReasonTooManyConnections Reason = "too-many-connections"
	// ReasonBadRequest: the request is malformed.
	ReasonBadRequest Reason = "bad-request"
)

// HeaderDenied carries the Reason on every refusal, so that code can tell a refusal by the
// gateway from one by the destination.
const HeaderDenied = "X-Gkexec-Denied"

// HeaderError carries the upstream failure (ReasonUpstream...) on a 502 or 504 from the gateway.
const HeaderError = "X-Gkexec-Error"

// Upstream failures: the destination was allowed but could not be reached. Answered 502 (504
// for a timeout) with HeaderError.
const (
	UpstreamResolve     = "resolve-failed"
	UpstreamConnect     = "connect-failed"
	UpstreamTimeout     = "upstream-timeout"
	UpstreamTLS         = "upstream-tls"
	UpstreamUnscrubable = "unscrubbable-response"
	UpstreamError       = "upstream-error"
)

// denial is a refusal with the sentence that explains it.
type denial struct {
	reason Reason
	detail string
}

func deny(reason Reason, format string, args ...any) *denial {
	return &denial{reason: reason, detail: fmt.Sprintf(format, args...)}
}

func (d *denial) Error() string { return d.detail + " (" + string(d.reason) + ")" }

func (d *denial) status() int {
	switch d.reason {
	case ReasonTooManyConnections:
		return http.StatusServiceUnavailable
	case ReasonBadRequest:
		return http.StatusBadRequest
	}
	return http.StatusForbidden
}

// body is the one line a refused client reads.
func (d *denial) body() string { return "gkexec gateway: denied: " + d.Error() + "\n" }

// write answers the refusal.
func (d *denial) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set(HeaderDenied, string(d.reason))
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(d.status())
	_, _ = fmt.Fprint(w, d.body())
}

// raw is the whole refusal as an HTTP/1.1 response, for connections refused before any
// request is read.
func (d *denial) raw() []byte {
	body := d.body()
	return []byte(fmt.Sprintf("HTTP/1.1 %d %s\r\n%s: %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %s\r\n\r\n%s",
		d.status(), http.StatusText(d.status()), HeaderDenied, d.reason, strconv.Itoa(len(body)), body))
}

// upstreamFailure is an allowed destination that could not be reached.
type upstreamFailure struct {
	kind   string
	status int
	err    error
}

func (u *upstreamFailure) Error() string { return u.err.Error() }
func (u *upstreamFailure) Unwrap() error { return u.err }

func (u *upstreamFailure) write(w http.ResponseWriter) {
	w.Header().Set(HeaderError, u.kind)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(u.status)
	_, _ = fmt.Fprintf(w, "gkexec gateway: %s: %v\n", u.kind, u.err)
}
