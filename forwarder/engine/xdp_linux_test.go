package engine

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var xdpModes = []string{XDPNative, XDPGeneric}

// The fast lane takes IPv4 TCP/UDP/SCTP to a VIP service and from a real
// server; everything else the classic filter accepts still arrives through
// the AF_PACKET ring, and what it rejects arrives nowhere.
func TestXDPFastLaneReceive(t *testing.T) {
	for _, mode := range xdpModes {
		t.Run(mode, func(t *testing.T) { testXDPReceive(t, mode) })
	}
}

func testXDPReceive(t *testing.T, mode string) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	vip := netip.MustParseAddr("10.0.0.100")
	rs := netip.MustParseAddr("10.0.1.11")
	dirAddr := netip.MustParseAddr("10.0.1.1")
	spec := &FilterSpec{
		VIPs:          []VIP{{Addr: vip, Protocol: 17, Port: 53}, {Addr: vip, Protocol: 6, Port: 0}, {Addr: vip6, Protocol: 6, Port: 443}},
		RealServers:   []netip.Addr{rs, rs6},
		DirectorAddrs: []netip.Addr{dirAddr},
		ARP:           true,
	}
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 1, Filter: spec, XDP: mode})
	gen := ns.rawSock("eb")
	r := startReader(e.Queues()[0])

	fast := [][]byte{
		udp4("192.0.2.1", "10.0.0.100", 1000, 53),
		ether(0x0800, ipv4(netip.MustParseAddr("192.0.2.1"), vip, 6, 0, false, ports(1000, 8080, 20))), // tcp, any port
		udp4("10.0.1.11", "192.0.2.1", 80, 1000),                                                       // NAT return path
		ether(0x0800, ipv4(rs, netip.MustParseAddr("192.0.2.1"), 1, 0, false, icmpMsg(0))),             // anything from a real server
	}
	slow := [][]byte{
		arpFrame(),
		ether(0x0800, ipv4(netip.MustParseAddr("192.0.2.1"), vip, 1, 0, false, icmpMsg(8))),               // ICMP to a VIP
		ether(0x0800, ipv4(netip.MustParseAddr("192.0.2.1"), vip, 17, 0, true, ports(1000, 53, 8))),       // IPv4 options
		ether(0x0800, ipv4(netip.MustParseAddr("192.0.2.1"), vip, 17, 0x2000, false, ports(1000, 53, 8))), // first fragment
		ether(0x86dd, ipv6(cli6, vip6, 6, ports(40000, 443, 20))),
		// A real server's reply to the director itself (a health check)
		// must reach the kernel: the AF_PACKET lane only copies it.
		ether(0x0800, ipv4(rs, dirAddr, 6, 0, false, ports(80, 40000, 20))),
	}
	rejected := [][]byte{
		udp4("192.0.2.1", "10.0.0.100", 1000, 54),
		udp4("192.0.2.1", "10.0.0.99", 1000, 53),
		ether(0x88cc, make([]byte, 46)),
	}
	var want [][]byte
	for i := 0; i < 10; i++ {
		for _, set := range [][][]byte{fast, slow, rejected} {
			for _, f := range set {
				f = bytes.Clone(f)
				f[11] = byte(i)
				gen.send(t, f)
				if len(set) != len(rejected) || &set[0] != &rejected[0] {
					want = append(want, f)
				}
			}
		}
	}
	if !waitFor(5*time.Second, func() bool { return r.count() >= len(want) }) {
		t.Fatalf("received %d frames, want %d", r.count(), len(want))
	}
	time.Sleep(50 * time.Millisecond) // a rejected frame would have arrived by now
	got := r.snapshot()
	if len(got) != len(want) {
		t.Fatalf("received %d frames, want %d", len(got), len(want))
	}
	// The two lanes are read one after the other: compare as sets.
	key := func(b []byte) string { return string(b) }
	gs, ws := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		gs[i], ws[i] = key(got[i]), key(want[i])
	}
	slices.Sort(gs)
	slices.Sort(ws)
	if !slices.Equal(gs, ws) {
		t.Fatal("received frames differ from the accepted ones")
	}
	// Only the slow ones went through the AF_PACKET ring's filter.
	s := e.Stats()
	if s.KernelPackets != uint64(10*len(slow)) || s.RxFrames != uint64(len(want)) || s.KernelDrops != 0 {
		t.Errorf("stats %+v: want KernelPackets=%d (AF_PACKET lane), RxFrames=%d, no drops", s, 10*len(slow), len(want))
	}
	e.Close()
	if err := <-r.done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
}

// SetFilter moves services into and out of the fast lane.
func TestXDPSetFilter(t *testing.T) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 1, Filter: &FilterSpec{}, XDP: XDPNative})
	gen := ns.rawSock("eb")
	r := startReader(e.Queues()[0])
	f := udp4("192.0.2.1", "10.0.0.100", 1000, 53)
	gen.send(t, f)
	time.Sleep(50 * time.Millisecond)
	if r.count() != 0 {
		t.Fatal("frame received before its VIP was in the filter")
	}
	if err := e.SetFilter(FilterSpec{VIPs: []VIP{{Addr: netip.MustParseAddr("10.0.0.100"), Protocol: 17, Port: 53}}}); err != nil {
		t.Fatal(err)
	}
	gen.send(t, f)
	if !waitFor(5*time.Second, func() bool { return r.count() == 1 }) {
		t.Fatal("frame not received after SetFilter added its VIP")
	}
	if s := e.Stats(); s.KernelPackets != 0 {
		t.Fatalf("frame went through the AF_PACKET lane (%+v)", s)
	}
	if err := e.SetFilter(FilterSpec{}); err != nil {
		t.Fatal(err)
	}
	gen.send(t, f)
	time.Sleep(50 * time.Millisecond)
	if r.count() != 1 {
		t.Fatal("frame received after SetFilter removed its VIP")
	}
}

