package pkt

// ParseEthernet decodes the Ethernet frame at buf[off:] (buf ends where the
// frame ends) into p. It accepts one 802.1Q/802.1ad tag, then IPv4, IPv6 or
// ARP. It returns DropNone when p describes a valid packet, or the reason.
// On DropIPFragment the IP fields (addresses, Proto, FragOff, FragID) are
// filled in. Parse never allocates and never panics.
func ParseEthernet(buf []byte, off int, p *Packet) Drop {
	*p = Packet{L2Off: off, L3Off: -1, L4Off: -1, PayloadOff: -1, End: -1, SLLAOff: -1}
	if off < 0 || off > len(buf) || len(buf)-off < EthernetLen {
		p.L2Off = -1
		return DropTruncatedEthernet
	}
	et := be16(buf[off+12:])
	l3 := off + EthernetLen
	if et == EtherTypeVLAN || et == EtherTypeQinQ {
		if len(buf)-l3 < VLANLen {
			return DropTruncatedVLAN
		}
		p.Tagged = true
		p.VLAN = be16(buf[l3:]) & 0x0fff
		et = be16(buf[l3+2:])
		l3 += VLANLen
	}
	p.EtherType = et
	switch et {
	case EtherTypeIPv4:
		return parseIPv4(buf, l3, p)
	case EtherTypeIPv6:
		return parseIPv6(buf, l3, p)
	case EtherTypeARP:
		return parseARP(buf, l3, p)
	}
	return DropNotIP
}

// ParseIP decodes the IP packet at buf[off:] (a TUN-device frame: no link
// header; buf ends where the packet ends) into p. See ParseEthernet.
func ParseIP(buf []byte, off int, p *Packet) Drop {
	*p = Packet{L2Off: -1, L3Off: -1, L4Off: -1, PayloadOff: -1, End: -1, SLLAOff: -1}
	if off < 0 || off >= len(buf) {
		return DropTruncatedIPv4
	}
	switch buf[off] >> 4 {
	case 4:
		p.EtherType = EtherTypeIPv4
		return parseIPv4(buf, off, p)
	case 6:
		p.EtherType = EtherTypeIPv6
		return parseIPv6(buf, off, p)
	}
	return DropBadIPVersion
}

func parseARP(buf []byte, off int, p *Packet) Drop {
	b := buf[off:]
	if len(b) < ARPLen {
		return DropTruncatedARP
	}
	if be16(b[0:]) != 1 || be16(b[2:]) != EtherTypeIPv4 || b[4] != 6 || b[5] != 4 {
		return DropBadARP
	}
	p.L3Off = off
	p.End = off + ARPLen
	p.ARPOp = be16(b[6:])
	p.SLLAOff = off + 8
	set4(&p.Src, b[14:18])
	set4(&p.Dst, b[24:28])
	p.Target = p.Dst
	return DropNone
}

