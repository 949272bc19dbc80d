//go:build linux

package vrrp

import (
	crand "crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/ulvs/ulvs/lab"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (network namespaces, raw sockets) and CI=true")
		}
		t.Skip("needs root: network namespaces and raw sockets")
	}
}

func ipcmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func inNS(t *testing.T, name string, fn func()) {
	t.Helper()
	if err := lab.RunInNetns(lab.NetnsPath(name), func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

type recv struct {
	from netip.Addr
	r    Reason
	a    Advert
	err  error
}

// recvOne reads until an advert passes or times out (the socket is closed by
// the caller's cleanup).
func recvN(c *Conn, n int) chan recv {
	ch := make(chan recv, n)
	go func() {
		for i := 0; i < n; i++ {
			var a Advert
			from, r, err := c.Recv(&a)
			ch <- recv{from, r, a, err}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

func wait(t *testing.T, ch chan recv) recv {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(3 * time.Second):
		t.Fatal("no packet received")
	}
	return recv{}
}

type pair struct{ nsA, nsB, ifA, ifB string }

// setupPair creates two namespaces joined by a veth pair with IPv4
// addresses 10.0.0.1 (and 10.0.0.9) / 10.0.0.2 and link-local fe80::a /
// fe80::b, and waits for carrier.
func setupPair(t *testing.T) pair {
	t.Helper()
	b := make([]byte, 3)
	crand.Read(b)
	sfx := hex.EncodeToString(b)
	nsA, nsB := "ulvsvrA"+sfx, "ulvsvrB"+sfx
	for _, ns := range []string{nsA, nsB} {
		ipcmd(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	ifA, ifB := "va"+sfx, "vb"+sfx
	ipcmd(t, "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	ipcmd(t, "-n", nsA, "addr", "add", "10.0.0.1/24", "dev", ifA)
	ipcmd(t, "-n", nsA, "addr", "add", "10.0.0.9/24", "dev", ifA) // a "stranger" source
	ipcmd(t, "-n", nsB, "addr", "add", "10.0.0.2/24", "dev", ifB)
	ipcmd(t, "-n", nsA, "-6", "addr", "add", "fe80::a/64", "dev", ifA, "nodad")
	ipcmd(t, "-n", nsB, "-6", "addr", "add", "fe80::b/64", "dev", ifB, "nodad")
	ipcmd(t, "-n", nsA, "link", "set", ifA, "up")
	ipcmd(t, "-n", nsB, "link", "set", ifB, "up")
	for _, x := range [][2]string{{nsA, ifA}, {nsB, ifB}} {
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(ipcmd(t, "-n", x[0], "-o", "link", "show", x[1]), "state UP") {
			if time.Now().After(deadline) {
				t.Fatal("no carrier")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return pair{nsA, nsB, ifA, ifB}
}

func TestNetnsRawSockets(t *testing.T) {
	needRoot(t)
	p := setupPair(t)
	nsA, nsB, ifA, ifB := p.nsA, p.nsB, p.ifA, p.ifB

	for _, tc := range []struct {
		name       string
		v6         bool
		unicast    bool
		srcA, srcB string
		vip        string
	}{
		{"ipv4 multicast", false, false, "10.0.0.1", "10.0.0.2", "10.0.0.100"},
		{"ipv4 unicast", false, true, "10.0.0.1", "10.0.0.2", "10.0.0.100"},
		{"ipv6 multicast", true, false, "fe80::a", "fe80::b", "2001:db8::100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srcA, srcB := netip.MustParseAddr(tc.srcA), netip.MustParseAddr(tc.srcB)
			var ca, cb, stranger *Conn
			var err error
			inNS(t, nsA, func() {
				ca, err = Listen(Config{Interface: ifA, IPv6: tc.v6, Src: srcA, Peers: []netip.Addr{srcB}, Unicast: tc.unicast, VRID: 57})
				if err == nil && !tc.v6 {
					stranger, err = Listen(Config{Interface: ifA, Src: netip.MustParseAddr("10.0.0.9"), Peers: []netip.Addr{srcB}, Unicast: tc.unicast, VRID: 57})
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer ca.Close()
			if stranger != nil {
				defer stranger.Close()
			}
			inNS(t, nsB, func() {
				cb, err = Listen(Config{Interface: ifB, IPv6: tc.v6, Src: srcB, Peers: []netip.Addr{srcA}, Unicast: tc.unicast, VRID: 57})
			})
			if err != nil {
				t.Fatal(err)
			}
			defer cb.Close()
			ch := recvN(cb, 10)
			adv := &Advert{VRID: 57, Priority: 150, Interval: 10, Addrs: []netip.Addr{netip.MustParseAddr(tc.vip)}}
			if err := ca.Send(adv); err != nil {
				t.Fatal(err)
			}
			r := wait(t, ch)
			if r.err != nil || r.r != OK || r.from != srcA || r.a.Priority != 150 || r.a.Interval != 10 || len(r.a.Addrs) != 1 || r.a.Addrs[0] != adv.Addrs[0] {
				t.Fatalf("got %+v", r)
			}
			// Another VRID is received but refused.
			if err := ca.Send(&Advert{VRID: 58, Priority: 1}); err != nil {
				t.Fatal(err)
			}
			if r := wait(t, ch); r.r != DropVRID {
				t.Fatalf("VRID 58: %v", r.r)
			}
			if tc.v6 {
				return
			}
			// A source that is not the configured peer is refused.
			if err := stranger.Send(adv); err != nil {
				t.Fatal(err)
			}
			if r := wait(t, ch); r.r != DropNotPeer || r.from != netip.MustParseAddr("10.0.0.9") {
				t.Fatalf("stranger: %+v", r)
			}
			// TTL 64 (a routed packet) is refused.
			inNS(t, nsA, func() {
				pc, err := net.ListenPacket("ip4:112", "10.0.0.1")
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				p := ipv4.NewPacketConn(pc)
				p.SetMulticastTTL(64)
				p.SetTTL(64)
				dst := Group4
				if tc.unicast {
					dst = srcB
				}
				if _, err := p.WriteTo(adv.Append(nil, srcA, dst), nil, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
					t.Fatal(err)
				}
			})
			if r := wait(t, ch); r.r != DropTTL {
				t.Fatalf("TTL 64: %+v", r)
			}
		})
	}
}

// TestNetnsTsharkChecksum has Wireshark's VRRP dissector (an implementation
// we did not write) decode our adverts off the wire and check their
// checksums, IPv4 multicast, IPv4 unicast and IPv6.
func TestNetnsTsharkChecksum(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"tcpdump", "tshark", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (CI=true)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	p := setupPair(t)
	pcap := filepath.Join(t.TempDir(), "vrrp.pcap")
	cap := exec.Command("nsenter", "--net=/run/netns/"+p.nsB, "--", "tcpdump", "--immediate-mode", "-U", "-n", "-i", p.ifB, "-w", pcap, "ip proto 112 or ip6 proto 112")
	capErr := &syncBuf{}
	cap.Stderr = capErr
	if err := cap.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cap.Process.Kill(); cap.Wait() })
	// tcpdump says "listening on" once it captures.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(capErr.String(), "listening on"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump did not start: %s", capErr.String())
		}
	}
	peerB4, peerB6 := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fe80::b")
	var conns []*Conn
	inNS(t, p.nsA, func() {
		for _, cfg := range []Config{
			{Interface: p.ifA, Src: netip.MustParseAddr("10.0.0.1"), Peers: []netip.Addr{peerB4}, VRID: 57},
			{Interface: p.ifA, Src: netip.MustParseAddr("10.0.0.1"), Peers: []netip.Addr{peerB4}, VRID: 58, Unicast: true},
			{Interface: p.ifA, IPv6: true, Src: netip.MustParseAddr("fe80::a"), Peers: []netip.Addr{peerB6}, VRID: 59},
		} {
			c, err := Listen(cfg)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
	})
	for _, c := range conns {
		defer c.Close()
	}
	v4 := []netip.Addr{netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("10.0.0.101")}
	v6 := []netip.Addr{netip.MustParseAddr("2001:db8::100")}
	for i, c := range conns {
		a := &Advert{VRID: uint8(57 + i), Priority: 150, Interval: 100, Addrs: v4}
		if i == 2 {
			a.Addrs = v6
		}
		if err := c.Send(a); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // let tcpdump write (-U: per packet)
	cap.Process.Signal(os.Interrupt)
	cap.Wait()
	t.Logf("tcpdump: %s", capErr.String())
	out, err := exec.Command("tshark", "-r", pcap, "-o", "vrrp.v3_checksum_as_in_v2:FALSE", "-T", "fields",
		"-e", "vrrp.virt_rtr_id", "-e", "vrrp.version", "-e", "vrrp.prio", "-e", "vrrp.short_adver_int", "-e", "vrrp.checksum.status", "-e", "ip.ttl", "-e", "ipv6.hlim").CombinedOutput()
	if err != nil {
		// Older/newer tshark may not know the preference: retry without it.
		out, err = exec.Command("tshark", "-r", pcap, "-T", "fields",
			"-e", "vrrp.virt_rtr_id", "-e", "vrrp.version", "-e", "vrrp.prio", "-e", "vrrp.short_adver_int", "-e", "vrrp.checksum.status", "-e", "ip.ttl", "-e", "ipv6.hlim").CombinedOutput()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, out)
		}
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, "\t")
		if len(f) < 7 {
			continue
		}
		seen[f[0]] = true
		ttl := f[5] + f[6]
		if f[1] != "3" || f[2] != "150" || f[3] != "100" || f[4] != "1" || ttl != "255" {
			t.Errorf("tshark reads %q (want version 3, priority 150, interval 100, checksum status 1 = good, TTL 255)", l)
		}
	}
	for _, id := range []string{"57", "58", "59"} {
		if !seen[id] {
			t.Errorf("advert with VRID %s not captured; tshark output:\n%s", id, out)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