// Write sends through the AF_XDP socket; the frames arrive whole and in
// order, and steady-state Read and Write allocate nothing.
func TestXDPTransmitZeroAlloc(t *testing.T) {
	for _, mode := range xdpModes {
		t.Run(mode, func(t *testing.T) {
			ns := newNS(t)
			ns.veth("ea", "eb")
			spec := &FilterSpec{VIPs: []VIP{{Addr: netip.MustParseAddr("10.0.0.100"), Protocol: 17}}}
			rx := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 1, Filter: spec, XDP: mode})
			tx := openIn(t, ns, AFPacketConfig{Public: "eb", Workers: 1, Filter: &FilterSpec{}, XDP: mode})
			rq, tq := rx.Queues()[0], tx.Queues()[0]
			out := NewBatch(48, 0)
			for i := range out {
				out[i].Len = copy(out[i].Buf[Headroom:], udp4("192.0.2.1", "10.0.0.100", uint16(i), 80))
			}
			guard := time.AfterFunc(time.Minute, func() { rx.Close() })
			defer guard.Stop()
			roundTrips(t, tq, rq, out, 100) // 4800 frames, more than the UMEM's: both rings wrap
			rs, ts := rx.Stats(), tx.Stats()
			if rs.KernelPackets != 0 || ts.TxFrames != rs.RxFrames || ts.TxDropped != 0 || rs.KernelDrops != 0 {
				t.Errorf("rx %+v tx %+v: want every frame through the fast lane, none lost", rs, ts)
			}
		})
	}
}

func TestXDPConfigErrors(t *testing.T) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	var err error
	ns.do(func() { _, err = OpenAFPacket(AFPacketConfig{Public: "ea", Workers: 2, XDP: XDPNative}) })
	if err == nil || !strings.Contains(err.Error(), "receive queue") {
		t.Errorf("2 workers on a 1-queue veth: %v, want a receive queue error", err)
	}
	ns.exec("ip", "link", "set", "ea", "mtu", "9000")
	ns.do(func() { _, err = OpenAFPacket(AFPacketConfig{Public: "ea", Workers: 1, XDP: XDPNative}) })
	if err == nil || !strings.Contains(err.Error(), "MTU 9000") {
		t.Errorf("MTU 9000: %v, want an MTU error", err)
	}
	ns.exec("ip", "link", "set", "ea", "mtu", "1500")
	ns.do(func() { _, err = OpenAFPacket(AFPacketConfig{Public: "ea", Workers: 1, XDP: "fast"}) })
	if !errors.Is(err, ErrBadConfig) {
		t.Errorf("mode fast: %v, want ErrBadConfig", err)
	}
	// A veth made with two queues takes two workers, each with its socket.
	ns.exec("ip", "link", "add", "qa", "numtxqueues", "2", "numrxqueues", "2", "type", "veth", "peer", "name", "qb", "numtxqueues", "2", "numrxqueues", "2")
	ns.exec("ip", "link", "set", "qa", "up")
	ns.exec("ip", "link", "set", "qb", "up")
	two := openIn(t, ns, AFPacketConfig{Public: "qa", Workers: 2, XDP: XDPNative})
	if n := len(two.Queues()); n != 2 {
		t.Fatalf("%d queues, want 2", n)
	}
	for w, q := range two.queues {
		if len(q.xsks) != 1 || q.xsks[0].queue != w {
			t.Errorf("worker %d: sockets %+v, want one on queue %d", w, q.xsks, w)
		}
	}
	two.Close()
	// Nothing stays attached after a failed open or a Close.
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 1, XDP: XDPNative})
	if out := ns.exec("ip", "link", "show", "ea"); !strings.Contains(out, "xdp") {
		t.Fatalf("no XDP program on ea while open:\n%s", out)
	}
	// A second engine on the same interface is refused whole.
	ns.do(func() { _, err = OpenAFPacket(AFPacketConfig{Public: "ea", Workers: 1, XDP: XDPNative}) })
	if err == nil || !strings.Contains(err.Error(), "attach in native mode to ea") {
		t.Errorf("second XDP engine on ea: %v, want an attach error", err)
	}
	e.Close()
	if out := ns.exec("ip", "link", "show", "ea"); strings.Contains(out, "xdp") {
		t.Fatalf("XDP program left on ea after Close:\n%s", out)
	}
}

// Frames the socket's full RX ring cannot take are counted as kernel
// drops, once each, and the ring's frames are all still read.
func TestXDPRingFullCounted(t *testing.T) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	spec := &FilterSpec{VIPs: []VIP{{Addr: netip.MustParseAddr("10.0.0.100"), Protocol: 17}}}
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 1, Filter: spec, XDP: XDPNative})
	gen := ns.rawSock("eb")
	const sent = xskRingSize + 500
	for i := 0; i < sent; i++ {
		gen.send(t, udp4("192.0.2.1", "10.0.0.100", uint16(i), 80))
	}
	var s Stats
	if !waitFor(5*time.Second, func() bool { s = e.Stats(); return s.KernelDrops > 0 }) {
		t.Fatalf("stats %+v: no drops after %d frames into a ring of %d", s, sent, xskRingSize)
	}
	pkts := NewBatch(64, 0)
	got := 0
	for got < xskRingSize {
		n, err := e.Queues()[0].Read(pkts)
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	s = e.Stats() // a second read must not count the same drops again
	if uint64(got)+s.KernelDrops != sent {
		t.Errorf("read %d + dropped %d, want %d frames in all", got, s.KernelDrops, sent)
	}
}
