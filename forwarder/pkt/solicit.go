package pkt

// ARPRequest writes into out a broadcast ARP request "who has target? tell
// srcIP" from mac, padded to 60 bytes. Addresses are in 16-byte form and
// must be IPv4. out needs 64 bytes.
func ARPRequest(out []byte, mac [6]byte, srcIP, target [16]byte, vlan int) (int, Drop) {
	if !IsV4(&srcIP) || !IsV4(&target) {
		return 0, DropFamilyMismatch
	}
	if len(out) < minFrame+VLANLen {
		return 0, DropBufferTooSmall
	}
	n := putEthernet(out, broadcastMAC, mac, vlan, EtherTypeARP)
	a := out[n : n+ARPLen]
	put16(a[0:], 1)             // Ethernet
	put16(a[2:], EtherTypeIPv4) // IPv4
	a[4], a[5] = 6, 4
	put16(a[6:], 1) // request
	copy(a[8:14], mac[:])
	copy(a[14:18], srcIP[12:])
	clear(a[18:24])
	copy(a[24:28], target[12:])
	return pad(out, n+ARPLen), DropNone
}

const nsLen = IPv6Len + 32 // NS with a source link-layer address option

// NeighborSolicit writes into out a neighbour solicitation for target from
// src at mac, sent to target's solicited-node multicast address (RFC 4861
// 7.2.2), with the source link-layer address option, hop limit 255 and the
// ICMPv6 checksum. out needs 90 bytes.
func NeighborSolicit(out []byte, mac [6]byte, src, target [16]byte, vlan int) (int, Drop) {
	if IsV4(&src) || IsV4(&target) {
		return 0, DropFamilyMismatch
	}
	if len(out) < EthernetLen+VLANLen+nsLen {
		return 0, DropBufferTooSmall
	}
	dst := [16]byte{0: 0xff, 1: 0x02, 11: 1, 12: 0xff, 13: target[13], 14: target[14], 15: target[15]}
	dmac := [6]byte{0x33, 0x33, 0xff, target[13], target[14], target[15]}
	n := putEthernet(out, dmac, mac, vlan, EtherTypeIPv6)
	h := out[n : n+nsLen]
	put32(h[0:], 6<<28)
	put16(h[4:], nsLen-IPv6Len)
	h[6] = ProtoICMPv6
	h[7] = 255
	copy(h[8:24], src[:])
	copy(h[24:40], dst[:])
	ic := h[IPv6Len:]
	ic[0], ic[1] = icmp6NS, 0
	put16(ic[2:], 0)
	put32(ic[4:], 0)
	copy(ic[8:24], target[:])
	ic[24], ic[25] = 1, 1 // source link-layer address, 8 bytes
	copy(ic[26:32], mac[:])
	put16(ic[2:], ^Fold(Sum(ic, PseudoSum(&src, &dst, false, ProtoICMPv6, len(ic)))))
	return n + nsLen, DropNone
}

// NeighborAdvertInfo returns the target and target link-layer address of a
// neighbour advertisement p parsed from buf, so that a resolver can learn
// it. ok is false for anything else, for an advertisement without the
// option, and for one whose hop limit is not 255 (RFC 4861 7.1.2).
func NeighborAdvertInfo(buf []byte, p *Packet) (target [16]byte, mac [6]byte, ok bool) {
	if p.Version != 6 || p.Proto != ProtoICMPv6 || p.ICMPType != icmp6NA || p.ICMPCode != 0 || p.TTL != 255 {
		return target, mac, false
	}
	b := buf[p.L4Off:p.End]
	if len(b) < 24 {
		return target, mac, false
	}
	if Fold(Sum(b, PseudoSum(&p.Src, &p.Dst, false, ProtoICMPv6, len(b)))) != 0xffff {
		return target, mac, false
	}
	copy(target[:], b[8:24])
	for o := 24; o+8 <= len(b); {
		l := int(b[o+1]) * 8
		if l == 0 || o+l > len(b) {
			return target, mac, false
		}
		if b[o] == 2 && l >= 8 {
			copy(mac[:], b[o+2:o+8])
			return target, mac, true
		}
		o += l
	}
	return target, mac, false
}
