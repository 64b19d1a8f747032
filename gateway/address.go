package gateway

import (
	"net/netip"
)

// addressClass is why an address is special; empty for a public unicast address.
type addressClass struct {
	name string
	// private classes are reachable when a rule sets AllowPrivate; the others never are.
	private bool
}

// specialPrefixes are the ranges a sandbox must not reach by default (SSRF protection): the
// node and the cluster (loopback, RFC 1918, shared address space where clusters put Pods and
// Services, unique-local IPv6), the metadata server and other link-local services, and
// everything that is not public unicast. See the IANA special-purpose address registries.
var specialPrefixes = []struct {
	prefix netip.Prefix
	class  addressClass
}{
	{netip.MustParsePrefix("127.0.0.0/8"), addressClass{"loopback", true}},
	{netip.MustParsePrefix("::1/128"), addressClass{"loopback", true}},
	{netip.MustParsePrefix("10.0.0.0/8"), addressClass{"private (RFC 1918)", true}},
	{netip.MustParsePrefix("172.16.0.0/12"), addressClass{"private (RFC 1918)", true}},
	{netip.MustParsePrefix("192.168.0.0/16"), addressClass{"private (RFC 1918)", true}},
	{netip.MustParsePrefix("100.64.0.0/10"), addressClass{"shared address space (RFC 6598)", true}},
	{netip.MustParsePrefix("fc00::/7"), addressClass{"unique-local (RFC 4193)", true}},
	{netip.MustParsePrefix("169.254.0.0/16"), addressClass{"link-local (the metadata server's range)", false}},
	{netip.MustParsePrefix("fe80::/10"), addressClass{"link-local", false}},
	{netip.MustParsePrefix("0.0.0.0/8"), addressClass{"this network", false}},
	{netip.MustParsePrefix("::/128"), addressClass{"unspecified", false}},
	{netip.MustParsePrefix("192.0.0.0/24"), addressClass{"IETF protocol assignments", false}},
	{netip.MustParsePrefix("192.0.2.0/24"), addressClass{"documentation", false}},
	{netip.MustParsePrefix("198.51.100.0/24"), addressClass{"documentation", false}},
	{netip.MustParsePrefix("203.0.113.0/24"), addressClass{"documentation", false}},
	{netip.MustParsePrefix("198.18.0.0/15"), addressClass{"benchmarking", false}},
	{netip.MustParsePrefix("224.0.0.0/4"), addressClass{"multicast", false}},
	{netip.MustParsePrefix("240.0.0.0/4"), addressClass{"reserved", false}},
	{netip.MustParsePrefix("ff00::/8"), addressClass{"multicast", false}},
	{netip.MustParsePrefix("100::/64"), addressClass{"discard-only", false}},
	{netip.MustParsePrefix("2001:db8::/32"), addressClass{"documentation", false}},
	{netip.MustParsePrefix("64:ff9b:1::/48"), addressClass{"local-use IPv4/IPv6 translation", false}},
	{netip.MustParsePrefix("2001::/32"), addressClass{"Teredo", false}},
	{netip.MustParsePrefix("2001::/23"), addressClass{"IETF protocol assignments", false}},
	{netip.MustParsePrefix("fec0::/10"), addressClass{"site-local (deprecated)", true}},
	// After ::/128 and ::1/128: the rest of ::/96 embeds an IPv4 address (the deprecated
	// IPv4-compatible form), as ::ffff:0:0:0/96 does (SIIT); a stack that tunnels them would
	// reach that address, so neither is ever dialled.
	{netip.MustParsePrefix("::/96"), addressClass{"IPv4-compatible (deprecated)", false}},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), addressClass{"IPv4-translated (SIIT)", false}},
}

// translated are IPv6 ranges that embed an IPv4 address in their low 32 bits (NAT64) or in
// bits 16-48 (6to4): the embedded address is judged too, else they would be a way around.
var (
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
	sixTo = netip.MustParsePrefix("2002::/16")
)

// classify returns what is special about a, if anything.
func classify(a netip.Addr) (addressClass, bool) {
	a = a.Unmap()
	for _, s := range specialPrefixes {
		if s.prefix.Contains(a) {
			return s.class, true
		}
	}
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			return classify(netip.AddrFrom4([4]byte(b[12:16])))
		case sixTo.Contains(a):
			return classify(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return addressClass{}, false
}

// checkAddress says why a must not be dialled for a rule that does (or does not) allow
// private addresses, or nil; extra are more ranges the operator refuses (the cluster's Pod
// and Service ranges when they are not private addresses).
func checkAddress(a netip.Addr, allowPrivate bool, extra []netip.Prefix) *denial {
	a = a.Unmap()
	for _, p := range extra {
		if p.Contains(a) {
			return deny(ReasonPrivateAddress, "%s is in the refused range %s", a, p)
		}
	}
	class, special := classify(a)
	if !special || (class.private && allowPrivate) {
		return nil
	}
	if class.private {
		return deny(ReasonPrivateAddress, "%s is a %s address, which this destination's rule does not allow", a, class.name)
	}
	return deny(ReasonPrivateAddress, "%s is a %s address, which no rule can allow", a, class.name)
}
