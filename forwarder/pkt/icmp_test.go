package pkt

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestICMPNAT translates ICMP errors both ways for IPv4/IPv6, TCP/UDP,
// quotes cut to 8 bytes of L4, to 18 bytes (TCP checksum included) and
// whole, and a quoted UDP datagram without checksum.
func TestICMPNAT(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		cl, vip, rs := client4, vip4, rs4
		if v6 {
			cl, vip, rs = client6, vip6, rs6
		}
		for _, proto := range []uint8{ProtoTCP, ProtoUDP} {
			for _, quote := range []int{8, 18, -1} {
				for _, zero := range []bool{false, true} {
					if zero && (proto != ProtoUDP || v6) {
						continue
					}
					for _, in := range []bool{true, false} {
						name := fmt.Sprintf("in=%v-v6=%v-proto%d-quote%d-zero%v", in, v6, proto, quote, zero)
						t.Run(name, func(t *testing.T) {
							// in: the client reports a problem with VIP:80 -> client:40000.
							// out: the real-server side reports one with client:40000 -> RS:8080.
							q := spec{v6: v6, proto: proto, udpZeroSum: zero, ipOptions: !v6 && quote == 8, ext: v6 && quote == 8}
							errSrc, errDst := cl, vip
							if in {
								q.src, q.dst, q.sport, q.dport = vip, cl, 80, 40000
							} else {
								q.src, q.dst, q.sport, q.dport = cl, rs, 40000, 8080
								errSrc, errDst = rs, cl
							}
							qb := q.ipPacket(t)
							var qp Packet
							if d := ParseIP(qb, 0, &qp); d != DropNone {
								t.Fatal(d)
							}
							if quote >= 0 {
								qb = qb[:qp.L4Off+quote]
							}
							typ, code := uint8(3), uint8(3)
							if v6 {
								typ, code = 1, 4
							}
							buf, off := withHeadroom(ethernetFrame(t, icmpError(t, errSrc, errDst, typ, code, 0, qb), v6, 0))
							p := mustParse(t, buf, off, true)
							var d Drop
							if in {
								if k := p.InnerFlow().Reverse(); k.Dst != a16(vip) || k.DstPort != 80 || k.Src != a16(cl) {
									t.Fatalf("reverse inner flow %+v", k)
								}
								d = ICMPNATIn(buf, p, a16(rs), 8080)
							} else {
								if k := p.InnerFlow().Reverse(); k.Src != a16(rs) || k.SrcPort != 8080 {
									t.Fatalf("reverse inner flow %+v", k)
								}
								d = ICMPNATOut(buf, p, a16(vip), 80)
							}
							if d != DropNone {
								t.Fatal(d)
							}
							pk := gpCheck(t, buf[off:p.End], layers.LayerTypeEthernet)
							if _, err := verifyFrame(buf[:p.End], off, true); err != nil {
								t.Fatal(err)
							}
							src, dst, ttl := ipOf(t, pk)
							// the quoted packet, decoded by gopacket
							var quoted []byte
							if v6 {
								quoted = pk.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6).Payload[4:]
							} else {
								quoted = pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4).Payload
							}
							first := layers.LayerTypeIPv4
							if v6 {
								first = layers.LayerTypeIPv6
							}
							qk := gopacket.NewPacket(quoted, first, gopacket.Default)
							qs, qd, _ := ipOf(t, qk)
							var qsp, qdp uint16
							if quote >= 0 && proto == ProtoTCP && quote < 20 {
								// gopacket cannot decode a cut TCP header: read the ports
								l4 := quoted[qp.L4Off:]
								qsp, qdp = uint16(l4[0])<<8|uint16(l4[1]), uint16(l4[2])<<8|uint16(l4[3])
							} else {
								qsp, qdp, _ = ports(t, qk)
							}
							if ttl != 63 {
								t.Errorf("outer ttl %d", ttl)
							}
							if in {
								if src != cl || dst != rs || qs != rs || qsp != 8080 || qd != cl || qdp != 40000 {
									t.Errorf("outer %v->%v quoted %v:%d->%v:%d", src, dst, qs, qsp, qd, qdp)
								}
							} else {
								if src != vip || dst != cl || qs != cl || qsp != 40000 || qd != vip || qdp != 80 {
									t.Errorf("outer %v->%v quoted %v:%d->%v:%d", src, dst, qs, qsp, qd, qdp)
								}
							}
							l4 := quoted[qp.L4Off:]
							if zero && (l4[6] != 0 || l4[7] != 0) {
								t.Errorf("quoted zero UDP checksum changed to %#x%02x", l4[6], l4[7])
							}
						})
					}
				}
			}
		}
	}
}

