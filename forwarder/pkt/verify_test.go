package pkt

import (
	"encoding/binary"
	"fmt"
)

// This file holds the test-side checksum oracle: a walk over raw bytes
// that recomputes every checksum in full with naiveSum. fixChecksums makes
// an arbitrary (fuzzed) input's checksums valid so that a rewrite's output
// can be held to "every checksum verifies"; verifyFrame checks an output.

func pseudo(src, dst []byte, proto uint8, n int) []byte {
	b := append(append([]byte{}, src...), dst...)
	if len(src) == 4 {
		return append(b, 0, proto, byte(n>>8), byte(n))
	}
	return append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, proto)
}

func sumWith(ph, data []byte) uint16 {
	return uint16(naiveSum(append(append([]byte{}, ph...), data...)))
}

// ipLayout finds the IP header in frame: returns l3 offset, or -1.
func ipLayout(frame []byte, l2 bool) int {
	if !l2 {
		return 0
	}
	if len(frame) < 14 {
		return -1
	}
	off, et := 14, binary.BigEndian.Uint16(frame[12:])
	if et == EtherTypeVLAN || et == EtherTypeQinQ {
		if len(frame) < 18 {
			return -1
		}
		et, off = binary.BigEndian.Uint16(frame[16:]), 18
	}
	if et != EtherTypeIPv4 && et != EtherTypeIPv6 {
		return -1
	}
	return off
}

type ipInfo struct {
	v4       bool
	l3, l4   int // offsets in b
	end      int // end of the IP packet (clamped to len(b))
	complete bool
	frag     bool // first fragment: transport checksums cover more than this
	proto    uint8
	src, dst []byte
}

// ipAt decodes the IP header at b[l3:] loosely (no checksum checks).
func ipAt(b []byte, l3 int) (ipInfo, bool) {
	var x ipInfo
	if l3 < 0 || len(b)-l3 < 1 {
		return x, false
	}
	switch b[l3] >> 4 {
	case 4:
		if len(b)-l3 < 20 {
			return x, false
		}
		ihl := int(b[l3]&0xf) * 4
		tot := int(binary.BigEndian.Uint16(b[l3+2:]))
		if ihl < 20 || len(b)-l3 < ihl || tot < ihl {
			return x, false
		}
		x = ipInfo{v4: true, l3: l3, l4: l3 + ihl, end: l3 + tot, proto: b[l3+9], src: b[l3+12 : l3+16], dst: b[l3+16 : l3+20]}
		switch ff := binary.BigEndian.Uint16(b[l3+6:]); {
		case ff&0x1fff != 0:
			x.proto = 255 // later fragment: no transport header
		case ff&0x2000 != 0:
			x.frag = true // first fragment: a transport header, not the whole datagram
		}
	case 6:
		if len(b)-l3 < 40 {
			return x, false
		}
		x = ipInfo{l3: l3, end: l3 + 40 + int(binary.BigEndian.Uint16(b[l3+4:])), src: b[l3+8 : l3+24], dst: b[l3+24 : l3+40]}
		e := walkExt6(b[:min(x.end, len(b))], l3+40, b[l3+6])
		if e.drop != DropNone || e.frag && (e.more || e.fragOff != 0) {
			return x, false
		}
		x.l4, x.proto = e.l4off, e.proto
	default:
		return x, false
	}
	x.complete = x.end <= len(b)
	if x.end > len(b) {
		x.end = len(b)
	}
	return x, x.l4 <= x.end
}

// fixChecksums recomputes, in place, every checksum of the IP packet in
// frame (IPv4 header, TCP, non-zero UDP, ICMP/ICMPv6, and inside ICMP
// errors the quoted IPv4 header and, when quoted whole, transport
// checksum; inside IP-in-IP the inner packet's).
func fixChecksums(frame []byte, l2 bool) {
	fixIP(frame, ipLayout(frame, l2), 0)
}

