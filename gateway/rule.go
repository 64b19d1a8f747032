package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// DefaultPorts are the ports a Rule without Ports allows: HTTP and HTTPS.
var DefaultPorts = []int{80, 443}

// Rule allows one destination on some ports.
//
// Host is one of:
//   - an exact DNS name, "pypi.org": that name only;
//   - a wildcard, "*.pythonhosted.org": every name below it at any depth
//     (files.pythonhosted.org, a.b.pythonhosted.org) but not pythonhosted.org itself, which
//     needs a rule of its own. The suffix must have two labels at least: "*.com" is refused;
//   - an IP address, "203.0.113.7" or "2001:db8::7": a sandbox may use that address instead of
//     a name. Addresses are refused unless a rule names them: a wildcard never matches one.
//
// Whatever the rule, the gateway resolves names itself and refuses to connect to loopback,
// private, shared (100.64.0.0/10) and unique-local addresses unless AllowPrivate is set, and to
// link-local (the metadata server, 169.254.169.254), multicast and reserved addresses always.
type Rule struct {
	Host string `json:"host"`
	// Ports allowed; default DefaultPorts (80 and 443).
	Ports []int `json:"ports,omitempty"`
	// AllowPrivate lets this rule's names resolve to, and its address be, a loopback or private
	// address: an in-cluster mirror, or a test server. Only the namespace's list can set it; a
	// sandbox's narrowing cannot.
	AllowPrivate bool `json:"allow_private,omitempty"`
}

// String is the rule in ParseRule's syntax, one entry per port.
func (r Rule) String() string {
	host := r.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if len(r.Ports) == 0 {
		return host
	}
	parts := make([]string, len(r.Ports))
	for i, p := range r.Ports {
		parts[i] = host + ":" + strconv.Itoa(p)
	}
	return strings.Join(parts, " ")
}

// ParseRule reads "host" or "host:port" ("[2001:db8::7]:443" for an IPv6 address): the syntax
// of --allow flags and of a sandbox's narrowing annotation. Without a port the rule allows
// DefaultPorts.
func ParseRule(s string) (Rule, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Rule{}, fmt.Errorf("%w: empty entry", ErrInvalidRule)
	}
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			host, portText = s, "" // a bare IPv6 address
		} else if strings.Contains(s, ":") && !strings.HasSuffix(s, "]") {
			return Rule{}, fmt.Errorf("%w: %q: %v", ErrInvalidRule, s, err)
		} else {
			host, portText = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
		}
	}
	r := Rule{Host: host}
	if portText != "" {
		p, err := parsePort(portText)
		if err != nil {
			return Rule{}, fmt.Errorf("%w: %q: %v", ErrInvalidRule, s, err)
		}
		r.Ports = []int{p}
	}
	if _, err := compileRule(r); err != nil {
		return Rule{}, err
	}
	return r, nil
}

// ParseRules reads a list of ParseRule entries separated by commas or white space: the value of
// a --allow flag or of the sandbox annotation.
func ParseRules(s string) ([]Rule, error) {
	var rules []Rule
	var errs []error
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		r, err := ParseRule(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rules = append(rules, r)
	}
	return rules, errors.Join(errs...)
}

// rule is a Rule compiled for matching.
type rule struct {
	src          Rule
	exact        string     // an exact name
	suffix       string     // ".example.com" for "*.example.com"
	ip           netip.Addr // an address rule
	ports        []int
	allowPrivate bool
}

func compileRule(r Rule) (rule, error) {
	bad := func(format string, args ...any) (rule, error) {
		return rule{}, fmt.Errorf("%w: host %q: %s", ErrInvalidRule, r.Host, fmt.Sprintf(format, args...))
	}
	c := rule{src: r, ports: slices.Clone(r.Ports), allowPrivate: r.AllowPrivate}
	if len(c.ports) == 0 {
		c.ports = slices.Clone(DefaultPorts)
	}
	for _, p := range c.ports {
		if p < 1 || p > 65535 {
			return bad("port %d: not from 1 to 65535", p)
		}
	}
	switch {
	case r.Host == "*" || r.Host == "":
		return bad("a rule names a host, a wildcard of subdomains (*.example.com) or an address; everything is not allowed")
	case strings.HasPrefix(r.Host, "*."):
		suffix := strings.TrimSuffix(strings.ToLower(r.Host[2:]), ".")
		if err := checkName(suffix); err != nil {
			return bad("%v", err)
		}
		if !strings.Contains(suffix, ".") {
			return bad("a wildcard must keep two labels at least (*.example.com, not *.com)")
		}
		if strings.Contains(suffix, "*") {
			return bad("'*' may only be the whole first label")
		}
		c.suffix = "." + suffix
	default:
		t, err := parseHost(r.Host)
		if err != nil {
			if errors.Is(err, errNumericName) {
				return bad("an address written as a number: write it as an IP address")
			}
			return bad("%v", err)
		}
		c.exact, c.ip = t.name, t.ip
	}
	return c, nil
}

// matchesHost reports whether the rule covers the target's host, whatever the port.
func (c rule) matchesHost(t target) bool {
	switch {
	case t.isIP():
		return c.ip.IsValid() && c.ip == t.ip
	case c.suffix != "":
		return len(t.name) > len(c.suffix) && strings.HasSuffix(t.name, c.suffix)
	}
	return c.exact != "" && c.exact == t.name
}

func (c rule) allowsPort(port int) bool { return slices.Contains(c.ports, port) }
