package gateway

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// target is one destination a sandbox asks for: a DNS name or an IP address, and a port.
type target struct {
	name string     // canonical: lower case, no trailing dot; empty for an IP address
	ip   netip.Addr // valid when the sandbox named an address instead of a host
	port int
}

func (t target) isIP() bool { return t.ip.IsValid() }

// host is the name, or the address in its canonical text form.
func (t target) host() string {
	if t.isIP() {
		return t.ip.String()
	}
	return t.name
}

func (t target) String() string { return net.JoinHostPort(t.host(), strconv.Itoa(t.port)) }

// parseTarget reads "host:port" (a CONNECT authority) or, when the port is missing, uses
// defaultPort (the scheme's).
func parseTarget(hostport string, defaultPort int) (target, error) {
	host, portText, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: the whole string is the host (an IPv6 literal keeps its brackets).
		host, portText = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
	}
	port := defaultPort
	if portText != "" {
		if port, err = parsePort(portText); err != nil {
			return target{}, err
		}
	}
	if port == 0 {
		return target{}, fmt.Errorf("%q has no port", hostport)
	}
	t, err := parseHost(host)
	if err != nil {
		return target{}, err
	}
	t.port = port
	return t, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 || s[0] == '+' || s[0] == '0' {
		return 0, fmt.Errorf("port %q: not a number from 1 to 65535", s)
	}
	return p, nil
}

// parseHost canonicalises a host: an IP address (without a zone), or a DNS name of letters,
// digits, hyphens and underscores. A name that a C resolver's inet_aton would read as an
// address ("2130706433", "0x7f.1", "127.1") is refused as one: it is an address in disguise.
func parseHost(h string) (target, error) {
	if h == "" {
		return target{}, fmt.Errorf("empty host")
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" {
			return target{}, fmt.Errorf("host %q: an address with a zone", h)
		}
		return target{ip: ip.Unmap()}, nil
	}
	name := strings.TrimSuffix(strings.ToLower(h), ".")
	if err := checkName(name); err != nil {
		return target{}, fmt.Errorf("host %q: %w", h, err)
	}
	if numericName(name) {
		return target{}, errNumericName
	}
	return target{name: name}, nil
}

// errNumericName marks a host written as a number: an IP address the allow-list must name
// as one.
var errNumericName = fmt.Errorf("an IP address written as a number")

func checkName(name string) error {
	if len(name) == 0 || len(name) > 253 {
		return fmt.Errorf("a name must have 1 to 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("each dot-separated label must have 1 to 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("a label cannot start or end with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q is not allowed (IDNs must be written in punycode, xn--...)", c)
			}
		}
	}
	return nil
}

// numericName reports whether every label is a decimal, octal or hex number: what inet_aton
// (and so getaddrinfo) parses as an IPv4 address.
func numericName(name string) bool {
	labels := strings.Split(name, ".")
	if len(labels) > 4 {
		return false
	}
	for _, l := range labels {
		digits := l
		if strings.HasPrefix(l, "0x") {
			digits = l[2:]
			for i := 0; i < len(digits); i++ {
				if !strings.ContainsRune("0123456789abcdef", rune(digits[i])) {
					return false
				}
			}
			continue
		}
		for i := 0; i < len(digits); i++ {
			if digits[i] < '0' || digits[i] > '9' {
				return false
			}
		}
	}
	return true
}
