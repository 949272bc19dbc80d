package pkt

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Test addresses: a client, a VIP, a real server and the director.
var (
	client4 = netip.MustParseAddr("192.0.2.10")
	vip4    = netip.MustParseAddr("198.51.100.1")
	rs4     = netip.MustParseAddr("10.0.0.2")
	dir4    = netip.MustParseAddr("10.0.0.1")
	client6 = netip.MustParseAddr("2001:db8::10")
	vip6    = netip.MustParseAddr("2001:db8:100::1")
	rs6     = netip.MustParseAddr("fd00::2")
	dir6    = netip.MustParseAddr("fd00::1")

	macClient = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	macDir    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macRS     = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	macDirA   = [6]byte{0x02, 0, 0, 0, 0, 0x01}
)

func a16(a netip.Addr) [16]byte { return a.As16() }

// spec describes a test packet built with gopacket (which computes every
// checksum and length), so inputs do not depend on the code under test.
type spec struct {
	v6         bool
	proto      uint8 // ProtoTCP, ProtoUDP, ProtoICMP (echo), ProtoICMPv6 (echo)
	src, dst   netip.Addr
	sport      uint16
	dport      uint16
	ttl        uint8
	tos        uint8
	df         bool
	payload    []byte
	udpZeroSum bool // IPv4 UDP sent without checksum
	ipOptions  bool // IPv4 router-alert + NOP options (IHL 7)
	ext        bool // IPv6 hop-by-hop + destination options before L4
	noL2       bool // TUN frame: starts with IP
	vlan       int  // 0: untagged
	tcpFlags   uint8
	tcpOptions bool
	fragMF     bool // IPv4 more-fragments
	fragOffset uint16
	rawL4      []byte // when set: the transport bytes, verbatim
}

func (s spec) defaults() spec {
	if !s.src.IsValid() {
		s.src, s.dst = client4, vip4
		if s.v6 {
			s.src, s.dst = client6, vip6
		}
	}
	if s.ttl == 0 {
		s.ttl = 64
	}
	if s.proto == 0 {
		s.proto = ProtoTCP
	}
	if s.sport == 0 {
		s.sport, s.dport = 40000, 80
	}
	if s.payload == nil {
		s.payload = []byte("hello, real server")
	}
	return s
}

var serOpts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, serOpts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), sb.Bytes()...)
}

