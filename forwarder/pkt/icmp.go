package pkt

// ICMP types used by the builders.
const (
	ICMPDestUnreach    = 3
	ICMPTimeExceeded   = 11
	ICMPv6DestUnreach  = 1
	ICMPv6PacketTooBig = 2
	ICMPv6TimeExceeded = 3
	ICMPv6ParamProblem = 4
	icmpCodeFragNeeded = 4
	icmpDefaultTTL     = 64
	icmp4MaxError      = 576  // RFC 1812 4.3.2.3: total length of an ICMPv4 error
	icmp6MaxError      = 1280 // RFC 4443 2.4(c): the IPv6 minimum MTU
)

// BuildICMPError writes into out an IP packet (no link header) carrying an
// ICMP (IPv4) or ICMPv6 error of type typ and code, with info in bytes 4..7
// of the ICMP header, from src to the source of the parsed packet p in buf,
// quoting p from its IP header: as much as fits in 576 bytes in all (IPv4,
// RFC 1812) or 1280 (IPv6, RFC 4443), and at least the IP header plus 8
// transport bytes (RFC 792). TTL / hop limit 64. It returns the length.
//
// It refuses (DropICMPSuppressed) to answer an ICMP error, a fragment, a
// packet from an unspecified, broadcast, multicast or loopback source, or
// (except IPv6 packet-too-big) a packet to a multicast or broadcast
// address. Call it before rewriting p: every rewrite leaves the packet
// unchanged when it returns the Drop that asks for an ICMP answer.
func BuildICMPError(out []byte, buf []byte, p *Packet, src [16]byte, typ, code uint8, info uint32) (int, Drop) {
	if p.Version == 0 {
		return 0, DropNotIP
	}
	v4 := p.Version == 4
	if IsV4(&src) != v4 {
		return 0, DropFamilyMismatch
	}
	if p.Flags&(FlagICMPError|FlagFragment) != 0 || !errorAllowed(p, v4, typ) {
		return 0, DropICMPSuppressed
	}
	hdr, limit := IPv4MinLen+ICMPLen, icmp4MaxError
	if !v4 {
		hdr, limit = IPv6Len+ICMPLen, icmp6MaxError
	}
	q := p.End - p.L3Off
	if q > limit-hdr {
		q = limit - hdr
	}
	if q > len(out)-hdr {
		q = len(out) - hdr
	}
	need := p.End - p.L3Off
	if p.L4Off >= 0 && p.L4Off+8-p.L3Off < need {
		need = p.L4Off + 8 - p.L3Off
	}
	if q < need || q < 0 {
		return 0, DropBufferTooSmall
	}
	n := hdr + q
	var ic []byte
	if v4 {
		h := out[:IPv4MinLen]
		h[0] = 0x45
		h[1] = 0xc0 // precedence internetwork control, as Linux sends errors
		put16(h[2:], uint16(n))
		put32(h[4:], 0)
		h[8] = icmpDefaultTTL
		h[9] = ProtoICMP
		put16(h[10:], 0)
		copy(h[12:16], src[12:])
		copy(h[16:20], p.Src[12:])
		put16(h[10:], ^Fold(sum20(h)))
		ic = out[IPv4MinLen:n]
	} else {
		h := out[:IPv6Len]
		put32(h[0:], 6<<28)
		put16(h[4:], uint16(n-IPv6Len))
		h[6] = ProtoICMPv6
		h[7] = icmpDefaultTTL
		copy(h[8:24], src[:])
		copy(h[24:40], p.Src[:])
		ic = out[IPv6Len:n]
	}
	ic[0], ic[1] = typ, code
	put16(ic[2:], 0)
	put32(ic[4:], info)
	copy(ic[ICMPLen:], buf[p.L3Off:p.L3Off+q])
	var acc uint64
	if !v4 {
		acc = PseudoSum(&src, &p.Src, false, ProtoICMPv6, len(ic))
	}
	put16(ic[2:], ^Fold(Sum(ic, acc)))
	return n, DropNone
}

func errorAllowed(p *Packet, v4 bool, typ uint8) bool {
	if v4 {
		s, d := p.Src[12:], p.Dst[12:]
		if s[0] == 0 || s[0] == 127 || s[0] >= 224 {
			return false
		}
		return d[0] < 224
	}
	var zero [16]byte
	if p.Src == zero || p.Src[0] == 0xff || IsV4(&p.Src) {
		return false
	}
	if p.Src == [16]byte{15: 1} {
		return false // ::1
	}
	return p.Dst[0] != 0xff || typ == ICMPv6PacketTooBig
}

