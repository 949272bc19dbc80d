package realserver_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
	"github.com/ulvs/ulvs/realserver"
)

func sysctl(t *testing.T, l *lab.Lab, host, key string) string {
	t.Helper()
	var v string
	if err := l.Do(host, func() error {
		b, err := os.ReadFile("/proc/sys/" + key)
		v = strings.TrimSpace(string(b))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func setSysctl(t *testing.T, l *lab.Lab, host, key, v string) {
	t.Helper()
	if err := l.Do(host, func() error { return os.WriteFile("/proc/sys/"+key, []byte(v), 0o644) }); err != nil {
		t.Fatal(err)
	}
}

func loAddrs(t *testing.T, l *lab.Lab, host string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	if err := l.Do(host, func() error {
		ifi, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		as, err := ifi.Addrs()
		for _, a := range as {
			p := netip.MustParsePrefix(a.String())
			out = append(out, p.Addr())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func has(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func httpGet(l *lab.Lab, host string, addr netip.Addr, port int) (string, error) {
	resp, err := l.HTTPClient(host, 2*time.Second).Get("http://" + netip.AddrPortFrom(addr, uint16(port)).String() + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func run(t *testing.T, l *lab.Lab, host string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := l.Exec(ctx, host, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %v\n%s", host, argv, err, out)
	}
	return string(out)
}

func TestDRSetupAndUndo(t *testing.T) {
	labtest.RequireRoot(t)
	l := labtest.New(t, lab.Spec{Mode: lab.DR, Servers: 1, IPv6: true, NoRealServerSetup: true})
	p := &l.Plan
	rs, _ := p.Host("rs1")
	stateDir := t.TempDir()
	cfg := realserver.DRConfig{VIPs: p.VIPs(), StateDir: stateDir}
	// A value other than the default, to check that undo restores exactly
	// what was there.
	setSysctl(t, l, "rs1", "net/ipv4/conf/all/arp_announce", "1")

	// Without the set-up, the VIP is not accepted: packets for it sent to
	// rs1's MAC get nothing.
	run(t, l, "client1", "ip", "neigh", "replace", p.VIP4.String(), "lladdr", rs.Ifaces[0].MAC, "dev", "eth0", "nud", "permanent")
	if _, err := httpGet(l, "client1", p.VIP4, p.HTTPPort); err == nil {
		t.Fatal("rs1 answered for the VIP before the DR set-up")
	}

	for i, wantChanged := range []bool{true, false} {
		var changed bool
		if err := l.Do("rs1", func() error {
			var err error
			changed, err = realserver.SetupDR(cfg)
			return err
		}); err != nil {
			t.Fatalf("SetupDR #%d: %v", i+1, err)
		}
		if changed != wantChanged {
			t.Fatalf("SetupDR #%d: changed=%v, want %v", i+1, changed, wantChanged)
		}
	}
	if got := sysctl(t, l, "rs1", "net/ipv4/conf/all/arp_ignore"); got != "1" {
		t.Errorf("arp_ignore = %s, want 1", got)
	}
	if got := sysctl(t, l, "rs1", "net/ipv4/conf/all/arp_announce"); got != "2" {
		t.Errorf("arp_announce = %s, want 2", got)
	}
	lo := loAddrs(t, l, "rs1")
	for _, v := range p.VIPs() {
		if !has(lo, v) {
			t.Errorf("VIP %s not on lo (%v)", v, lo)
		}
	}

	// The VIP is served, and the reply comes from it (TCP would not
	// complete otherwise).
	run(t, l, "client1", "ip", "neigh", "replace", p.VIP6.String(), "lladdr", rs.Ifaces[0].MAC, "dev", "eth0", "nud", "permanent")
	for _, v := range p.VIPs() {
		body, err := httpGet(l, "client1", v, p.HTTPPort)
		if err != nil || body != "rs1\n" {
			t.Fatalf("GET %s via rs1's MAC: %q, %v", v, body, err)
		}
	}
	// ARP: rs1 does not answer for the VIP.
	run(t, l, "client1", "ip", "neigh", "del", p.VIP4.String(), "dev", "eth0")
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if err := l.Ping(ctx, "client1", p.VIP4); err == nil {
		t.Fatal("the VIP answered a ping: rs1 answered ARP for it")
	}
	if out := run(t, l, "client1", "ip", "neigh", "show", p.VIP4.String()); strings.Contains(out, "lladdr") {
		t.Fatalf("client resolved the VIP: %s", out)
	}

	// A VIP that was already there before the set-up is not removed by undo.
	extra := netip.MustParseAddr("10.0.0.200")
	run(t, l, "rs1", "ip", "addr", "add", extra.String()+"/32", "dev", "lo")
	cfg2 := cfg
	cfg2.VIPs = append([]netip.Addr{extra}, cfg.VIPs...)
	if err := l.Do("rs1", func() error { _, err := realserver.SetupDR(cfg2); return err }); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 2; i++ {
		if err := l.Do("rs1", func() error { return realserver.UndoDR(realserver.DRConfig{StateDir: stateDir}) }); err != nil {
			t.Fatalf("UndoDR #%d: %v", i+1, err)
		}
	}
	lo = loAddrs(t, l, "rs1")
	for _, v := range p.VIPs() {
		if has(lo, v) {
			t.Errorf("VIP %s still on lo after undo", v)
		}
	}
	if !has(lo, extra) {
		t.Errorf("undo removed %s, which the set-up did not add", extra)
	}
	if got := sysctl(t, l, "rs1", "net/ipv4/conf/all/arp_ignore"); got != "0" {
		t.Errorf("arp_ignore = %s after undo, want 0", got)
	}
	if got := sysctl(t, l, "rs1", "net/ipv4/conf/all/arp_announce"); got != "1" {
		t.Errorf("arp_announce = %s after undo, want the original 1", got)
	}
	if ents, _ := os.ReadDir(stateDir); len(ents) != 0 {
		t.Errorf("state left after undo: %v", ents)
	}
}

func TestTunnelInProcess(t *testing.T) {
	labtest.RequireRoot(t)
	l := labtest.New(t, lab.Spec{Mode: lab.TUN, Servers: 1, NoRealServerSetup: true})
	p := &l.Plan
	rs, _ := p.Host("rs1")
	client, _ := p.Host("client1")
	stateDir := t.TempDir()
	setSysctl(t, l, "rs1", "net/ipv4/conf/all/rp_filter", "2")
	setSysctl(t, l, "rs1", "net/ipv4/conf/eth0/rp_filter", "0")

	var tn *realserver.Tunnel
	if err := l.Do("rs1", func() error {
		var err error
		tn, err = realserver.NewTunnel(realserver.TUNConfig{VIPs: []netip.Addr{p.VIP4}, StateDir: stateDir}, zerolog.Nop())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tn.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// rp_filter is relaxed for the TUN device only: eth0 keeps the
	// effective strictness it had through "all".
	if got := sysctl(t, l, "rs1", "net/ipv4/conf/all/rp_filter"); got != "0" {
		t.Errorf("all.rp_filter = %s, want 0", got)
	}
	if got := sysctl(t, l, "rs1", "net/ipv4/conf/eth0/rp_filter"); got != "2" {
		t.Errorf("eth0.rp_filter = %s, want 2 (the old effective value)", got)
	}
	// A second decapsulator in the same namespace is refused.
	if err := l.Do("rs1", func() error {
		_, err := realserver.NewTunnel(realserver.TUNConfig{VIPs: []netip.Addr{p.VIP4}, StateDir: stateDir}, zerolog.Nop())
		return err
	}); err == nil {
		t.Fatal("a second NewTunnel in the same namespace succeeded")
	}

	var fd int
	if err := l.Do("dir1", func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, realserver.ProtoIPIP)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	send := func(inner []byte) {
		t.Helper()
		if err := unix.Sendto(fd, inner, 0, &unix.SockaddrInet4{Addr: rs.Addr4().As4()}); err != nil {
			t.Fatal(err)
		}
	}
	inner := func(dst netip.Addr, payload string) []byte {
		b := make([]byte, 28+len(payload))
		b[0], b[8], b[9] = 0x45, 64, 17
		b[2], b[3] = byte(len(b)>>8), byte(len(b))
		s, d := client.Addr4().As4(), dst.As4()
		copy(b[12:], s[:])
		copy(b[16:], d[:])
		b[20], b[21], b[22], b[23] = 0x9c, 0x40, 0, byte(p.UDPEchoPort) // from port 40000
		b[24], b[25] = byte((8+len(payload))>>8), byte(8+len(payload))
		copy(b[28:], payload) // UDP checksum 0: none
		ipsum(b[:20])
		return b
	}
	// Malformed and foreign packets are counted and dropped.
	send(inner(netip.MustParseAddr("10.0.0.222"), "not for a VIP"))
	send(inner(p.VIP4, "x")[:19])
	bad := inner(p.VIP4, "xx")
	bad[0] = 0x65
	send(bad)
	long := inner(p.VIP4, "xx")
	long[3] += 50
	send(long)

	// A good one reaches the echo service, and the reply goes straight to
	// the client.
	var c *net.UDPConn
	if err := l.Do("client1", func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: client.Addr4().AsSlice(), Port: 40000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send(inner(p.VIP4, "hello through the tunnel"))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no echo: %v (stats %v)", err, tn.Stats())
	}
	if string(buf[:n]) != "hello through the tunnel" || from.Addr().Unmap() != p.VIP4 {
		t.Fatalf("echo %q from %s", buf[:n], from)
	}
	want := map[realserver.Reason]uint64{realserver.Injected: 1, realserver.DropNotVIP: 1, realserver.DropInnerShort: 1, realserver.DropInnerVersion: 1, realserver.DropInnerLen: 1}
	deadline := time.Now().Add(3 * time.Second)
	for {
		s := tn.Stats()
		ok := true
		for r, n := range want {
			if s.Get(r) != n {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %v, want %v", s, want)
		}
		time.Sleep(20 * time.Millisecond)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	done <- nil
	if got := sysctl(t, l, "rs1", "net/ipv4/conf/all/rp_filter"); got != "2" {
		t.Errorf("all.rp_filter = %s after stop, want 2 restored", got)
	}
	if got := sysctl(t, l, "rs1", "net/ipv4/conf/eth0/rp_filter"); got != "0" {
		t.Errorf("eth0.rp_filter = %s after stop, want 0 restored", got)
	}
	if err := l.Do("rs1", func() error { _, err := net.InterfaceByName(realserver.DefaultTunDevice); return err }); err == nil {
		t.Errorf("%s still exists after stop", realserver.DefaultTunDevice)
	}
	if ents, _ := os.ReadDir(stateDir); len(ents) != 0 {
		t.Errorf("state left after stop: %v", ents)
	}
	// Undo with nothing recorded is a no-op.
	if err := l.Do("rs1", func() error { return realserver.UndoTUN(realserver.TUNConfig{StateDir: stateDir}) }); err != nil {
		t.Fatal(err)
	}
}

func ipsum(h []byte) {
	h[10], h[11] = 0, 0
	var s uint32
	for i := 0; i < len(h); i += 2 {
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	c := ^uint16(s)
	h[10], h[11] = byte(c>>8), byte(c)
}