// ipPacket returns the IP packet (no link header) for s.
func (s spec) ipPacket(t testing.TB) []byte {
	t.Helper()
	s = s.defaults()
	var netl gopacket.NetworkLayer
	var ip4 *layers.IPv4
	var ip6 *layers.IPv6
	if s.v6 {
		ip6 = &layers.IPv6{Version: 6, TrafficClass: s.tos, HopLimit: s.ttl,
			NextHeader: layers.IPProtocol(s.proto), SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
		netl = ip6
	} else {
		ip4 = &layers.IPv4{Version: 4, TOS: s.tos, TTL: s.ttl, Id: 0x1234,
			Protocol: layers.IPProtocol(s.proto), SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice(),
			FragOffset: s.fragOffset / 8}
		if s.df {
			ip4.Flags |= layers.IPv4DontFragment
		}
		if s.fragMF {
			ip4.Flags |= layers.IPv4MoreFragments
		}
		if s.ipOptions {
			ip4.Options = []layers.IPv4Option{
				{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}},
				{OptionType: 1, OptionLength: 1}, {OptionType: 1, OptionLength: 1},
				{OptionType: 1, OptionLength: 1}, {OptionType: 1, OptionLength: 1},
			}
		}
		netl = ip4
	}
	var l4 []byte
	switch s.proto {
	case 255: // only rawL4
	case ProtoTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport),
			Seq: 1000, Ack: 2000, Window: 65535}
		f := s.tcpFlags
		if f == 0 {
			f = TCPAck | TCPPsh
		}
		tcp.FIN, tcp.SYN, tcp.RST = f&TCPFin != 0, f&TCPSyn != 0, f&TCPRst != 0
		tcp.PSH, tcp.ACK = f&TCPPsh != 0, f&TCPAck != 0
		if s.tcpOptions {
			tcp.Options = []layers.TCPOption{{OptionType: 2, OptionLength: 4, OptionData: []byte{5, 0xb4}},
				{OptionType: 1}, {OptionType: 1}, {OptionType: 4, OptionLength: 2}}
		}
		_ = tcp.SetNetworkLayerForChecksum(netl)
		l4 = serialize(t, tcp, gopacket.Payload(s.payload))
	case ProtoUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(s.sport), DstPort: layers.UDPPort(s.dport)}
		_ = udp.SetNetworkLayerForChecksum(netl)
		l4 = serialize(t, udp, gopacket.Payload(s.payload))
		if s.udpZeroSum {
			l4[6], l4[7] = 0, 0
		}
	case ProtoICMP:
		l4 = serialize(t, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 1},
			gopacket.Payload(s.payload))
	case ProtoICMPv6:
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
		_ = ic.SetNetworkLayerForChecksum(netl)
		l4 = serialize(t, ic, gopacket.Payload(append([]byte{0, 7, 0, 1}, s.payload...)))
	default:
		l4 = append([]byte(nil), s.payload...)
	}
	if s.rawL4 != nil {
		l4 = append([]byte(nil), s.rawL4...)
	}
	if s.v6 {
		if s.ext {
			// hop-by-hop (PadN) -> destination options (PadN) -> L4
			hbh := []byte{ProtoDstOpts, 0, 1, 4, 0, 0, 0, 0}
			dst := []byte{s.proto, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
			ip6.NextHeader = ProtoHopByHop
			l4 = append(append(append([]byte(nil), hbh...), dst...), l4...)
		}
		return serialize(t, ip6, gopacket.Payload(l4))
	}
	return serialize(t, ip4, gopacket.Payload(l4))
}

// frame returns s as an Ethernet frame (or a bare IP packet when noL2).
func (s spec) frame(t testing.TB) []byte {
	t.Helper()
	ip := s.ipPacket(t)
	if s.noL2 {
		return ip
	}
	return ethernetFrame(t, ip, s.v6, s.vlan)
}

func ethernetFrame(t testing.TB, ip []byte, v6 bool, vlan int) []byte {
	et := layers.EthernetTypeIPv4
	if v6 {
		et = layers.EthernetTypeIPv6
	}
	eth := &layers.Ethernet{SrcMAC: macClient, DstMAC: macDir, EthernetType: et}
	if vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		return serialize(t, eth, &layers.Dot1Q{VLANIdentifier: uint16(vlan), Type: et}, gopacket.Payload(ip))
	}
	return serialize(t, eth, gopacket.Payload(ip))
}

// withHeadroom copies frame behind Headroom free bytes, as engines do.
func withHeadroom(frame []byte) ([]byte, int) {
	buf := make([]byte, Headroom+len(frame))
	copy(buf[Headroom:], frame)
	return buf, Headroom
}

// parse parses a frame (Ethernet unless it starts with an IP version
// nibble and noL2 says so).
func mustParse(t testing.TB, buf []byte, off int, l2 bool) *Packet {
	t.Helper()
	var p Packet
	var d Drop
	if l2 {
		d = ParseEthernet(buf, off, &p)
	} else {
		d = ParseIP(buf, off, &p)
	}
	if d != DropNone {
		t.Fatalf("parse: %v", d)
	}
	return &p
}

// naiveSum is a deliberately simple RFC 1071 sum, independent of Sum.
func naiveSum(b []byte) uint32 {
	var s uint32
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		s += w
		for s > 0xffff {
			s = s>>16 + s&0xffff
		}
	}
	return s
}

func csumEquiv(a, b uint16) bool {
	return a == b || a == 0 && b == 0xffff || a == 0xffff && b == 0
}

