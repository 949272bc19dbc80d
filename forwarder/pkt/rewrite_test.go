package pkt

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// variants of one flow: the link framing and header options that a
// rewrite must carry through.
func variants(v6 bool) []spec {
	vs := []spec{{}, {vlan: 100}, {noL2: true}}
	if v6 {
		vs = append(vs, spec{ext: true}, spec{ext: true, vlan: 3})
	} else {
		vs = append(vs, spec{ipOptions: true}, spec{ipOptions: true, noL2: true})
	}
	for i := range vs {
		vs[i].v6 = v6
	}
	return vs
}

func (s spec) name() string {
	n := map[uint8]string{ProtoTCP: "tcp", ProtoUDP: "udp", ProtoICMP: "icmp", ProtoICMPv6: "icmp6"}[s.proto]
	if s.v6 {
		n += "6"
	} else {
		n += "4"
	}
	if s.udpZeroSum {
		n += "-zerosum"
	}
	if s.ipOptions {
		n += "-ipopts"
	}
	if s.ext {
		n += "-ext"
	}
	if s.vlan != 0 {
		n += "-vlan"
	}
	if s.noL2 {
		n += "-noL2"
	}
	return n
}

// transport returns gopacket's transport layer of the innermost flow.
func ports(t *testing.T, pk gopacket.Packet) (uint16, uint16, []byte) {
	t.Helper()
	switch l := pk.TransportLayer().(type) {
	case *layers.TCP:
		return uint16(l.SrcPort), uint16(l.DstPort), l.Payload
	case *layers.UDP:
		return uint16(l.SrcPort), uint16(l.DstPort), l.Payload
	}
	t.Fatalf("no transport layer")
	return 0, 0, nil
}

func ipOf(t *testing.T, pk gopacket.Packet) (src, dst netip.Addr, ttl uint8) {
	t.Helper()
	switch l := pk.NetworkLayer().(type) {
	case *layers.IPv4:
		s, _ := netip.AddrFromSlice(l.SrcIP)
		d, _ := netip.AddrFromSlice(l.DstIP)
		return s, d, l.TTL
	case *layers.IPv6:
		s, _ := netip.AddrFromSlice(l.SrcIP)
		d, _ := netip.AddrFromSlice(l.DstIP)
		return s, d, l.HopLimit
	}
	t.Fatalf("no network layer")
	return
}

