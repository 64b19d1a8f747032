package gateway

import (
	"errors"
	"testing"
)

func TestParseRule(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Rule{
		"pypi.org":              {Host: "pypi.org"},
		"PyPI.org.":             {Host: "PyPI.org."},
		"*.pythonhosted.org":    {Host: "*.pythonhosted.org"},
		"api.example.com:8443":  {Host: "api.example.com", Ports: []int{8443}},
		"203.0.113.7:443":       {Host: "203.0.113.7", Ports: []int{443}},
		"[2001:db8::7]:443":     {Host: "2001:db8::7", Ports: []int{443}},
		"2001:db8::7":           {Host: "2001:db8::7"},
		"[2001:db8::7]":         {Host: "2001:db8::7"},
		" mirror.internal.svc ": {Host: "mirror.internal.svc"},
	} {
		got, err := ParseRule(in)
		if err != nil || got.String() != want.String() {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "*", "*.com", "a.*.example.com", "**.example.com", "example.com:0", "example.com:65536",
		"example.com:http", "exa mple.com", "-example.com", "ex$ample.com", "2130706433", "127.1", "0x7f.0.0.1",
		"bücher.example", "fe80::1%eth0", "example.com:080"} {
		if r, err := ParseRule(in); !errors.Is(err, ErrInvalidRule) {
			t.Errorf("ParseRule(%q) = %+v, %v; want ErrInvalidRule", in, r, err)
		}
	}
}

func TestAllowListMatching(t *testing.T) {
	t.Parallel()
	l, err := NewAllowList([]Rule{
		{Host: "pypi.org"},
		{Host: "*.pythonhosted.org"},
		{Host: "api.example.com", Ports: []int{8443}},
		{Host: "203.0.113.7", Ports: []int{443}},
		{Host: "2001:db8::7"},
	})
	must(t, err)
	for _, tc := range []struct {
		host string
		port int
		want bool
	}{
		{"pypi.org", 443, true},
		{"PYPI.ORG.", 80, true},
		{"pypi.org", 8080, false},
		{"www.pypi.org", 443, false}, // exact names are exact
		{"files.pythonhosted.org", 443, true},
		{"a.b.pythonhosted.org", 443, true}, // any depth
		{"pythonhosted.org", 443, false},    // not the apex
		{"evilpythonhosted.org", 443, false},
		{"pythonhosted.org.evil.com", 443, false},
		{"api.example.com", 8443, true},
		{"api.example.com", 443, false},
		{"203.0.113.7", 443, true},
		{"203.0.113.8", 443, false},
		{"::ffff:203.0.113.7", 443, true}, // the same address, IPv4-mapped
		{"2001:db8::7", 80, true},
		{"2130706433", 443, false},
	} {
		if got := l.Allows(tc.host, tc.port); got != tc.want {
			t.Errorf("Allows(%q, %d) = %v; want %v", tc.host, tc.port, got, tc.want)
		}
	}
	var empty *AllowList
	if empty.Allows("pypi.org", 443) || (&AllowList{}).Allows("pypi.org", 443) {
		t.Error("an empty list allows nothing")
	}
}

func TestParseRulesJoinsErrors(t *testing.T) {
	t.Parallel()
	rules, err := ParseRules("pypi.org, *.pythonhosted.org api.example.com:8443\n")
	if err != nil || len(rules) != 3 {
		t.Fatalf("%v %v", rules, err)
	}
	if _, err := ParseRules("pypi.org *.com bad$host"); err == nil || !errors.Is(err, ErrInvalidRule) {
		t.Errorf("want both bad entries named: %v", err)
	}
}