// gpCheck decodes frame with gopacket and verifies every checksum in it by
// recomputing it in full: IPv4 headers with naiveSum, TCP with gopacket's
// ComputeChecksum, UDP, ICMPv4 and ICMPv6 by re-serialising with
// gopacket's ComputeChecksums. Quoted IPv4 headers inside ICMP errors are
// verified too. It returns the decoded packet for field checks.
func gpCheck(t testing.TB, frame []byte, first gopacket.LayerType) gopacket.Packet {
	t.Helper()
	pk := gopacket.NewPacket(frame, first, gopacket.Default)
	if el := pk.ErrorLayer(); el != nil {
		// A protocol gopacket has no decoder for is not an error here.
		if el.Error().Error() != "Layer type not currently supported" {
			t.Fatalf("gopacket: %v", el.Error())
		}
	}
	var netl gopacket.NetworkLayer
	opts := gopacket.SerializeOptions{ComputeChecksums: true}
	for _, l := range pk.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			if s := naiveSum(l.Contents); s != 0xffff {
				t.Errorf("IPv4 header checksum %#04x does not verify (sum %#04x)", l.Checksum, s)
			}
			netl = l
		case *layers.IPv6:
			netl = l
		case *layers.TCP:
			_ = l.SetNetworkLayerForChecksum(netl)
			// ComputeChecksum sums the segment with its checksum field:
			// 0 means the checksum verifies.
			c, err := l.ComputeChecksum()
			if err != nil || c != 0 {
				t.Errorf("TCP checksum %#04x does not verify: gopacket sums to %#04x (%v)", l.Checksum, c, err)
			}
		case *layers.UDP:
			if l.Checksum == 0 {
				if _, v6 := netl.(*layers.IPv6); v6 {
					t.Errorf("IPv6 UDP checksum 0")
				}
				continue
			}
			got := l.Checksum
			c := *l
			_ = c.SetNetworkLayerForChecksum(netl)
			serialize2(t, opts, &c, gopacket.Payload(l.Payload))
			if !csumEquiv(c.Checksum, got) {
				t.Errorf("UDP checksum %#04x, gopacket computes %#04x", got, c.Checksum)
			}
		case *layers.ICMPv4:
			got := l.Checksum
			c := *l
			serialize2(t, opts, &c, gopacket.Payload(l.Payload))
			if !csumEquiv(c.Checksum, got) {
				t.Errorf("ICMPv4 checksum %#04x, gopacket computes %#04x", got, c.Checksum)
			}
			if l.TypeCode.Type() == 3 || l.TypeCode.Type() == 11 {
				q := l.Payload
				if len(q) >= 20 && int(q[0]&0xf)*4 <= len(q) {
					if s := naiveSum(q[:int(q[0]&0xf)*4]); s != 0xffff {
						t.Errorf("quoted IPv4 header checksum does not verify (sum %#04x)", s)
					}
				}
			}
		case *layers.ICMPv6:
			got := l.Checksum
			c := *l
			_ = c.SetNetworkLayerForChecksum(netl)
			serialize2(t, opts, &c, gopacket.Payload(l.Payload))
			if !csumEquiv(c.Checksum, got) {
				t.Errorf("ICMPv6 checksum %#04x, gopacket computes %#04x", got, c.Checksum)
			}
		}
	}
	return pk
}

func serialize2(t testing.TB, opts gopacket.SerializeOptions, ls ...gopacket.SerializableLayer) {
	t.Helper()
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
}

func firstLayer(l2 bool, v6 bool) gopacket.LayerType {
	switch {
	case l2:
		return layers.LayerTypeEthernet
	case v6:
		return layers.LayerTypeIPv6
	}
	return layers.LayerTypeIPv4
}

// icmpError returns an IP packet carrying an ICMP(v6) error from src to
// dst that quotes quoted, built and checksummed by gopacket.
func icmpError(t testing.TB, src, dst netip.Addr, typ, code uint8, info uint32, quoted []byte) []byte {
	t.Helper()
	if src.Is6() {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6,
			SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
		_ = ic.SetNetworkLayerForChecksum(ip6)
		body := append([]byte{byte(info >> 24), byte(info >> 16), byte(info >> 8), byte(info)}, quoted...)
		return serialize(t, ip6, ic, gopacket.Payload(body))
	}
	ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4,
		SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: uint16(info >> 16), Seq: uint16(info)}
	return serialize(t, ip4, ic, gopacket.Payload(quoted))
}
