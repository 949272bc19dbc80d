package pkt

// checkTTL reports DropTTLExceeded when the packet may not be forwarded
// (TTL / hop limit <= 1), and DropNotForwardable for neighbour-discovery
// messages, which are link-local (RFC 4861 requires hop limit 255, so a
// forwarded one would be invalid). It changes nothing.
func checkTTL(p *Packet) Drop {
	if p.Proto == ProtoICMPv6 && p.ICMPType >= 133 && p.ICMPType <= 137 {
		return DropNotForwardable
	}
	if p.TTL <= 1 {
		return DropTTLExceeded
	}
	return DropNone
}

// decTTL decrements the TTL (fixing the IPv4 header checksum) or the hop
// limit. The caller has called checkTTL.
func decTTL(buf []byte, p *Packet) {
	h := buf[p.L3Off:]
	if p.Version == 4 {
		old := uint16(h[ipv4TTL])<<8 | uint16(h[ipv4Proto])
		h[ipv4TTL]--
		put16(h[ipv4Checksum:], Update16(be16(h[ipv4Checksum:]), old, old-0x100))
	} else {
		h[7]--
	}
	p.TTL--
}

// DecTTL decrements the TTL / hop limit of a parsed IP packet and fixes the
// IPv4 header checksum. With TTL <= 1 it changes nothing and returns
// DropTTLExceeded: answer with BuildTimeExceeded.
func DecTTL(buf []byte, p *Packet) Drop {
	if p.Version == 0 {
		return DropNotIP
	}
	if d := checkTTL(p); d != DropNone {
		return d
	}
	decTTL(buf, p)
	return DropNone
}

// SetMACs writes the Ethernet destination and source of the frame whose
// Ethernet header starts at buf[l2off:].
func SetMACs(buf []byte, l2off int, dst, src [6]byte) {
	copy(buf[l2off:l2off+6], dst[:])
	copy(buf[l2off+6:l2off+12], src[:])
}

// DR forwards by direct routing: it decrements the TTL / hop limit (fixing
// the IPv4 header checksum) and sets the MACs (dst = the real server's,
// src = the director's). Addresses and ports are untouched, so any IP
// packet, ICMP errors included, can take this path. The frame is
// buf[p.L2Off:p.End].
func DR(buf []byte, p *Packet, dst, src [6]byte) Drop {
	if p.Version == 0 {
		return DropNotIP
	}
	if p.L2Off < 0 {
		return DropNoL2Header
	}
	if d := checkTTL(p); d != DropNone {
		return d
	}
	decTTL(buf, p)
	SetMACs(buf, p.L2Off, dst, src)
	return DropNone
}

func isLoopback(a *[16]byte) bool {
	if IsV4(a) {
		return a[12] == 127
	}
	return *a == [16]byte{15: 1}
}

// CheckMTU applies IPVS's egress MTU rule to a packet about to leave on a
// link (or path) of the given MTU, for NAT and DR (Encap applies it to
// the tunnel itself): a packet that fits gives DropNone; a bigger IPv4
// packet with DF, or any bigger IPv6 packet, gives DropTooBig (answer
// with BuildTooBig and mtu) unless it is an ICMP error (DropTooBigICMP,
// not answered); a bigger IPv4 packet without DF gives
// DropNeedsFragmentation, since ulvs does not fragment.
func CheckMTU(p *Packet, mtu int) Drop {
	if p.End-p.L3Off <= mtu {
		return DropNone
	}
	switch {
	case p.Flags&FlagICMPError != 0:
		return DropTooBigICMP
	case p.Version == 6 || p.Flags&FlagDF != 0:
		return DropTooBig
	}
	return DropNeedsFragmentation
}

// NATIn rewrites a client's packet to a real server: destination address
// to daddr and destination port to dport; TTL decremented; IPv4 header and
// TCP/UDP checksums updated incrementally (a zero UDP checksum is computed
// in full; a UDP result of 0 is sent as 0xffff). The link header is left
// alone (use SetMACs). A destination in 127/8 or ::1 is refused
// (DropNATToLoopback), as IPVS refuses it. On any Drop the packet is
// unchanged.
func NATIn(buf []byte, p *Packet, daddr [16]byte, dport uint16) Drop {
	return nat(buf, p, &daddr, dport, true)
}

