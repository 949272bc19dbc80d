//go:build linux

package vrrp

import (
	crand "crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv4"
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
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	fn()
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

func TestNetnsRawSockets(t *testing.T) {
	needRoot(t)
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