// TestNAT runs NATIn and NATOut over IPv4/IPv6, TCP/UDP (with and without
// a UDP checksum), IP options, extension headers, VLAN tags and TUN
// frames; gopacket decodes each output and every checksum is recomputed.
func TestNAT(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		cl, vip, rs := client4, vip4, rs4
		if v6 {
			cl, vip, rs = client6, vip6, rs6
		}
		for _, base := range variants(v6) {
			for _, proto := range []struct {
				p    uint8
				zero bool
			}{{ProtoTCP, false}, {ProtoUDP, false}, {ProtoUDP, true}} {
				s := base
				s.proto, s.udpZeroSum = proto.p, proto.zero
				for _, in := range []bool{true, false} {
					name := "in-" + s.name()
					if !in {
						name = "out-" + s.name()
					}
					t.Run(name, func(t *testing.T) {
						s := s
						if in {
							s.src, s.dst, s.sport, s.dport = cl, vip, 40000, 80
						} else {
							s.src, s.dst, s.sport, s.dport = rs, cl, 8080, 40000
						}
						if proto.zero {
							s.udpZeroSum = true
						}
						orig := s.frame(t)
						if proto.zero && v6 {
							// not valid IPv6, but NAT must still emit a valid checksum
							l := len(orig) - len(s.defaults().payload) - 8
							orig[l+6], orig[l+7] = 0, 0
						}
						buf, off := withHeadroom(orig)
						p := mustParse(t, buf, off, !s.noL2)
						var d Drop
						if in {
							d = NATIn(buf, p, a16(rs), 8080)
						} else {
							d = NATOut(buf, p, a16(vip), 80)
						}
						if d != DropNone {
							t.Fatalf("rewrite: %v", d)
						}
						pk := gpCheck(t, buf[off:p.End], firstLayer(!s.noL2, v6))
						if _, err := verifyFrame(buf[:p.End], off, !s.noL2); err != nil {
							t.Fatal(err)
						}
						src, dst, ttl := ipOf(t, pk)
						sp, dp, payload := ports(t, pk)
						wantSrc, wantDst, wantSP, wantDP := cl, rs, uint16(40000), uint16(8080)
						if !in {
							wantSrc, wantDst, wantSP, wantDP = vip, cl, 80, 40000
						}
						if src != wantSrc || dst != wantDst || sp != wantSP || dp != wantDP {
							t.Errorf("flow %v:%d -> %v:%d, want %v:%d -> %v:%d", src, sp, dst, dp, wantSrc, wantSP, wantDst, wantDP)
						}
						if ttl != 63 {
							t.Errorf("ttl %d, want 63", ttl)
						}
						if !bytes.Equal(payload, s.defaults().payload) {
							t.Errorf("payload changed")
						}
						if p.Dst != a16(wantDst) || p.Src != a16(wantSrc) || p.TTL != 63 {
							t.Errorf("Packet fields not updated")
						}
						if u, ok := pk.TransportLayer().(*layers.UDP); ok && u.Checksum == 0 {
							t.Errorf("UDP checksum left 0 (spec: computed in full)")
						}
						if !s.noL2 && !bytes.Equal(buf[off:off+12], orig[:12]) {
							t.Errorf("NAT changed the MACs")
						}
					})
				}
			}
		}
	}
}

// TestNATUDPZeroResult finds a UDP datagram whose rewritten checksum is
// 0 and checks it is sent as 0xffff, for both the incremental and the
// full-recompute path.
func TestNATUDPZeroResult(t *testing.T) {
	for _, zero := range []bool{false, true} {
		found := false
		for i := 0; i < 1<<16 && !found; i++ {
			s := spec{proto: ProtoUDP, payload: []byte{byte(i >> 8), byte(i)}, udpZeroSum: zero}
			buf, off := withHeadroom(s.frame(t))
			p := mustParse(t, buf, off, true)
			if d := NATIn(buf, p, a16(rs4), 8080); d != DropNone {
				t.Fatal(d)
			}
			u := UDP(buf[p.L4Off:p.End])
			// the checksum a full computation would give
			c := u.Checksum()
			u[6], u[7] = 0, 0
			want := ^sumWith(pseudo(client4.AsSlice(), rs4.AsSlice(), 17, len(u)), u)
			u[6], u[7] = byte(c>>8), byte(c)
			if want == 0 {
				found = true
				if c != 0xffff {
					t.Fatalf("zero=%v: checksum computing to 0 sent as %#04x, want 0xffff", zero, c)
				}
			}
		}
		if !found {
			t.Fatalf("zero=%v: no payload gave a zero checksum", zero)
		}
	}
}

func TestNATRefusals(t *testing.T) {
	buf, off := withHeadroom(spec{}.frame(t))
	p := mustParse(t, buf, off, true)
	orig := append([]byte(nil), buf...)
	if d := NATIn(buf, p, a16(rs6), 80); d != DropFamilyMismatch {
		t.Errorf("v6 address into v4: %v", d)
	}
	ic, ioff := withHeadroom(spec{proto: ProtoICMP}.frame(t))
	ip := mustParse(t, ic, ioff, true)
	if d := NATIn(ic, ip, a16(rs4), 80); d != DropUnsupportedProto {
		t.Errorf("icmp echo: %v", d)
	}
	var zero Packet
	if d := NATOut(buf, &zero, a16(vip4), 80); d != DropNotIP {
		t.Errorf("unparsed packet: %v", d)
	}
	if !bytes.Equal(buf, orig) {
		t.Errorf("refused rewrite changed the packet")
	}
}