func TestICMPNATRefusals(t *testing.T) {
	buf, off := withHeadroom(spec{}.frame(t))
	p := mustParse(t, buf, off, true)
	if d := ICMPNATIn(buf, p, a16(rs4), 80); d != DropNotICMPError {
		t.Errorf("tcp: %v", d)
	}
	// An error quoting an ICMP echo has no ports to translate.
	q := spec{proto: ProtoICMP, src: vip4, dst: client4}.ipPacket(t)
	buf, off = withHeadroom(ethernetFrame(t, icmpError(t, client4, vip4, 3, 1, 0, q), false, 0))
	p = mustParse(t, buf, off, true)
	if d := ICMPNATIn(buf, p, a16(rs4), 80); d != DropUnsupportedProto {
		t.Errorf("quoting icmp: %v", d)
	}
	q = spec{src: vip4, dst: client4}.ipPacket(t)
	buf, off = withHeadroom(ethernetFrame(t, icmpError(t, client4, vip4, 11, 0, 0, q), false, 0))
	p = mustParse(t, buf, off, true)
	if d := ICMPNATOut(buf, p, a16(vip6), 80); d != DropFamilyMismatch {
		t.Errorf("family: %v", d)
	}
}

func TestBuildICMPErrorLimits(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		s := spec{v6: v6, payload: make([]byte, 1400)}
		buf, off := withHeadroom(s.frame(t))
		p := mustParse(t, buf, off, true)
		src := a16(dir4)
		if v6 {
			src = a16(dir6)
		}
		out := make([]byte, 2000)
		n, d := BuildPortUnreachable(out, buf, p, src)
		if d != DropNone {
			t.Fatal(d)
		}
		want := 576
		if v6 {
			want = 1280
		}
		if n != want {
			t.Errorf("v6=%v: error of %d bytes, want %d (quote as much as fits)", v6, n, want)
		}
		pk := gpCheck(t, out[:n], firstLayer(false, v6))
		checkICMPError(t, pk, v6, 3, 1, 0, buf[p.L3Off:p.End])
		// A small output buffer: the quote shrinks, but not below IP+8.
		// IPv4 needs 28+20+8 = 56 bytes, IPv6 48+40+8 = 96.
		min := 56
		if v6 {
			min = 96
		}
		n, d = BuildPortUnreachable(out[:min], buf, p, src)
		if d != DropNone || n != min {
			t.Errorf("v6=%v in %d bytes: %d %v", v6, min, n, d)
		}
		gpCheck(t, out[:n], firstLayer(false, v6))
		if _, d := BuildPortUnreachable(out[:min-1], buf, p, src); d != DropBufferTooSmall {
			t.Errorf("v6=%v in %d bytes: %v", v6, min-1, d)
		}
	}
}

func TestBuildICMPErrorSuppressed(t *testing.T) {
	mk := func(s spec) (*Packet, []byte) {
		buf, off := withHeadroom(s.frame(t))
		return mustParse(t, buf, off, true), buf
	}
	out := make([]byte, 1500)
	cases := []struct {
		name string
		s    spec
	}{
		{"to-multicast", spec{proto: ProtoUDP, dst: netip.MustParseAddr("239.1.1.1"), src: client4}},
		{"to-broadcast", spec{proto: ProtoUDP, dst: netip.MustParseAddr("255.255.255.255"), src: client4}},
		{"from-zero", spec{proto: ProtoUDP, src: netip.MustParseAddr("0.0.0.0"), dst: vip4}},
		{"from-loopback", spec{proto: ProtoUDP, src: netip.MustParseAddr("127.0.0.1"), dst: vip4}},
		{"v6-to-multicast", spec{v6: true, proto: ProtoUDP, src: client6, dst: netip.MustParseAddr("ff05::1")}},
		{"v6-from-unspecified", spec{v6: true, proto: ProtoUDP, src: netip.IPv6Unspecified(), dst: vip6}},
	}
	for _, c := range cases {
		p, buf := mk(c.s)
		src := a16(dir4)
		if c.s.v6 {
			src = a16(dir6)
		}
		if _, d := BuildTimeExceeded(out, buf, p, src); d != DropICMPSuppressed {
			t.Errorf("%s: %v", c.name, d)
		}
	}
	// packet-too-big may answer a multicast destination (RFC 4443 2.4(e))
	p, buf := mk(spec{v6: true, proto: ProtoUDP, src: client6, dst: netip.MustParseAddr("ff05::1")})
	if _, d := BuildTooBig(out, buf, p, a16(dir6), 1280); d != DropNone {
		t.Errorf("PTB to multicast: %v", d)
	}
	// never about an ICMP error
	q := spec{src: vip4, dst: client4}.ipPacket(t)
	ebuf, eoff := withHeadroom(ethernetFrame(t, icmpError(t, client4, vip4, 3, 3, 0, q), false, 0))
	ep := mustParse(t, ebuf, eoff, true)
	if _, d := BuildTimeExceeded(out, ebuf, ep, a16(dir4)); d != DropICMPSuppressed {
		t.Errorf("about an ICMP error: %v", d)
	}
	if _, d := BuildTimeExceeded(out, ebuf, ep, a16(dir6)); d != DropFamilyMismatch {
		t.Errorf("family: %v", d)
	}
}