// BuildTimeExceeded builds the time-exceeded answer (ICMP 11/0, ICMPv6
// 3/0) to a packet a rewrite refused with DropTTLExceeded.
func BuildTimeExceeded(out []byte, buf []byte, p *Packet, src [16]byte) (int, Drop) {
	if p.Version == 6 {
		return BuildICMPError(out, buf, p, src, ICMPv6TimeExceeded, 0, 0)
	}
	return BuildICMPError(out, buf, p, src, ICMPTimeExceeded, 0, 0)
}

// BuildTooBig builds the answer to DropTooBig: ICMP fragmentation needed
// (3/4) with the next-hop MTU, or ICMPv6 packet too big with the MTU.
func BuildTooBig(out []byte, buf []byte, p *Packet, src [16]byte, mtu int) (int, Drop) {
	if p.Version == 6 {
		return BuildICMPError(out, buf, p, src, ICMPv6PacketTooBig, 0, uint32(mtu))
	}
	return BuildICMPError(out, buf, p, src, ICMPDestUnreach, icmpCodeFragNeeded, uint32(mtu)&0xffff)
}

// BuildPortUnreachable builds ICMP port unreachable (3/3) or ICMPv6
// destination unreachable, port unreachable (1/4), as IPVS's nat_icmp_send
// does for real-server packets with no connection.
func BuildPortUnreachable(out []byte, buf []byte, p *Packet, src [16]byte) (int, Drop) {
	if p.Version == 6 {
		return BuildICMPError(out, buf, p, src, ICMPv6DestUnreach, 4, 0)
	}
	return BuildICMPError(out, buf, p, src, ICMPDestUnreach, 3, 0)
}

// ICMPNATIn translates an ICMP error sent by a client about a packet of a
// NAT connection (the quoted packet went VIP:vport -> client; look the
// connection up with p.InnerFlow().Reverse()) so that it reaches the real
// server: outer destination -> daddr; quoted source address and port ->
// daddr:dport. It decrements the TTL and fixes the outer IPv4 header
// checksum, the quoted IPv4 header checksum and the quoted TCP/UDP
// checksum (when quoted; a zero UDP checksum stays 0) incrementally, and
// recomputes the ICMP/ICMPv6 checksum. On any Drop nothing is changed.
func ICMPNATIn(buf []byte, p *Packet, daddr [16]byte, dport uint16) Drop {
	return icmpNAT(buf, p, &daddr, dport, true)
}

// ICMPNATOut translates an ICMP error coming from the real-server side
// about a packet of a NAT connection (the quoted packet went client ->
// daddr:dport; look it up with p.InnerFlow().Reverse() in the real-server
// index) so that it reaches the client: outer source -> vaddr; quoted
// destination address and port -> vaddr:vport. Checksums as ICMPNATIn.
func ICMPNATOut(buf []byte, p *Packet, vaddr [16]byte, vport uint16) Drop {
	return icmpNAT(buf, p, &vaddr, vport, false)
}

