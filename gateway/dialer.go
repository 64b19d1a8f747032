package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
)

// dialer connects to allowed destinations: it resolves names itself, judges every address
// (checkAddress, the gateway's own listeners), and dials only the addresses it judged.
type dialer struct {
	resolver Resolver
	allow    *AllowList
	denied   []netip.Prefix
	self     *selfAddrs
	timeout  time.Duration
}

// resolve returns the addresses t may be reached at. A name whose addresses are all refused is
// a denial (the first address's reason); refused addresses among allowed ones are dropped. An
// address of the gateway itself refuses the whole name.
func (d *dialer) resolve(ctx context.Context, t target) ([]netip.AddrPort, error) {
	addrs := []netip.Addr{t.ip}
	if !t.isIP() {
		rctx, cancel := context.WithTimeout(ctx, d.timeout)
		defer cancel()
		var err error
		if addrs, err = d.resolver.Resolve(rctx, t.name); err != nil {
			return nil, &upstreamFailure{kind: UpstreamResolve, status: http.StatusBadGateway, err: fmt.Errorf("resolving %s: %w", t.name, err)}
		}
	}
	allowPrivate := d.allow.privateAllowed(t)
	var ok []netip.AddrPort
	var first *denial
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a.Unmap(), uint16(t.port))
		if d.self.contains(ap) {
			return nil, deny(ReasonGatewayItself, "%s is the gateway itself", ap)
		}
		if dn := checkAddress(ap.Addr(), allowPrivate, d.denied); dn != nil {
			if first == nil {
				first = dn
			}
			continue
		}
		ok = append(ok, ap)
	}
	if len(ok) == 0 {
		if first == nil {
			return nil, &upstreamFailure{kind: UpstreamResolve, status: http.StatusBadGateway, err: fmt.Errorf("%s has no address", t.name)}
		}
		first.detail = t.host() + ": " + first.detail
		return nil, first
	}
	return ok, nil
}

// dial connects to the first of addrs that answers.
func (d *dialer) dial(ctx context.Context, addrs []netip.AddrPort) (net.Conn, error) {
	var errs []error
	for _, a := range addrs {
		nd := net.Dialer{Timeout: d.timeout, KeepAlive: 30 * time.Second}
		c, err := nd.DialContext(ctx, "tcp", a.String())
		if err == nil {
			return withQuickAck(c), nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	err := errors.Join(errs...)
	kind, status := UpstreamConnect, http.StatusBadGateway
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		kind, status = UpstreamTimeout, http.StatusGatewayTimeout
	}
	return nil, &upstreamFailure{kind: kind, status: status, err: err}
}

// DialContext is the forwarding transport's dialer: it judges the destination as resolve does
// (the handler has already judged the name for the sandbox).
func (d *dialer) DialContext(ctx context.Context, _, addr string) (net.Conn, error) {
	t, err := parseTarget(addr, 0)
	if err != nil {
		return nil, deny(ReasonBadHost, "%v", err)
	}
	if r, _ := d.allow.match(t); r == nil {
		return nil, deny(ReasonNotAllowed, "%s is not on this namespace's allow-list", t)
	}
	addrs, err := d.resolve(ctx, t)
	if err != nil {
		return nil, err
	}
	return d.dial(ctx, addrs)
}

// selfAddrs are the gateway's own listening addresses: no rule reaches them through the
// proxy (the admin API above all). A listener on an unspecified address (":9090") is reached
// on every local address with its port.
type selfAddrs struct {
	mu       sync.RWMutex
	exact    map[netip.AddrPort]bool
	anyPorts map[uint16]bool
	local    map[netip.Addr]bool
}

func newSelfAddrs() *selfAddrs {
	return &selfAddrs{exact: map[netip.AddrPort]bool{}, anyPorts: map[uint16]bool{}, local: map[netip.Addr]bool{}}
}

// add records a listener's address.
func (s *selfAddrs) add(addr net.Addr) {
	host, portText, err := net.SplitHostPort(addr.String())
	if err != nil {
		return
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ip = ip.Unmap()
	if !ip.IsUnspecified() {
		s.exact[netip.AddrPortFrom(ip, uint16(port))] = true
		return
	}
	s.anyPorts[uint16(port)] = true
	if len(s.local) == 0 {
		if ifaddrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range ifaddrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					s.local[p.Addr().Unmap()] = true
				}
			}
		}
	}
}

func (s *selfAddrs) contains(ap netip.AddrPort) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a := ap.Addr().Unmap()
	if s.exact[netip.AddrPortFrom(a, ap.Port())] {
		return true
	}
	return s.anyPorts[ap.Port()] && (a.IsLoopback() || a.IsUnspecified() || s.local[a])
}