// TestParseTunnelError: a router on the way to the real server reports
// frag-needed about the director's IP-in-IP packet; the client's packet
// quoted inside is decoded and answered with the tunnel MTU.
func TestParseTunnelError(t *testing.T) {
	for _, c := range []struct{ outer6, inner6 bool }{{false, false}, {false, true}, {true, false}, {true, true}} {
		t.Run(fmt.Sprintf("outer6=%v-inner6=%v", c.outer6, c.inner6), func(t *testing.T) {
			// The client's packet, encapsulated by Encap itself.
			s := spec{v6: c.inner6, df: true, payload: make([]byte, 1200)}
			buf, off := withHeadroom(s.frame(t))
			p := mustParse(t, buf, off, true)
			tun := &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: 1500, PMTUDisc: true}
			router, dir := netip.MustParseAddr("10.9.9.9"), dir4
			typ, code := uint8(3), uint8(4)
			if c.outer6 {
				tun.Src, tun.Dst = a16(dir6), a16(rs6)
				router, dir, typ, code = netip.MustParseAddr("fd00::99"), dir6, 2, 0
			}
			start, end, d := Encap(buf, p, tun, 9)
			if d != DropNone {
				t.Fatal(d)
			}
			outerL3 := start + (p.L3Off - p.L2Off) // the Ethernet header moved to start
			// The router quotes the tunnel packet up to 576 bytes (IPv4) or
			// 1280 bytes (IPv6), as Linux does.
			tp := buf[outerL3:end]
			lim := 576 - 28
			if c.outer6 {
				lim = 1280 - 48
			}
			if len(tp) > lim {
				tp = tp[:lim]
			}
			ebuf, eoff := withHeadroom(ethernetFrame(t, icmpError(t, router, dir, typ, code, 1400, tp), c.outer6, 0))
			ep := mustParse(t, ebuf, eoff, true)
			var q Packet
			if d := ParseTunnelError(ebuf, ep, &q); d != DropNone {
				t.Fatal(d)
			}
			want := FlowKey{Src: a16(client4), Dst: a16(vip4), SrcPort: 40000, DstPort: 80, Proto: ProtoTCP}
			if c.inner6 {
				want.Src, want.Dst = a16(client6), a16(vip6)
			}
			if q.Flow() != want {
				t.Fatalf("quoted client flow %+v, want %+v", q.Flow(), want)
			}
			if !c.inner6 && q.Flags&FlagDF == 0 {
				t.Errorf("client DF not seen")
			}
			src := a16(vip4)
			if c.inner6 {
				src = a16(vip6)
			}
			out := make([]byte, 1500)
			mtu := 1400 - map[bool]int{false: 20, true: 40}[c.outer6]
			n, d := BuildTooBig(out, ebuf, &q, src, mtu)
			if d != DropNone {
				t.Fatal(d)
			}
			pk := gpCheck(t, out[:n], firstLayer(false, c.inner6))
			checkICMPError(t, pk, c.inner6, 3, 2, uint32(mtu), ebuf[q.L3Off:q.End])
		})
	}
	// Not about a tunnel packet.
	qb := spec{src: vip4, dst: client4}.ipPacket(t)
	buf, off := withHeadroom(ethernetFrame(t, icmpError(t, client4, vip4, 3, 4, 1400, qb), false, 0))
	p := mustParse(t, buf, off, true)
	var q Packet
	if d := ParseTunnelError(buf, p, &q); d != DropNotICMPError {
		t.Errorf("plain error: %v", d)
	}
}
