package gateway

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
)

// intercept terminates the sandbox's TLS with a leaf certificate for the tunnel's host, signed
// by the namespace's CA, and serves the HTTP inside: each request is checked (its Host must be
// the tunnel's), gets the bound secrets, and goes on over a TLS connection of the gateway's own
// that verifies the destination's certificate. Only hosts secrets are bound to come here.
func (g *Gateway) intercept(sb Sandbox, t target, client net.Conn) {
	tlsConn := tls.Server(client, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return g.ca.leaf(t.name, g.opts.Now())
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), g.opts.ClientHelloTimeout)
	err := tlsConn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		g.log.Info("intercepted handshake failed (does the sandbox trust the namespace's CA?)", "sandbox", sb.ID, "destination", t.String(), "error", err)
		_ = tlsConn.Close()
		return
	}
	l := newOneConnListener(tlsConn)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serveIntercepted(w, r, sb, t) }),
		ReadHeaderTimeout: g.opts.ReadHeaderTimeout,
		IdleTimeout:       g.opts.IdleTimeout,
		MaxHeaderBytes:    g.opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				l.Close()
			}
		},
	}
	_ = srv.Serve(l)
}

// serveIntercepted forwards one request from inside an intercepted tunnel.
func (g *Gateway) serveIntercepted(w http.ResponseWriter, r *http.Request, sb Sandbox, t target) {
	host := r.Host
	if r.URL.IsAbs() {
		host = r.URL.Host
	}
	if ht, err := parseTarget(host, t.port); err != nil || ht.host() != t.host() || ht.port != t.port {
		g.refuse(w, sb, r, t, kindMITM, deny(ReasonHostMismatch, "a request for %q inside the tunnel to %s", host, t))
		return
	}
	// The sandbox's list may have changed since the tunnel opened, and its Pod may have gone
	// or be terminating: the same refusal as a new connection from it would get.
	now, ok := g.dir.ByID(sb.ID)
	if !ok {
		g.refuse(w, sb, r, t, kindMITM, deny(ReasonUnknownSandbox, "sandbox %s is gone (its Pod deleted, terminating or finished)", sb.ID))
		return
	}
	sb = now
	if dn := g.decide(sb, t); dn != nil {
		g.refuse(w, sb, r, t, kindMITM, dn)
		return
	}
	g.forward(w, r, sb, &forwardInfo{scheme: "https", target: t, secrets: g.secretsFor(t)}, kindMITM, false)
}

// oneConnListener hands one connection to an http.Server, then blocks until it is closed.
type oneConnListener struct {
	conn     net.Conn
	mu       sync.Mutex
	accepted bool
	done     chan struct{}
	once     sync.Once
}

func newOneConnListener(c net.Conn) *oneConnListener {
	return &oneConnListener{conn: c, done: make(chan struct{})}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	first := !l.accepted
	l.accepted = true
	l.mu.Unlock()
	if first {
		return l.conn, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
