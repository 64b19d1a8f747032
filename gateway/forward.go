package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
)

// forwardInfo travels in a forwarded request's context from the handler to the reverse proxy's
// hooks, and brings back how forwarding failed.
type forwardInfo struct {
	scheme  string
	target  target
	secrets *secretSet  // the secrets this request may carry; nil: none bound, or plain HTTP
	made    []scrubPair // encodings of values the gateway made for this request (scrubbed too)
	failure error       // set by forwardError: a denial at dial time or an upstream failure
}

type forwardKey struct{}

func infoOf(ctx context.Context) *forwardInfo {
	info, _ := ctx.Value(forwardKey{}).(*forwardInfo)
	return info
}

// serveForward forwards an absolute-URI request: plain HTTP, or HTTPS the gateway itself
// makes (a client that sends https:// URLs to its proxy in clear).
func (g *Gateway) serveForward(w http.ResponseWriter, r *http.Request) {
	scheme := strings.ToLower(r.URL.Scheme)
	defaultPort := map[string]int{"http": 80, "https": 443}[scheme]
	t, terr := parseTarget(r.URL.Host, max(defaultPort, 1))
	sb, dn := g.identify(r)
	switch {
	case dn != nil:
	case defaultPort == 0:
		dn = deny(ReasonBadScheme, "scheme %q: the gateway forwards http and https only", r.URL.Scheme)
	case terr != nil:
		dn = targetDenial(terr)
	default:
		dn = g.decide(sb, t)
	}
	if dn != nil {
		g.refuse(w, sb, r, t, kindHTTP, dn)
		return
	}
	info := &forwardInfo{scheme: scheme, target: t}
	if scheme == "https" {
		info.secrets = g.secretsFor(t)
	}
	g.forward(w, r, sb, info, kindHTTP, true)
}

// secretsFor returns the secrets t may receive, or nil.
func (g *Gateway) secretsFor(t target) *secretSet {
	bs := g.secrets.boundTo(t)
	if len(bs) == 0 {
		return nil
	}
	set := g.secrets.valuesFor(bs)
	return &set
}

// forward sends r on through the reverse proxy and records the outcome: a denial found at
// dial time (an address refused), else allowed when recordAllowed (an intercepted tunnel's
// requests were allowed with the tunnel).
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, sb Sandbox, info *forwardInfo, kind string, recordAllowed bool) {
	g.forwarder.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardKey{}, info)))
	var dn *denial
	switch {
	case errors.As(info.failure, &dn):
		g.record(sb, r, info.target, kind, dn)
	case recordAllowed:
		g.record(sb, r, info.target, kind, nil)
	default:
		g.metrics.decision(kind, "")
	}
}

// rewrite points the outgoing request at the judged target (the Host header becomes the
// URL's authority, as RFC 9112 3.2.2 requires of a proxy, so no Host header can route it to
// another virtual host), and puts the bound secrets in. httputil.ReverseProxy has already
// dropped hop-by-hop headers (Proxy-Authorization among them) and X-Forwarded-*.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	info := infoOf(pr.In.Context())
	pr.Out.URL.Scheme = info.scheme
	pr.Out.URL.Host = authority(info.scheme, info.target)
	pr.Out.Host = ""
	if strings.Contains(strings.ToLower(pr.Out.Header.Get("Upgrade")), "h2c") {
		// After an h2c upgrade, HTTP/2 streams name their own hosts (:authority), past the
		// line above: a CDN would route them anywhere. The request goes on as HTTP/1.1.
		pr.Out.Header.Del("Upgrade")
		pr.Out.Header.Del("Connection")
	}
	if info.secrets != nil {
		// The transport asks for gzip and decompresses it itself, so the response can be
		// scrubbed; another encoding the client asked for could not be.
		pr.Out.Header.Del("Accept-Encoding")
		names, made := info.secrets.apply(pr.Out)
		info.made = made
		g.metrics.substitutions(names)
	}
}

// authority is host[:port], the port left out when it is the scheme's default: a Host header
// with ":443" breaks signatures computed over the bare host (AWS SigV4).
func authority(scheme string, t target) string {
	host := t.host()
	if t.isIP() && t.ip.Is6() {
		host = "[" + host + "]"
	}
	if (scheme == "http" && t.port == 80) || (scheme == "https" && t.port == 443) {
		return host
	}
	return net.JoinHostPort(t.host(), strconv.Itoa(t.port))
}

// modifyResponse scrubs a bound host's response of the secret values: headers, the body as
// it streams, and the trailers after it (1xx answers: scrubInformational). A body in an encoding the gateway cannot read is refused rather than passed on.
// An upgraded connection (101, e.g. a WebSocket) is passed on unscrubbed; see README.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	info := infoOf(resp.Request.Context())
	if info == nil || info.secrets == nil || len(info.secrets.values) == 0 {
		return nil
	}
	pairs := info.scrubPairs()
	scrubHeader(resp.Header, pairs)
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.Body == nil || resp.Body == http.NoBody {
		return nil
	}
	if ce := strings.Join(resp.Header.Values("Content-Encoding"), ","); !identityEncoding(ce) {
		return &upstreamFailure{kind: UpstreamUnscrubable, status: http.StatusBadGateway,
			err: fmt.Errorf("%s answered in Content-Encoding %q, which the gateway cannot scrub of secrets", info.target, ce)}
	}
	body := newScrubReader(resp.Body, pairs)
	body.atEnd = func() { scrubHeader(resp.Trailer, pairs) } // the transport may replace the map
	resp.Body = body
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	return nil
}

// identityEncoding reports whether a Content-Encoding (every line of it, joined) leaves the
// body as it is: empty, or only "identity".
func identityEncoding(ce string) bool {
	for _, e := range strings.Split(ce, ",") {
		if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "identity") {
			return false
		}
	}
	return true
}

// forwardError answers what kept a request from its destination, and keeps it for forward.
func (g *Gateway) forwardError(w http.ResponseWriter, r *http.Request, err error) {
	info := infoOf(r.Context())
	if info != nil {
		info.failure = err
	}
	var dn *denial
	if errors.As(err, &dn) {
		dn.write(w)
		return
	}
	if r.Context().Err() != nil {
		return // the sandbox went away; nobody reads an answer
	}
	var uf *upstreamFailure
	if !errors.As(err, &uf) {
		uf = classifyUpstream(err)
	}
	g.metrics.upstreamFailure(uf.kind)
	target := ""
	if info != nil {
		target = info.target.String()
	}
	g.log.Info("upstream failure", "destination", target, "failure", uf.kind, "error", err)
	uf.write(w)
}

func classifyUpstream(err error) *upstreamFailure {
	var verr *tls.CertificateVerificationError
	var rerr tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, &verr), errors.As(err, &rerr), errors.As(err, &alert):
		return &upstreamFailure{kind: UpstreamTLS, status: http.StatusBadGateway, err: err}
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return &upstreamFailure{kind: UpstreamTimeout, status: http.StatusGatewayTimeout, err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &upstreamFailure{kind: UpstreamTimeout, status: http.StatusGatewayTimeout, err: err}
	}
	return &upstreamFailure{kind: UpstreamError, status: http.StatusBadGateway, err: err}
}
