package forwarder

import (
	"sync/atomic"
)

// NeighTable maps next-hop IP addresses to MAC addresses for the data path.
//
// Workers read it on every forwarded packet, so a lookup takes no lock and
// allocates nothing: the table is a fixed array of slots, each guarded by its
// own sequence counter (a seqlock). Exactly one goroutine, the resolver,
// writes it; everything else that learns an address (ARP replies seen by a
// worker, the kernel's neighbour table) hands it to the resolver.
//
// Every field is read and written atomically so that the race detector sees
// the seqlock for what it is.
type NeighTable struct {
	slots []neighSlot
	mask  uint64
}

type neighSlot struct {
	seq  atomic.Uint64 // odd while the writer is changing the slot
	hi   atomic.Uint64 // the address, bytes 0..7
	lo   atomic.Uint64 // the address, bytes 8..15
	mac  atomic.Uint64 // 6 bytes of MAC, bit 63 set when the slot holds an entry
	seen atomic.Int64  // when the entry was last confirmed (monotonic ns)
	used atomic.Int64  // when a worker last used it (monotonic ns); drives refresh
}

const (
	neighValid    = uint64(1) << 63
	neighMaxProbe = 8
)

// NewNeighTable returns a table with room for about size entries (rounded up
// to a power of two).
func NewNeighTable(size int) *NeighTable {
	n := 64
	for n < size*2 {
		n <<= 1
	}
	return &NeighTable{slots: make([]neighSlot, n), mask: uint64(n - 1)}
}

func splitAddr(a *[16]byte) (hi, lo uint64) {
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(a[i])
		lo = lo<<8 | uint64(a[8+i])
	}
	return hi, lo
}

func neighHash(hi, lo uint64) uint64 {
	h := (hi ^ lo*0x9E3779B97F4A7C15) * 0xBF58476D1CE4E5B9
	return h ^ h>>31
}

// Lookup returns the MAC address of ip. now (monotonic nanoseconds) marks the
// entry as used, so that the resolver keeps refreshing it.
func (t *NeighTable) Lookup(ip *[16]byte, now int64) (mac [6]byte, ok bool) {
	hi, lo := splitAddr(ip)
	i := neighHash(hi, lo)
	for p := 0; p < neighMaxProbe; p++ {
		s := &t.slots[(i+uint64(p))&t.mask]
		for {
			seq := s.seq.Load()
			if seq&1 != 0 {
				continue // the writer is in the middle of this slot
			}
			m := s.mac.Load()
			h, l := s.hi.Load(), s.lo.Load()
			if s.seq.Load() != seq {
				continue
			}
			if m&neighValid == 0 {
				return mac, false // an empty slot ends the probe sequence
			}
			if h == hi && l == lo {
				if s.used.Load() < now {
					s.used.Store(now)
				}
				macFromUint(&mac, m)
				return mac, true
			}
			break
		}
	}
	return mac, false
}

func macToUint(m [6]byte) uint64 {
	return neighValid | uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 |
		uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

func macFromUint(dst *[6]byte, m uint64) {
	dst[0], dst[1], dst[2] = byte(m>>40), byte(m>>32), byte(m>>24)
	dst[3], dst[4], dst[5] = byte(m>>16), byte(m>>8), byte(m)
}

// set stores ip -> mac. Only the resolver goroutine calls it. It reports
// false when the probe window is full of other live entries; the caller then
// evicts the least recently used one with evict.
func (t *NeighTable) set(ip *[16]byte, mac [6]byte, now int64) bool {
	hi, lo := splitAddr(ip)
	i := neighHash(hi, lo)
	var victim *neighSlot
	for p := 0; p < neighMaxProbe; p++ {
		s := &t.slots[(i+uint64(p))&t.mask]
		m := s.mac.Load()
		if m&neighValid != 0 && (s.hi.Load() != hi || s.lo.Load() != lo) {
			if victim == nil || s.used.Load() < victim.used.Load() {
				victim = s
			}
			continue
		}
		t.write(s, hi, lo, macToUint(mac), now)
		return true
	}
	// Replace the least recently used entry of the window. Entries behind it
	// stay reachable because the window keeps its length.
	t.write(victim, hi, lo, macToUint(mac), now)
	return false
}

func (t *NeighTable) write(s *neighSlot, hi, lo, mac uint64, now int64) {
	s.seq.Add(1)
	s.hi.Store(hi)
	s.lo.Store(lo)
	s.mac.Store(mac)
	s.seen.Store(now)
	if s.used.Load() == 0 {
		s.used.Store(now)
	}
	s.seq.Add(1)
}

// neighEntry is a snapshot of one slot, for the resolver and for listings.
type neighEntry struct {
	IP   [16]byte
	MAC  [6]byte
	Seen int64
	Used int64
}

// entries returns every live entry. Only the resolver goroutine (the single
// writer) calls it, so it needs no retry loop.
func (t *NeighTable) entries(dst []neighEntry) []neighEntry {
	for i := range t.slots {
		s := &t.slots[i]
		m := s.mac.Load()
		if m&neighValid == 0 {
			continue
		}
		var e neighEntry
		hi, lo := s.hi.Load(), s.lo.Load()
		for b := 0; b < 8; b++ {
			e.IP[b] = byte(hi >> (56 - 8*b))
			e.IP[8+b] = byte(lo >> (56 - 8*b))
		}
		macFromUint(&e.MAC, m)
		e.Seen, e.Used = s.seen.Load(), s.used.Load()
		dst = append(dst, e)
	}
	return dst
}
