package gateway

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"
)

// Defaults.
const (
	// DefaultMaxConns bounds the connections open from all sandboxes; past it a connection is
	// answered 503 (too-many-connections) and closed.
	DefaultMaxConns = 4096
	// DefaultMaxConnsPerSource bounds the connections open from one source address, so that one
	// sandbox cannot take every slot.
	DefaultMaxConnsPerSource = 256
	// DefaultMaxHeaderBytes bounds a request's header (request line included): APIs' headers are
	// a few KiB; 32 KiB leaves room for large cookies and tokens.
	DefaultMaxHeaderBytes = 32 << 10
	// DefaultReadHeaderTimeout bounds reading a request's header.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout closes a sandbox's keep-alive connection idle this long between requests.
	DefaultIdleTimeout = 90 * time.Second
	// DefaultTunnelIdleTimeout closes a CONNECT tunnel through which nothing passed for this long.
	DefaultTunnelIdleTimeout = 5 * time.Minute
	// DefaultIdentifyWait is how long a request from an address no sandbox has yet waits for the
	// Directory to learn it: a new Pod's code may ask before the Pod watch has seen its IP.
	DefaultIdentifyWait = 5 * time.Second
	// DefaultClientHelloTimeout bounds the wait for a tunnel's ClientHello after the 200.
	DefaultClientHelloTimeout = 10 * time.Second
	// DefaultDialTimeout bounds connecting to a destination (each of its addresses in turn).
	DefaultDialTimeout = 10 * time.Second
	// DefaultResponseHeaderTimeout bounds the wait for a destination's response header after the
	// request is sent. Generous: a model API may think for minutes before it answers.
	DefaultResponseHeaderTimeout = 10 * time.Minute
	// DefaultShutdownTimeout bounds Serve's graceful shutdown; tunnels still open then are cut.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultMaxStatsSandboxes bounds the sandboxes Stats are kept for; the least recently
	// active are forgotten first.
	DefaultMaxStatsSandboxes = 10000
	// DefaultMaxStatsDestinations bounds the distinct destinations kept per sandbox; past it
	// they are counted under the host "(other)".
	DefaultMaxStatsDestinations = 256
)

// Options configures a Gateway. The zero value of each field means its documented default.
type Options struct {
	// Allow is the namespace's allow-list: the widest any sandbox gets. Empty allows nothing.
	Allow []Rule
	// Directory identifies sandboxes; required. A request from no sandbox it knows is refused.
	Directory Directory
	// RequireToken identifies sandboxes by their Proxy-Authorization token only, never by source
	// address alone (for networks where source addresses are not the Pods').
	RequireToken bool
	// Resolver resolves destination names; default SystemResolver.
	Resolver Resolver
	// DeniedPrefixes are ranges refused whatever the rules say (AllowPrivate included), besides
	// the special ranges always judged: give the cluster's Pod and Service ranges when they are
	// not private addresses (GKE's privately used public IPs), and the node range.
	DeniedPrefixes []netip.Prefix

	// Secrets bind secrets to the hosts that may receive them; their HTTPS is intercepted.
	Secrets []SecretBinding
	// SecretValues gives the secrets' values; required with Secrets, and must hold every bound
	// secret at New.
	SecretValues SecretSource
	// CA signs the certificates presented for intercepted hosts; required with Secrets.
	CA *CA
	// UpstreamRootCAs verify destinations' certificates on intercepted connections; nil means
	// the system's roots.
	UpstreamRootCAs *x509.CertPool

	// MaxConns and MaxConnsPerSource bound open connections; defaults DefaultMaxConns and
	// DefaultMaxConnsPerSource. They apply to Serve's proxy listener.
	MaxConns          int
	MaxConnsPerSource int
	// MaxHeaderBytes bounds a request's header; default DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Timeouts; each defaults to its Default... constant.
	ReadHeaderTimeout     time.Duration
	IdleTimeout           time.Duration
	TunnelIdleTimeout     time.Duration
	ClientHelloTimeout    time.Duration
	IdentifyWait          time.Duration
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	ShutdownTimeout       time.Duration

	// MaxStatsSandboxes and MaxStatsDestinations bound what Stats keep.
	MaxStatsSandboxes    int
	MaxStatsDestinations int

	// AdminToken, if set, must be sent as "Authorization: Bearer <token>" to the admin API's
	// /v1/ paths; /healthz and /metrics stay open.
	AdminToken string
	// Logger receives one line per refusal and the lifecycle; default discards.
	Logger *slog.Logger
	// Now is the clock for certificates; default time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	setInt := func(f *int, d int) {
		if *f == 0 {
			*f = d
		}
	}
	setDur := func(f *time.Duration, d time.Duration) {
		if *f == 0 {
			*f = d
		}
	}
	if o.Resolver == nil {
		o.Resolver = SystemResolver{}
	}
	setInt(&o.MaxConns, DefaultMaxConns)
	setInt(&o.MaxConnsPerSource, min(DefaultMaxConnsPerSource, max(o.MaxConns, 1)))
	setInt(&o.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setInt(&o.MaxStatsSandboxes, DefaultMaxStatsSandboxes)
	setInt(&o.MaxStatsDestinations, DefaultMaxStatsDestinations)
	setDur(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDur(&o.IdleTimeout, DefaultIdleTimeout)
	setDur(&o.TunnelIdleTimeout, DefaultTunnelIdleTimeout)
	setDur(&o.ClientHelloTimeout, DefaultClientHelloTimeout)
	setDur(&o.IdentifyWait, DefaultIdentifyWait)
	setDur(&o.DialTimeout, DefaultDialTimeout)
	setDur(&o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	setDur(&o.ShutdownTimeout, DefaultShutdownTimeout)
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// validate checks the options on their own; New checks the secrets against the allow-list and
// the CA.
func (o *Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Directory == nil {
		bad("Directory: required (which sandbox is asking decides what it may reach)")
	}
	if len(o.Secrets) > 0 {
		if o.SecretValues == nil {
			bad("SecretValues: required with Secrets")
		}
		if o.CA == nil {
			bad("CA: required with Secrets (HTTPS to a bound host is intercepted)")
		}
	}
	for _, f := range []struct {
		name  string
		value int
	}{
		{"MaxConns", o.MaxConns}, {"MaxConnsPerSource", o.MaxConnsPerSource}, {"MaxHeaderBytes", o.MaxHeaderBytes},
		{"MaxStatsSandboxes", o.MaxStatsSandboxes}, {"MaxStatsDestinations", o.MaxStatsDestinations},
	} {
		if f.value < 0 {
			bad("%s %d: must be positive", f.name, f.value)
		}
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"ReadHeaderTimeout", o.ReadHeaderTimeout}, {"IdleTimeout", o.IdleTimeout}, {"TunnelIdleTimeout", o.TunnelIdleTimeout},
		{"ClientHelloTimeout", o.ClientHelloTimeout}, {"IdentifyWait", o.IdentifyWait}, {"DialTimeout", o.DialTimeout},
		{"ResponseHeaderTimeout", o.ResponseHeaderTimeout}, {"ShutdownTimeout", o.ShutdownTimeout},
	} {
		if d.value < 0 {
			bad("%s %s: must be positive", d.name, d.value)
		}
	}
	if o.MaxConnsPerSource > o.MaxConns {
		bad("MaxConnsPerSource %d: above MaxConns %d", o.MaxConnsPerSource, o.MaxConns)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	return nil
}
