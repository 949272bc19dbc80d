package scheduler

import "time"

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
}

func newLBTable(now int64) *lbTable {
	t := &lbTable{counter: 1, nextGC: now + lbCheckInterval}
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
		// Full check: every bucket from the rover round to the rover.
		for i, j := 0, t.rover; i < lbTabSize; i++ {
			j = (j + 1) & (lbTabSize - 1)
			t.expireBucket(j, func(lu int64) bool { return now >= lu+expiration })
		}
		t.counter = 1
		return
	}
	if t.entries <= lbMaxSize {
		t.counter++
		return
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
}

// tick runs every timer expiry due by now, each at its own due time.
func (t *lbTable) tick(now, expiration int64) {
	for now >= t.nextGC {
		t.check(t.nextGC, expiration)
		t.nextGC += lbCheckInterval
	}
}
