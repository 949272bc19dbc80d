//go:build linux

package failover

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestNetnsNATRouter(t *testing.T) {
	needRoot(t)
	sfx := suffix()
	ns := newNS(t, "ulvsfoN"+sfx)
	sh(t, "ip", "-n", ns, "link", "add", "fn"+sfx, "type", "veth", "peer", "name", "fm"+sfx)
	sh(t, "ip", "-n", ns, "link", "set", "fn"+sfx, "up")
	nh, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	r := &NATRouter{Link: "fn" + sfx, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.1.254/24"), netip.MustParsePrefix("fd00::fe/64")}, Handle: h}
	show := func() string { return sh(t, "ip", "-n", ns, "addr", "show", "dev", "fn"+sfx) }
	for i := 0; i < 2; i++ { // twice: idempotent
		if err := r.Up(); err != nil {
			t.Fatal(err)
		}
	}
	if s := show(); !strings.Contains(s, "10.0.1.254/24") || !strings.Contains(s, "fd00::fe/64") {
		t.Fatalf("addresses not added:\n%s", s)
	}
	for i := 0; i < 2; i++ {
		if err := r.Down(); err != nil {
			t.Fatal(err)
		}
	}
	if s := show(); strings.Contains(s, "10.0.1.254") || strings.Contains(s, "fd00::fe") {
		t.Fatalf("addresses not removed:\n%s", s)
	}
	bad := &NATRouter{Link: "nosuch" + sfx, Handle: h}
	if err := bad.Up(); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("missing link: %v", err)
	}
}
