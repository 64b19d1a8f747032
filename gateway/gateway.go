package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Gateway is the egress proxy. Create it with New; serve it with Serve (which adds the
// connection limits), or mount it as an http.Handler yourself.
type Gateway struct {
	opts      Options
	allow     *AllowList
	dir       Directory
	dialer    *dialer
	secrets   *binder
	ca        *CA
	transport *http.Transport
	forwarder *httputil.ReverseProxy
	stats     *statsStore
	metrics   *metrics
	log       *slog.Logger
	self      *selfAddrs

	// tunnels are the hijacked connections open now, closed at shutdown.
	mu      sync.Mutex
	tunnels map[*tunnelConn]struct{}
	closing bool
	wg      sync.WaitGroup
}

// New validates the options and returns a Gateway.
func New(opts Options) (*Gateway, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	allow, err := NewAllowList(opts.Allow)
	if err != nil {
		return nil, fmt.Errorf("%w: Allow: %w", ErrInvalidOptions, err)
	}
	g := &Gateway{
		opts: opts, allow: allow, dir: opts.Directory, ca: opts.CA,
		stats:   newStatsStore(opts.MaxStatsSandboxes, opts.MaxStatsDestinations),
		metrics: newMetrics(), log: opts.Logger, self: newSelfAddrs(),
		tunnels: map[*tunnelConn]struct{}{},
	}
	if len(opts.Secrets) > 0 {
		if g.secrets, err = newBinder(opts.Secrets, opts.SecretValues); err != nil {
			return nil, fmt.Errorf("%w: Secrets: %w", ErrInvalidOptions, err)
		}
		if err := g.checkBindings(); err != nil {
			return nil, fmt.Errorf("%w: Secrets: %w", ErrInvalidOptions, err)
		}
	}
	g.dialer = &dialer{resolver: opts.Resolver, allow: allow, denied: opts.DeniedPrefixes, self: g.self, timeout: opts.DialTimeout}
	g.transport = &http.Transport{
		Proxy:                  nil, // never the environment's proxy: the gateway is the way out
		DialContext:            g.dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: opts.UpstreamRootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           512,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    opts.DialTimeout,
		ResponseHeaderTimeout:  opts.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
	g.forwarder = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      scrubInformational{g.transport},
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.forwardError,
		ErrorLog:       slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	return g, nil
}

// checkBindings refuses secrets that could never be used, and a CA that could not sign for
// their hosts: every bound exact host must be allowed (on some port), every bound wildcard
// covered by an allowed wildcard; the CA's name constraints must permit them all.
func (g *Gateway) checkBindings() error {
	var errs []error
	for _, b := range g.secrets.bindings {
		if _, ok := g.opts.SecretValues.Secret(b.name); !ok {
			errs = append(errs, fmt.Errorf("%w: secret %q has no value (no such file in the secrets directory?)", ErrInvalidSecret, b.name))
		} else if v, _ := g.opts.SecretValues.Secret(b.name); checkSecretValue(b.name, v) != nil {
			errs = append(errs, checkSecretValue(b.name, v))
		}
		for _, h := range b.hosts {
			name := h.exact
			if h.suffix != "" {
				name = "x" + h.suffix // any name below the wildcard
			}
			if !g.hostAllowedSomewhere(h) {
				errs = append(errs, fmt.Errorf("%w: secret %q: host %s is on no allow rule, so it could never be sent", ErrInvalidSecret, b.name, h.src.Host))
			}
			if g.ca != nil && !g.ca.permits(name) {
				errs = append(errs, fmt.Errorf("%w: secret %q: the CA's name constraints do not permit %s", ErrInvalidCA, b.name, h.src.Host))
			}
		}
	}
	return errors.Join(errs...)
}

// hostAllowedSomewhere reports whether an allow rule covers a binding's host pattern.
func (g *Gateway) hostAllowedSomewhere(h rule) bool {
	for _, r := range g.allow.rules {
		switch {
		case h.exact != "" && r.matchesHost(target{name: h.exact}):
			return true
		case h.suffix != "" && r.suffix != "" && (h.suffix == r.suffix || strings.HasSuffix(h.suffix, r.suffix)):
			return true
		}
	}
	return false
}

// ServeHTTP is the proxy: CONNECT tunnels and absolute-URI requests. Anything else is a
// request for the gateway itself, which it does not serve on this listener.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		g.serveConnect(w, r)
	case r.URL.IsAbs():
		g.serveForward(w, r)
	default:
		dn := deny(ReasonNotProxyRequest, "this is an egress proxy: send absolute-URI requests (GET http://host/...) or CONNECT; set HTTP_PROXY and HTTPS_PROXY")
		g.refuse(w, Sandbox{}, r, target{}, kindHTTP, dn)
	}
}

// record is the one place a decision is counted: metrics, the sandbox's stats, and a log line
// for refusals. An unidentified source's decisions are kept under "addr:<address>".
func (g *Gateway) record(sb Sandbox, r *http.Request, t target, kind string, dn *denial) {
	var reason Reason
	if dn != nil {
		reason = dn.reason
	}
	g.metrics.decision(kind, reason)
	id := sb.ID
	if id == "" {
		id = unidentifiedID(r)
	}
	g.stats.record(id, t.host(), t.port, reason, g.opts.Now())
	if dn != nil {
		g.log.Info("denied", "sandbox", id, "destination", t.String(), "kind", kind, "reason", string(reason), "detail", dn.detail)
	}
}

// unidentifiedID is the stats key of a source no sandbox was found for.
func unidentifiedID(r *http.Request) string {
	src, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return "addr:unknown"
	}
	return "addr:" + src.Addr().Unmap().String()
}

// refuse records a denial and answers it.
func (g *Gateway) refuse(w http.ResponseWriter, sb Sandbox, r *http.Request, t target, kind string, dn *denial) {
	g.record(sb, r, t, kind, dn)
	dn.write(w)
}

// Stats returns a sandbox's destinations; ok is false when the gateway has seen nothing from it.
func (g *Gateway) Stats(sandboxID string) (Stats, bool) { return g.stats.get(sandboxID) }

// ForgetStats drops a sandbox's stats (after its Pod is gone and they were read).
func (g *Gateway) ForgetStats(sandboxID string) bool { return g.stats.forget(sandboxID) }

// targetDenial turns a target parse error into its refusal.
func targetDenial(err error) *denial {
	if errors.Is(err, errNumericName) {
		return deny(ReasonRawIP, "an IP address written as a number; no rule names it")
	}
	return deny(ReasonBadHost, "%v", err)
}
