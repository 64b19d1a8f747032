package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// serveConnect opens a CONNECT tunnel. Everything that can be judged before the tunnel is:
// the sandbox, the host and port, the addresses the host resolves to; a refusal is an HTTP
// 403 the client reads. After the 200 the gateway reads the ClientHello: a tunnel carries TLS
// whose server name is the CONNECT host, or is cut with a TLS alert. Then the tunnel is either
// passed through untouched (the gateway never sees inside), or, for a host secrets are bound
// to, intercepted (mitm.go).
func (g *Gateway) serveConnect(w http.ResponseWriter, r *http.Request) {
	t, terr := parseTarget(r.Host, 0)
	secrets := g.secretsFor(t)
	kind := kindTunnel
	if secrets != nil {
		kind = kindMITM
	}
	sb, dn := g.identify(r)
	switch {
	case dn != nil:
	case terr != nil:
		dn = targetDenial(terr)
	default:
		dn = g.decide(sb, t)
	}
	if dn != nil {
		g.refuse(w, sb, r, t, kind, dn)
		return
	}
	addrs, err := g.dialer.resolve(r.Context(), t)
	var upstream net.Conn
	if err == nil && secrets == nil {
		upstream, err = g.dialer.dial(r.Context(), addrs)
	}
	if err != nil {
		g.answerDialError(w, sb, r, t, kind, err)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		closeIfOpen(upstream)
		g.log.Warn("CONNECT: hijacking the connection", "error", err)
		return
	}
	tc, ok := g.track(conn)
	if !ok {
		closeIfOpen(upstream)
		return
	}
	defer g.untrack(tc)
	if _, err := io.WriteString(tc, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		closeIfOpen(upstream)
		return
	}
	// What the HTTP server read past the CONNECT request (a client may send its ClientHello
	// without waiting for the 200) comes first.
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	src := io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), tc)
	_ = tc.SetReadDeadline(time.Now().Add(g.opts.ClientHelloTimeout))
	hello, raw, err := readClientHello(src)
	_ = tc.SetReadDeadline(time.Time{})
	if dn := checkHello(t, hello, err); dn != nil {
		closeIfOpen(upstream)
		g.record(sb, r, t, kind, dn)
		_, _ = tc.Write(accessDeniedAlert)
		return
	}
	g.record(sb, r, t, kind, nil)
	client := &replayConn{Conn: tc, r: io.MultiReader(bytes.NewReader(raw), src)}
	if secrets != nil {
		g.intercept(sb, t, client)
		return
	}
	g.splice(client, upstream)
}

// answerDialError answers a destination refused at resolution, or unreachable.
func (g *Gateway) answerDialError(w http.ResponseWriter, sb Sandbox, r *http.Request, t target, kind string, err error) {
	var dn *denial
	if errors.As(err, &dn) {
		g.refuse(w, sb, r, t, kind, dn)
		return
	}
	var uf *upstreamFailure
	if !errors.As(err, &uf) {
		uf = classifyUpstream(err)
	}
	g.metrics.upstreamFailure(uf.kind)
	g.log.Info("upstream failure", "destination", t.String(), "failure", uf.kind, "error", err)
	uf.write(w)
}

// checkHello judges a tunnel's ClientHello against its CONNECT target: the server name must
// be the CONNECT host, so that a tunnel opened for an allowed host cannot carry TLS for
// another one that shares its address (a CDN), nor hide another behind an Encrypted Client
// Hello. An address target takes no server name.
func checkHello(t target, h clientHello, err error) *denial {
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return deny(ReasonNotTLS, "no TLS ClientHello came through the tunnel to %s in time", t)
		}
		return deny(ReasonNotTLS, "the tunnel to %s does not carry TLS: tunnels carry TLS only; send plain HTTP as absolute-URI requests", t)
	}
	name := strings.TrimSuffix(strings.ToLower(h.serverName), ".")
	switch {
	case h.encrypted:
		// Browsers send a GREASE extension when they have no ECH config; it cannot be told
		// from a real one, by design, so both are refused (disable ECH in the browser).
		return deny(ReasonSNIEncrypted, "the ClientHello in the tunnel to %s hides its server name (Encrypted Client Hello); tunnels must name their server in clear: turn ECH off", t)
	case t.isIP() && name != "":
		return deny(ReasonSNIMismatch, "the ClientHello names %q in a tunnel to the address %s", name, t.host())
	case t.isIP():
		return nil
	case name == "":
		return deny(ReasonSNIMissing, "the ClientHello names no server in a tunnel to %s", t)
	case name != t.name:
		return deny(ReasonSNIMismatch, "the ClientHello names %q in a tunnel to %s", name, t)
	}
	return nil
}

func closeIfOpen(c net.Conn) {
	if c != nil {
		_ = c.Close()
	}
}
