package forwarder

import (
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/ulvs/ulvs/conntrack"
	"github.com/ulvs/ulvs/forwarder/engine"
)

// captureQueue is an engine.Queue whose Write records what the director
// sent; tests drive worker.round directly instead of Read.
type captureQueue struct {
	sent []sentFrame
}

type sentFrame struct {
	iface engine.Iface
	frame []byte
}

func (q *captureQueue) Read([]engine.Packet) (int, error) { return 0, engine.ErrClosed }
func (q *captureQueue) BatchSize() int                    { return 16 }
func (q *captureQueue) Write(pkts []engine.Packet) (int, error) {
	for i := range pkts {
		q.sent = append(q.sent, sentFrame{pkts[i].Iface, append([]byte(nil), pkts[i].Frame()...)})
	}
	return len(pkts), nil
}

type captureEngine struct{ q *captureQueue }

func (e *captureEngine) Queues() []engine.Queue { return []engine.Queue{e.q} }
func (e *captureEngine) Stats() engine.Stats    { return engine.Stats{} }
func (e *captureEngine) Close() error           { return nil }

var (
	macClient = [6]byte{2, 0, 0, 0, 0, 7}
	macPub    = [6]byte{2, 0, 0, 0, 0, 2}
	macPriv   = [6]byte{2, 0, 0, 0, 1, 1}
	vip       = netip.MustParseAddr("10.0.0.100")
	client    = netip.MustParseAddr("10.0.0.7")
)

func rsMAC(i int) [6]byte { return [6]byte{2, 0, 0, 0, 1, byte(10 + i)} }
func rsAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 0, 1, byte(10 + i)})
}

type lab struct {
	t   *testing.T
	d   *Director
	w   *worker
	q   *captureQueue
	now int64
}

func newLab(t *testing.T) *lab {
	t.Helper()
	return newLabConns(t, 1<<12)
}

