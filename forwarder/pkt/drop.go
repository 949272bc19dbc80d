package pkt

// Drop says why a packet was not (or cannot be) processed. DropNone means
// success. Every other value names a counter: String returns the counter
// name, stable across releases, so that per-reason drop counters can be an
// array indexed by Drop (see NumDrops).
type Drop uint8

// Drop reasons. Parse reasons come first, then those of the rewrites and
// builders.
const (
	DropNone Drop = iota

	// Link layer.
	DropTruncatedEthernet // frame shorter than an Ethernet header
	DropTruncatedVLAN     // 802.1Q tag cut short
	DropNotIP             // ethertype neither IPv4, IPv6 nor ARP (incl. a second VLAN tag)
	DropTruncatedARP      // ARP shorter than 28 bytes
	DropBadARP            // ARP not Ethernet/IPv4 (htype 1, ptype 0x0800, 6/4)

	// IPv4.
	DropTruncatedIPv4   // fewer bytes than the minimum or the IHL
	DropBadIPVersion    // version nibble not 4 (6) where required
	DropBadIPv4IHL      // IHL < 5
	DropBadIPv4Length   // total length < header or > bytes received
	DropBadIPv4Checksum // header checksum does not verify
	DropIPFragment      // IPv4 MF/offset or IPv6 non-atomic fragment: not reassembled

	// IPv6.
	DropTruncatedIPv6    // fewer than 40 bytes
	DropBadIPv6Length    // payload length 0 with hop-by-hop (jumbogram) or > bytes received
	DropBadIPv6ExtHeader // extension header cut short
	DropIPv6ExtLimit     // more extension headers than MaxExtHeaders

	// Transport.
	DropTruncatedTCP         // fewer than 20 bytes of TCP
	DropBadTCPDataOffset     // data offset < 5 or beyond the segment
	DropTruncatedUDP         // fewer than 8 bytes of UDP
	DropBadUDPLength         // UDP length < 8 or > the IP payload
	DropTruncatedICMP        // fewer than 8 bytes of ICMP/ICMPv6
	DropBadICMPChecksum      // ICMP error / NDP checksum does not verify
	DropBadICMPEmbedded      // quoted packet malformed or too short for its ports
	DropICMPEmbeddedFragment // quoted packet is a non-first fragment: no ports
	DropBadNDP               // neighbour solicitation failing RFC 4861 7.1.1 checks

	// Rewrites and builders.
	DropTTLExceeded        // TTL/hop limit <= 1: answer with BuildTimeExceeded
	DropTooBig             // tunnel MTU exceeded with DF (or IPv6): answer with BuildTooBig
	DropTooBigICMP         // tunnel MTU exceeded by a relayed ICMP error: no answer
	DropNeedsFragmentation // tunnel MTU exceeded without DF: ulvs does not fragment
	DropBadTunnelMTU       // tunnel MTU below 68 (IPv4) / 1280 (IPv6)
	DropNoHeadroom         // fewer than the needed bytes before the frame
	DropNoL2Header         // MAC rewrite asked of a frame without Ethernet
	DropFamilyMismatch     // new address of the other IP family
	DropUnsupportedProto   // rewrite needs TCP or UDP (or an ICMP error quoting one)
	DropNotICMPError       // ICMP translation asked of a packet that is not an ICMP error
	DropICMPSuppressed     // no ICMP error may be sent about this packet (RFC 1812/4443)
	DropBufferTooSmall     // caller's output buffer too small
	DropNotARPRequest      // ARP reply asked for a packet that is not an ARP request
	DropNotNS              // NA asked for a packet that is not a neighbour solicitation
	DropNATToLoopback      // NAT to 127/8 or ::1 (IPVS refuses it for packets from the network)
	DropNotForwardable     // neighbour discovery (ICMPv6 133-137) is link-local: never forwarded

	NumDrops // number of Drop values, for counter arrays
)

var dropNames = [NumDrops]string{
	DropNone:                 "none",
	DropTruncatedEthernet:    "truncated_ethernet",
	DropTruncatedVLAN:        "truncated_vlan",
	DropNotIP:                "not_ip",
	DropTruncatedARP:         "truncated_arp",
	DropBadARP:               "bad_arp",
	DropTruncatedIPv4:        "truncated_ipv4",
	DropBadIPVersion:         "bad_ip_version",
	DropBadIPv4IHL:           "bad_ipv4_ihl",
	DropBadIPv4Length:        "bad_ipv4_length",
	DropBadIPv4Checksum:      "bad_ipv4_checksum",
	DropIPFragment:           "ip_fragment",
	DropTruncatedIPv6:        "truncated_ipv6",
	DropBadIPv6Length:        "bad_ipv6_length",
	DropBadIPv6ExtHeader:     "bad_ipv6_ext_header",
	DropIPv6ExtLimit:         "ipv6_ext_header_limit",
	DropTruncatedTCP:         "truncated_tcp",
	DropBadTCPDataOffset:     "bad_tcp_data_offset",
	DropTruncatedUDP:         "truncated_udp",
	DropBadUDPLength:         "bad_udp_length",
	DropTruncatedICMP:        "truncated_icmp",
	DropBadICMPChecksum:      "bad_icmp_checksum",
	DropBadICMPEmbedded:      "bad_icmp_embedded",
	DropICMPEmbeddedFragment: "icmp_embedded_fragment",
	DropBadNDP:               "bad_ndp",
	DropTTLExceeded:          "ttl_exceeded",
	DropTooBig:               "too_big",
	DropTooBigICMP:           "too_big_icmp_error",
	DropNeedsFragmentation:   "needs_fragmentation",
	DropBadTunnelMTU:         "bad_tunnel_mtu",
	DropNoHeadroom:           "no_headroom",
	DropNoL2Header:           "no_l2_header",
	DropFamilyMismatch:       "family_mismatch",
	DropUnsupportedProto:     "unsupported_proto",
	DropNotICMPError:         "not_icmp_error",
	DropICMPSuppressed:       "icmp_suppressed",
	DropBufferTooSmall:       "buffer_too_small",
	DropNotARPRequest:        "not_arp_request",
	DropNotNS:                "not_neighbor_solicitation",
	DropNATToLoopback:        "nat_to_loopback",
	DropNotForwardable:       "not_forwardable",
}

// String returns the counter name of d ("truncated_ethernet", ...), or
// "unknown" for a value out of range.
func (d Drop) String() string {
	if d < NumDrops {
		return dropNames[d]
	}
	return "unknown"
}
