package pkt

// Headroom is the number of free bytes engines leave before a frame so that
// Encap can prepend an outer IPv6 header (40) and move an 802.1Q-tagged
// Ethernet header (18) in front of it without copying the payload.
const Headroom = 128

// EtherTypes.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100
	EtherTypeQinQ = 0x88a8
	EtherTypeIPv6 = 0x86dd
)

// IP protocol numbers used by the package.
const (
	ProtoHopByHop = 0
	ProtoICMP     = 1
	ProtoIPIP     = 4
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoIPv6     = 41
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoESP      = 50
	ProtoAH       = 51
	ProtoICMPv6   = 58
	ProtoNoNext   = 59
	ProtoDstOpts  = 60
)

// Header sizes.
const (
	EthernetLen = 14
	VLANLen     = 4
	IPv4MinLen  = 20
	IPv6Len     = 40
	TCPMinLen   = 20
	UDPLen      = 8
	ICMPLen     = 8
	ARPLen      = 28
)

// MaxExtHeaders bounds the IPv6 extension-header walk.
const MaxExtHeaders = 8

// Flags are boolean facts about a parsed packet.
type Flags uint8

// Packet flags.
const (
	FlagDF         Flags = 1 << iota // IPv4 don't-fragment set
	FlagFragment                     // a fragment (then Parse returned DropIPFragment)
	FlagPorts                        // SrcPort/DstPort are valid (TCP or UDP)
	FlagICMPError                    // an ICMP/ICMPv6 error; Inner describes the quoted packet
	FlagInnerPorts                   // Inner.SrcPort/DstPort are valid
	FlagSLLA                         // neighbour solicitation carries a source link-layer address
)

// Embedded describes the packet quoted by an ICMP error: the packet as it
// was sent (so from the error sender's point of view it is reversed).
type Embedded struct {
	L3Off   int // offset of the quoted IP header in buf
	L4Off   int // offset of the quoted transport header
	End     int // end of the quoted bytes (the end of the ICMP message)
	Proto   uint8
	Version uint8
	Src     [16]byte
	Dst     [16]byte
	SrcPort uint16
	DstPort uint16
}

// L4Len is the number of quoted transport bytes present.
func (e *Embedded) L4Len() int { return e.End - e.L4Off }

// Packet is the decoded view of one frame. The caller owns it and reuses it
// across packets; Parse overwrites every field. All offsets index the buf
// passed to Parse, so the headroom before the frame stays addressable.
type Packet struct {
	L2Off      int // start of the Ethernet header, -1 for frames starting with IP
	L3Off      int // start of the IP (or ARP) header
	L4Off      int // start of the transport header (after IPv6 extension headers)
	PayloadOff int // start of the transport payload (TCP/UDP only; else L4Off)
	End        int // end of the IP packet (Ethernet padding excluded)

	EtherType uint16 // ethertype after any 802.1Q tag (0x0800/0x86dd when no L2)
	VLAN      uint16 // VLAN ID when Tagged
	Tagged    bool   // one 802.1Q / 802.1ad tag present

	Version uint8 // IP version: 4 or 6 (0 for ARP)
	Proto   uint8 // transport protocol after extension headers
	TTL     uint8 // TTL / hop limit as received
	TOS     uint8 // IPv4 TOS / IPv6 traffic class
	Flags   Flags

	FragOff uint16 // fragment offset in bytes (fragments only)
	FragID  uint32 // IPv4 ID or IPv6 fragment ID

	// Src and Dst are the IP addresses in 16-byte form (IPv4-mapped for
	// IPv4, like netip.Addr.As16). For ARP they are the sender and target
	// protocol addresses.
	Src, Dst [16]byte

	SrcPort, DstPort uint16 // when FlagPorts
	TCPFlags         uint8  // TCP flags byte (FIN 0x01 SYN 0x02 RST 0x04 ACK 0x10)

	ICMPType, ICMPCode uint8
	ICMPInfo           uint32 // bytes 4..7 of the ICMP header (MTU of frag-needed, ...)

	// ARPOp is the ARP operation (1 request, 2 reply).
	ARPOp uint16
	// Target is the address asked for by an ARP request or a neighbour
	// solicitation (16-byte form).
	Target [16]byte
	// SLLAOff is the offset of the 6-byte link-layer address to answer:
	// the ARP sender hardware address, or the NS source link-layer option.
	SLLAOff int

	Inner Embedded // when FlagICMPError
}

// TCP flag bits.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
)

// IsV4 reports whether a 16-byte address is IPv4-mapped (::ffff:a.b.c.d).
func IsV4(a *[16]byte) bool {
	return a[10] == 0xff && a[11] == 0xff &&
		a[0]|a[1]|a[2]|a[3]|a[4]|a[5]|a[6]|a[7]|a[8]|a[9] == 0
}

// As16From4 returns the IPv4-mapped 16-byte form of a 4-byte IPv4 address.
func As16From4(b []byte) (a [16]byte) {
	a[10], a[11] = 0xff, 0xff
	copy(a[12:], b[:4])
	return a
}

func set4(a *[16]byte, b []byte) {
	*a = [16]byte{10: 0xff, 11: 0xff}
	copy(a[12:], b[:4])
}

// Ethernet returns the Ethernet view of the frame (nil without L2).
func (p *Packet) Ethernet(buf []byte) Ethernet {
	if p.L2Off < 0 {
		return nil
	}
	return Ethernet(buf[p.L2Off:p.L3Off])
}

// IPv4 returns the IPv4 header view (valid when Version == 4).
func (p *Packet) IPv4(buf []byte) IPv4 { return IPv4(buf[p.L3Off:p.End]) }

// IPv6 returns the IPv6 header view (valid when Version == 6).
func (p *Packet) IPv6(buf []byte) IPv6 { return IPv6(buf[p.L3Off:p.End]) }

// L4 returns the transport bytes (header and payload).
func (p *Packet) L4(buf []byte) []byte { return buf[p.L4Off:p.End] }

// Frame returns the frame bytes from the link (or IP) header to End.
func (p *Packet) Frame(buf []byte) []byte { return buf[p.Start():p.End] }

// Start is the offset of the first header (L2Off, or L3Off without L2).
func (p *Packet) Start() int {
	if p.L2Off >= 0 {
		return p.L2Off
	}
	return p.L3Off
}

// FlowKey is a packed, comparable, pointer-free flow key: addresses in
// 16-byte form, ports, protocol. It is 40 bytes.
type FlowKey struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Proto            uint8
	_                [3]byte
}

// Flow returns the key of the packet's own flow (ports 0 unless TCP/UDP).
func (p *Packet) Flow() FlowKey {
	return FlowKey{Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort, Proto: p.Proto}
}

// InnerFlow returns the key of the flow quoted by an ICMP error, in the
// direction the quoted packet travelled. Reverse it to get the flow of
// the packets that the error's sender would send.
func (p *Packet) InnerFlow() FlowKey {
	e := &p.Inner
	return FlowKey{Src: e.Src, Dst: e.Dst, SrcPort: e.SrcPort, DstPort: e.DstPort, Proto: e.Proto}
}

// Reverse swaps source and destination.
func (k FlowKey) Reverse() FlowKey {
	return FlowKey{Src: k.Dst, Dst: k.Src, SrcPort: k.DstPort, DstPort: k.SrcPort, Proto: k.Proto}
}
