package pkt

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestParseGood parses well-formed packets and compares the decoded
// fields with gopacket's decoding of the same bytes.
func TestParseGood(t *testing.T) {
	cases := []struct {
		name string
		s    spec
	}{
		{"tcp4", spec{}},
		{"tcp4-syn-options", spec{tcpFlags: TCPSyn, tcpOptions: true}},
		{"tcp4-ipoptions", spec{ipOptions: true}},
		{"tcp4-vlan", spec{vlan: 42}},
		{"tcp4-noL2", spec{noL2: true}},
		{"udp4", spec{proto: ProtoUDP, sport: 4000, dport: 9000}},
		{"udp4-zero-checksum", spec{proto: ProtoUDP, udpZeroSum: true}},
		{"udp4-empty", spec{proto: ProtoUDP, payload: []byte{}}},
		{"icmp4-echo", spec{proto: ProtoICMP}},
		{"other-proto", spec{proto: 253}},
		{"tcp6", spec{v6: true}},
		{"tcp6-ext", spec{v6: true, ext: true}},
		{"udp6-ext-vlan", spec{v6: true, proto: ProtoUDP, ext: true, vlan: 7}},
		{"udp6-noL2", spec{v6: true, proto: ProtoUDP, noL2: true}},
		{"icmp6-echo", spec{v6: true, proto: ProtoICMPv6}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.s.defaults()
			buf, off := withHeadroom(s.frame(t))
			p := mustParse(t, buf, off, !s.noL2)
			pk := gpCheck(t, buf[off:], firstLayer(!s.noL2, s.v6))
			nl := pk.NetworkLayer()
			src, _ := netip.AddrFromSlice(nl.NetworkFlow().Src().Raw())
			dst, _ := netip.AddrFromSlice(nl.NetworkFlow().Dst().Raw())
			if p.Src != src.As16() || p.Dst != dst.As16() {
				t.Errorf("addresses %v -> %v, gopacket %v -> %v", netip.AddrFrom16(p.Src), netip.AddrFrom16(p.Dst), src, dst)
			}
			if p.Proto != s.proto || p.TTL != s.ttl {
				t.Errorf("proto %d ttl %d, want %d %d", p.Proto, p.TTL, s.proto, s.ttl)
			}
			wantVer := uint8(4)
			if s.v6 {
				wantVer = 6
			}
			if p.Version != wantVer {
				t.Errorf("version %d", p.Version)
			}
			if s.noL2 != (p.L2Off < 0) || (!s.noL2 && p.L2Off != off) {
				t.Errorf("L2Off %d", p.L2Off)
			}
			if p.Tagged != (s.vlan != 0) || int(p.VLAN) != s.vlan {
				t.Errorf("vlan %v %d", p.Tagged, p.VLAN)
			}
			if want := p.L3Off + len(s.ipPacket(t)); p.End != want {
				t.Errorf("End %d, want %d", p.End, want)
			}
			if tl := pk.TransportLayer(); tl != nil {
				sp := binary.BigEndian.Uint16(tl.TransportFlow().Src().Raw())
				dp := binary.BigEndian.Uint16(tl.TransportFlow().Dst().Raw())
				if p.Flags&FlagPorts == 0 || p.SrcPort != sp || p.DstPort != dp {
					t.Errorf("ports %d->%d flags %b, gopacket %d->%d", p.SrcPort, p.DstPort, p.Flags, sp, dp)
				}
				if p.PayloadOff != p.End-len(s.payload) {
					t.Errorf("PayloadOff %d, want %d", p.PayloadOff, p.End-len(s.payload))
				}
				if tcp, ok := tl.(*layers.TCP); ok && p.TCPFlags != tcp.Contents[13] {
					t.Errorf("tcp flags %#x", p.TCPFlags)
				}
			} else if p.Flags&FlagPorts != 0 {
				t.Errorf("ports claimed for proto %d", p.Proto)
			}
			if s.proto == ProtoICMP || s.proto == ProtoICMPv6 {
				want := uint8(8)
				if s.v6 {
					want = 128
				}
				if p.ICMPType != want || p.Flags&FlagICMPError != 0 {
					t.Errorf("icmp type %d flags %b", p.ICMPType, p.Flags)
				}
			}
		})
	}
}

