package scheduler

import (
	"math"
	"time"
)

// The lblc/lblcr tables (ip_vs_lblc.c, ip_vs_lblcr.c): 1024 chained buckets
// keyed by the packet's destination address, bucket hash_32(addr, 10).

const (
	lbTabBits       = 10
	lbTabSize       = 1 << lbTabBits
	lbMaxSize       = lbTabSize * 16 // tbl->max_size
	lbCheckInterval = int64(60 * time.Second)
	lbEntryTimeout  = int64(6 * 60 * time.Second)
	lbFullEvery     = 30 // COUNT_FOR_FULL_EXPIRATION
	// DefaultLBLCExpiration is the default of the lblc_expiration and
	// lblcr_expiration sysctls.
	DefaultLBLCExpiration = 24 * time.Hour
)

type lbEntry struct {
	addr    [16]byte
	dest    *Dest   // lblc
	set     []*Dest // lblcr, most recently inserted first
	lastuse int64
	lastmod int64 // lblcr: set.lastmod
	next    int32 // next entry in the bucket chain, -1 at the end
}

type lbTable struct {
	bucket  [lbTabSize]int32
	ents    []lbEntry
	free    []int32
	entries int
	rover   int
	counter int
	nextGC  int64
	// minUse is at most the smallest lastuse of any entry (lastuse only
	// grows), so a collection can tell when no entry can be due.
	minUse int64
}

func newLBTable(now int64) *lbTable {
	t := &lbTable{counter: 1, nextGC: now + lbCheckInterval, minUse: math.MaxInt64}
	for i := range t.bucket {
		t.bucket[i] = -1
	}
	return t
}

func lbHash(a *[16]byte, v6 bool) uint32 { return hash32(fold(a, v6), lbTabBits) }

func (t *lbTable) get(a *[16]byte, v6 bool) *lbEntry {
	for i := t.bucket[lbHash(a, v6)]; i >= 0; i = t.ents[i].next {
		if t.ents[i].addr == *a {
			return &t.ents[i]
		}
	}
	return nil
}

// add inserts a new entry at the head of its bucket, reusing a freed slot.
func (t *lbTable) add(a *[16]byte, v6 bool, now int64) *lbEntry {
	var i int32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.ents = append(t.ents, lbEntry{})
		i = int32(len(t.ents) - 1)
	}
	h := lbHash(a, v6)
	e := &t.ents[i]
	*e = lbEntry{addr: *a, lastuse: now, set: e.set[:0], next: t.bucket[h]}
	t.bucket[h] = i
	t.entries++
	t.minUse = min(t.minUse, now)
	return e
}

// expireBucket deletes the entries of bucket j for which dead(lastuse) holds
// and returns how many it deleted.
func (t *lbTable) expireBucket(j int, dead func(lastuse int64) bool) int {
	n := 0
	prev := int32(-1)
	for i := t.bucket[j]; i >= 0; {
		e := &t.ents[i]
		nx := e.next
		if dead(e.lastuse) {
			if prev < 0 {
				t.bucket[j] = nx
			} else {
				t.ents[prev].next = nx
			}
			clear(e.set)
			e.dest, e.set, e.next = nil, e.set[:0], -1
			t.free = append(t.free, i)
			t.entries--
			n++
		} else {
			prev = i
		}
		i = nx
	}
	return n
}

// check is ip_vs_lblc_check_expire / ip_vs_lblcr_check_expire, run by the
// periodic timer at time now.
func (t *lbTable) check(now, expiration int64) {
	if t.counter%lbFullEvery == 0 {
		// Full check: every bucket from the rover round to the rover
		// (which ends where it started). Skipped when no entry can be
		// due, which deletes exactly what the scan would: nothing.
		if t.entries > 0 && now >= t.minUse+expiration {
			t.minUse = math.MaxInt64
			for i, j := 0, t.rover; i < lbTabSize; i++ {
				j = (j + 1) & (lbTabSize - 1)
				t.expireBucket(j, func(lu int64) bool { return now >= lu+expiration })
			}
			t.recomputeMinUse()
		}
		t.counter = 1
		return
	}
	if t.entries <= lbMaxSize {
		t.counter++
		return
	}
	if now < t.minUse+lbEntryTimeout {
		return // nothing idle long enough: the scan would go round to the rover and delete nothing
	}
	goal := (t.entries - lbMaxSize) * 4 / 3
	if goal > lbMaxSize/2 {
		goal = lbMaxSize / 2
	}
	j := t.rover
	for i := 0; i < lbTabSize; i++ {
		j = (j + 1) & (lbTabSize - 1)
		goal -= t.expireBucket(j, func(lu int64) bool { return now >= lu+lbEntryTimeout })
		if goal <= 0 {
			break
		}
	}
	t.rover = j
	t.recomputeMinUse()
}

func (t *lbTable) recomputeMinUse() {
	t.minUse = math.MaxInt64
	for _, i := range t.bucket {
		for ; i >= 0; i = t.ents[i].next {
			t.minUse = min(t.minUse, t.ents[i].lastuse)
		}
	}
}

// tick runs every timer expiry due by now, each at its own due time.
func (t *lbTable) tick(now, expiration int64) {
	for now >= t.nextGC {
		if t.entries == 0 {
			// An empty table's checks only step the counter round its
			// cycle 1..30 (the 30th is the full check, which resets it).
			k := (now-t.nextGC)/lbCheckInterval + 1
			t.counter = int((int64(t.counter)-1+k)%lbFullEvery) + 1
			t.nextGC += k * lbCheckInterval
			return
		}
		t.check(t.nextGC, expiration)
		t.nextGC += lbCheckInterval
	}
}