// TestTTLExpiry: every forwarding rewrite refuses TTL <= 1 without
// touching the packet, and the time-exceeded answer quotes it.
func TestTTLExpiry(t *testing.T) {
	tun4 := &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: 1500, PMTUDisc: true}
	tun6 := &Tunnel{Src: a16(dir6), Dst: a16(rs6), MTU: 1500, PMTUDisc: true}
	for _, v6 := range []bool{false, true} {
		for _, ttl := range []uint8{0, 1} {
			rewrites := map[string]func(buf []byte, p *Packet) Drop{
				"natin": func(b []byte, p *Packet) Drop {
					return NATIn(b, p, map[bool][16]byte{false: a16(rs4), true: a16(rs6)}[v6], 1)
				},
				"natout": func(b []byte, p *Packet) Drop {
					return NATOut(b, p, map[bool][16]byte{false: a16(vip4), true: a16(vip6)}[v6], 1)
				},
				"dr": func(b []byte, p *Packet) Drop { return DR(b, p, macRS, macDirA) },
				"tun": func(b []byte, p *Packet) Drop {
					_, _, d := Encap(b, p, map[bool]*Tunnel{false: tun4, true: tun6}[v6], 1)
					return d
				},
				"decttl": func(b []byte, p *Packet) Drop { return DecTTL(b, p) },
			}
			for name, rw := range rewrites {
				t.Run(fmt.Sprintf("%s-v6=%v-ttl%d", name, v6, ttl), func(t *testing.T) {
					f := spec{v6: v6}.frame(t)
					buf, off := withHeadroom(f)
					setTTL(buf[off+14:], ttl)
					p := mustParse(t, buf, off, true)
					orig := append([]byte(nil), buf...)
					if d := rw(buf, p); d != DropTTLExceeded {
						t.Fatalf("got %v, want ttl_exceeded", d)
					}
					if !bytes.Equal(buf, orig) {
						t.Fatal("refused packet was modified")
					}
					src := a16(dir4)
					if v6 {
						src = a16(dir6)
					}
					out := make([]byte, 1500)
					n, d := BuildTimeExceeded(out, buf, p, src)
					if d != DropNone {
						t.Fatal(d)
					}
					pk := gpCheck(t, out[:n], firstLayer(false, v6))
					checkICMPError(t, pk, v6, 11, 3, 0, buf[p.L3Off:p.End])
				})
			}
		}
	}
}

// setTTL writes the TTL / hop limit of the IP header at h and fixes the
// IPv4 header checksum (test-side, with naiveSum).
func setTTL(h []byte, ttl uint8) {
	if h[0]>>4 == 6 {
		h[7] = ttl
		return
	}
	h[8] = ttl
	ihl := int(h[0]&0xf) * 4
	h[10], h[11] = 0, 0
	c := ^uint16(naiveSum(h[:ihl]))
	h[10], h[11] = byte(c>>8), byte(c)
}