func TestParseEthernetPadding(t *testing.T) {
	// A 54-byte TCP/IPv4 frame padded to 60 bytes: End excludes padding.
	s := spec{payload: []byte{}}
	f := s.frame(t)
	if len(f) != 60 {
		t.Fatalf("gopacket did not pad: %d bytes", len(f))
	}
	buf, off := withHeadroom(f)
	p := mustParse(t, buf, off, true)
	if want := off + 14 + 40; p.End != want {
		t.Fatalf("End %d, want %d", p.End, want)
	}
}

// TestParseICMPErrors parses ICMP errors quoting whole and truncated
// packets and checks the exposed quoted flow.
func TestParseICMPErrors(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, proto := range []uint8{ProtoTCP, ProtoUDP} {
			for _, quote := range []int{8, 18, -1} { // L4 bytes quoted; -1 whole
				// The quoted packet: VIP:80 -> client:40000 (a reply the
				// client could not take).
				inner := spec{v6: v6, proto: proto, src: vip4, dst: client4, sport: 80, dport: 40000, ext: v6 && quote == 8}
				if v6 {
					inner.src, inner.dst = vip6, client6
				}
				q := inner.ipPacket(t)
				l4off := 20
				if v6 {
					l4off = 40
					if inner.ext {
						l4off += 24
					}
				}
				if quote >= 0 {
					q = q[:l4off+quote]
				}
				typ, code := uint8(3), uint8(3)
				src, dst := client4, vip4
				if v6 {
					typ, code, src, dst = 1, 4, client6, vip6
				}
				ip := icmpError(t, src, dst, typ, code, 0, q)
				buf, off := withHeadroom(ethernetFrame(t, ip, v6, 0))
				p := mustParse(t, buf, off, true)
				if p.Flags&FlagICMPError == 0 || p.Flags&FlagInnerPorts == 0 {
					t.Fatalf("v6=%v proto %d quote %d: flags %b", v6, proto, quote, p.Flags)
				}
				k := p.InnerFlow().Reverse()
				want := FlowKey{Src: a16(inner.defaults().dst), Dst: a16(inner.defaults().src), SrcPort: 40000, DstPort: 80, Proto: proto}
				if k != want {
					t.Errorf("v6=%v proto %d quote %d: reverse inner flow %+v, want %+v", v6, proto, quote, k, want)
				}
				if p.Inner.L4Len() != len(q)-l4off {
					t.Errorf("inner L4 length %d, want %d", p.Inner.L4Len(), len(q)-l4off)
				}
				if p.ICMPType != typ || p.ICMPCode != code {
					t.Errorf("type %d/%d", p.ICMPType, p.ICMPCode)
				}
			}
		}
	}
}

func TestParseARPAndNS(t *testing.T) {
	arp := serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: macClient, SourceProtAddress: client4.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: vip4.AsSlice()})
	buf, off := withHeadroom(arp)
	p := mustParse(t, buf, off, true)
	if p.ARPOp != 1 || p.Target != a16(vip4) || p.Src != a16(client4) || string(buf[p.SLLAOff:p.SLLAOff+6]) != string(macClient) {
		t.Errorf("ARP: op %d target %v src %v", p.ARPOp, netip.AddrFrom16(p.Target), netip.AddrFrom16(p.Src))
	}

	ns := nsFrame(t, client6, vip6, true, 255)
	buf, off = withHeadroom(ns)
	p = mustParse(t, buf, off, true)
	if p.ICMPType != 135 || p.Target != a16(vip6) || p.Flags&FlagSLLA == 0 || string(buf[p.SLLAOff:p.SLLAOff+6]) != string(macClient) {
		t.Errorf("NS: type %d target %v flags %b", p.ICMPType, netip.AddrFrom16(p.Target), p.Flags)
	}
}