func parseIPv4(buf []byte, off int, p *Packet) Drop {
	b := buf[off:]
	if len(b) < IPv4MinLen {
		return DropTruncatedIPv4
	}
	if b[0]>>4 != 4 {
		return DropBadIPVersion
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < IPv4MinLen {
		return DropBadIPv4IHL
	}
	if len(b) < ihl {
		return DropTruncatedIPv4
	}
	tot := int(be16(b[ipv4TotalLen:]))
	if tot < ihl || tot > len(b) {
		return DropBadIPv4Length
	}
	var acc uint64
	if ihl == IPv4MinLen {
		acc = sum20(b)
	} else {
		acc = Sum(b[:ihl], 0)
	}
	if Fold(acc) != 0xffff {
		return DropBadIPv4Checksum
	}
	p.Version = 4
	p.L3Off = off
	p.End = off + tot
	p.TOS = b[ipv4TOS]
	p.TTL = b[ipv4TTL]
	p.Proto = b[ipv4Proto]
	set4(&p.Src, b[ipv4Src:])
	set4(&p.Dst, b[ipv4Dst:])
	ff := be16(b[ipv4Flags:])
	p.FragID = uint32(be16(b[ipv4ID:]))
	if ff&0x4000 != 0 {
		p.Flags |= FlagDF
	}
	if ff&0x3fff != 0 {
		p.Flags |= FlagFragment
		p.FragOff = (ff & 0x1fff) * 8
		return DropIPFragment
	}
	return parseL4(buf, off+ihl, p)
}

func parseIPv6(buf []byte, off int, p *Packet) Drop {
	b := buf[off:]
	if len(b) < IPv6Len {
		return DropTruncatedIPv6
	}
	if b[0]>>4 != 6 {
		return DropBadIPVersion
	}
	plen := int(be16(b[4:]))
	if plen == 0 && b[6] == ProtoHopByHop || IPv6Len+plen > len(b) {
		return DropBadIPv6Length
	}
	p.Version = 6
	p.L3Off = off
	p.End = off + IPv6Len + plen
	p.TOS = uint8(be16(b[0:]) >> 4)
	p.TTL = b[7]
	copy(p.Src[:], b[8:24])
	copy(p.Dst[:], b[24:40])
	x := walkExt6(buf[:p.End], off+IPv6Len, b[6])
	if x.drop != DropNone {
		return x.drop
	}
	p.Proto = x.proto
	if x.frag {
		p.FragID = x.fragID
		if x.fragOff != 0 || x.more {
			p.Flags |= FlagFragment
			p.FragOff = x.fragOff
			return DropIPFragment
		}
	}
	return parseL4(buf, x.l4off, p)
}

type ext6 struct {
	l4off   int
	proto   uint8
	frag    bool
	more    bool
	fragOff uint16
	fragID  uint32
	drop    Drop
}

// walkExt6 follows the IPv6 extension-header chain starting at off with
// next header nh, within b. It stops at the first header that is not
// hop-by-hop, routing, fragment, destination options or AH, and after
// MaxExtHeaders headers at most.
func walkExt6(b []byte, off int, nh uint8) (x ext6) {
	for i := 0; ; i++ {
		switch nh {
		case ProtoHopByHop, ProtoRouting, ProtoDstOpts, ProtoFragment, ProtoAH:
		default:
			x.l4off, x.proto = off, nh
			return x
		}
		if i == MaxExtHeaders {
			x.drop = DropIPv6ExtLimit
			return x
		}
		if len(b)-off < 8 {
			x.drop = DropBadIPv6ExtHeader
			return x
		}
		var n int
		switch nh {
		case ProtoFragment:
			n = 8
			fo := be16(b[off+2:])
			x.frag = true
			x.fragOff = fo & 0xfff8
			x.more = fo&1 != 0
			x.fragID = be32(b[off+4:])
		case ProtoAH:
			n = (int(b[off+1]) + 2) * 4
		default:
			n = (int(b[off+1]) + 1) * 8
		}
		if len(b)-off < n {
			x.drop = DropBadIPv6ExtHeader
			return x
		}
		nh = b[off]
		off += n
	}
}

// isICMPv4Error reports the ICMP types handled as errors quoting a packet:
// destination unreachable, source quench, time exceeded, parameter problem.
func isICMPv4Error(t uint8) bool { return t == 3 || t == 4 || t == 11 || t == 12 }

// ICMPv6 neighbour-discovery types.
const (
	icmp6NS = 135
	icmp6NA = 136
)

func parseL4(buf []byte, off int, p *Packet) Drop {
	p.L4Off = off
	p.PayloadOff = off
	b := buf[off:p.End]
	switch p.Proto {
	case ProtoTCP:
		if len(b) < TCPMinLen {
			return DropTruncatedTCP
		}
		doff := int(b[12]>>4) * 4
		if doff < TCPMinLen || doff > len(b) {
			return DropBadTCPDataOffset
		}
		p.SrcPort, p.DstPort = be16(b[0:]), be16(b[2:])
		p.TCPFlags = b[13]
		p.PayloadOff = off + doff
		p.Flags |= FlagPorts
	case ProtoUDP:
		if len(b) < UDPLen {
			return DropTruncatedUDP
		}
		if ul := int(be16(b[4:])); ul < UDPLen || ul > len(b) {
			return DropBadUDPLength
		}
		p.SrcPort, p.DstPort = be16(b[0:]), be16(b[2:])
		p.PayloadOff = off + UDPLen
		p.Flags |= FlagPorts
	case ProtoICMP:
		if p.Version != 4 {
			return DropNone
		}
		if len(b) < ICMPLen {
			return DropTruncatedICMP
		}
		p.ICMPType, p.ICMPCode, p.ICMPInfo = b[0], b[1], be32(b[4:])
		if !isICMPv4Error(b[0]) {
			return DropNone
		}
		if Fold(Sum(b, 0)) != 0xffff {
			return DropBadICMPChecksum
		}
		p.Flags |= FlagICMPError
		return parseEmbedded4(buf, off+ICMPLen, p)
	case ProtoICMPv6:
		if p.Version != 6 {
			return DropNone
		}
		if len(b) < ICMPLen {
			return DropTruncatedICMP
		}
		t := b[0]
		p.ICMPType, p.ICMPCode, p.ICMPInfo = t, b[1], be32(b[4:])
		if t >= 128 && t != icmp6NS {
			return DropNone
		}
		if Fold(Sum(b, PseudoSum(&p.Src, &p.Dst, false, ProtoICMPv6, len(b)))) != 0xffff {
			return DropBadICMPChecksum
		}
		if t == icmp6NS {
			return parseNS(buf, off, p)
		}
		p.Flags |= FlagICMPError
		return parseEmbedded6(buf, off+ICMPLen, p)
	}
	return DropNone
}

// parseNS validates a neighbour solicitation (RFC 4861 7.1.1) and records
// its target and source link-layer address option.
func parseNS(buf []byte, off int, p *Packet) Drop {
	b := buf[off:p.End]
	if p.TTL != 255 || b[1] != 0 || len(b) < 24 {
		return DropBadNDP
	}
	copy(p.Target[:], b[8:24])
	if p.Target[0] == 0xff {
		return DropBadNDP // multicast target
	}
	for o := 24; o < len(b); {
		if len(b)-o < 2 || b[o+1] == 0 {
			return DropBadNDP
		}
		n := int(b[o+1]) * 8
		if len(b)-o < n {
			return DropBadNDP
		}
		if b[o] == 1 && n == 8 {
			p.SLLAOff = off + o + 2
			p.Flags |= FlagSLLA
		}
		o += n
	}
	var zero [16]byte
	if p.Src == zero && p.Flags&FlagSLLA != 0 {
		return DropBadNDP // DAD probes carry no source link-layer option
	}
	return DropNone
}

func parseEmbedded4(buf []byte, off int, p *Packet) Drop {
	e := &p.Inner
	b := buf[off:p.End]
	if len(b) < IPv4MinLen || b[0]>>4 != 4 {
		return DropBadICMPEmbedded
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < IPv4MinLen || len(b) < ihl {
		return DropBadICMPEmbedded
	}
	tot := int(be16(b[ipv4TotalLen:]))
	if tot < ihl {
		return DropBadICMPEmbedded
	}
	e.Version = 4
	e.L3Off = off
	e.L4Off = off + ihl
	e.End = p.End
	if off+tot < e.End {
		e.End = off + tot
	}
	e.Proto = b[ipv4Proto]
	set4(&e.Src, b[ipv4Src:])
	set4(&e.Dst, b[ipv4Dst:])
	if be16(b[ipv4Flags:])&0x1fff != 0 {
		return DropICMPEmbeddedFragment
	}
	return embeddedPorts(buf, p)
}

func parseEmbedded6(buf []byte, off int, p *Packet) Drop {
	e := &p.Inner
	b := buf[off:p.End]
	if len(b) < IPv6Len || b[0]>>4 != 6 {
		return DropBadICMPEmbedded
	}
	e.Version = 6
	e.L3Off = off
	e.End = p.End
	if plen := int(be16(b[4:])); plen != 0 && off+IPv6Len+plen < e.End {
		e.End = off + IPv6Len + plen
	}
	copy(e.Src[:], b[8:24])
	copy(e.Dst[:], b[24:40])
	x := walkExt6(buf[:e.End], off+IPv6Len, b[6])
	if x.drop != DropNone {
		return DropBadICMPEmbedded
	}
	e.L4Off = x.l4off
	e.Proto = x.proto
	if x.frag && x.fragOff != 0 {
		return DropICMPEmbeddedFragment
	}
	return embeddedPorts(buf, p)
}

func embeddedPorts(buf []byte, p *Packet) Drop {
	e := &p.Inner
	if e.Proto != ProtoTCP && e.Proto != ProtoUDP {
		return DropNone
	}
	if e.End-e.L4Off < 8 {
		return DropBadICMPEmbedded
	}
	e.SrcPort = be16(buf[e.L4Off:])
	e.DstPort = be16(buf[e.L4Off+2:])
	p.Flags |= FlagInnerPorts
	return DropNone
}
