package pkt

// L4ChecksumOK verifies the TCP or UDP checksum of a parsed packet in full,
// as IPVS does before it rewrites a NAT packet (tcp_dnat_handler and
// udp_snat_handler check the checksum, so that a corrupted segment is
// dropped by the director instead of being rewritten, still corrupted, for
// the real server to drop). A UDP checksum of 0 means "none" and passes.
// Other protocols pass. It does not allocate.
func L4ChecksumOK(buf []byte, p *Packet) bool {
	if p.Flags&FlagPorts == 0 || p.L4Off < 0 {
		return true
	}
	l4 := buf[p.L4Off:p.End]
	switch p.Proto {
	case ProtoTCP:
	case ProtoUDP:
		if len(l4) >= UDPLen && l4[6] == 0 && l4[7] == 0 {
			return true
		}
		if ul := int(be16(l4[4:])); ul >= UDPLen && ul <= len(l4) {
			l4 = l4[:ul]
		}
	default:
		return true
	}
	return Fold(Sum(l4, PseudoSum(&p.Src, &p.Dst, p.Version == 4, p.Proto, len(l4)))) == 0xffff
}