// checkICMPError checks an ICMP(v6) error decoded by gopacket: type (v4
// or v6 variant), info field and that it quotes the start of orig.
func checkICMPError(t *testing.T, pk gopacket.Packet, v6 bool, typ4, typ6 uint8, info uint32, orig []byte) {
	t.Helper()
	var body []byte
	if v6 {
		ic, ok := pk.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if !ok {
			t.Fatal("no ICMPv6 layer")
		}
		if ic.TypeCode.Type() != typ6 {
			t.Errorf("ICMPv6 type %d, want %d", ic.TypeCode.Type(), typ6)
		}
		body = ic.Payload // info (4 bytes) + quote
		if got := uint32(body[0])<<24 | uint32(body[1])<<16 | uint32(body[2])<<8 | uint32(body[3]); got != info {
			t.Errorf("info %d, want %d", got, info)
		}
		body = body[4:]
		if ip6 := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6); len(ip6.Contents)+len(ip6.Payload) > 1280 {
			t.Errorf("ICMPv6 error of %d bytes exceeds 1280", len(ip6.Contents)+len(ip6.Payload))
		}
	} else {
		ic, ok := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if !ok {
			t.Fatal("no ICMPv4 layer")
		}
		if ic.TypeCode.Type() != typ4 {
			t.Errorf("ICMP type %d, want %d", ic.TypeCode.Type(), typ4)
		}
		if got := uint32(ic.Id)<<16 | uint32(ic.Seq); got != info {
			t.Errorf("info %d, want %d", got, info)
		}
		body = ic.Payload
		if ip4 := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip4.Length > 576 {
			t.Errorf("ICMP error of %d bytes exceeds 576", ip4.Length)
		}
	}
	if len(body) < 28 || !bytes.Equal(body, orig[:len(body)]) {
		t.Errorf("quote (%d bytes) is not the start of the original (%d bytes)", len(body), len(orig))
	}
	if len(orig) <= 500 && len(body) != len(orig) {
		t.Errorf("quoted %d of %d bytes; the whole packet fits", len(body), len(orig))
	}
	_, dst, _ := ipOf(t, pk)
	wantDst := client4
	if v6 {
		wantDst = client6
	}
	if dst != wantDst {
		t.Errorf("error sent to %v, want the original source %v", dst, wantDst)
	}
}

func TestDR(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, s := range variants(v6) {
			for _, proto := range []uint8{ProtoTCP, ProtoUDP} {
				s := s
				s.proto = proto
				t.Run(s.name(), func(t *testing.T) {
					orig := s.frame(t)
					buf, off := withHeadroom(orig)
					p := mustParse(t, buf, off, !s.noL2)
					d := DR(buf, p, macRS, macDirA)
					if s.noL2 {
						if d != DropNoL2Header {
							t.Fatalf("DR on a TUN frame: %v", d)
						}
						return
					}
					if d != DropNone {
						t.Fatal(d)
					}
					pk := gpCheck(t, buf[off:p.End], layers.LayerTypeEthernet)
					if _, err := verifyFrame(buf[:p.End], off, true); err != nil {
						t.Fatal(err)
					}
					eth := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
					if [6]byte(eth.DstMAC) != macRS || [6]byte(eth.SrcMAC) != macDirA {
						t.Errorf("MACs %v -> %v", eth.SrcMAC, eth.DstMAC)
					}
					// Nothing but MACs, TTL and the IPv4 header checksum changed.
					got := buf[off:]
					l3 := p.L3Off - off
					diff := []int{}
					for i := range orig {
						if i < len(got) && got[i] != orig[i] {
							diff = append(diff, i)
						}
					}
					for _, i := range diff {
						ok := i < 12 || (!v6 && (i == l3+8 || i == l3+10 || i == l3+11)) || (v6 && i == l3+7)
						if !ok {
							t.Errorf("byte %d changed", i)
						}
					}
					if _, _, ttl := ipOf(t, pk); ttl != 63 {
						t.Errorf("ttl %d", ttl)
					}
				})
			}
		}
	}
}

func TestDecTTLAndSetMACs(t *testing.T) {
	buf, off := withHeadroom(spec{ipOptions: true}.frame(t))
	p := mustParse(t, buf, off, true)
	if d := DecTTL(buf, p); d != DropNone {
		t.Fatal(d)
	}
	SetMACs(buf, p.L2Off, macRS, macDirA)
	pk := gpCheck(t, buf[off:p.End], layers.LayerTypeEthernet)
	if _, _, ttl := ipOf(t, pk); ttl != 63 {
		t.Errorf("ttl %d", ttl)
	}
	if e := p.Ethernet(buf); [6]byte(e.Dst()) != macRS || [6]byte(e.Src()) != macDirA {
		t.Errorf("MACs not set")
	}
}

