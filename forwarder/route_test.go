package forwarder

import (
	"net/netip"
	"testing"
)

func TestRouteTableLookup(t *testing.T) {
	mk := func(p string, iface int, gw string) route {
		pr := netip.MustParsePrefix(p)
		r := route{prefix: to16(pr.Masked()), iface: iface, v6: pr.Addr().Is6()}
		if gw != "" {
			r.gateway, r.hasGW = a16(gw), true
		}
		return r
	}
	rt := buildRouteTable([]route{
		mk("0.0.0.0/0", 0, "10.0.0.1"),
		mk("10.0.0.0/24", 0, ""),
		mk("10.0.1.0/24", 1, ""),
		mk("::/0", 0, "2001:db8::1"),
		mk("2001:db8:1::/64", 1, ""),
	})
	cases := []struct {
		dst, hop string
		iface    int
	}{
		{"10.0.0.7", "10.0.0.7", 0},
		{"10.0.1.11", "10.0.1.11", 1},
		{"192.0.2.9", "10.0.0.1", 0},
		{"2001:db8:1::11", "2001:db8:1::11", 1},
		{"2001:db8:9::9", "2001:db8::1", 0},
	}
	for _, c := range cases {
		d := a16(c.dst)
		iface, hop, ok := rt.Lookup(&d)
		if !ok || iface != c.iface || hop != a16(c.hop) {
			t.Errorf("Lookup(%s) = %d %v %v, want %d %s", c.dst, iface, netip.AddrFrom16(hop), ok, c.iface, c.hop)
		}
	}
	// Without an IPv4 default, an IPv4 destination must not follow ::/0.
	rt6 := buildRouteTable([]route{mk("::/0", 0, "2001:db8::1")})
	d := a16("192.0.2.9")
	if _, _, ok := rt6.Lookup(&d); ok {
		t.Fatal("IPv4 destination matched the IPv6 default route")
	}
}

func TestIfaceSrc(t *testing.T) {
	ifc := Iface{Addrs: []netip.Prefix{
		netip.MustParsePrefix("fe80::1/64"),
		netip.MustParsePrefix("10.0.1.1/24"),
		netip.MustParsePrefix("2001:db8:1::1/64"),
	}}
	if a, ok := ifc.Src(false); !ok || a != netip.MustParseAddr("10.0.1.1") {
		t.Errorf("Src(v4) = %v %v", a, ok)
	}
	if a, ok := ifc.Src(true); !ok || a != netip.MustParseAddr("2001:db8:1::1") {
		t.Errorf("Src(v6) = %v %v", a, ok)
	}
}
