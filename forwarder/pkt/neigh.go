package pkt

// NoVLAN asks the ARP/NDP builders for an untagged frame.
const NoVLAN = -1

var (
	broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodesMAC  = [6]byte{0x33, 0x33, 0, 0, 0, 1}
	allNodesIP6  = [16]byte{0: 0xff, 1: 0x02, 15: 1}
)

// minFrame is the minimum Ethernet frame without FCS; builders pad to it.
const minFrame = 60

// putEthernet writes an Ethernet header (with a tag when vlan >= 0) and
// returns its length.
func putEthernet(out []byte, dst, src [6]byte, vlan int, et uint16) int {
	copy(out[0:6], dst[:])
	copy(out[6:12], src[:])
	if vlan >= 0 {
		put16(out[12:], EtherTypeVLAN)
		put16(out[14:], uint16(vlan)&0x0fff)
		put16(out[16:], et)
		return EthernetLen + VLANLen
	}
	put16(out[12:], et)
	return EthernetLen
}

func pad(out []byte, n int) int {
	for n < minFrame {
		out[n] = 0
		n++
	}
	return n
}

func frameVLAN(p *Packet) int {
	if p.Tagged {
		return int(p.VLAN)
	}
	return NoVLAN
}

// ARPReply writes into out the Ethernet frame answering the ARP request p
// (parsed from buf) with "p.Target is at mac": unicast to the requester,
// in the requester's VLAN, padded to 60 bytes. The caller checks that
// p.Target is a VIP it owns. out needs 64 bytes.
func ARPReply(out []byte, buf []byte, p *Packet, mac [6]byte) (int, Drop) {
	if p.EtherType != EtherTypeARP || p.L3Off < 0 || p.ARPOp != 1 {
		return 0, DropNotARPRequest
	}
	if len(out) < minFrame+VLANLen {
		return 0, DropBufferTooSmall
	}
	var sha [6]byte
	copy(sha[:], buf[p.SLLAOff:p.SLLAOff+6])
	n := putEthernet(out, sha, mac, frameVLAN(p), EtherTypeARP)
	n += putARP(out[n:], 2, mac, p.Target[12:], sha, p.Src[12:])
	return pad(out, n), DropNone
}

func putARP(b []byte, op uint16, sha [6]byte, spa []byte, tha [6]byte, tpa []byte) int {
	put16(b[0:], 1)
	put16(b[2:], EtherTypeIPv4)
	b[4], b[5] = 6, 4
	put16(b[6:], op)
	copy(b[8:14], sha[:])
	copy(b[14:18], spa)
	copy(b[18:24], tha[:])
	copy(b[24:28], tpa)
	return ARPLen
}

// GratuitousARP writes a broadcast gratuitous ARP request announcing that
// ip (IPv4-mapped) is at mac (sender and target address both ip, target
// hardware address zero, RFC 5227 announcement). Failover sends a burst
// of these on takeover. out needs 64 bytes.
func GratuitousARP(out []byte, mac [6]byte, ip [16]byte, vlan int) (int, Drop) {
	if !IsV4(&ip) {
		return 0, DropFamilyMismatch
	}
	if len(out) < minFrame+VLANLen {
		return 0, DropBufferTooSmall
	}
	n := putEthernet(out, broadcastMAC, mac, vlan, EtherTypeARP)
	n += putARP(out[n:], 1, mac, ip[12:], [6]byte{}, ip[12:])
	return pad(out, n), DropNone
}

// naLen is an IPv6 header + NA (24) + target link-layer option (8).
const naLen = IPv6Len + 24 + 8

// NeighborAdvert writes into out the Ethernet frame answering the neighbour
// solicitation p (parsed from buf) for p.Target with mac: solicited and
// override flags set, unicast to the solicitor (to all-nodes, without the
// solicited flag, for a duplicate-address probe from ::), hop limit 255,
// target link-layer address option, ICMPv6 checksum. The caller checks
// that p.Target is a VIP it owns. out needs 90 bytes.
func NeighborAdvert(out []byte, buf []byte, p *Packet, mac [6]byte) (int, Drop) {
	if p.Version != 6 || p.Proto != ProtoICMPv6 || p.ICMPType != icmp6NS {
		return 0, DropNotNS
	}
	if len(out) < EthernetLen+VLANLen+naLen {
		return 0, DropBufferTooSmall
	}
	var zero [16]byte
	dstIP, dstMAC, flags := p.Src, [6]byte{}, uint32(0x60000000) // S|O
	switch {
	case p.Src == zero:
		dstIP, dstMAC, flags = allNodesIP6, allNodesMAC, 0x20000000 // O
	case p.Flags&FlagSLLA != 0:
		copy(dstMAC[:], buf[p.SLLAOff:p.SLLAOff+6])
	case p.L2Off >= 0:
		copy(dstMAC[:], buf[p.L2Off+6:p.L2Off+12])
	}
	n := putEthernet(out, dstMAC, mac, frameVLAN(p), EtherTypeIPv6)
	n += putNA(out[n:], mac, p.Target, dstIP, flags)
	return n, DropNone
}

func putNA(b []byte, mac [6]byte, target, dst [16]byte, flags uint32) int {
	h := b[:naLen]
	put32(h[0:], 6<<28)
	put16(h[4:], naLen-IPv6Len)
	h[6] = ProtoICMPv6
	h[7] = 255
	copy(h[8:24], target[:])
	copy(h[24:40], dst[:])
	ic := h[IPv6Len:]
	ic[0], ic[1] = icmp6NA, 0
	put16(ic[2:], 0)
	put32(ic[4:], flags)
	copy(ic[8:24], target[:])
	ic[24], ic[25] = 2, 1 // target link-layer address, 8 bytes
	copy(ic[26:32], mac[:])
	put16(ic[2:], ^Fold(Sum(ic, PseudoSum(&target, &dst, false, ProtoICMPv6, len(ic)))))
	return naLen
}

// UnsolicitedNA writes an unsolicited neighbour advertisement for ip
// (IPv6) at mac to all-nodes (ff02::1), override flag set (RFC 4861
// 7.2.6): the IPv6 counterpart of GratuitousARP. out needs 90 bytes.
func UnsolicitedNA(out []byte, mac [6]byte, ip [16]byte, vlan int) (int, Drop) {
	if IsV4(&ip) {
		return 0, DropFamilyMismatch
	}
	if len(out) < EthernetLen+VLANLen+naLen {
		return 0, DropBufferTooSmall
	}
	n := putEthernet(out, allNodesMAC, mac, vlan, EtherTypeIPv6)
	n += putNA(out[n:], mac, ip, allNodesIP6, 0x20000000)
	return n, DropNone
}
