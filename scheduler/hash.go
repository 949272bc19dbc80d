package scheduler

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// hash32 is the kernel's hash_32 (include/linux/hash.h): the top b bits of
// v * GOLDEN_RATIO_32.
func hash32(v uint32, b uint) uint32 { return (v * 0x61C88647) >> (32 - b) }

// fold returns ntohl of the address as the IPVS hashes use it: the IPv4
// address, or the XOR of the four 32-bit words of an IPv6 address. (XOR
// commutes with the byte swap, so folding big-endian words is the same.)
func fold(a *[16]byte, v6 bool) uint32 {
	if !v6 {
		return binary.BigEndian.Uint32(a[12:])
	}
	return binary.BigEndian.Uint32(a[0:]) ^ binary.BigEndian.Uint32(a[4:]) ^
		binary.BigEndian.Uint32(a[8:]) ^ binary.BigEndian.Uint32(a[12:])
}

func foldAddr(a netip.Addr) uint32 {
	a16 := a.As16()
	return fold(&a16, !a.Unmap().Is4())
}

// sipKey is a hsiphash_key_t on 64-bit kernels: two 64-bit words.
type sipKey [2]uint64

// The mh keys (generate_hash_secret in ip_vs_mh.c).
var (
	mhKey1 = sipKey{2654435761, 2654435761}
	mhKey2 = sipKey{2654446892, 2654446892}
)

// hsiphash32 is the kernel's hsiphash(&v, 4, key) on a 64-bit machine:
// SipHash-1-3 over the 4 bytes of v in host (little-endian) order,
// truncated to 32 bits.
func hsiphash32(v uint32, k *sipKey) uint32 {
	v0 := uint64(0x736f6d6570736575) ^ k[0]
	v1 := uint64(0x646f72616e646f6d) ^ k[1]
	v2 := uint64(0x6c7967656e657261) ^ k[0]
	v3 := uint64(0x7465646279746573) ^ k[1]
	b := uint64(4)<<56 | uint64(v)
	v3 ^= b
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= b
	v2 ^= 0xff
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	return uint32(v0 ^ v1 ^ v2 ^ v3)
}

func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// sipHash is generic SipHash-c-d over msg (little-endian words), used to
// check sipRound against the published reference vectors.
func sipHash(c, d int, k sipKey, msg []byte) uint64 {
	v0 := uint64(0x736f6d6570736575) ^ k[0]
	v1 := uint64(0x646f72616e646f6d) ^ k[1]
	v2 := uint64(0x6c7967656e657261) ^ k[0]
	v3 := uint64(0x7465646279746573) ^ k[1]
	n := len(msg)
	for len(msg) >= 8 {
		m := binary.LittleEndian.Uint64(msg)
		v3 ^= m
		for range c {
			v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		}
		v0 ^= m
		msg = msg[8:]
	}
	b := uint64(n) << 56
	for i, x := range msg {
		b |= uint64(x) << (8 * i)
	}
	v3 ^= b
	for range c {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	v0 ^= b
	v2 ^= 0xff
	for range d {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// mhHash is ip_vs_mh_hashkey: hsiphash of offset + port + folded address.
func mhHash(addr uint32, port uint16, k *sipKey, offset uint32) uint32 {
	return hsiphash32(offset+uint32(port)+addr, k)
}

// l4Port returns the source port the sh/mh -port flags use: only TCP, UDP and
// SCTP carry one.
func l4Port(f *Flow) uint16 {
	switch f.Proto {
	case 6, 17, 132:
		return f.SrcPort
	}
	return 0
}