// newLabConns is newLab with a connection table bound of maxConns.
func newLabConns(t *testing.T, maxConns int) *lab {
	t.Helper()
	q := &captureQueue{}
	l := &lab{t: t, q: q, now: 1e12}
	d, err := New(Config{
		Ifaces: []Iface{
			{Name: "pub", Index: 1, MAC: macPub, MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/24"), netip.MustParsePrefix("2001:db8::2/64")}},
			{Name: "priv", Index: 2, MAC: macPriv, MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.1.1/24"), netip.MustParsePrefix("2001:db8:1::1/64")}},
		},
		MaxConns: maxConns,
		Now:      func() int64 { return l.now },
	}, &captureEngine{q})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(p string, iface int) route {
		pr := netip.MustParsePrefix(p)
		return route{prefix: to16(pr), iface: iface, v6: pr.Addr().Is6()}
	}
	d.SetRoutes(buildRouteTable([]route{
		mk("10.0.0.0/24", 0), mk("10.0.1.0/24", 1), mk("2001:db8::/64", 0), mk("2001:db8:1::/64", 1),
	}))
	c := client.As16()
	d.neigh.set(&c, macClient, 1)
	for i := 1; i <= 3; i++ {
		a := rsAddr(i).As16()
		d.neigh.set(&a, rsMAC(i), 1)
	}
	l.d, l.w = d, d.workers[0]
	return l
}

func (l *lab) addService(sched string, method conntrack.Method, n int) ServiceKey {
	l.t.Helper()
	k := ServiceKey{Proto: 6, Addr: vip, Port: 80}
	if err := l.d.AddService(ServiceSpec{ServiceKey: k, Scheduler: sched}); err != nil {
		l.t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := l.d.AddDest(k, DestSpec{Addr: netip.AddrPortFrom(rsAddr(i), 80), Method: method, Weight: 1}); err != nil {
			l.t.Fatal(err)
		}
	}
	return k
}

// feed runs one round with the given frames arriving on iface and returns
// what was sent.
func (l *lab) feed(iface engine.Iface, frames ...[]byte) []sentFrame {
	l.t.Helper()
	l.q.sent = nil
	for i, f := range frames {
		bp := &l.w.rx[i]
		bp.Off = engine.Headroom
		bp.Len = copy(bp.Buf[bp.Off:], f)
		bp.Iface = iface
	}
	l.w.round(len(frames))
	return l.q.sent
}

func tcpFrame(t *testing.T, srcMAC, dstMAC [6]byte, src, dst netip.AddrPort, flags string, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(srcMAC[:]), DstMAC: net.HardwareAddr(dstMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice(), Flags: layers.IPv4DontFragment}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: 1000, Window: 65535}
	for _, f := range flags {
		switch f {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'F':
			tcp.FIN = true
		case 'R':
			tcp.RST = true
		}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	b := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// decodeTCP decodes a frame and checks that every checksum verifies.
func decodeTCP(t *testing.T, frame []byte) (*layers.Ethernet, *layers.IPv4, *layers.TCP) {
	t.Helper()
	pk := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if eth == nil || ip == nil || tcp == nil {
		t.Fatalf("frame does not decode as Ethernet/IPv4/TCP: %v", pk)
	}
	// Recompute the checksums and compare.
	want := append([]byte(nil), frame...)
	ip2 := *ip
	tcp2 := *tcp
	_ = tcp2.SetNetworkLayerForChecksum(&ip2)
	b := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{ComputeChecksums: true}, eth, &ip2, &tcp2, gopacket.Payload(tcp.Payload)); err != nil {
		t.Fatal(err)
	}
	if got := b.Bytes(); string(got) != string(want[:len(got)]) {
		t.Fatalf("checksums do not verify:\n got %x\nwant %x", want, got)
	}
	return eth, ip, tcp
}

func TestNATRoundTrip(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodMasq, 3)
	seen := map[netip.Addr]int{}
	for i := 0; i < 30; i++ {
		src := netip.AddrPortFrom(client, uint16(40000+i))
		out := l.feed(engine.Public, tcpFrame(t, macClient, macPub, src, netip.AddrPortFrom(vip, 80), "S", nil))
		if len(out) != 1 {
			t.Fatalf("SYN %d: %d frames sent, want 1 (drops %v)", i, len(out), nonZero(l.d.Drops()))
		}
		eth, ip, tcp := decodeTCP(t, out[0].frame)
		if out[0].iface != engine.Private {
			t.Fatalf("sent on %v, want private", out[0].iface)
		}
		dst, _ := netip.AddrFromSlice(ip.DstIP)
		seen[dst]++
		if [6]byte(eth.SrcMAC) != macPriv || eth.DstMAC[5] != byte(10+int(dst.As4()[3]-10)) {
			t.Fatalf("MACs %v -> %v for %v", eth.SrcMAC, eth.DstMAC, dst)
		}
		if ip.TTL != 63 || tcp.DstPort != 80 || netip.MustParseAddr(ip.SrcIP.String()) != client {
			t.Fatalf("rewrite wrong: ttl %d dport %d src %v", ip.TTL, tcp.DstPort, ip.SrcIP)
		}

		// The real server's SYN-ACK comes back through the director.
		rs := netip.AddrPortFrom(dst, 80)
		out = l.feed(engine.Private, tcpFrame(t, rsMAC(int(dst.As4()[3]-10)), macPriv, rs, src, "SA", nil))
		if len(out) != 1 || out[0].iface != engine.Public {
			t.Fatalf("reply: %d frames (drops %v)", len(out), nonZero(l.d.Drops()))
		}
		eth, ip, tcp = decodeTCP(t, out[0].frame)
		if s, _ := netip.AddrFromSlice(ip.SrcIP); s != vip || tcp.SrcPort != 80 {
			t.Fatalf("reply source %v:%d, want the VIP", ip.SrcIP, tcp.SrcPort)
		}
		if [6]byte(eth.DstMAC) != macClient || [6]byte(eth.SrcMAC) != macPub {
			t.Fatalf("reply MACs %v -> %v", eth.SrcMAC, eth.DstMAC)
		}
	}
	for i := 1; i <= 3; i++ {
		if seen[rsAddr(i)] != 10 {
			t.Fatalf("rr split %v, want 10 each", seen)
		}
	}
	svcs := l.d.Services()
	if len(svcs) != 1 || svcs[0].Stats.Conns != 30 || svcs[0].Stats.InPkts != 30 || svcs[0].Stats.OutPkts != 30 {
		t.Fatalf("service counters %+v", svcs[0].Stats)
	}
	for _, ds := range svcs[0].Dests {
		if ds.ActiveConns != 10 {
			t.Fatalf("%v active %d, want 10 (SYN then SYN-ACK)", ds.Spec.Addr, ds.ActiveConns)
		}
	}
}

func TestDRRewritesOnlyMACs(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodRoute, 1)
	in := tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "S", []byte("hello"))
	out := l.feed(engine.Public, in)
	if len(out) != 1 {
		t.Fatalf("%d frames, drops %v", len(out), nonZero(l.d.Drops()))
	}
	eth, ip, tcp := decodeTCP(t, out[0].frame)
	if [6]byte(eth.DstMAC) != rsMAC(1) || [6]byte(eth.SrcMAC) != macPriv {
		t.Fatalf("MACs %v -> %v", eth.SrcMAC, eth.DstMAC)
	}
	if d, _ := netip.AddrFromSlice(ip.DstIP); d != vip || tcp.DstPort != 80 || ip.TTL != 63 || string(tcp.Payload) != "hello" {
		t.Fatalf("DR changed more than MACs and TTL: %v:%d ttl %d", ip.DstIP, tcp.DstPort, ip.TTL)
	}
}