func TestNATToLoopbackRefused(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		buf, off := withHeadroom(spec{v6: v6}.frame(t))
		p := mustParse(t, buf, off, true)
		lo := a16(netip.MustParseAddr("127.0.0.2"))
		if v6 {
			lo = a16(netip.IPv6Loopback())
		}
		if d := NATIn(buf, p, lo, 80); d != DropNATToLoopback {
			t.Errorf("v6=%v: %v", v6, d)
		}
	}
}

func TestCheckMTU(t *testing.T) {
	big := make([]byte, 1400)
	cases := []struct {
		s    spec
		mtu  int
		want Drop
	}{
		{spec{payload: big}, 1500, DropNone},
		{spec{payload: big}, 1420, DropNeedsFragmentation},
		{spec{payload: big, df: true}, 1420, DropTooBig},
		{spec{payload: big, df: true}, 1440, DropNone},
		{spec{v6: true, payload: big}, 1459, DropTooBig},
		{spec{v6: true, payload: big}, 1460, DropNone},
	}
	for i, c := range cases {
		buf, off := withHeadroom(c.s.frame(t))
		p := mustParse(t, buf, off, true)
		if d := CheckMTU(p, c.mtu); d != c.want {
			t.Errorf("case %d: %v, want %v", i, d, c.want)
		}
	}
	q := spec{src: vip4, dst: client4, payload: big}.ipPacket(t)
	buf, off := withHeadroom(ethernetFrame(t, icmpError(t, client4, vip4, 3, 3, 0, q), false, 0))
	p := mustParse(t, buf, off, true)
	if d := CheckMTU(p, 1400); d != DropTooBigICMP {
		t.Errorf("icmp error: %v", d)
	}
}

// TestFillL4Checksum replaces a partial (pseudo-header only) checksum, as
// offloading senders leave it, by the full one; NAT then yields a valid
// packet.
func TestFillL4Checksum(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, proto := range []uint8{ProtoTCP, ProtoUDP, ProtoICMP} {
			s := spec{v6: v6, proto: proto}
			if v6 && proto == ProtoICMP {
				s.proto = ProtoICMPv6
			}
			buf, off := withHeadroom(s.frame(t))
			p := mustParse(t, buf, off, true)
			l4 := buf[p.L4Off:p.End]
			csOff := map[uint8]int{ProtoTCP: 16, ProtoUDP: 6, ProtoICMP: 2, ProtoICMPv6: 2}[s.proto]
			l4[csOff], l4[csOff+1] = 0x12, 0x34 // not the checksum
			if d := FillL4Checksum(buf, p); d != DropNone {
				t.Fatal(d)
			}
			gpCheck(t, buf[off:p.End], layers.LayerTypeEthernet)
			if _, err := verifyFrame(buf[:p.End], off, true); err != nil {
				t.Fatalf("v6=%v proto %d: %v", v6, proto, err)
			}
		}
	}
	buf, off := withHeadroom(spec{proto: 253}.frame(t))
	p := mustParse(t, buf, off, true)
	if d := FillL4Checksum(buf, p); d != DropUnsupportedProto {
		t.Errorf("proto 253: %v", d)
	}
}

func TestNDPNotForwarded(t *testing.T) {
	buf, off := withHeadroom(nsFrame(t, client6, vip6, true, 255))
	p := mustParse(t, buf, off, true)
	if d := DR(buf, p, macRS, macDirA); d != DropNotForwardable {
		t.Errorf("DR: %v", d)
	}
	if _, _, d := Encap(buf, p, &Tunnel{Src: a16(dir6), Dst: a16(rs6), MTU: 1500}, 1); d != DropNotForwardable {
		t.Errorf("Encap: %v", d)
	}
	if d := DecTTL(buf, p); d != DropNotForwardable {
		t.Errorf("DecTTL: %v", d)
	}
}
