package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Resolver finds the addresses of a DNS name. The gateway resolves every name itself, judges
// every address, and connects to the address it judged (never re-resolving, so a DNS answer
// that changes between the check and the connection cannot slip a private address through).
type Resolver interface {
	Resolve(ctx context.Context, name string) ([]netip.Addr, error)
}

// SystemResolver resolves with the system's resolver (net.DefaultResolver): in a Pod, the
// cluster DNS.
type SystemResolver struct{}

// Resolve implements Resolver.
func (SystemResolver) Resolve(ctx context.Context, name string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", name)
}

// HostsResolver resolves from a fixed map of names to addresses, like /etc/hosts, and knows
// no other name. Tests and the local cluster's stand-in internet use it; names are matched
// case-insensitively, without a trailing dot.
type HostsResolver map[string][]netip.Addr

// Resolve implements Resolver.
func (h HostsResolver) Resolve(_ context.Context, name string) ([]netip.Addr, error) {
	if addrs := h[strings.TrimSuffix(strings.ToLower(name), ".")]; len(addrs) > 0 {
		return addrs, nil
	}
	return nil, &net.DNSError{Err: "no such host in the gateway's hosts map", Name: name, IsNotFound: true}
}

// ParseHosts reads "name=address[,address...]" entries into a HostsResolver.
func ParseHosts(entries []string) (HostsResolver, error) {
	h := HostsResolver{}
	for _, e := range entries {
		name, list, ok := strings.Cut(e, "=")
		t, err := parseHost(name)
		if !ok || err != nil || t.isIP() {
			return nil, fmt.Errorf("%w: hosts entry %q: want name=address[,address]", ErrInvalidConfig, e)
		}
		for _, a := range strings.Split(list, ",") {
			addr, err := netip.ParseAddr(strings.TrimSpace(a))
			if err != nil {
				return nil, fmt.Errorf("%w: hosts entry %q: %v", ErrInvalidConfig, e, err)
			}
			h[t.name] = append(h[t.name], addr.Unmap())
		}
	}
	return h, nil
}
