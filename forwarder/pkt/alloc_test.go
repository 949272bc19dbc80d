package pkt

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// pathCase is one hot path: a pristine frame and a function that parses it
// and applies one rewrite or builder, returning the result.
type pathCase struct {
	name  string
	frame []byte
	l2    bool
	run   func(buf []byte, off int, p *Packet, out []byte) Drop
}

func parseThen(l2 bool, f func(buf []byte, p *Packet, out []byte) Drop) func([]byte, int, *Packet, []byte) Drop {
	return func(buf []byte, off int, p *Packet, out []byte) Drop {
		var d Drop
		if l2 {
			d = ParseEthernet(buf, off, p)
		} else {
			d = ParseIP(buf, off, p)
		}
		if d != DropNone {
			return d
		}
		return f(buf, p, out)
	}
}

func hotPaths(t testing.TB) []pathCase {
	var cs []pathCase
	tun4 := &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: 1500, PMTUDisc: true}
	tun6 := &Tunnel{Src: a16(dir6), Dst: a16(rs6), MTU: 1500, PMTUDisc: true}
	for _, v6 := range []bool{false, true} {
		fam := "v4"
		cl, vip, rs, dir, tun := client4, vip4, rs4, dir4, tun4
		if v6 {
			fam, cl, vip, rs, dir, tun = "v6", client6, vip6, rs6, dir6, tun6
		}
		in := spec{v6: v6, proto: ProtoUDP, payload: make([]byte, 18)}.frame(t)
		out := spec{v6: v6, proto: ProtoUDP, src: rs, dst: cl, sport: 8080, dport: 40000, payload: make([]byte, 18)}.frame(t)
		tcpIn := spec{v6: v6, proto: ProtoTCP, payload: make([]byte, 6)}.frame(t)
		q := spec{v6: v6, proto: ProtoTCP, src: vip, dst: cl, sport: 80, dport: 40000}.ipPacket(t)
		typ := uint8(3)
		if v6 {
			typ = 1
		}
		icmpIn := ethernetFrame(t, icmpError(t, cl, vip, typ, 3, 0, q[:len(q)-10]), v6, 0)
		expired := spec{v6: v6, proto: ProtoUDP, ttl: 1}.frame(t)
		cs = append(cs,
			pathCase{"parse-udp-" + fam, in, true, parseThen(true, func([]byte, *Packet, []byte) Drop { return DropNone })},
			pathCase{"parse-tcp-noL2-" + fam, tcpIn[14:], false, parseThen(false, func([]byte, *Packet, []byte) Drop { return DropNone })},
			pathCase{"parse-icmp-error-" + fam, icmpIn, true, parseThen(true, func([]byte, *Packet, []byte) Drop { return DropNone })},
			pathCase{"natin-udp-" + fam, in, true, parseThen(true, func(b []byte, p *Packet, _ []byte) Drop { return NATIn(b, p, a16(rs), 8080) })},
			pathCase{"natin-tcp-" + fam, tcpIn, true, parseThen(true, func(b []byte, p *Packet, _ []byte) Drop { return NATIn(b, p, a16(rs), 8080) })},
			pathCase{"natout-udp-" + fam, out, true, parseThen(true, func(b []byte, p *Packet, _ []byte) Drop { return NATOut(b, p, a16(vip), 80) })},
			pathCase{"fill-l4-checksum-tcp-" + fam, tcpIn, true, parseThen(true, func(b []byte, p *Packet, _ []byte) Drop { return FillL4Checksum(b, p) })},
			pathCase{"dr-tcp-" + fam, tcpIn, true, parseThen(true, func(b []byte, p *Packet, _ []byte) Drop { return DR(b, p, macRS, macDirA) })},
			pathCase{"tun-tcp-" + fam, tcpIn, true, parseThen(true, func(b []byte, p *Packet, _ []byte) Drop {
				_, _, d := Encap(b, p, tun, 7)
				return d
			})},
			pathCase{"icmp-natin-" + fam, icmpIn, true, parseThen(true, func(b []byte, p *Packet, _ []byte) Drop { return ICMPNATIn(b, p, a16(rs), 8080) })},
			pathCase{"time-exceeded-" + fam, expired, true, parseThen(true, func(b []byte, p *Packet, o []byte) Drop {
				if d := NATIn(b, p, a16(rs), 8080); d != DropTTLExceeded {
					return d
				}
				_, d := BuildTimeExceeded(o, b, p, a16(dir))
				return d
			})},
		)
	}
	cs = append(cs,
		pathCase{"copy-only-baseline", spec{proto: ProtoUDP, payload: make([]byte, 18)}.frame(t), true,
			func([]byte, int, *Packet, []byte) Drop { return DropNone }},
		pathCase{"arp-reply", arpRequest(t, 0), true, parseThen(true, func(b []byte, p *Packet, o []byte) Drop {
			_, d := ARPReply(o, b, p, macDirA)
			return d
		})},
		pathCase{"neighbor-advert", nsFrame(t, client6, vip6, true, 255), true, parseThen(true, func(b []byte, p *Packet, o []byte) Drop {
			_, d := NeighborAdvert(o, b, p, macDirA)
			return d
		})},
		pathCase{"gratuitous", nil, true, func(_ []byte, _ int, _ *Packet, o []byte) Drop {
			if _, d := GratuitousARP(o, macDirA, a16(vip4), NoVLAN); d != DropNone {
				return d
			}
			_, d := UnsolicitedNA(o, macDirA, a16(vip6), NoVLAN)
			return d
		}},
	)
	return cs
}

