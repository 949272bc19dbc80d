package engine

import (
	"encoding/binary"
	"testing"
)

// FuzzDrain feeds arbitrary ring memory (one ready V3 block, and the same
// bytes as V2 slots) to the ring readers: they must never panic, never hand
// out a frame outside the slot, and always give the memory back.
func FuzzDrain(f *testing.F) {
	// Seed: a well-formed block with two frames.
	blk := make([]byte, 4096)
	binary.LittleEndian.PutUint32(blk[bdStatus:], tpStatusUser)
	binary.LittleEndian.PutUint32(blk[bdNumPkts:], 2)
	binary.LittleEndian.PutUint32(blk[bdFirstPkt:], bdHdrLen)
	h := bdHdrLen
	for i := 0; i < 2; i++ {
		next := uint32(256)
		if i == 1 {
			next = 0
		}
		binary.LittleEndian.PutUint32(blk[h+hNext:], next)
		binary.LittleEndian.PutUint32(blk[h+hSnaplen:], 60)
		binary.LittleEndian.PutUint32(blk[h+hLen:], 60)
		binary.LittleEndian.PutUint16(blk[h+hMac:], 80)
		h += 256
	}
	f.Add(blk)
	f.Add(make([]byte, 4096))
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := make([]byte, 8192)
		copy(mem, data)
		q := &afpQueue{}
		pkts := NewBatch(8, 256)
		var bytes, tooBig, outgoing uint64
		r := &rxRing{mem: mem, blockSize: 4096, nblocks: 2}
		// Force block 0 ready whatever the input says.
		mem[bdStatus] |= tpStatusUser
		for round := 0; round < 4; round++ {
			n := q.drain(r, pkts, &bytes, &tooBig, &outgoing)
			for i := 0; i < n; i++ {
				p := pkts[i]
				if p.Off != Headroom || p.Len <= 0 || p.Off+p.Len > len(p.Buf) {
					t.Fatalf("slot %d: off %d len %d", i, p.Off, p.Len)
				}
			}
			if n < len(pkts) && r.left != 0 {
				t.Fatalf("drain stopped early with %d frames left in the block", r.left)
			}
		}
		v2 := &rxRing{mem: mem, blockSize: v2SlotSize, nblocks: len(mem) / v2SlotSize, v2: true}
		for round := 0; round < 4; round++ {
			n := q.drainV2(v2, pkts, &bytes, &tooBig, &outgoing)
			for i := 0; i < n; i++ {
				if p := pkts[i]; p.Len <= 0 || p.Off+p.Len > len(p.Buf) {
					t.Fatalf("v2 slot %d: len %d", i, p.Len)
				}
			}
		}
		// Every slot the V2 reader consumed is back with the kernel.
		for s := 0; s < v2.cur; s++ {
			if binary.LittleEndian.Uint32(mem[s*v2SlotSize:])&tpStatusUser != 0 {
				t.Fatalf("v2 slot %d not released", s)
			}
		}
	})
}
