package pkt

import (
	"encoding/binary"
	"math/bits"
)

// Sum adds b to the running one's-complement accumulator acc (RFC 1071) and
// returns the new, unfolded accumulator. b is summed as big-endian 16-bit
// words; an odd trailing byte is padded with zero. Sums of consecutive
// pieces may be chained only when every piece but the last has even length.
func Sum(b []byte, acc uint64) uint64 {
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		b = b[8:]
	}
	acc, carry = bits.Add64(acc, 0, carry)
	acc += carry // acc wrapped to 0 when carry is set here: no overflow
	// Fold the 64-bit accumulator to 32 bits so the tail adds cannot overflow.
	acc = (acc >> 32) + (acc & 0xffffffff)
	if len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// Fold folds a Sum accumulator to 16 bits with end-around carry. The
// checksum field value is ^Fold(...).
func Fold(acc uint64) uint16 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	acc = (acc >> 16) + (acc & 0xffff)
	return uint16(acc)
}

// Checksum is the RFC 1071 Internet checksum of b: the value to store in
// a zeroed checksum field.
func Checksum(b []byte) uint16 { return ^Fold(Sum(b, 0)) }

// PseudoSum returns the accumulator of the TCP/UDP/ICMPv6 pseudo-header for
// src and dst (16-byte form; IPv4 when v4 is true, using bytes 12..15),
// protocol proto and upper-layer length l4len.
func PseudoSum(src, dst *[16]byte, v4 bool, proto uint8, l4len int) uint64 {
	var acc uint64
	if v4 {
		acc = uint64(binary.BigEndian.Uint32(src[12:])) + uint64(binary.BigEndian.Uint32(dst[12:]))
	} else {
		acc = Sum(src[:], 0) + Sum(dst[:], 0)
	}
	return acc + uint64(proto) + uint64(uint32(l4len))
}

// Update16 returns checksum field csum updated for one 16-bit word of the
// covered data changing from old to new (RFC 1624 eqn. 3:
// HC' = ~(~HC + ~m + m')).
func Update16(csum, old, new uint16) uint16 {
	s := uint32(^csum) + uint32(^old) + uint32(new)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return ^uint16(s)
}

// Update32 is Update16 for a 32-bit value (an IPv4 address) changing.
func Update32(csum uint16, old, new uint32) uint16 {
	s := uint64(^csum) +
		uint64(^uint16(old>>16)) + uint64(^uint16(old)) +
		uint64(new>>16) + uint64(new&0xffff)
	return ^foldSmall(s)
}

// Update128 is Update16 for a 128-bit value (an IPv6 address) changing.
func Update128(csum uint16, old, new *[16]byte) uint16 {
	s := uint64(^csum)
	for i := 0; i < 16; i += 2 {
		s += uint64(^binary.BigEndian.Uint16(old[i:])) + uint64(binary.BigEndian.Uint16(new[i:]))
	}
	return ^foldSmall(s)
}

// UpdateBytes is Update16 for an even-length field at an even offset of the
// covered data changing from old to new (len(old) == len(new)).
func UpdateBytes(csum uint16, old, new []byte) uint16 {
	s := uint64(^csum)
	for i := 0; i+1 < len(old) && i+1 < len(new); i += 2 {
		s += uint64(^binary.BigEndian.Uint16(old[i:])) + uint64(binary.BigEndian.Uint16(new[i:]))
	}
	return ^foldSmall(s)
}

func foldSmall(s uint64) uint16 {
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

func be16(b []byte) uint16     { return binary.BigEndian.Uint16(b) }
func put16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
func put32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
func be32(b []byte) uint32     { return binary.BigEndian.Uint32(b) }

// sum20 is Sum for exactly a 20-byte IPv4 header without options.
func sum20(h []byte) uint64 {
	_ = h[19]
	return uint64(be32(h[0:])) + uint64(be32(h[4:])) + uint64(be32(h[8:])) +
		uint64(be32(h[12:])) + uint64(be32(h[16:]))
}