// nsFrame builds a neighbour solicitation for target from src.
func nsFrame(t testing.TB, src, target netip.Addr, slla bool, hop uint8) []byte {
	t.Helper()
	snm := netip.AddrFrom16([16]byte{0: 0xff, 1: 2, 11: 1, 12: 0xff, 13: target.As16()[13], 14: target.As16()[14], 15: target.As16()[15]})
	ip6 := &layers.IPv6{Version: 6, HopLimit: hop, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: snm.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)}
	_ = ic.SetNetworkLayerForChecksum(ip6)
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice()}
	if slla {
		ns.Options = layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: macClient}}
	}
	eth := &layers.Ethernet{SrcMAC: macClient, DstMAC: []byte{0x33, 0x33, 0xff, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv6}
	return serialize(t, eth, ip6, ic, ns)
}

// TestParseMalformed checks that each kind of malformed input yields its
// drop reason.
func TestParseMalformed(t *testing.T) {
	tcp4 := func() []byte { return spec{}.frame(t) }
	tcp6 := func() []byte { return spec{v6: true}.frame(t) }
	mod := func(f []byte, fn func(b []byte)) []byte { fn(f); return f }
	ipcsum := func(f []byte) []byte { // refresh the IPv4 header checksum
		h := f[14 : 14+int(f[14]&0xf)*4]
		h[10], h[11] = 0, 0
		binary.BigEndian.PutUint16(h[10:], ^uint16(naiveSum(h)))
		return f
	}
	icmpQuoting := func(v6 bool, q []byte) []byte {
		src, dst, typ := client4, vip4, uint8(3)
		if v6 {
			src, dst, typ = client6, vip6, 1
		}
		return ethernetFrame(t, icmpError(t, src, dst, typ, 0, 0, q), v6, 0)
	}
	v6chain := func(first uint8, chain []byte) []byte {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocol(first), SrcIP: client6.AsSlice(), DstIP: vip6.AsSlice()}
		return ethernetFrame(t, serialize(t, ip6, gopacket.Payload(chain)), true, 0)
	}
	dstOpts := func(next uint8) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }
	var tenDstOpts []byte
	for i := 0; i < 10; i++ {
		tenDstOpts = append(tenDstOpts, dstOpts(ProtoDstOpts)...)
	}
	cases := []struct {
		name  string
		frame []byte
		l2    bool
		want  Drop
	}{
		{"empty", nil, true, DropTruncatedEthernet},
		{"short-ethernet", tcp4()[:13], true, DropTruncatedEthernet},
		{"short-vlan", mod(tcp4()[:16], func(b []byte) { b[12], b[13] = 0x81, 0 }), true, DropTruncatedVLAN},
		{"double-vlan", mod(spec{vlan: 5}.frame(t), func(b []byte) { b[16], b[17] = 0x81, 0 }), true, DropNotIP},
		{"lldp", mod(tcp4(), func(b []byte) { b[12], b[13] = 0x88, 0xcc }), true, DropNotIP},
		{"ipv4-short", tcp4()[:14+19], true, DropTruncatedIPv4},
		{"ipv4-version", mod(tcp4(), func(b []byte) { b[14] = 0x55 }), true, DropBadIPVersion},
		{"ipv4-ihl-4", ipcsum(mod(tcp4(), func(b []byte) { b[14] = 0x44 })), true, DropBadIPv4IHL},
		{"ipv4-ihl-0", mod(tcp4(), func(b []byte) { b[14] = 0x40 }), true, DropBadIPv4IHL},
		{"ipv4-ihl-beyond", mod(spec{payload: []byte{}}.frame(t), func(b []byte) { b[14] = 0x4f }), true, DropTruncatedIPv4},
		{"ipv4-totlen-small", ipcsum(mod(tcp4(), func(b []byte) { b[16], b[17] = 0, 19 })), true, DropBadIPv4Length},
		{"ipv4-totlen-big", ipcsum(mod(tcp4(), func(b []byte) { b[17]++ })), true, DropBadIPv4Length},
		{"ipv4-checksum", mod(tcp4(), func(b []byte) { b[14+8]-- }), true, DropBadIPv4Checksum},
		{"ipv4-fragment-mf", spec{fragMF: true}.frame(t), true, DropIPFragment},
		{"ipv4-fragment-offset", spec{fragOffset: 1480}.frame(t), true, DropIPFragment},
		{"tcp-short", spec{rawL4: make([]byte, 19)}.frame(t), true, DropTruncatedTCP},
		{"tcp-doff-4", spec{rawL4: mod(make([]byte, 20), func(b []byte) { b[12] = 4 << 4 })}.frame(t), true, DropBadTCPDataOffset},
		{"tcp-doff-beyond", spec{rawL4: mod(make([]byte, 20), func(b []byte) { b[12] = 6 << 4 })}.frame(t), true, DropBadTCPDataOffset},
		{"udp-short", spec{proto: ProtoUDP, rawL4: make([]byte, 7)}.frame(t), true, DropTruncatedUDP},
		{"udp-length-small", spec{proto: ProtoUDP, rawL4: []byte{0, 1, 0, 2, 0, 7, 0, 0}}.frame(t), true, DropBadUDPLength},
		{"udp-length-big", spec{proto: ProtoUDP, rawL4: []byte{0, 1, 0, 2, 0, 9, 0, 0}}.frame(t), true, DropBadUDPLength},
		{"icmp-short", spec{proto: ProtoICMP, rawL4: make([]byte, 7)}.frame(t), true, DropTruncatedICMP},
		{"icmp-error-checksum", mod(icmpQuoting(false, spec{}.ipPacket(t)), func(b []byte) { b[14+20+5]++ }), true, DropBadICMPChecksum},
		{"icmp-error-quote-short-ip", icmpQuoting(false, spec{}.ipPacket(t)[:19]), true, DropBadICMPEmbedded},
		{"icmp-error-quote-4-l4", icmpQuoting(false, spec{}.ipPacket(t)[:24]), true, DropBadICMPEmbedded},
		{"icmp-error-quote-ihl", icmpQuoting(false, mod(spec{}.ipPacket(t)[:28], func(b []byte) { b[0] = 0x43 })), true, DropBadICMPEmbedded},
		{"icmp-error-quote-fragment", icmpQuoting(false, spec{fragOffset: 8}.ipPacket(t)[:28]), true, DropICMPEmbeddedFragment},
		{"icmp6-error-quote-short", icmpQuoting(true, spec{v6: true}.ipPacket(t)[:39]), true, DropBadICMPEmbedded},
		{"icmp6-error-quote-4-l4", icmpQuoting(true, spec{v6: true}.ipPacket(t)[:44]), true, DropBadICMPEmbedded},
		{"icmp6-error-checksum", mod(icmpQuoting(true, spec{v6: true}.ipPacket(t)), func(b []byte) { b[14+40+9]++ }), true, DropBadICMPChecksum},
		{"ipv6-short", tcp6()[:14+39], true, DropTruncatedIPv6},
		{"ipv6-version", mod(tcp6(), func(b []byte) { b[14] = 0x46 }), true, DropBadIPVersion},
		{"ipv6-paylen-big", mod(tcp6(), func(b []byte) { b[14+5]++ }), true, DropBadIPv6Length},
		{"ipv6-jumbo", v6chain(ProtoHopByHop, nil), true, DropBadIPv6Length},
		{"ipv6-ext-short", v6chain(ProtoDstOpts, []byte{17, 0, 1, 2}), true, DropBadIPv6ExtHeader},
		{"ipv6-ext-len-beyond", v6chain(ProtoDstOpts, []byte{17, 3, 1, 4, 0, 0, 0, 0}), true, DropBadIPv6ExtHeader},
		{"ipv6-ext-limit", v6chain(ProtoDstOpts, tenDstOpts), true, DropIPv6ExtLimit},
		{"ipv6-fragment", v6chain(ProtoFragment, []byte{17, 0, 0, 9, 0, 0, 0, 1, 0, 1, 0, 2, 0, 8, 0, 0}), true, DropIPFragment},
		{"ipv6-fragment-first", v6chain(ProtoFragment, []byte{17, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 2, 0, 8, 0, 0}), true, DropIPFragment},
		{"ipv6-ah-short", v6chain(ProtoAH, []byte{17, 4, 0, 0, 0, 0, 0, 0}), true, DropBadIPv6ExtHeader},
		{"tcp6-short", spec{v6: true, rawL4: make([]byte, 10)}.frame(t), true, DropTruncatedTCP},
		{"arp-short", mod(tcp4()[:14+27], func(b []byte) { b[12], b[13] = 8, 6 }), true, DropTruncatedARP},
		{"arp-not-ipv4", mod(tcp4()[:14+28], func(b []byte) { b[12], b[13] = 8, 6 }), true, DropBadARP},
		{"ns-hop-limit", nsFrame(t, client6, vip6, true, 64), true, DropBadNDP},
		{"ns-dad-with-slla", nsFrame(t, netip.IPv6Unspecified(), vip6, true, 255), true, DropBadNDP},
		{"ns-multicast-target", nsFrame(t, client6, netip.MustParseAddr("ff02::1"), false, 255), true, DropBadNDP},
		{"ip-empty", nil, false, DropTruncatedIPv4},
		{"ip-version-5", []byte{0x50, 0, 0, 0}, false, DropBadIPVersion},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			buf, off := withHeadroom(c.frame)
			var p Packet
			var d Drop
			if c.l2 {
				d = ParseEthernet(buf, off, &p)
			} else {
				d = ParseIP(buf, off, &p)
			}
			if d != c.want {
				t.Fatalf("got %v, want %v", d, c.want)
			}
		})
	}
}

