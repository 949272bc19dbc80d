package lab_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
)

func run(t *testing.T, l *lab.Lab, host string, argv ...string) string {
	t.Helper()
	out, err := l.Exec(ctxT(t, 5*time.Second), host, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", host, strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func needIP(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("iproute2 (ip) is required")
		}
		t.Skip("skipped: iproute2 (ip) not installed; scripts/test-deps.sh installs it")
	}
}

// neighMAC returns the MAC the host's neighbour table holds for addr, or "".
func neighMAC(t *testing.T, l *lab.Lab, host string, addr netip.Addr) string {
	out := run(t, l, host, "ip", "neigh", "show", addr.String())
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// udpAsk sends payload from the host to addr:port and returns the reply and
// the address it came from.
func udpAsk(t *testing.T, l *lab.Lab, host string, to netip.AddrPort, payload string) (string, netip.AddrPort, error) {
	t.Helper()
	var c *net.UDPConn
	if err := l.Do(host, func() error {
		var err error
		c, err = net.ListenUDP("udp", nil)
		return err
	}); err != nil {
		return "", netip.AddrPort{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.WriteToUDPAddrPort([]byte(payload), to); err != nil {
		return "", netip.AddrPort{}, err
	}
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return "", netip.AddrPort{}, err
	}
	return string(buf[:n]), netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
}

func TestDR(t *testing.T) {
	labtest.RequireRoot(t)
	needIP(t)
	l := labtest.New(t, lab.Spec{Mode: lab.DR, Servers: 2, IPv6: true})
	p := &l.Plan
	rs1, _ := p.Host("rs1")
	rs2, _ := p.Host("rs2")
	dir, _ := p.Host("dir1")
	if len(p.Nets) != 1 {
		t.Fatalf("DR lab has %d nets, want one L2 segment", len(p.Nets))
	}
	for _, rs := range []*lab.Host{rs1, rs2} {
		mustPing(t, l, "client1", rs.Addr4())
		mustPing(t, l, "client1", rs.Addr6())
		mustPing(t, l, "dir1", rs.Addr4())
		mustGet(t, l, "client1", rs.Addr4(), rs.Name)
		mustGet(t, l, "dir1", rs.Addr6(), rs.Name)
		lo := run(t, l, rs.Name, "ip", "addr", "show", "dev", "lo")
		for _, v := range p.VIPs() {
			if !strings.Contains(lo, v.String()+"/") {
				t.Errorf("%s: VIP %s not on lo:\n%s", rs.Name, v, lo)
			}
		}
	}
	mustPing(t, l, "client1", dir.Addr4())

	// ARP: the real servers hold the VIP but do not answer ARP (or
	// neighbour solicitation) for it.
	mustNotPing(t, l, "client1", p.VIP4)
	mustNotPing(t, l, "client1", p.VIP6)
	if mac := neighMAC(t, l, "client1", p.VIP4); mac != "" {
		t.Fatalf("client resolved the VIP %s to %s: a real server answered ARP for it", p.VIP4, mac)
	}
	if mac := neighMAC(t, l, "client1", p.VIP6); mac != "" {
		t.Fatalf("client resolved the VIP %s to %s: a real server answered NDP for it", p.VIP6, mac)
	}
	// Control: with arp_ignore back to 0, rs1 does answer, so the check
	// above can fail.
	run(t, l, "rs1", "sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/all/arp_ignore")
	run(t, l, "client1", "ip", "neigh", "flush", "to", p.VIP4.String())
	mustPing(t, l, "client1", p.VIP4)
	if mac := neighMAC(t, l, "client1", p.VIP4); mac != rs1.Ifaces[0].MAC {
		t.Fatalf("control: with arp_ignore=0 the VIP resolves to %q, want rs1 %s", mac, rs1.Ifaces[0].MAC)
	}
	run(t, l, "rs1", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore")

	// What a DR director does: send the client's packet, unchanged, to the
	// real server's MAC. A static neighbour entry does the same here.
	for _, rs := range []*lab.Host{rs1, rs2, rs1} {
		for _, v := range p.VIPs() {
			run(t, l, "client1", "ip", "neigh", "replace", v.String(), "lladdr", rs.Ifaces[0].MAC, "dev", "eth0", "nud", "permanent")
			mustGet(t, l, "client1", v, rs.Name)
			reply, from, err := udpAsk(t, l, "client1", netip.AddrPortFrom(v, uint16(p.UDPNamePort)), "who")
			if err != nil {
				t.Fatalf("UDP to %s via %s: %v", v, rs.Name, err)
			}
			if reply != rs.Name+"\n" || from.Addr() != v {
				t.Fatalf("UDP to %s via %s: reply %q from %s, want %q from the VIP", v, rs.Name, reply, from, rs.Name+"\n")
			}
		}
	}
}

// buildUDP returns an IP packet carrying UDP, with valid checksums.
func buildUDP(t *testing.T, src, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	var nl gopacket.SerializableLayer
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		udp.SetNetworkLayerForChecksum(ip)
		nl = ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		udp.SetNetworkLayerForChecksum(ip)
		nl = ip
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, nl, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawTunnelSocket opens, in host, a raw socket that sends its payload in an
// IP header of protocol proto (4 or 41) built by the kernel: an IP-in-IP
// sender, as a TUN director is.
func rawTunnelSocket(t *testing.T, l *lab.Lab, host string, v6outer bool, proto int) int {
	t.Helper()
	fam := unix.AF_INET
	if v6outer {
		fam = unix.AF_INET6
	}
	var fd int
	if err := l.Do(host, func() error {
		var err error
		fd, err = unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		return err
	}); err != nil {
		t.Fatalf("raw socket in %s: %v", host, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func sendTo(fd int, to netip.Addr, b []byte) error {
	if to.Is4() {
		return unix.Sendto(fd, b, 0, &unix.SockaddrInet4{Addr: to.As4()})
	}
	return unix.Sendto(fd, b, 0, &unix.SockaddrInet6{Addr: to.As16()})
}

// tunRelay is a minimal TUN director for the test: it reads, on the
// director's eth0, the IP packets addressed to a VIP and sends each one in
// IP-in-IP to the chosen real server. Replies do not come back through it.
type tunRelay struct {
	pfd      int
	out      map[[2]int]int // (outer family, proto) -> raw socket
	rs4, rs6 netip.Addr
	mu       sync.Mutex
	n        int
}

func startTunRelay(t *testing.T, l *lab.Lab, host string, vips []netip.Addr, rs *lab.Host) *tunRelay {
	t.Helper()
	r := &tunRelay{out: map[[2]int]int{}, rs4: rs.Addr4(), rs6: rs.Addr6()}
	if err := l.Do(host, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return err
		}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
		r.pfd = fd
		return nil
	}); err != nil {
		t.Fatalf("relay: %v", err)
	}
	r.out[[2]int{4, 4}] = rawTunnelSocket(t, l, host, false, 4)
	r.out[[2]int{6, 41}] = rawTunnelSocket(t, l, host, true, 41)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; unix.Close(r.pfd) })
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for ctx.Err() == nil {
			n, from, err := unix.Recvfrom(r.pfd, buf, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			pkt := buf[:n]
			if n >= 20 && pkt[0]>>4 == 4 {
				dst := netip.AddrFrom4([4]byte(pkt[16:20]))
				if vipIn(vips, dst) {
					sendTo(r.out[[2]int{4, 4}], r.rs4, pkt)
					r.count()
				}
			} else if n >= 40 && pkt[0]>>4 == 6 {
				dst := netip.AddrFrom16([16]byte(pkt[24:40]))
				if vipIn(vips, dst) {
					sendTo(r.out[[2]int{6, 41}], r.rs6, pkt)
					r.count()
				}
			}
		}
	}()
	return r
}

func (r *tunRelay) count() { r.mu.Lock(); r.n++; r.mu.Unlock() }
func (r *tunRelay) packets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func vipIn(vips []netip.Addr, a netip.Addr) bool {
	for _, v := range vips {
		if v == a {
			return true
		}
	}
	return false
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func TestTUN(t *testing.T) {
	labtest.RequireRoot(t)
	needIP(t)
	l := labtest.New(t, lab.Spec{Mode: lab.TUN, Servers: 2, IPv6: true})
	p := &l.Plan
	client, _ := p.Host("client1")
	dir, _ := p.Host("dir1")
	rs1, _ := p.Host("rs1")
	rs2, _ := p.Host("rs2")
	for _, rs := range []*lab.Host{rs1, rs2} {
		mustPing(t, l, "client1", rs.Addr4())
		mustPing(t, l, "dir1", rs.Addr6())
		mustGet(t, l, "client1", rs.Addr4(), rs.Name)
		// The decapsulator holds the VIPs on its TUN device.
		out := run(t, l, rs.Name, "ip", "addr", "show", "dev", "ulvstun0")
		for _, v := range p.VIPs() {
			if !strings.Contains(out, v.String()+"/") {
				t.Errorf("%s: VIP %s not on ulvstun0:\n%s", rs.Name, v, out)
			}
		}
	}
	// Nobody answers ARP for the VIP.
	mustNotPing(t, l, "client1", p.VIP4)
	if mac := neighMAC(t, l, "client1", p.VIP4); mac != "" {
		t.Fatalf("client resolved the VIP to %s", mac)
	}

	// A crafted IP-in-IP packet from the director: inner UDP from the
	// client to the VIP's echo port. The reply must reach the client
	// directly, from the VIP.
	for _, fam := range []struct {
		name     string
		client   netip.Addr
		vip      netip.Addr
		outerDst netip.Addr
		v6outer  bool
		proto    int
	}{
		{"v4-in-v4", client.Addr4(), p.VIP4, rs2.Addr4(), false, 4},
		{"v6-in-v6", client.Addr6(), p.VIP6, rs2.Addr6(), true, 41},
		{"v6-in-v4", client.Addr6(), p.VIP6, rs1.Addr4(), false, 41},
		{"v4-in-v6", client.Addr4(), p.VIP4, rs1.Addr6(), true, 4},
	} {
		t.Run(fam.name, func(t *testing.T) {
			var c *net.UDPConn
			if err := l.Do("client1", func() error {
				var err error
				c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.client, 0)))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			src := netip.MustParseAddrPort(c.LocalAddr().String())
			payload := []byte("tunnelled " + fam.name)
			inner := buildUDP(t, src, netip.AddrPortFrom(fam.vip, uint16(p.UDPEchoPort)), payload)
			fd := rawTunnelSocket(t, l, "dir1", fam.v6outer, fam.proto)
			if err := sendTo(fd, fam.outerDst, inner); err != nil {
				t.Fatalf("send IP-in-IP: %v", err)
			}
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 2048)
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("no reply to the tunnelled packet: %v", err)
			}
			if !bytes.Equal(buf[:n], payload) || from.Addr().Unmap() != fam.vip || from.Port() != uint16(p.UDPEchoPort) {
				t.Fatalf("reply %q from %s, want %q from %s:%d", buf[:n], from, payload, fam.vip, p.UDPEchoPort)
			}
		})
	}

	// Full TCP through a minimal relay on the director: the client sends to
	// the VIP (its neighbour entry points at the director), the director
	// tunnels to rs2, rs2 answers the client directly.
	relay := startTunRelay(t, l, "dir1", p.VIPs(), rs2)
	for _, v := range p.VIPs() {
		run(t, l, "client1", "ip", "neigh", "replace", v.String(), "lladdr", dir.Ifaces[0].MAC, "dev", "eth0", "nud", "permanent")
		for i := 0; i < 3; i++ {
			mustGet(t, l, "client1", v, "rs2")
		}
	}
	if relay.packets() == 0 {
		t.Fatal("the relay tunnelled nothing, yet HTTP to the VIP worked")
	}
}

func TestUpFailureCleansUp(t *testing.T) {
	labtest.RequireRoot(t)
	stateDir := t.TempDir()
	name := labtest.UniqueName()
	// The helper command fails, after the namespaces and links are built.
	_, err := lab.Up(ctxT(t, 30*time.Second), lab.Spec{Name: name, Mode: lab.NAT, Servers: 2, StateDir: stateDir, Helper: []string{"sh", "-c", "echo cannot start $0 >&2; exit 1"}})
	if err == nil {
		t.Fatal("Up with a failing helper succeeded")
	}
	if !strings.Contains(err.Error(), "rs1") || !strings.Contains(err.Error(), "cannot start serve") {
		t.Errorf("error does not say which host failed and why: %v", err)
	}
	ents, _ := os.ReadDir(lab.NetnsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), name+"-") {
			t.Errorf("namespace %s left behind by a failed Up", e.Name())
		}
	}
	if _, err := os.Stat(lab.StatePath(stateDir, name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left behind by a failed Up")
	}
}