// NATOut rewrites a real server's reply to the client: source address to
// vaddr and source port to vport, with the checksum and TTL rules of
// NATIn.
func NATOut(buf []byte, p *Packet, vaddr [16]byte, vport uint16) Drop {
	return nat(buf, p, &vaddr, vport, false)
}

func nat(buf []byte, p *Packet, addr *[16]byte, port uint16, dst bool) Drop {
	if p.Version == 0 {
		return DropNotIP
	}
	if IsV4(addr) != (p.Version == 4) {
		return DropFamilyMismatch
	}
	if p.Flags&FlagPorts == 0 {
		return DropUnsupportedProto
	}
	if dst && isLoopback(addr) {
		return DropNATToLoopback
	}
	if d := checkTTL(p); d != DropNone {
		return d
	}
	decTTL(buf, p)
	l4 := buf[p.L4Off:p.End]
	portOff, csumOff := 0, 16
	if dst {
		portOff = 2
	}
	if p.Proto == ProtoUDP {
		csumOff = 6
	}
	oldPort := be16(l4[portOff:])
	put16(l4[portOff:], port)
	csum := be16(l4[csumOff:])
	fullUDP := p.Proto == ProtoUDP && csum == 0
	if !fullUDP {
		csum = Update16(csum, oldPort, port)
	}
	h := buf[p.L3Off:]
	if p.Version == 4 {
		aoff := ipv4Src
		if dst {
			aoff = ipv4Dst
		}
		old, nw := be32(h[aoff:]), be32(addr[12:])
		put32(h[aoff:], nw)
		put16(h[ipv4Checksum:], Update32(be16(h[ipv4Checksum:]), old, nw))
		if !fullUDP {
			csum = Update32(csum, old, nw)
		}
	} else {
		aoff := 8
		if dst {
			aoff = 24
		}
		var old [16]byte
		copy(old[:], h[aoff:aoff+16])
		copy(h[aoff:aoff+16], addr[:])
		if !fullUDP {
			csum = Update128(csum, &old, addr)
		}
	}
	if dst {
		p.Dst, p.DstPort = *addr, port
	} else {
		p.Src, p.SrcPort = *addr, port
	}
	if fullUDP {
		put16(l4[6:], 0)
		ul := int(be16(l4[4:])) // validated by Parse: 8 <= ul <= len(l4)
		csum = ^Fold(Sum(l4[:ul], PseudoSum(&p.Src, &p.Dst, p.Version == 4, ProtoUDP, ul)))
	}
	if p.Proto == ProtoUDP && csum == 0 {
		csum = 0xffff
	}
	put16(l4[csumOff:], csum)
	return DropNone
}

// FillL4Checksum computes the TCP, UDP, ICMP or ICMPv6 checksum of a
// parsed packet in full and stores it (a UDP result of 0 as 0xffff). Use
// it for frames whose checksum the sender left to offload (AF_PACKET
// TP_STATUS_CSUMNOTREADY, a partial checksum holding only the
// pseudo-header sum): the incremental updates of the rewrites assume a
// complete checksum. Other protocols are left alone (DropUnsupportedProto).
func FillL4Checksum(buf []byte, p *Packet) Drop {
	if p.Version == 0 {
		return DropNotIP
	}
	l4 := buf[p.L4Off:p.End]
	v4 := p.Version == 4
	var off int
	var acc uint64
	switch {
	case p.Proto == ProtoTCP && p.Flags&FlagPorts != 0:
		off = 16
		acc = PseudoSum(&p.Src, &p.Dst, v4, ProtoTCP, len(l4))
	case p.Proto == ProtoUDP && p.Flags&FlagPorts != 0:
		off = 6
		l4 = l4[:be16(l4[4:])]
		acc = PseudoSum(&p.Src, &p.Dst, v4, ProtoUDP, len(l4))
	case p.Proto == ProtoICMP && v4 && len(l4) >= ICMPLen:
		off = 2
	case p.Proto == ProtoICMPv6 && !v4 && len(l4) >= ICMPLen:
		off = 2
		acc = PseudoSum(&p.Src, &p.Dst, false, ProtoICMPv6, len(l4))
	default:
		return DropUnsupportedProto
	}
	put16(l4[off:], 0)
	c := ^Fold(Sum(l4, acc))
	if c == 0 && p.Proto == ProtoUDP {
		c = 0xffff
	}
	put16(l4[off:], c)
	return DropNone
}