func TestTUNEncapsulates(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodTunnel, 1)
	in := tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "S", []byte("hello"))
	out := l.feed(engine.Public, in)
	if len(out) != 1 {
		t.Fatalf("%d frames, drops %v", len(out), nonZero(l.d.Drops()))
	}
	pk := gopacket.NewPacket(out[0].frame, layers.LayerTypeEthernet, gopacket.Default)
	ips := pk.Layers()
	if len(ips) < 4 || ips[1].LayerType() != layers.LayerTypeIPv4 || ips[2].LayerType() != layers.LayerTypeIPv4 {
		t.Fatalf("not IP-in-IP: %v", pk)
	}
	outer, inner := ips[1].(*layers.IPv4), ips[2].(*layers.IPv4)
	if outer.Protocol != layers.IPProtocolIPv4 || !outer.DstIP.Equal(rsAddr(1).AsSlice()) || !outer.SrcIP.Equal(net.IP{10, 0, 1, 1}) {
		t.Fatalf("outer header %v -> %v proto %v", outer.SrcIP, outer.DstIP, outer.Protocol)
	}
	if !inner.DstIP.Equal(vip.AsSlice()) || inner.TTL != 63 {
		t.Fatalf("inner header changed: %v ttl %d", inner.DstIP, inner.TTL)
	}
}

func TestARPForVIPAnsweredUnlessStandby(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodMasq, 1)
	req := arpRequest(t, macClient, client, vip)
	out := l.feed(engine.Public, req)
	if len(out) != 1 {
		t.Fatalf("ARP for the VIP: %d frames", len(out))
	}
	pk := gopacket.NewPacket(out[0].frame, layers.LayerTypeEthernet, gopacket.Default)
	arp, _ := pk.Layer(layers.LayerTypeARP).(*layers.ARP)
	if arp == nil || arp.Operation != 2 || [6]byte(arp.SourceHwAddress) != macPub || !net.IP(arp.SourceProtAddress).Equal(vip.AsSlice()) {
		t.Fatalf("bad ARP reply %v", pk)
	}
	if out := l.feed(engine.Public, arpRequest(t, macClient, client, netip.MustParseAddr("10.0.0.99"))); len(out) != 0 {
		t.Fatal("answered ARP for an address that is not a VIP")
	}
	l.d.SetStandby(true)
	if out := l.feed(engine.Public, req); len(out) != 0 {
		t.Fatal("a standby director answered ARP for the VIP")
	}
	syn := tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "S", nil)
	if out := l.feed(engine.Public, syn); len(out) != 0 || l.d.Drops()["standby"] != 1 {
		t.Fatalf("a standby director forwarded: %d frames, drops %v", len(out), nonZero(l.d.Drops()))
	}
}

