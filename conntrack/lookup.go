package conntrack

// Lock-free lookups.
//
// A reader walks a bucket chain with atomic loads only. For every entry it
// reads ctl, then the key words and the next link, then ctl again: if the
// generation changed or the entry is dead, the entry was freed (and maybe
// reused) under it, and the walk restarts. A key that matches between two
// equal live ctl reads is a true hit, whatever chain the reader is on, since
// keys are unique in the table. A miss is only trusted when the shard's
// sequence number did not move during the walk; otherwise the walk is
// retried, and after a few retries it is redone under the shard lock.

import "github.com/ulvs/ulvs/scheduler"

const lookupRetries = 4

// key words of a lookup.
type lkey struct {
	a0, a1 uint64 // first address (client for inbound; server/virtual for outbound)
	b0, b1 uint64 // second address
	pw     uint64 // ports word value
	pm     uint64 // ports word mask
}

const (
	pmInbound  = 0xffff | 0xffff<<16 | 0xff<<48 | afClient6 | isTemplate
	isTemplate = 1 << 59
)

// matchIn compares e's inbound key: caddr, vaddr, cport, vport, proto, af,
// template-ness.
func (e entry) matchIn(k *lkey) bool {
	return e.caddr[0].Load() == k.a0 && e.caddr[1].Load() == k.a1 &&
		e.vaddr[0].Load() == k.b0 && e.vaddr[1].Load() == k.b1 &&
		e.ports.Load()&k.pm == k.pw
}

// matchOut compares e's outbound key against a reply packet whose source is
// (k.a, sport) and destination the client (k.b, cport): the source is the
// real server for NAT and the virtual address for other methods.
func (e entry) matchOut(k *lkey, sport, cport uint16, proto uint8, v6 bool) bool {
	p := e.ports.Load()
	if uint16(p) != cport || uint8(p>>48) != proto || (p&afClient6 != 0) != v6 || p&isTemplate != 0 {
		return false
	}
	if e.caddr[0].Load() != k.b0 || e.caddr[1].Load() != k.b1 {
		return false
	}
	if Method(infoFlags(e.info.Load())&FlagFwdMask) == MethodMasq {
		return uint16(p>>32) == sport && e.daddr[0].Load() == k.a0 && e.daddr[1].Load() == k.a1
	}
	return uint16(p>>16) == sport && e.vaddr[0].Load() == k.a0 && e.vaddr[1].Load() == k.a1
}

// findIn looks up an inbound key in shard s, bucket b. It returns the local
// index and the ctl word read when the key matched.
func (t *Table) findIn(s *shard, b uint64, k *lkey) (uint32, uint64, bool) {
	for try := 0; try < lookupRetries; try++ {
		seq := s.seq.Load()
		li := s.inB[b].Load()
		hops := 0
		clean := true
		for li != nilIdx {
			if hops > int(t.perShard) {
				clean = false
				break
			}
			e := t.at(s, li)
			c := e.ctl.Load()
			if c&ctlLive == 0 {
				clean = false
				break
			}
			m := e.matchIn(k)
			next := e.nextIn.Load()
			c2 := e.ctl.Load()
			if c2&ctlLive == 0 || ctlGen(c2) != ctlGen(c) {
				clean = false
				break
			}
			if m {
				return li, c2, true
			}
			li = next
			hops++
		}
		if clean && s.seq.Load() == seq {
			return nilIdx, 0, false
		}
	}
	s.mu.Lock()
	li, c, ok := t.findInLocked(s, b, k)
	s.mu.Unlock()
	return li, c, ok
}

// findInLocked is findIn with s.mu held (no concurrent changes).
func (t *Table) findInLocked(s *shard, b uint64, k *lkey) (uint32, uint64, bool) {
	for li := s.inB[b].Load(); li != nilIdx; {
		e := t.at(s, li)
		if e.matchIn(k) {
			return li, e.ctl.Load(), true
		}
		li = e.nextIn.Load()
	}
	return nilIdx, 0, false
}

func (t *Table) findOut(s *shard, b uint64, k *lkey, sport, cport uint16, proto uint8, v6 bool) (uint32, uint64, bool) {
	for try := 0; try < lookupRetries; try++ {
		seq := s.seq.Load()
		li := s.outB[b].Load()
		hops := 0
		clean := true
		for li != nilIdx {
			if hops > int(t.perShard) {
				clean = false
				break
			}
			e := t.at(s, li)
			c := e.ctl.Load()
			if c&ctlLive == 0 {
				clean = false
				break
			}
			m := e.matchOut(k, sport, cport, proto, v6)
			next := e.nextOut.Load()
			c2 := e.ctl.Load()
			if c2&ctlLive == 0 || ctlGen(c2) != ctlGen(c) {
				clean = false
				break
			}
			if m {
				return li, c2, true
			}
			li = next
			hops++
		}
		if clean && s.seq.Load() == seq {
			return nilIdx, 0, false
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for li := s.outB[b].Load(); li != nilIdx; {
		e := t.at(s, li)
		if e.matchOut(k, sport, cport, proto, v6) {
			return li, e.ctl.Load(), true
		}
		li = e.nextOut.Load()
	}
	return nilIdx, 0, false
}

// PrefetchIn warms the CPU caches for the inbound lookups of a batch of
// packets (IPv4 or IPv6) before they are handled one by one with In: it
// reads each flow's bucket head, then the first entry of each chain, in
// two passes of independent loads, so that the memory latencies of the
// whole batch overlap instead of adding up. It changes nothing and its
// result means nothing (it only keeps the loads from being optimised
// away). Worth it for batches of 8 or more with tables larger than the
// CPU caches.
func (t *Table) PrefetchIn(fs []scheduler.Flow) uint64 { return t.prefetch(fs, false) }

// PrefetchOut is PrefetchIn for a batch of replies handled with Out.
func (t *Table) PrefetchOut(fs []scheduler.Flow) uint64 { return t.prefetch(fs, true) }

func (t *Table) prefetch(fs []scheduler.Flow, out bool) uint64 {
	const max = 64
	var heads [max]uint32
	var shards [max]uint32
	var x uint64
	for len(fs) > 0 {
		n := min(len(fs), max)
		for i := 0; i < n; i++ {
			f := &fs[i]
			var h uint64
			if out {
				a0, a1 := addrWords(&f.Dst)
				h = t.hash(a0, a1, f.DstPort, f.Proto, f.IPv6)
			} else {
				a0, a1 := addrWords(&f.Src)
				h = t.hash(a0, a1, f.SrcPort, f.Proto, f.IPv6)
			}
			si := t.shardOf(h)
			shards[i] = si
			if out {
				heads[i] = t.shards[si].outB[h&t.bmask].Load()
			} else {
				heads[i] = t.shards[si].inB[h&t.bmask].Load()
			}
		}
		for i := 0; i < n; i++ {
			if li := heads[i]; li != nilIdx {
				e := t.at(&t.shards[shards[i]], li)
				x ^= e.ctl.Load() ^ e.daddr[0].Load()
			}
		}
		fs = fs[n:]
	}
	return x
}
