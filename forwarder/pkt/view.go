package pkt

// Zero-copy header views. Each is a byte slice starting at its header;
// accessors read and write fixed offsets. They assume the header was
// validated by Parse (the slice is long enough); on a short slice they
// panic like any out-of-range index, so use them only on parsed packets.

// Ethernet is an Ethernet II header (optionally followed by an 802.1Q tag).
type Ethernet []byte

// Dst returns the destination MAC.
func (e Ethernet) Dst() []byte { return e[0:6] }

// Src returns the source MAC.
func (e Ethernet) Src() []byte { return e[6:12] }

// EtherType returns the ethertype after any one VLAN tag.
func (e Ethernet) EtherType() uint16 {
	t := be16(e[12:])
	if (t == EtherTypeVLAN || t == EtherTypeQinQ) && len(e) >= 18 {
		return be16(e[16:])
	}
	return t
}

// SetMACs writes the destination and source MACs.
func (e Ethernet) SetMACs(dst, src [6]byte) {
	copy(e[0:6], dst[:])
	copy(e[6:12], src[:])
}

// IPv4 is an IPv4 header with its options (and, when sliced so, payload).
type IPv4 []byte

// IPv4 field offsets.
const (
	ipv4TOS      = 1
	ipv4TotalLen = 2
	ipv4ID       = 4
	ipv4Flags    = 6
	ipv4TTL      = 8
	ipv4Proto    = 9
	ipv4Checksum = 10
	ipv4Src      = 12
	ipv4Dst      = 16
)

func (h IPv4) HeaderLen() int          { return int(h[0]&0xf) * 4 }
func (h IPv4) TOS() uint8              { return h[ipv4TOS] }
func (h IPv4) TotalLen() int           { return int(be16(h[ipv4TotalLen:])) }
func (h IPv4) ID() uint16              { return be16(h[ipv4ID:]) }
func (h IPv4) DF() bool                { return h[ipv4Flags]&0x40 != 0 }
func (h IPv4) MF() bool                { return h[ipv4Flags]&0x20 != 0 }
func (h IPv4) FragOffset() int         { return int(be16(h[ipv4Flags:])&0x1fff) * 8 }
func (h IPv4) TTL() uint8              { return h[ipv4TTL] }
func (h IPv4) Protocol() uint8         { return h[ipv4Proto] }
func (h IPv4) Checksum() uint16        { return be16(h[ipv4Checksum:]) }
func (h IPv4) Src() []byte             { return h[ipv4Src : ipv4Src+4] }
func (h IPv4) Dst() []byte             { return h[ipv4Dst : ipv4Dst+4] }
func (h IPv4) SetChecksum(c uint16)    { put16(h[ipv4Checksum:], c) }
func (h IPv4) Payload() []byte         { return h[h.HeaderLen():] }
func (h IPv4) ChecksumValid() bool     { return Fold(Sum(h[:h.HeaderLen()], 0)) == 0xffff }
func (h IPv4) ComputeChecksum() uint16 { return computeIPv4Checksum(h[:h.HeaderLen()]) }

func computeIPv4Checksum(h []byte) uint16 {
	acc := Sum(h[:ipv4Checksum], 0) + Sum(h[ipv4Checksum+2:], 0)
	return ^Fold(acc)
}

// IPv6 is a fixed IPv6 header (and whatever follows it).
type IPv6 []byte

func (h IPv6) TrafficClass() uint8 { return uint8(be16(h[0:]) >> 4) }
func (h IPv6) PayloadLen() int     { return int(be16(h[4:])) }
func (h IPv6) NextHeader() uint8   { return h[6] }
func (h IPv6) HopLimit() uint8     { return h[7] }
func (h IPv6) Src() []byte         { return h[8:24] }
func (h IPv6) Dst() []byte         { return h[24:40] }

// TCP is a TCP header and segment.
type TCP []byte

func (h TCP) SrcPort() uint16  { return be16(h[0:]) }
func (h TCP) DstPort() uint16  { return be16(h[2:]) }
func (h TCP) Seq() uint32      { return be32(h[4:]) }
func (h TCP) Ack() uint32      { return be32(h[8:]) }
func (h TCP) DataOffset() int  { return int(h[12]>>4) * 4 }
func (h TCP) Flags() uint8     { return h[13] }
func (h TCP) Checksum() uint16 { return be16(h[16:]) }

// UDP is a UDP header and datagram.
type UDP []byte

func (h UDP) SrcPort() uint16  { return be16(h[0:]) }
func (h UDP) DstPort() uint16  { return be16(h[2:]) }
func (h UDP) Length() int      { return int(be16(h[4:])) }
func (h UDP) Checksum() uint16 { return be16(h[6:]) }

// ICMP is an ICMP or ICMPv6 message.
type ICMP []byte

func (h ICMP) Type() uint8      { return h[0] }
func (h ICMP) Code() uint8      { return h[1] }
func (h ICMP) Checksum() uint16 { return be16(h[2:]) }
func (h ICMP) Info() uint32     { return be32(h[4:]) }
func (h ICMP) Body() []byte     { return h[8:] }

// ARP is an Ethernet/IPv4 ARP message.
type ARP []byte

func (h ARP) Op() uint16       { return be16(h[6:]) }
func (h ARP) SenderHW() []byte { return h[8:14] }
func (h ARP) SenderIP() []byte { return h[14:18] }
func (h ARP) TargetHW() []byte { return h[18:24] }
func (h ARP) TargetIP() []byte { return h[24:28] }