func arpRequest(t *testing.T, mac [6]byte, from, target netip.Addr) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(mac[:]), DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
		SourceHwAddress: mac[:], SourceProtAddress: from.AsSlice(), DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice()}
	b := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{}, eth, arp); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestNoServerAnswersPortUnreachable(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodMasq, 0)
	out := l.feed(engine.Public, tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "S", nil))
	if len(out) != 1 {
		t.Fatalf("%d frames, want the ICMP error", len(out))
	}
	pk := gopacket.NewPacket(out[0].frame, layers.LayerTypeEthernet, gopacket.Default)
	icmp, _ := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	ip, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if icmp == nil || icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 3) || !ip.SrcIP.Equal(vip.AsSlice()) || !ip.DstIP.Equal(client.AsSlice()) {
		t.Fatalf("want port unreachable from the VIP to the client, got %v", pk)
	}
	if l.d.Drops()["no_server"] != 1 {
		t.Fatalf("drops %v", nonZero(l.d.Drops()))
	}
}

func TestNonSYNWithoutConnectionDroppedSilently(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodMasq, 1)
	out := l.feed(engine.Public, tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "A", nil))
	if len(out) != 0 || l.d.Drops()["no_connection"] != 1 {
		t.Fatalf("%d frames, drops %v", len(out), nonZero(l.d.Drops()))
	}
}

func TestUnresolvedNextHopDropsAndAsks(t *testing.T) {
	l := newLab(t)
	k := ServiceKey{Proto: 6, Addr: vip, Port: 80}
	if err := l.d.AddService(ServiceSpec{ServiceKey: k, Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
	unknown := netip.MustParseAddr("10.0.1.50")
	if err := l.d.AddDest(k, DestSpec{Addr: netip.AddrPortFrom(unknown, 80), Method: conntrack.MethodMasq, Weight: 1}); err != nil {
		t.Fatal(err)
	}
	// AddDest asked for the real server's address ahead of traffic.
	select {
	case ip := <-l.d.resolver.want:
		if netip.AddrFrom16(ip).Unmap() != unknown {
			t.Fatalf("resolver asked for %v", netip.AddrFrom16(ip))
		}
	default:
		t.Fatal("AddDest did not ask for the real server's MAC")
	}
	out := l.feed(engine.Public, tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "S", nil))
	if len(out) != 0 || l.d.Drops()["no_neighbour"] != 1 {
		t.Fatalf("%d frames, drops %v", len(out), nonZero(l.d.Drops()))
	}
}

func TestEstablishedPathAllocatesNothing(t *testing.T) {
	l := newLab(t)
	l.addService("wlc", conntrack.MethodMasq, 3)
	syn := tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "S", nil)
	ack := tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "A", []byte("GET / HTTP/1.0\r\n\r\n"))
	l.feed(engine.Public, syn)
	l.q.sent = make([]sentFrame, 0, 1)
	q := l.q
	w := l.w
	allocs := testing.AllocsPerRun(1000, func() {
		bp := &w.rx[0]
		bp.Off, bp.Iface = engine.Headroom, engine.Public
		bp.Len = copy(bp.Buf[bp.Off:], ack)
		w.tx = w.tx[:0]
		w.now = l.now
		if d := w.handle(bp); d != 0 {
			t.Fatalf("dropped: %v", d)
		}
	})
	_ = q
	if allocs != 0 {
		t.Fatalf("established packet path allocates %v times per packet", allocs)
	}
}

