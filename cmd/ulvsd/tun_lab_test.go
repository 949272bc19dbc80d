package main

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
)

// TestTUNConfigRefusesDR: a "dr" real server cannot be reached without L2.
func TestTUNConfigRefusesDR(t *testing.T) {
	cfg := &config.Config{VirtualServers: []config.VirtualServer{{
		Address:     netip.MustParseAddrPort("192.0.2.10:80"),
		RealServers: []config.RealServer{{Address: netip.MustParseAddrPort("192.0.2.20:80"), Method: config.DR}},
	}}}
	err := checkTUNConfig(cfg)
	if !errors.Is(err, ErrTUNSetup) || !strings.Contains(err.Error(), "192.0.2.20:80") || !strings.Contains(err.Error(), "\"dr\"") {
		t.Fatalf("checkTUNConfig with a DR real server = %v, want ErrTUNSetup naming the real server and the method", err)
	}
}

// TestTUNEngineNAT is the L3 deployment: ulvsd with engine = "tun" on the
// NAT lab's director, the client routing the VIP via the director's public
// address (it does not ARP for it), two real servers behind, rr.
func TestTUNEngineNAT(t *testing.T) { testTUNEngine(t, lab.NAT, false) }

// TestTUNEngineNAT6 is TestTUNEngineNAT over IPv6 (the lab has both
// families; requests go to the IPv6 VIP).
func TestTUNEngineNAT6(t *testing.T) { testTUNEngine(t, lab.NAT, true) }

// TestTUNEngineTunnel is the same deployment with TUN-method (IP-in-IP)
// real servers: ulvs writes the encapsulated packets into the device and
// the kernel forwards them; the real servers answer the client directly.
func TestTUNEngineTunnel(t *testing.T) { testTUNEngine(t, lab.TUN, false) }

