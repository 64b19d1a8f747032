package gateway

import (
	"errors"
	"strings"
)

// AllowList is a compiled list of Rules: a destination is allowed when one rule covers both its
// host and its port. The zero value allows nothing.
type AllowList struct {
	rules []rule
}

// NewAllowList compiles rules; the error names every bad one.
func NewAllowList(rules []Rule) (*AllowList, error) {
	l := &AllowList{}
	var errs []error
	for _, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l.rules = append(l.rules, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return l, nil
}

// Rules returns the list as given.
func (l *AllowList) Rules() []Rule {
	if l == nil {
		return nil
	}
	out := make([]Rule, len(l.rules))
	for i, c := range l.rules {
		out[i] = c.src
	}
	return out
}

// Len is the number of rules.
func (l *AllowList) Len() int {
	if l == nil {
		return 0
	}
	return len(l.rules)
}

// String is the list in ParseRules' syntax.
func (l *AllowList) String() string {
	parts := make([]string, 0, l.Len())
	for _, r := range l.Rules() {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, " ")
}

// match is how the list judges a target: the rule that allows it, or, when none does, whether
// some rule covers the host on other ports (so the refusal can say "port").
func (l *AllowList) match(t target) (allowed *rule, hostKnown bool) {
	if l == nil {
		return nil, false
	}
	for i := range l.rules {
		c := &l.rules[i]
		if !c.matchesHost(t) {
			continue
		}
		if c.allowsPort(t.port) {
			return c, true
		}
		hostKnown = true
	}
	return nil, hostKnown
}

// Allows reports whether the list allows host (a name or an address) on port.
func (l *AllowList) Allows(host string, port int) bool {
	t, err := parseHost(host)
	if err != nil {
		return false
	}
	t.port = port
	r, _ := l.match(t)
	return r != nil
}

// privateAllowed reports whether a rule of the list allows t and lets it reach private
// addresses. With several rules for one host, one that allows private addresses is enough.
func (l *AllowList) privateAllowed(t target) bool {
	if l == nil {
		return false
	}
	for _, c := range l.rules {
		if c.matchesHost(t) && c.allowsPort(t.port) && c.allowPrivate {
			return true
		}
	}
	return false
}