func nonZero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// BenchmarkRound measures the director's per-packet cost on an established
// flow, parse + lookup + state + rewrite + next hop + counters, for each
// method, in batches of 16, with a queue that discards what is sent. Besides
// wall time it reports cpu-ns/op, the benchmark thread's own CPU time per
// packet (getrusage RUSAGE_THREAD), which other load on a shared machine does
// not inflate.
func BenchmarkRound(b *testing.B) {
	for _, m := range []struct {
		name   string
		method conntrack.Method
	}{{"nat", conntrack.MethodMasq}, {"dr", conntrack.MethodRoute}, {"tun", conntrack.MethodTunnel}} {
		b.Run(m.name, func(b *testing.B) {
			t := &testing.T{}
			l := newLab(t)
			l.addService("wlc", m.method, 3)
			const flows = 16
			frames := make([][]byte, flows)
			for i := range frames {
				src := netip.AddrPortFrom(client, uint16(40000+i))
				l.feed(engine.Public, tcpFrame(t, macClient, macPub, src, netip.AddrPortFrom(vip, 80), "S", nil))
				frames[i] = tcpFrame(t, macClient, macPub, src, netip.AddrPortFrom(vip, 80), "A", make([]byte, 18))
			}
			w := l.w
			sink := &countQueue{}
			w.q = sink
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := threadCPU()
			for n := 0; n < b.N; n += flows {
				for i, f := range frames {
					bp := &w.rx[i]
					bp.Off, bp.Iface = engine.Headroom, engine.Public
					bp.Len = copy(bp.Buf[bp.Off:], f)
				}
				w.round(flows)
			}
			b.StopTimer()
			b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			if sink.sent < b.N {
				b.Fatalf("sent %d of %d", sink.sent, b.N)
			}
		})
	}
}

// countQueue counts what is written and keeps nothing.
type countQueue struct{ sent int }

func (q *countQueue) Read([]engine.Packet) (int, error) { return 0, engine.ErrClosed }
func (q *countQueue) BatchSize() int                    { return 16 }
func (q *countQueue) Write(pkts []engine.Packet) (int, error) {
	q.sent += len(pkts)
	return len(pkts), nil
}

// threadCPU returns the calling thread's CPU time in nanoseconds.
func threadCPU() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func TestNATLearnsOnLinkClientMAC(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodMasq, 1)
	newClient := netip.MustParseAddr("10.0.0.8")
	mac := [6]byte{2, 0, 0, 0, 0, 8}
	l.feed(engine.Public, tcpFrame(t, mac, macPub, netip.AddrPortFrom(newClient, 40000), netip.AddrPortFrom(vip, 80), "S", nil))
	select {
	case le := <-l.d.resolver.learn:
		l.d.resolver.handleLearn(le)
	default:
		t.Fatal("the first packet of an on-link client did not teach its MAC")
	}
	a := newClient.As16()
	if got, ok := l.d.neigh.Lookup(&a, l.now); !ok || got != mac {
		t.Fatalf("learnt %v %v, want %v", got, ok, mac)
	}
	// A client behind a router (off-link source) is not learnt: the frame's
	// source MAC is the router's.
	far := netip.MustParseAddr("192.0.2.9")
	l.feed(engine.Public, tcpFrame(t, mac, macPub, netip.AddrPortFrom(far, 40000), netip.AddrPortFrom(vip, 80), "S", nil))
	select {
	case le := <-l.d.resolver.learn:
		t.Fatalf("learnt an off-link address: %v", netip.AddrFrom16(le.ip))
	default:
	}
}