func testTUNEngine(t *testing.T, mode lab.Mode, v6 bool) {
	labtest.RequireRoot(t)
	l := labtest.New(t, lab.Spec{Mode: mode, Servers: 2, IPv6: v6})
	p := &l.Plan
	dir1, _ := p.Host("dir1")
	var pubAddr netip.Addr
	for _, ifc := range dir1.Ifaces {
		if ifc.Net == "public" {
			pubAddr = ifc.Addr4.Addr()
			if v6 {
				pubAddr = ifc.Addr6.Addr()
			}
		}
	}
	vip, fam, host := p.VIP4, "-4", "/32"
	rsAddr := func(h *lab.Host) netip.Addr { return h.Addr4() }
	if v6 {
		vip, fam, host = p.VIP6, "-6", "/128"
		rsAddr = func(h *lab.Host) netip.Addr { return h.Addr6() }
	}
	ip := func(host string, args ...string) string {
		t.Helper()
		out, err := l.Exec(context.Background(), host, append([]string{"ip"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s on %s: %v: %s", strings.Join(args, " "), host, err, out)
		}
		return string(out)
	}
	ip("client1", fam, "route", "add", vip.String()+host, "via", pubAddr.String())

	tmp := t.TempDir()
	sock := filepath.Join(tmp, "ulvsd.sock")
	cfgPath := filepath.Join(tmp, "ulvsd.toml")
	cfgText := l.DirectorConfig(lab.DirectorOptions{ControlSocket: sock, Scheduler: "rr", Extra: "engine = \"tun\"\n"})
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}

	// The lab director does not forward: ulvsd must refuse, and say why.
	if v, err := l.ReadSysctl("dir1", "net.ipv4.ip_forward"); err != nil || v != "0" {
		t.Fatalf("lab director's ip_forward = %q, %v; want 0", v, err)
	}
	refused := startULVSD(t, l, "dir1", cfgPath)
	select {
	case <-refused.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("ulvsd with engine = \"tun\" and ip_forward = 0 did not exit")
	}
	if out, _ := refused.Output(); !strings.Contains(string(out), "net.ipv4.ip_forward is 0") {
		t.Fatalf("ulvsd's refusal does not name net.ipv4.ip_forward:\n%s", out)
	}

	if err := l.Sysctl("dir1", "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if v6 {
		if err := l.Sysctl("dir1", "net.ipv6.conf.all.forwarding", "1"); err != nil {
			t.Fatal(err)
		}
	}
	ulvsd := startULVSD(t, l, "dir1", cfgPath)

	get := httpGetter(l, "client1", "http://"+netip.AddrPortFrom(vip, uint16(p.HTTPPort)).String()+"/", 2*time.Second)
	waitAnswer(t, get, ulvsd)

	// The kernel state ulvsd installed.
	if r := ip("dir1", fam, "route", "show", vip.String()+host); !strings.Contains(r, "dev "+tunDevice) {
		t.Errorf("dir1: route to the VIP = %q, want dev %s", r, tunDevice)
	}
	rules := ip("dir1", fam, "rule", "show")
	for _, h := range p.RealServers() {
		if mode != lab.NAT {
			break
		}
		if !strings.Contains(rules, "from "+rsAddr(h).String()+" iif ") {
			t.Errorf("dir1: no policy rule for the NAT real server %s:\n%s", rsAddr(h), rules)
		}
	}

	// A second ulvsd in the same namespace must not attach to ulvs0.
	cfg2 := filepath.Join(tmp, "second.toml")
	if err := os.WriteFile(cfg2, []byte(strings.Replace(cfgText, sock, filepath.Join(tmp, "second.sock"), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	second := startULVSD(t, l, "dir1", cfg2)
	select {
	case <-second.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("a second ulvsd with engine = \"tun\" in the same namespace did not exit")
	}
	if out, _ := second.Output(); !strings.Contains(string(out), tunDevice+" already exists") {
		t.Fatalf("the second ulvsd's refusal does not say %s exists:\n%s", tunDevice, out)
	}

	// rr over two real servers, one connection per request: each answers
	// half. The connection to the VIP completing shows the replies came
	// back from the VIP (rewritten by ulvs, not forwarded by the kernel).
	const n = 20
	count := map[string]int{}
	for i := 0; i < n; i++ {
		b, err := get()
		if err != nil {
			out, _ := ulvsd.Output()
			t.Fatalf("request %d through the VIP: %v; ulvsd log:\n%s", i, err, out)
		}
		count[b]++
	}
	for _, h := range p.RealServers() {
		if count[h.Name] != n/2 {
			t.Errorf("real server %s answered %d of %d requests (rr over 2: want %d); all: %v", h.Name, count[h.Name], n, n/2, count)
		}
	}

	// Table changes: the routes and rules follow (IPv4 NAT only, so that
	// the other variants check the clean-up at exit with everything in).
	if mode == lab.NAT && !v6 {
		cli := control.NewClient(sock)
		rs := p.RealServers()
		svc := netip.AddrPortFrom(vip, uint16(p.HTTPPort)).String()
		if err := cli.Command([]string{"ipvsadm", "-d", "-t", svc, "-r", netip.AddrPortFrom(rsAddr(rs[0]), uint16(p.HTTPPort)).String()}, nil); err != nil {
			t.Fatal(err)
		}
		rules := ip("dir1", fam, "rule", "show")
		if strings.Contains(rules, "from "+rsAddr(rs[0]).String()+" iif ") || !strings.Contains(rules, "from "+rsAddr(rs[1]).String()+" iif ") {
			t.Errorf("dir1: after removing %s, want its rule gone and %s's kept:\n%s", rs[0].Name, rs[1].Name, rules)
		}
		if err := cli.Command([]string{"ipvsadm", "-D", "-t", svc}, nil); err != nil {
			t.Fatal(err)
		}
		if r := ip("dir1", fam, "route", "show", vip.String()+host); strings.TrimSpace(r) != "" {
			t.Errorf("dir1: route to the VIP left after its service was deleted: %q", r)
		}
		if r := ip("dir1", fam, "rule", "show"); strings.Contains(r, "lookup 30567") {
			t.Errorf("dir1: policy rules left after the service was deleted:\n%s", r)
		}
		if _, err := get(); err == nil {
			t.Error("the VIP still answers after its service was deleted")
		}
	}

	// On exit ulvsd removes its routes and rules.
	if err := ulvsd.Stop(5 * time.Second); err != nil {
		out, _ := ulvsd.Output()
		t.Logf("ulvsd stop: %v; log:\n%s", err, out)
	}
	if r := ip("dir1", fam, "route", "show", vip.String()+host); strings.TrimSpace(r) != "" {
		t.Errorf("dir1: route to the VIP left after ulvsd exited: %q", r)
	}
	if r := ip("dir1", fam, "rule", "show"); strings.Contains(r, "lookup 30567") {
		t.Errorf("dir1: policy rules left after ulvsd exited:\n%s", r)
	}
	if r := ip("dir1", "link", "show"); strings.Contains(r, tunDevice) {
		t.Errorf("dir1: %s left after ulvsd exited:\n%s", tunDevice, r)
	}
}
