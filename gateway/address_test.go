package gateway

import (
	"net/netip"
	"testing"
)

func TestCheckAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr                       string
		allowedPublic, withPrivate bool
	}{
		{"93.184.216.34", true, true},
		{"2606:2800:220:1::1", true, true},
		{"127.0.0.1", false, true},
		{"::1", false, true},
		{"10.0.0.1", false, true},
		{"172.16.5.4", false, true},
		{"192.168.1.1", false, true},
		{"100.64.0.1", false, true}, // shared address space, where clusters put Pods
		{"fd00:ec2::254", false, true},
		{"::ffff:10.0.0.1", false, true},  // IPv4-mapped
		{"169.254.169.254", false, false}, // the metadata server: never
		{"fe80::1", false, false},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"64:ff9b::a9fe:a9fe", false, false}, // NAT64 of 169.254.169.254
		{"64:ff9b::a00:1", false, true},      // NAT64 of 10.0.0.1
		{"64:ff9b::5db8:d822", true, true},   // NAT64 of a public address
		{"2002:a9fe:a9fe::1", false, false},  // 6to4 of 169.254.169.254
		{"2001:0:4136:e378::1", false, false},
		{"::127.0.0.1", false, false},        // IPv4-compatible (deprecated) of loopback
		{"::a9fe:a9fe", false, false},        // IPv4-compatible of 169.254.169.254
		{"::5db8:d822", false, false},        // IPv4-compatible of a public address: not routed either
		{"::ffff:0:a9fe:a9fe", false, false}, // IPv4-translated (SIIT) of 169.254.169.254
		{"fec0::1", false, true},             // site-local (deprecated): private
		{"2001:2::1", false, false},          // IETF protocol assignments (benchmarking)
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := checkAddress(a, false, nil) == nil; got != tc.allowedPublic {
			t.Errorf("%s without AllowPrivate: allowed=%v, want %v", tc.addr, got, tc.allowedPublic)
		}
		if got := checkAddress(a, true, nil) == nil; got != tc.withPrivate {
			t.Errorf("%s with AllowPrivate: allowed=%v, want %v", tc.addr, got, tc.withPrivate)
		}
	}
	extra := []netip.Prefix{netip.MustParsePrefix("34.118.224.0/20")}
	if checkAddress(netip.MustParseAddr("34.118.230.1"), true, extra) == nil {
		t.Error("a denied prefix must be refused even with AllowPrivate")
	}
}

func TestParseTarget(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Example.COM.:443":     "example.com:443",
		"example.com":          "example.com:80",
		"[::1]:8080":           "[::1]:8080",
		"[::ffff:127.0.0.1]:1": "127.0.0.1:1",
	} {
		got, err := parseTarget(in, 80)
		if err != nil || got.String() != want {
			t.Errorf("parseTarget(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", ":443", "example.com:0", "exa_mple..com:1", "[fe80::1%25eth0]:1", "1.2.3.4.5:80x"} {
		if got, err := parseTarget(in, 80); err == nil {
			t.Errorf("parseTarget(%q) = %v; want an error", in, got)
		}
	}
}