// TestTunnelFragNeededReachesClient: a router between the director and a
// TUN real server says the IP-in-IP packet is too big; the client is told
// the tunnel's MTU (reported MTU - 20), from the VIP, so it lowers its MSS.
func TestTunnelFragNeededReachesClient(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodTunnel, 1)
	syn := tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "S", []byte("hello"))
	out := l.feed(engine.Public, syn)
	if len(out) != 1 {
		t.Fatalf("SYN not tunnelled: drops %v", nonZero(l.d.Drops()))
	}
	tunnelled := out[0].frame[14:] // outer IPv4 + inner packet
	quote := tunnelled[:20+20+8]
	router := netip.MustParseAddr("10.0.1.254")
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 1, 0xfe}, DstMAC: net.HardwareAddr(macPriv[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: router.AsSlice(), DstIP: net.IP{10, 0, 1, 1}}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}
	b := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, icmp, gopacket.Payload(quote)); err != nil {
		t.Fatal(err)
	}
	out = l.feed(engine.Private, b.Bytes())
	if len(out) != 1 {
		t.Fatalf("%d frames, drops %v", len(out), nonZero(l.d.Drops()))
	}
	pk := gopacket.NewPacket(out[0].frame, layers.LayerTypeEthernet, gopacket.Default)
	oip, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	oicmp, _ := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if oip == nil || oicmp == nil || oicmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) {
		t.Fatalf("want frag-needed to the client, got %v", pk)
	}
	if !oip.SrcIP.Equal(vip.AsSlice()) || !oip.DstIP.Equal(client.AsSlice()) || out[0].iface != engine.Public {
		t.Fatalf("frag-needed %v -> %v on %v", oip.SrcIP, oip.DstIP, out[0].iface)
	}
	if oicmp.Seq != 1380 {
		t.Fatalf("MTU told to the client %d, want 1400-20", oicmp.Seq)
	}
}

// TestDRTooBigForEgress: a DF packet larger than the egress MTU is answered
// with frag-needed carrying that MTU, and not forwarded.
func TestDRTooBigForEgress(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodRoute, 1)
	l.d.cfg.Ifaces[1].MTU = 1000
	syn := tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "S", nil)
	l.feed(engine.Public, syn)
	big := tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "A", make([]byte, 1200))
	out := l.feed(engine.Public, big)
	if len(out) != 1 {
		t.Fatalf("%d frames, drops %v", len(out), nonZero(l.d.Drops()))
	}
	pk := gopacket.NewPacket(out[0].frame, layers.LayerTypeEthernet, gopacket.Default)
	icmp, _ := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if icmp == nil || icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || icmp.Seq != 1000 {
		t.Fatalf("want frag-needed with MTU 1000, got %v", pk)
	}
	if l.d.Drops()["too_big"] != 1 {
		t.Fatalf("drops %v", nonZero(l.d.Drops()))
	}
}

// TestNATDropsBadL4Checksum: NAT checks the TCP/UDP checksum before it
// rewrites, in both directions; DR forwards the segment untouched.
func TestNATDropsBadL4Checksum(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodMasq, 1)
	src := netip.AddrPortFrom(client, 40000)
	syn := tcpFrame(t, macClient, macPub, src, netip.AddrPortFrom(vip, 80), "S", []byte("x"))
	syn[54] ^= 0xff // the payload byte (the frame is padded to 60)
	if out := l.feed(engine.Public, syn); len(out) != 0 || l.d.Drops()["bad_l4_checksum"] != 1 {
		t.Fatalf("bad inbound checksum: %d frames, drops %v", len(out), nonZero(l.d.Drops()))
	}
	// A good SYN, then a reply with a bad checksum.
	l.feed(engine.Public, tcpFrame(t, macClient, macPub, src, netip.AddrPortFrom(vip, 80), "S", nil))
	reply := tcpFrame(t, rsMAC(1), macPriv, netip.AddrPortFrom(rsAddr(1), 80), src, "SA", []byte("y"))
	reply[54] ^= 0xff
	if out := l.feed(engine.Private, reply); len(out) != 0 || l.d.Drops()["bad_l4_checksum"] != 2 {
		t.Fatalf("bad reply checksum: %d frames, drops %v", len(out), nonZero(l.d.Drops()))
	}

	dr := newLab(t)
	dr.addService("rr", conntrack.MethodRoute, 1)
	bad := tcpFrame(t, macClient, macPub, src, netip.AddrPortFrom(vip, 80), "S", []byte("x"))
	bad[54] ^= 0xff
	if out := dr.feed(engine.Public, bad); len(out) != 1 {
		t.Fatalf("DR: a segment with a bad checksum was not forwarded as it is (drops %v)", nonZero(dr.d.Drops()))
	}
}