// TestHotPathsAllocateNothing asserts 0 allocations for parse and for
// parse + every rewrite and builder.
func TestHotPathsAllocateNothing(t *testing.T) {
	for _, c := range hotPaths(t) {
		t.Run(c.name, func(t *testing.T) {
			buf, off := withHeadroom(c.frame)
			out := make([]byte, 1500)
			var p Packet
			run := func() {
				copy(buf[off:], c.frame)
				if d := c.run(buf, off, &p, out); d != DropNone {
					t.Fatalf("path failed: %v", d)
				}
			}
			run()
			if n := testing.AllocsPerRun(200, run); n != 0 {
				t.Fatalf("%v allocations per packet", n)
			}
		})
	}
	k := FlowKey{Src: a16(client6), Dst: a16(vip6), SrcPort: 1, DstPort: 2, Proto: 6}
	var sink uint64
	if n := testing.AllocsPerRun(100, func() { sink += k.Hash(1) }); n != 0 {
		t.Fatalf("hash allocates %v", n)
	}
}

// BenchmarkPath reports ns/packet for each hot path. Every iteration
// first restores the frame (a copy of 60-110 bytes) so that the TTL does
// not run down; the parse-only paths include that copy too
// (copy-only-baseline measures it alone). Besides wall-clock ns/op it
// reports cpu-ns/op, the benchmark thread's own CPU time per packet
// (getrusage RUSAGE_THREAD), which time spent descheduled on a shared
// machine does not inflate.
func BenchmarkPath(b *testing.B) {
	for _, c := range hotPaths(b) {
		b.Run(c.name, func(b *testing.B) {
			buf, off := withHeadroom(c.frame)
			out := make([]byte, 1500)
			var p Packet
			b.ReportAllocs()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var r0, r1 unix.Rusage
			_ = unix.Getrusage(unix.RUSAGE_THREAD, &r0)
			n := 0
			for b.Loop() {
				copy(buf[off:], c.frame)
				if d := c.run(buf, off, &p, out); d != DropNone {
					b.Fatal(d)
				}
				n++
			}
			_ = unix.Getrusage(unix.RUSAGE_THREAD, &r1)
			cpu := (r1.Utime.Nano() + r1.Stime.Nano()) - (r0.Utime.Nano() + r0.Stime.Nano())
			b.ReportMetric(float64(cpu)/float64(n), "cpu-ns/op")
		})
	}
}

func BenchmarkFlowHash(b *testing.B) {
	k := FlowKey{Src: a16(client6), Dst: a16(vip6), SrcPort: 1, DstPort: 2, Proto: 6}
	var sink uint64
	for b.Loop() {
		k.SrcPort++
		sink += k.Hash(1)
	}
	_ = sink
}

func BenchmarkChecksum1500(b *testing.B) {
	d := make([]byte, 1500)
	b.SetBytes(1500)
	for b.Loop() {
		Checksum(d)
	}
}
