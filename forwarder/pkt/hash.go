package pkt

import (
	"encoding/binary"
	"math/bits"
)

// Hash constants: odd 64-bit values with well-spread bits. They are part
// of the hash's definition: changing them changes every shard choice.
const (
	hashK0 = 0xa0761d6478bd642f
	hashK1 = 0xe7037ed1a0b428db
	hashK2 = 0x8ebc6af09c88c6e3
	hashK3 = 0x589965cc75374cc3
	hashK4 = 0x1d8e4e27c47d124f
)

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// Hash returns a 64-bit hash of k with seed, for shard and bucket
// selection. It is defined on the key's bytes read as little-endian 64-bit
// words (source, destination, then ports and protocol), so it gives the
// same value on every platform and in every process that uses the same
// seed. It is not symmetric: k and k.Reverse() hash differently. It is not
// a cryptographic hash; with a random per-process seed it resists
// precomputed collisions, not adaptive ones.
func (k *FlowKey) Hash(seed uint64) uint64 {
	w0 := binary.LittleEndian.Uint64(k.Src[0:])
	w1 := binary.LittleEndian.Uint64(k.Src[8:])
	w2 := binary.LittleEndian.Uint64(k.Dst[0:])
	w3 := binary.LittleEndian.Uint64(k.Dst[8:])
	// ports as big-endian values and the protocol, independent of the
	// struct's in-memory layout of uint16 fields
	w4 := uint64(k.SrcPort)<<24 | uint64(k.DstPort)<<8 | uint64(k.Proto)
	h1 := mum(w0^hashK0, w1^hashK1^seed)
	h2 := mum(w2^hashK2, w3^hashK3^seed)
	return mum(h1^w4^hashK4, h2^hashK1^seed)
}
