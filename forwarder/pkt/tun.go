package pkt

// Tunnel describes the IP-in-IP path to one real server.
type Tunnel struct {
	// Src is the director's address (the route's preferred source) and Dst
	// the real server's, both IPv4-mapped (outer IPv4) or both IPv6.
	Src, Dst [16]byte
	// MTU is the MTU of the route to the real server: the outer packet
	// must fit in it. The tunnel MTU offered to senders is MTU minus the
	// outer header (20 or 40 bytes); see InnerMTU.
	MTU int
	// PMTUDisc mirrors IPVS's pmtu_disc sysctl (default on): copy DF from
	// an inner IPv4 header and enforce it.
	PMTUDisc bool
}

func (t *Tunnel) outerLen() int {
	if IsV4(&t.Dst) {
		return IPv4MinLen
	}
	return IPv6Len
}

// InnerMTU is the largest inner packet the tunnel carries: MTU - 20 for an
// IPv4 outer header, MTU - 40 for IPv6. Report it in frag-needed /
// packet-too-big answers to DropTooBig.
func (t *Tunnel) InnerMTU() int { return t.MTU - t.outerLen() }

// Encap encapsulates the parsed IP packet for the real server t.Dst, as
// IPVS's tunnel method does (spec §5):
//   - the inner TTL / hop limit is decremented (IPv4 header checksum fixed);
//   - an outer IPv4 header (IHL 5, protocol 4, or 41 for inner IPv6) or
//     IPv6 header (next header 4/41, flow label 0) is written in the
//     headroom just before the inner header: TOS / traffic class = inner
//     DSCP and ECN, except inner CE becomes ECT(0); DF copied from an inner
//     IPv4 header when PMTUDisc (always set for inner IPv6, which routers
//     may not fragment); TTL = the inner TTL after decrement; IPv4 ID = id
//     (a per-worker counter supplied by the caller); source t.Src, dest
//     t.Dst;
//   - the Ethernet header (with any VLAN tag) is moved in front of the
//     outer header and its ethertype set for the outer family; MACs are
//     left for the caller (SetMACs at the returned start).
//
// It returns the new frame as buf[start:end]. The payload is not copied.
// Checks, in order, none of which changes the packet: TTL <= 1 ->
// DropTTLExceeded; tunnel MTU below 68 (inner IPv4) / 1280 (inner IPv6) ->
// DropBadTunnelMTU; inner length > InnerMTU -> DropTooBig when the sender
// must be told (DF with PMTUDisc, or IPv6; answer with BuildTooBig and
// t.InnerMTU()), DropTooBigICMP for a relayed ICMP error (never answered),
// DropNeedsFragmentation otherwise (ulvs does not fragment); too little
// headroom -> DropNoHeadroom.
func Encap(buf []byte, p *Packet, t *Tunnel, id uint16) (start, end int, d Drop) {
	if p.Version == 0 {
		return 0, 0, DropNotIP
	}
	outer4 := IsV4(&t.Dst)
	if IsV4(&t.Src) != outer4 {
		return 0, 0, DropFamilyMismatch
	}
	if d := checkTTL(p); d != DropNone {
		return 0, 0, d
	}
	olen := t.outerLen()
	mtu := t.MTU
	if mtu > 65535 {
		mtu = 65535 // an IPv4 total length / IPv6 payload length bounds it
	}
	mtu -= olen
	if p.Version == 4 && mtu < 68 || p.Version == 6 && mtu < 1280 {
		return 0, 0, DropBadTunnelMTU
	}
	innerLen := p.End - p.L3Off
	df := p.Version == 6 || t.PMTUDisc && p.Flags&FlagDF != 0
	if innerLen > mtu {
		switch {
		case p.Flags&FlagICMPError != 0:
			return 0, 0, DropTooBigICMP
		case df:
			return 0, 0, DropTooBig
		default:
			return 0, 0, DropNeedsFragmentation
		}
	}
	l2len := 0
	if p.L2Off >= 0 {
		l2len = p.L3Off - p.L2Off
	}
	o := p.L3Off - olen
	start = o - l2len
	if start < 0 {
		return 0, 0, DropNoHeadroom
	}
	decTTL(buf, p)
	tos := p.TOS
	if tos&3 == 3 { // CE -> ECT(0)
		tos = tos&^3 | 2
	}
	nh := uint8(ProtoIPIP)
	if p.Version == 6 {
		nh = ProtoIPv6
	}
	// Move the link header first: the outer IP header overwrites it.
	if l2len > 0 {
		copy(buf[start:o], buf[p.L2Off:p.L3Off])
		et := uint16(EtherTypeIPv4)
		if !outer4 {
			et = EtherTypeIPv6
		}
		put16(buf[o-2:], et)
	}
	h := buf[o:p.L3Off]
	if outer4 {
		h[0] = 0x45
		h[1] = tos
		put16(h[2:], uint16(innerLen+IPv4MinLen))
		put16(h[4:], id)
		if df {
			put16(h[6:], 0x4000)
		} else {
			put16(h[6:], 0)
		}
		h[8] = p.TTL
		h[9] = nh
		put16(h[10:], 0)
		copy(h[12:16], t.Src[12:])
		copy(h[16:20], t.Dst[12:])
		put16(h[10:], ^Fold(sum20(h)))
	} else {
		put32(h[0:], 6<<28|uint32(tos)<<20)
		put16(h[4:], uint16(innerLen))
		h[6] = nh
		h[7] = p.TTL
		copy(h[8:24], t.Src[:])
		copy(h[24:40], t.Dst[:])
	}
	return start, p.End, DropNone
}