func TestDownByNameAfterCrash(t *testing.T) {
	labtest.RequireRoot(t)
	stateDir := t.TempDir()
	name := labtest.UniqueName()
	l, err := lab.Up(ctxT(t, 30*time.Second), lab.Spec{Name: name, Mode: lab.DR, Servers: 1, StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	echo, err := l.Start("client1", "sh", "-c", "echo hello from $(cat /proc/sys/net/ipv4/conf/eth0/arp_ignore)")
	if err != nil {
		t.Fatal(err)
	}
	if err := echo.Wait(); err != nil {
		t.Fatal(err)
	}
	if out, err := echo.Output(); err != nil || string(out) != "hello from 0\n" {
		t.Fatalf("Output = %q, %v", out, err)
	}
	extra, err := l.Start("client1", "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, pr := range l.Processes() {
		pids = append(pids, pr.PID)
	}
	if _, err := lab.Up(ctxT(t, 30*time.Second), lab.Spec{Name: name, Mode: lab.DR, Servers: 1, StateDir: stateDir}); !errors.Is(err, lab.ErrExists) {
		t.Fatalf("second Up with the same name: %v, want ErrExists", err)
	}
	names, err := lab.List(stateDir)
	if err != nil || len(names) != 1 || names[0] != name {
		t.Fatalf("List = %v, %v; want [%s]", names, err, name)
	}
	// As `ulvslab down --name` does from another process: only the state
	// file is known.
	if err := lab.DownByName(stateDir, name); err != nil {
		t.Fatalf("DownByName: %v", err)
	}
	// They are this test's children: wait until each has exited (and been
	// reaped), which proves DownByName stopped them.
	for _, pr := range l.Processes() {
		select {
		case <-pr.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%v (pid %d) started in the lab still runs", pr.Argv, pr.PID)
		}
	}
	// SIGTERM first; on a loaded machine the grace period may run out and
	// SIGKILL follow. Either way the process was stopped by DownByName.
	if msg := extra.Wait().Error(); !strings.Contains(msg, "terminated") && !strings.Contains(msg, "killed") {
		t.Errorf("sleep ended with %v, want stopped by a signal", extra.Wait())
	}
	assertGone(t, l, pids, stateDir)
}

func TestBadSpec(t *testing.T) {
	for _, s := range []lab.Spec{
		{Mode: "ipip"},
		{},
		{Mode: lab.NAT, Servers: lab.MaxServers + 1},
		{Mode: lab.NAT, Directors: 3},
		{Mode: lab.NAT, Name: "bad/name"},
		{Mode: lab.NAT, Name: "averyveryverylongname"},
	} {
		if _, err := lab.MakePlan(s); !errors.Is(err, lab.ErrBadSpec) {
			t.Errorf("MakePlan(%+v) = %v, want ErrBadSpec", s, err)
		}
	}
}

func TestPlan(t *testing.T) {
	p, err := lab.MakePlan(lab.Spec{Name: "x", Mode: lab.NAT, Servers: 3, Directors: 2, IPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, h := range p.Hosts {
		for _, i := range h.Ifaces {
			for _, a := range []string{i.Addr4.Addr().String(), i.Addr6.Addr().String(), i.MAC} {
				if other, dup := seen[a]; dup {
					t.Errorf("%s used by %s and %s", a, other, h.Name)
				}
				seen[a] = h.Name
			}
			if len(i.Port) > 15 || len(i.Name) > 15 {
				t.Errorf("interface name too long: %s / %s", i.Port, i.Name)
			}
			if i.Addr4.Addr() == p.VIP4 || i.Addr4.Addr() == p.Gateway4 {
				t.Errorf("%s holds the VIP or the floating gateway", h.Name)
			}
		}
	}
	if len(p.Directors()) != 2 || len(p.RealServers()) != 3 || len(p.Clients()) != 1 {
		t.Fatalf("roles: %d directors, %d real servers, %d clients", len(p.Directors()), len(p.RealServers()), len(p.Clients()))
	}
	if rs := p.RealServers()[0]; rs.Gateway4 != p.Gateway4 || !p.Nets[1].Subnet4.Contains(rs.Addr4()) {
		t.Errorf("NAT real server %s: gateway %s, want %s in the private net", rs.Name, rs.Gateway4, p.Gateway4)
	}
	if got := p.Hosts[0].Ifaces[0].MAC; got != "02:1a:0a:00:00:0b" {
		t.Errorf("client1 MAC %s, want 02:1a:0a:00:00:0b", got)
	}
}
