// Package realserver prepares a Linux host to be an ulvs (or LVS) real
// server: the DR set-up (the VIP on a non-ARPing device, arp_ignore and
// arp_announce) and TUN mode without the kernel's ipip module (IP-in-IP
// received on a raw socket, decapsulated in userspace and injected through a
// TUN device that holds the VIP).
package realserver

import (
	"encoding/binary"
	"net/netip"
)

// Reason says what happened to one received packet. Drops are counted per
// reason; nothing is logged or allocated per packet.
type Reason uint8

// Reasons.
const (
	Injected         Reason = iota // decapsulated and written to the TUN device
	DropShort                      // shorter than an outer IPv4 header
	DropVersion                    // outer version is not 4
	DropHeaderLen                  // outer IHL < 5 or beyond the packet
	DropTotalLen                   // outer total length disagrees with the packet
	DropProtocol                   // outer protocol is neither 4 (IPIP) nor 41 (IPv6)
	DropFragment                   // an outer fragment (the kernel reassembles; never expected)
	DropInnerShort                 // the inner packet is shorter than its header
	DropInnerVersion               // inner version disagrees with the outer protocol
	DropInnerLen                   // inner length field disagrees with the data
	DropNotVIP                     // inner destination is not one of the VIPs
	DropWrite                      // the TUN device refused the packet
	NumReasons                     // the number of reasons
)

var reasonNames = [NumReasons]string{
	"injected", "short", "version", "header_len", "total_len", "protocol",
	"fragment", "inner_short", "inner_version", "inner_len", "not_vip", "write",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// IP protocol numbers of the tunnels.
const (
	ProtoIPIP = 4  // IPv4 inside
	ProtoIPv6 = 41 // IPv6 inside
)

// MaxVIPs is how many VIPs one decapsulator accepts.
const MaxVIPs = 16

// VIPSet is a small fixed set of addresses, looked up without allocation.
type VIPSet struct {
	n int
	a [MaxVIPs][16]byte
	v [MaxVIPs]bool // is IPv4
}

// NewVIPSet builds a set; extra addresses beyond MaxVIPs are an error for
// the caller to check with Len.
func NewVIPSet(vips ...netip.Addr) *VIPSet {
	s := &VIPSet{}
	for _, v := range vips {
		if s.n == MaxVIPs {
			break
		}
		v = v.Unmap()
		s.a[s.n] = v.As16()
		s.v[s.n] = v.Is4()
		s.n++
	}
	return s
}

// Len returns the number of addresses in the set.
func (s *VIPSet) Len() int { return s.n }

func (s *VIPSet) has4(b []byte) bool {
	for i := 0; i < s.n; i++ {
		if s.v[i] && s.a[i][12] == b[0] && s.a[i][13] == b[1] && s.a[i][14] == b[2] && s.a[i][15] == b[3] {
			return true
		}
	}
	return false
}

func (s *VIPSet) has16(b []byte) bool {
	for i := 0; i < s.n; i++ {
		if !s.v[i] && string(s.a[i][:]) == string(b[:16]) {
			return true
		}
	}
	return false
}

// DecapIPv4 validates an outer IPv4 packet as read from an AF_INET raw
// socket (header included) and returns the inner packet, or a drop reason.
// The result aliases pkt.
func DecapIPv4(pkt []byte, vips *VIPSet) ([]byte, Reason) {
	if len(pkt) < 20 {
		return nil, DropShort
	}
	if pkt[0]>>4 != 4 {
		return nil, DropVersion
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || ihl > len(pkt) {
		return nil, DropHeaderLen
	}
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if total < ihl || total > len(pkt) {
		return nil, DropTotalLen
	}
	if frag := binary.BigEndian.Uint16(pkt[6:8]); frag&0x3fff != 0 {
		return nil, DropFragment
	}
	proto := pkt[9]
	if proto != ProtoIPIP && proto != ProtoIPv6 {
		return nil, DropProtocol
	}
	return CheckInner(pkt[ihl:total], proto, vips)
}

// CheckInner validates an inner packet carried with the given outer
// protocol (4 or 41) and addressed to one of vips, and returns it trimmed to
// its own length. It is all that is checked for packets read from an
// AF_INET6 raw socket, which strips the outer IPv6 header.
func CheckInner(in []byte, proto uint8, vips *VIPSet) ([]byte, Reason) {
	switch proto {
	case ProtoIPIP:
		if len(in) < 20 {
			return nil, DropInnerShort
		}
		if in[0]>>4 != 4 {
			return nil, DropInnerVersion
		}
		ihl := int(in[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(in[2:4]))
		if ihl < 20 || total < ihl || total > len(in) {
			return nil, DropInnerLen
		}
		if !vips.has4(in[16:20]) {
			return nil, DropNotVIP
		}
		return in[:total], Injected
	case ProtoIPv6:
		if len(in) < 40 {
			return nil, DropInnerShort
		}
		if in[0]>>4 != 6 {
			return nil, DropInnerVersion
		}
		total := 40 + int(binary.BigEndian.Uint16(in[4:6]))
		if total > len(in) {
			return nil, DropInnerLen
		}
		if !vips.has16(in[24:40]) {
			return nil, DropNotVIP
		}
		return in[:total], Injected
	}
	return nil, DropProtocol
}