func TestParseAtomicFragmentAccepted(t *testing.T) {
	// RFC 6946: an IPv6 fragment header with offset 0 and M=0 is processed
	// as an unfragmented packet.
	udp := []byte{0, 1, 0, 2, 0, 8, 0, 0}
	ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: ProtoFragment, SrcIP: client6.AsSlice(), DstIP: vip6.AsSlice()}
	f := ethernetFrame(t, serialize(t, ip6, gopacket.Payload(append([]byte{17, 0, 0, 0, 0, 0, 0, 9}, udp...))), true, 0)
	buf, off := withHeadroom(f)
	p := mustParse(t, buf, off, true)
	if p.Proto != ProtoUDP || p.SrcPort != 1 || p.DstPort != 2 || p.FragID != 9 {
		t.Fatalf("atomic fragment: %+v", p)
	}
}

func TestParseFragmentFields(t *testing.T) {
	buf, off := withHeadroom(spec{fragOffset: 1480, df: false}.frame(t))
	var p Packet
	if d := ParseEthernet(buf, off, &p); d != DropIPFragment {
		t.Fatal(d)
	}
	if p.FragOff != 1480 || p.Flags&FlagFragment == 0 || p.Src != a16(client4) || p.Dst != a16(vip4) || p.Proto != ProtoTCP {
		t.Fatalf("fragment fields: %+v", p)
	}
}

func TestDropNames(t *testing.T) {
	seen := map[string]Drop{}
	for d := Drop(0); d < NumDrops; d++ {
		n := d.String()
		if n == "" || n == "unknown" {
			t.Errorf("drop %d has no name", d)
		}
		if o, dup := seen[n]; dup {
			t.Errorf("drops %d and %d share name %q", o, d, n)
		}
		seen[n] = d
	}
	if NumDrops.String() != "unknown" {
		t.Errorf("out of range drop named %q", NumDrops.String())
	}
}