func fixIP(b []byte, l3 int, depth int) {
	x, ok := ipAt(b, l3)
	if !ok || depth > 2 {
		return
	}
	l4 := b[x.l4:x.end]
	complete := x.complete && !x.frag
	switch {
	case x.proto == ProtoTCP && complete && len(l4) >= 20:
		l4[16], l4[17] = 0, 0
		binary.BigEndian.PutUint16(l4[16:], ^sumWith(pseudo(x.src, x.dst, 6, len(l4)), l4))
	case x.proto == ProtoUDP && complete && len(l4) >= 8 && binary.BigEndian.Uint16(l4[4:]) >= 8:
		if l4[6]|l4[7] != 0 || !x.v4 {
			n := min(int(binary.BigEndian.Uint16(l4[4:])), len(l4))
			l4[6], l4[7] = 0, 0
			c := ^sumWith(pseudo(x.src, x.dst, 17, n), l4[:n])
			if c == 0 {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(l4[6:], c)
		}
	case (x.proto == ProtoICMP && x.v4 || x.proto == ProtoICMPv6 && !x.v4) && complete && len(l4) >= 8:
		if len(l4) > 8 && quotes(l4[0], x.v4) {
			fixIP(l4, 8, depth+1) // quoted packet, when it looks like one
		}
		l4[2], l4[3] = 0, 0
		var ph []byte
		if !x.v4 {
			ph = pseudo(x.src, x.dst, 58, len(l4))
		}
		binary.BigEndian.PutUint16(l4[2:], ^sumWith(ph, l4))
	case x.proto == ProtoIPIP || x.proto == ProtoIPv6:
		fixIP(b[:x.end], x.l4, depth+1)
	}
	if x.v4 {
		h := b[x.l3:x.l4]
		h[10], h[11] = 0, 0
		binary.BigEndian.PutUint16(h[10:], ^uint16(naiveSum(h)))
	}
}

// verifyFrame parses buf[off:] with this package and checks, by full
// recomputation, every checksum fixChecksums would have set.
func verifyFrame(buf []byte, off int, l2 bool) (*Packet, error) {
	var p Packet
	var d Drop
	if l2 {
		d = ParseEthernet(buf, off, &p)
	} else {
		d = ParseIP(buf, off, &p)
	}
	if d != DropNone {
		return &p, fmt.Errorf("output does not parse: %v", d)
	}
	if p.Version == 0 {
		return &p, nil
	}
	return &p, verifyIP(buf[:p.End], p.L3Off, 0)
}

func verifyIP(b []byte, l3 int, depth int) error {
	x, ok := ipAt(b, l3)
	if !ok {
		return fmt.Errorf("IP header at %d does not decode", l3)
	}
	if x.v4 {
		if s := naiveSum(b[x.l3:x.l4]); s != 0xffff {
			return fmt.Errorf("IPv4 header checksum (depth %d) sum %#04x", depth, s)
		}
	}
	if depth > 2 {
		return nil
	}
	l4 := b[x.l4:x.end]
	complete := x.complete && !x.frag
	switch {
	case x.proto == ProtoTCP && complete && len(l4) >= 20:
		if s := sumWith(pseudo(x.src, x.dst, 6, len(l4)), l4); s != 0xffff {
			return fmt.Errorf("TCP checksum (depth %d) sum %#04x", depth, s)
		}
	case x.proto == ProtoUDP && complete && len(l4) >= 8 && binary.BigEndian.Uint16(l4[4:]) >= 8:
		if l4[6]|l4[7] == 0 {
			if !x.v4 {
				return fmt.Errorf("IPv6 UDP checksum 0")
			}
			break
		}
		n := min(int(binary.BigEndian.Uint16(l4[4:])), len(l4))
		if s := sumWith(pseudo(x.src, x.dst, 17, n), l4[:n]); s != 0xffff {
			return fmt.Errorf("UDP checksum (depth %d) sum %#04x", depth, s)
		}
	case (x.proto == ProtoICMP && x.v4 || x.proto == ProtoICMPv6 && !x.v4) && complete && len(l4) >= 8:
		var ph []byte
		if !x.v4 {
			ph = pseudo(x.src, x.dst, 58, len(l4))
		}
		if s := sumWith(ph, l4); s != 0xffff {
			return fmt.Errorf("ICMP checksum (depth %d) sum %#04x", depth, s)
		}
		if len(l4) > 8 && depth == 0 && quotes(l4[0], x.v4) {
			if _, ok := ipAt(l4, 8); ok {
				if err := verifyIP(l4, 8, depth+1); err != nil {
					return fmt.Errorf("quoted packet: %w", err)
				}
			}
		}
	case x.proto == ProtoIPIP || x.proto == ProtoIPv6:
		// Arbitrary bytes may carry protocol 4/41; hold only what decodes
		// (Encap's callers check their inner packet separately).
		if _, ok := ipAt(b[:x.end], x.l4); !ok {
			break
		}
		if err := verifyIP(b[:x.end], x.l4, depth+1); err != nil {
			return fmt.Errorf("inner packet: %w", err)
		}
	}
	return nil
}

// quotes reports the ICMP types that quote a packet.
func quotes(typ uint8, v4 bool) bool {
	if v4 {
		return typ == 3 || typ == 4 || typ == 5 || typ == 11 || typ == 12
	}
	return typ >= 1 && typ <= 4
}
