// Package pkt is the zero-copy packet core of the ulvs data path: it
// parses frames in place, rewrites them for the NAT, DR and TUN forwarding
// methods exactly as kernel IPVS does (IPVS-SPEC.md §5), translates ICMP
// errors, answers ARP and neighbour solicitations for VIPs, and builds the
// ICMP errors the director must send. It performs no I/O, allocates
// nothing per packet, takes no lock and never panics on malformed input.
//
// # Buffer convention
//
// Engines hand the data path a buffer buf with the frame at buf[off:] and
// buf ending where the frame ends. At least Headroom (128) bytes before off
// are free, so that Encap can prepend an outer IPv4/IPv6 header and move
// the Ethernet header (with any 802.1Q tag) in front of it without copying
// the payload. AF_PACKET frames begin with Ethernet: parse them with
// ParseEthernet. TUN-device frames begin with the IP header: parse them
// with ParseIP. Every offset in Packet indexes buf itself (not buf[off:]),
// so the headroom stays addressable. A rewrite that moves the start of the
// frame (Encap) returns the new start and end; the others keep the frame
// at buf[p.Start():p.End]. End excludes Ethernet padding: transmit
// buf[start:p.End].
//
// # Parsing
//
// ParseEthernet and ParseIP fill a Packet the caller owns and reuses: link
// offsets and VLAN, IP version, addresses in 16-byte form (IPv4-mapped,
// like netip.Addr.As16), TTL, TOS, transport protocol after the IPv6
// extension-header chain, ports, TCP flags, ICMP type/code/info, fragment
// information, and for ICMP errors the quoted packet (Packet.Inner). They
// decode Ethernet (one 802.1Q or 802.1ad tag), ARP (Ethernet/IPv4), IPv4
// with options, IPv6 with hop-by-hop, routing, fragment, destination
// options and AH headers (at most MaxExtHeaders, so a chain cannot loop or
// run long), TCP, UDP, ICMP and ICMPv6. Validation happens once, in the
// parser; rewrites trust a Packet that parsed with DropNone.
//
// A malformed or unsupported packet yields a Drop: a uint8 enum whose
// String names a counter (truncated_ethernet, bad_ipv4_ihl,
// bad_ipv4_length, bad_ipv4_checksum, ip_fragment, bad_udp_length,
// bad_icmp_checksum, bad_icmp_embedded, ...). NumDrops sizes a counter
// array indexed by Drop. Rewrites and builders return Drops too
// (ttl_exceeded, too_big, no_headroom, ...); on any Drop a rewrite leaves
// the packet unchanged, so the ICMP error built in answer quotes the
// packet as it arrived.
//
// # Checksum policy
//
// Verified on receive:
//   - the IPv4 header checksum (every IPv4 packet; bad_ipv4_checksum);
//   - the ICMP/ICMPv6 checksum of every ICMP error (dest unreachable,
//     source quench, time exceeded, parameter problem; ICMPv6 types 1-4),
//     as IPVS does for errors from clients, and of neighbour
//     solicitations (RFC 4861 7.1.1).
//
// Not verified: TCP and UDP checksums, and ICMP informational messages.
// IPVS does not verify them either unless an application helper rewrites
// the payload. The rewrites update them incrementally (RFC 1624), which
// carries an incorrect checksum through still incorrect, so corruption is
// caught end to end by the receiver. The one exception is a UDP checksum
// of 0 (IPv4 "no checksum"), which NAT replaces by a fully computed
// checksum, as the spec requires; a computed UDP checksum of 0 is sent as
// 0xffff. A frame whose sender left the checksum to offload (partial:
// pseudo-header only) must be completed with FillL4Checksum before any
// rewrite. Checksum helpers: Sum/Fold/Checksum (RFC 1071, 8 bytes at a
// time), PseudoSum, and Update16/Update32/Update128/UpdateBytes (RFC 1624
// eqn. 3).
//
// # Rewrites
//
// All rewrites first refuse TTL/hop limit <= 1 with DropTTLExceeded (the
// caller answers with BuildTimeExceeded and drops), then decrement it.
// Neighbour-discovery messages are link-local and refused as
// not_forwardable.
//
//   - NATIn (client -> real server): destination address and port; IPv4
//     header checksum, TCP/UDP checksum (incremental, or full for a zero
//     UDP checksum). A 127/8 or ::1 destination is refused.
//   - NATOut (real server -> client): source address and port to
//     VIP:vport, same checksum rules.
//   - DR: the MAC addresses only (plus TTL and the IPv4 header checksum).
//     SetMACs sets MACs after NAT or Encap; DecTTL alone is also provided.
//   - Encap (TUN): IP-in-IP as IPVS's tunnel method: inner TTL decremented
//     and its checksum fixed; an outer IPv4 header (IHL 5, protocol 4 or 41,
//     TOS = inner DSCP and ECN with CE mapped to ECT(0), DF copied from
//     the inner header when PMTUDisc, TTL = the inner TTL after
//     decrement, ID from the caller's counter, source = the director) or
//     IPv6 header (next header 4/41, flow label 0) written into the
//     headroom; the Ethernet header moved in front. A packet larger than
//     the tunnel's inner MTU is refused: DropTooBig when the sender must
//     be told (DF, or IPv6; answer with BuildTooBig and Tunnel.InnerMTU),
//     DropTooBigICMP for a relayed ICMP error, DropNeedsFragmentation
//     otherwise. A tunnel MTU below 68 (1280 for IPv6) is bad_tunnel_mtu.
//   - CheckMTU applies the same DF/IPv6/ICMP rule for the NAT and DR
//     egress link.
//   - ICMP errors quoting a connection: Packet.InnerFlow().Reverse() is
//     the key to look the connection up. ICMPNATIn (error from a client:
//     outer destination, quoted source address and port -> real server)
//     and ICMPNATOut (error from the real-server side: outer source,
//     quoted destination address and port -> VIP:vport) fix the outer
//     IPv4 header checksum, the quoted IPv4 header checksum and the quoted
//     TCP/UDP checksum incrementally (when quoted; a quoted zero UDP
//     checksum stays 0), and recompute the ICMP checksum in full (with the
//     pseudo-header for ICMPv6). For DR and TUN connections, forward the
//     error unchanged with DR or Encap.
//   - ICMP errors about the director's own IP-in-IP packets:
//     ParseTunnelError decodes the client packet quoted inside, for the
//     connection lookup and for the frag-needed / relayed error that IPVS
//     sends to the client.
//   - BuildICMPError and its wrappers BuildTimeExceeded, BuildTooBig
//     (frag-needed 3/4 or packet-too-big with the MTU) and
//     BuildPortUnreachable write an error into a caller buffer, quoting the
//     packet up to 576 bytes in all for IPv4 (RFC 1812) and 1280 for IPv6
//     (RFC 4443), at least its IP header and 8 transport bytes. They refuse
//     (icmp_suppressed) to answer ICMP errors, fragments, and packets from
//     unspecified, loopback, broadcast or multicast sources or to
//     multicast or broadcast destinations (packet-too-big excepted).
//     Rate limiting (RFC 1812 4.3.2.8, RFC 4443 2.4(f)) is the caller's:
//     a flood of expiring packets must not become a flood of errors.
//   - ARPReply and NeighborAdvert answer an ARP request / neighbour
//     solicitation (p.Target is the address asked for; the caller checks
//     it is a VIP) into a caller buffer, in the requester's VLAN.
//     GratuitousARP and UnsolicitedNA announce a VIP on takeover.
//
// Flow keys: FlowKey is a packed, comparable 40-byte key; FlowKey.Hash is
// a seeded, platform-independent 64-bit hash for shard selection (not
// symmetric, not cryptographic).
//
// # Deliberate differences from IPVS
//
//   - Fragments are not reassembled. IPVS reassembles IPv4 fragments
//     before processing; ulvs drops every IPv4 fragment and every IPv6
//     fragment other than an atomic one (RFC 6946) as ip_fragment, with
//     the addresses still decoded so the caller may count them per VIP.
//     Reassembly in userspace needs per-flow buffers with timeouts,
//     allocation and a memory bound that attackers can exhaust; TCP (MSS)
//     and path-MTU discovery make fragments rare for the services LVS
//     fronts. An ICMP error quoting a non-first fragment carries no ports
//     and is dropped (icmp_embedded_fragment).
//   - ulvs never fragments. Where IPVS would fragment (TUN with pmtu_disc
//     off, or an IPv4 packet without DF bigger than the egress MTU), ulvs
//     drops with needs_fragmentation.
//   - Outer DF is always set for IPv6 inside an IPv4 tunnel (IPVS leaves it
//     clear): ulvs checked the size and never relies on the outer header
//     being fragmented.
//   - IPv6 jumbograms (payload length 0 with hop-by-hop) are dropped.
//   - A zero UDP checksum in an IPv6 packet (invalid, RFC 8200) is also
//     replaced by a computed checksum rather than passed on.
//   - Only one VLAN tag is accepted; a second one is not_ip.
package pkt