func icmpNAT(buf []byte, p *Packet, addr *[16]byte, port uint16, in bool) Drop {
	if p.Flags&FlagICMPError == 0 {
		return DropNotICMPError
	}
	v4 := p.Version == 4
	if IsV4(addr) != v4 {
		return DropFamilyMismatch
	}
	if p.Flags&FlagInnerPorts == 0 {
		return DropUnsupportedProto
	}
	if d := checkTTL(p); d != DropNone {
		return d
	}
	decTTL(buf, p)
	e := &p.Inner
	h, eh, el4 := buf[p.L3Off:], buf[e.L3Off:], buf[e.L4Off:e.End]
	// Outer: in -> destination, out -> source. Quoted: in -> source, out ->
	// destination (the quoted packet travelled the other way).
	outerA, innerA, portOff := ipv4Src, ipv4Dst, 2
	if in {
		outerA, innerA, portOff = ipv4Dst, ipv4Src, 0
	}
	csumOff, hasCsum := -1, false
	switch e.Proto {
	case ProtoTCP:
		csumOff = 16
		hasCsum = len(el4) >= 18
	case ProtoUDP:
		csumOff = 6
		hasCsum = be16(el4[6:]) != 0
	}
	var l4c uint16
	if hasCsum {
		l4c = be16(el4[csumOff:])
	}
	oldPort := be16(el4[portOff:])
	put16(el4[portOff:], port)
	if hasCsum {
		l4c = Update16(l4c, oldPort, port)
	}
	if v4 {
		nw := be32(addr[12:])
		old := be32(h[outerA:])
		put32(h[outerA:], nw)
		put16(h[ipv4Checksum:], Update32(be16(h[ipv4Checksum:]), old, nw))
		old = be32(eh[innerA:])
		put32(eh[innerA:], nw)
		put16(eh[ipv4Checksum:], Update32(be16(eh[ipv4Checksum:]), old, nw))
		if hasCsum {
			l4c = Update32(l4c, old, nw)
		}
	} else {
		outerA, innerA = v6AddrOff(outerA), v6AddrOff(innerA)
		copy(h[outerA:outerA+16], addr[:])
		var old [16]byte
		copy(old[:], eh[innerA:innerA+16])
		copy(eh[innerA:innerA+16], addr[:])
		if hasCsum {
			l4c = Update128(l4c, &old, addr)
		}
	}
	if hasCsum {
		if e.Proto == ProtoUDP && l4c == 0 {
			l4c = 0xffff
		}
		put16(el4[csumOff:], l4c)
	}
	if in {
		p.Dst = *addr
		e.Src, e.SrcPort = *addr, port
	} else {
		p.Src = *addr
		e.Dst, e.DstPort = *addr, port
	}
	ic := buf[p.L4Off:p.End]
	put16(ic[2:], 0)
	var acc uint64
	if !v4 {
		acc = PseudoSum(&p.Src, &p.Dst, false, ProtoICMPv6, len(ic))
	}
	put16(ic[2:], ^Fold(Sum(ic, acc)))
	return DropNone
}

// v6AddrOff maps the IPv4 source/destination offset to IPv6's.
func v6AddrOff(v4off int) int {
	if v4off == ipv4Src {
		return 8
	}
	return 24
}

// ParseTunnelError decodes, into q, the client packet quoted inside an
// ICMP error p about one of the director's own IP-in-IP packets (p.Inner
// is director -> real server with protocol 4 or 41). IPVS handles these
// (spec §5): a frag-needed / packet-too-big updates the path MTU and, when
// the client's packet had DF (or is IPv6), is answered to the client with
// BuildTooBig(out, buf, q, src, mtu) where mtu is the reported MTU (or the
// cached route MTU) minus the outer header (20 or 40) when above 88; other
// errors are relayed to the client with the same type and code
// (BuildICMPError on q). q.Flow() is the client's flow as it reached the
// director, the key for the inbound connection lookup.
//
// q describes a possibly truncated packet: L2Off is -1, End is the end of
// the quote, and only the IP header and the first 8 transport bytes are
// guaranteed present. q is meant for lookup and for quoting, not for the
// rewrites. It returns DropNotICMPError unless p quotes a tunnel packet,
// and DropBadICMPEmbedded when the quote is too short.
func ParseTunnelError(buf []byte, p *Packet, q *Packet) Drop {
	if p.Flags&FlagICMPError == 0 || p.Inner.Proto != ProtoIPIP && p.Inner.Proto != ProtoIPv6 {
		return DropNotICMPError
	}
	var t Packet
	t.End = p.Inner.End
	off := p.Inner.L4Off
	if off >= t.End {
		return DropBadICMPEmbedded
	}
	var d Drop
	switch {
	case p.Inner.Proto == ProtoIPIP && buf[off]>>4 == 4:
		d = parseEmbedded4(buf, off, &t)
	case p.Inner.Proto == ProtoIPv6 && buf[off]>>4 == 6:
		d = parseEmbedded6(buf, off, &t)
	default:
		return DropBadICMPEmbedded
	}
	if d != DropNone {
		return d
	}
	e := &t.Inner
	*q = Packet{L2Off: -1, L3Off: e.L3Off, L4Off: e.L4Off, PayloadOff: e.L4Off, End: e.End, SLLAOff: -1,
		Version: e.Version, Proto: e.Proto, Src: e.Src, Dst: e.Dst, SrcPort: e.SrcPort, DstPort: e.DstPort}
	q.EtherType = EtherTypeIPv4
	h := buf[e.L3Off:]
	if e.Version == 4 {
		q.TTL, q.TOS = h[ipv4TTL], h[ipv4TOS]
		if h[ipv4Flags]&0x40 != 0 {
			q.Flags |= FlagDF
		}
	} else {
		q.EtherType = EtherTypeIPv6
		q.TTL, q.TOS = h[7], uint8(be16(h[0:])>>4)
	}
	if t.Flags&FlagInnerPorts != 0 {
		q.Flags |= FlagPorts
	}
	return DropNone
}
