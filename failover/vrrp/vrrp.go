// Package vrrp encodes, decodes and transports VRRP version 3
// advertisements (RFC 5798) for IPv4 and IPv6, so that a ulvs director and
// a keepalived node (vrrp_version 3) can be each other's peer.
//
// An advertisement is
//
//	 0                   1                   2                   3
//	|Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//	|(rsvd) |     Max Adver Int     |          Checksum             |
//	|                       IPvX Address(es)                        |
//
// with version 3, type 1 (ADVERTISEMENT), the interval in centiseconds, and
// the checksum computed over the VRRP message and the IPv4 or IPv6
// pseudo-header (source, destination, zero, protocol 112, length), RFC 5798
// §5.2.8. It travels in IP protocol 112 to 224.0.0.18 or ff02::12 (or
// unicast to a configured peer) with TTL / hop limit 255.
//
// What is trusted: VRRPv3 has no authentication. The receiver accepts only
// adverts with TTL 255 (so they were not routed), from a configured peer
// address, for its VRID, with a valid checksum. Anyone who can put a packet
// on the same segment and spoof a peer's source address can still claim to
// be master (and make a backup stay backup) or send priority 0. ulvs
// therefore never lets a VRRP advert alone take the active role away from a
// director that has a lower priority than the advertiser would need (RFC
// rules), and makes every fencing order (stand-down) an HMAC-authenticated
// message (package ctlmsg). Run the heartbeat networks on segments you control.
package vrrp

import (
	"encoding/binary"
	"net/netip"
)

// Protocol is the IP protocol number of VRRP.
const Protocol = 112

// Version and type of the advertisements this package sends.
const (
	Version3      = 3
	TypeAdvert    = 1
	HeaderLen     = 8
	MaxAddrs      = 255
	MaxIntervalCS = 0x0fff // 40.95 s
)

// Multicast groups (RFC 5798 §5.1.1.2, §5.1.2.2).
var (
	Group4 = netip.MustParseAddr("224.0.0.18")
	Group6 = netip.MustParseAddr("ff02::12")
)

// Advert is a VRRPv3 advertisement.
type Advert struct {
	VRID     uint8
	Priority uint8
	// Interval is the Max Advertise Interval in centiseconds (12 bits).
	Interval uint16
	// Addrs are the virtual addresses (all IPv4 or all IPv6). Parse reuses
	// the slice's storage.
	Addrs []netip.Addr
}

// Reason says why a received packet was dropped.
type Reason uint8

// Drop reasons.
const (
	OK Reason = iota
	DropShort
	DropVersion
	DropType
	DropLength   // length does not match the address count
	DropChecksum // bad checksum
	DropVRID     // another virtual router
	DropTTL      // TTL / hop limit != 255
	DropNotPeer  // source is not a configured peer
	DropOwn      // our own advert looped back
	NumReasons
)

var reasonNames = [NumReasons]string{"ok", "short", "version", "type", "length", "checksum", "vrid", "ttl", "not_peer", "own"}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Append appends a's encoding, with the checksum for the given source and
// destination addresses (which select IPv4 or IPv6), to b.
func (a *Advert) Append(b []byte, src, dst netip.Addr) []byte {
	off := len(b)
	b = append(b, Version3<<4|TypeAdvert, a.VRID, a.Priority, uint8(len(a.Addrs)), 0, 0, 0, 0)
	binary.BigEndian.PutUint16(b[off+4:], a.Interval&MaxIntervalCS)
	v6 := dst.Is6() && !dst.Is4In6()
	for _, ip := range a.Addrs {
		if v6 {
			x := ip.As16()
			b = append(b, x[:]...)
		} else {
			x := ip.Unmap().As4()
			b = append(b, x[:]...)
		}
	}
	cs := Checksum(src, dst, b[off:])
	binary.BigEndian.PutUint16(b[off+6:], cs)
	return b
}

// Parse decodes msg (the IP payload) received from src to dst into a,
// verifying version, type, length and checksum. It does not allocate when
// a.Addrs has room for the addresses.
func Parse(msg []byte, src, dst netip.Addr, a *Advert) Reason {
	if len(msg) < HeaderLen {
		return DropShort
	}
	if msg[0]>>4 != Version3 {
		return DropVersion
	}
	if msg[0]&0x0f != TypeAdvert {
		return DropType
	}
	n := int(msg[3])
	alen := 4
	if src.Is6() && !src.Is4In6() {
		alen = 16
	}
	if len(msg) != HeaderLen+n*alen {
		return DropLength
	}
	if Checksum(src, dst, msg) != 0 {
		return DropChecksum
	}
	a.VRID = msg[1]
	a.Priority = msg[2]
	a.Interval = binary.BigEndian.Uint16(msg[4:6]) & MaxIntervalCS
	a.Addrs = a.Addrs[:0]
	for i := 0; i < n; i++ {
		p := msg[HeaderLen+i*alen:]
		if alen == 4 {
			a.Addrs = append(a.Addrs, netip.AddrFrom4([4]byte(p[:4])))
		} else {
			a.Addrs = append(a.Addrs, netip.AddrFrom16([16]byte(p[:16])))
		}
	}
	return OK
}

// Checksum returns the Internet checksum of msg with the pseudo-header for
// src and dst. Over a message whose checksum field is filled in, it returns 0
// when the checksum is valid; over one whose field is zero, the value to put
// there.
func Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	if src.Is4() || src.Is4In6() {
		s, d := src.Unmap().As4(), dst.Unmap().As4()
		sum += uint32(s[0])<<8 | uint32(s[1])
		sum += uint32(s[2])<<8 | uint32(s[3])
		sum += uint32(d[0])<<8 | uint32(d[1])
		sum += uint32(d[2])<<8 | uint32(d[3])
		sum += Protocol
		sum += uint32(len(msg))
	} else {
		s, d := src.As16(), dst.As16()
		for i := 0; i < 16; i += 2 {
			sum += uint32(s[i])<<8 | uint32(s[i+1])
			sum += uint32(d[i])<<8 | uint32(d[i+1])
		}
		sum += uint32(len(msg)) // 32-bit upper-layer length: fits in 16 here
		sum += Protocol
	}
	for i := 0; i+1 < len(msg); i += 2 {
		sum += uint32(msg[i])<<8 | uint32(msg[i+1])
	}
	if len(msg)&1 == 1 {
		sum += uint32(msg[len(msg)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Filter holds the acceptance rules of a receiver.
type Filter struct {
	VRID  uint8
	Peers []netip.Addr // accepted sources; empty accepts any source
	Own   []netip.Addr // our own addresses: dropped (multicast loop)
}

// Check applies the rules to a parsed advert from src with the given TTL.
func (f *Filter) Check(src netip.Addr, ttl int, a *Advert) Reason {
	if ttl != 255 {
		return DropTTL
	}
	if a.VRID != f.VRID {
		return DropVRID
	}
	src = src.Unmap()
	for _, o := range f.Own {
		if o == src {
			return DropOwn
		}
	}
	if len(f.Peers) == 0 {
		return OK
	}
	for _, p := range f.Peers {
		if p.Unmap() == src {
			return OK
		}
	}
	return DropNotPeer
}
