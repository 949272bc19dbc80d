package scheduler

import (
	"net/netip"
	"testing"
	"time"
)

const sec = int64(time.Second)

func dstFlow(dst string) *Flow {
	a := netip.MustParseAddr(dst)
	return &Flow{Dst: a.As16(), IPv6: !a.Is4()}
}

func TestLBLCStickinessAndOverload(t *testing.T) {
	p := mustPool(t, "lblc", 0, Options{})
	a, b := dest("10.0.0.1:80", 2), dest("10.0.0.2:80", 2)
	p.Add(a, b) // list b, a
	f := dstFlow("10.99.0.7")
	if got := p.Schedule(f, 0); got != b {
		t.Fatalf("first pick wlc: got %v", name0(got))
	}
	b.Bind(false, true)
	b.Bind(false, true) // b: active 2 == weight: not > weight
	if got := p.Schedule(f, sec); got != b {
		t.Fatalf("cached server kept: got %v", name0(got))
	}
	b.Bind(false, true) // active 3 > weight 2, and a has 2*0 < 2: overloaded
	if got := p.Schedule(f, 2*sec); got != a {
		t.Fatalf("is_overloaded moves the entry: got %v", name0(got))
	}
	// The OVERLOAD flag itself is not checked for the cached server.
	a.flags.Or(FlagOverload)
	if got := p.Schedule(f, 3*sec); got != a {
		t.Fatalf("OVERLOAD flag ignored on a hit: got %v", name0(got))
	}
	a.flags.And(^FlagOverload)
	// No server with 2*active < weight: the test says not overloaded.
	a.Bind(false, true)
	a.Bind(false, true)
	a.Bind(false, true) // a: 3 > 2; b: 3 > 2; nobody has 2*active < weight
	if got := p.Schedule(f, 4*sec); got != a {
		t.Fatalf("no lightly loaded server: keep the entry, got %v", name0(got))
	}
	// A deleted cached server is replaced.
	p.Delete(a)
	if got := p.Schedule(f, 5*sec); got != b {
		t.Fatalf("deleted: got %v", name0(got))
	}
	// IPv6 destinations fold to the same table.
	f6 := dstFlow("2001:db8::1")
	if got := p.Schedule(f6, 6*sec); got != b {
		t.Fatalf("ipv6: got %v", name0(got))
	}
	if p.lb.entries != 2 {
		t.Fatalf("entries %d, want 2", p.lb.entries)
	}
}

func TestLBLCExpiryAndCollection(t *testing.T) {
	p := mustPool(t, "lblc", 0, Options{LBLCExpiration: 10 * time.Minute})
	a := dest("10.0.0.1:80", 1)
	p.Add(a)
	p.Schedule(dstFlow("10.99.0.1"), 0)
	p.Schedule(dstFlow("10.99.0.2"), 25*60*sec)
	// Timer every 60 s from creation; the full check is the 30th (1800 s).
	p.Tick(1799 * sec)
	if p.lb.entries != 2 {
		t.Fatalf("before the full check: %d entries", p.lb.entries)
	}
	p.Tick(1800 * sec)
	// 10.99.0.1 idle 1800 s >= 600: gone; 10.99.0.2 idle 300 s: kept.
	if p.lb.entries != 1 || p.lb.get(&dstFlow("10.99.0.2").Dst, false) == nil {
		t.Fatalf("after the full check: %d entries", p.lb.entries)
	}
	if p.lb.counter != 1 {
		t.Fatalf("counter reset to 1, got %d", p.lb.counter)
	}
}

func TestLBLCOverflowCollection(t *testing.T) {
	p := mustPool(t, "lblc", 0, Options{})
	p.Add(dest("10.0.0.1:80", 1))
	// 16384 + 300 entries, idle for more than 6 minutes by the first timer.
	n := lbMaxSize + 300
	for i := range n {
		f := &Flow{Dst: netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)}).As16()}
		p.Schedule(f, 0)
	}
	// Timer at 60 s: entries idle only 60 s: none may be collected.
	p.Tick(60 * sec)
	if p.lb.entries != n || p.lb.counter != 1 {
		t.Fatalf("60 s: %d entries counter %d", p.lb.entries, p.lb.counter)
	}
	// Timers at 120..420 s: at 420 s they are idle >= 6 min. goal =
	// 300*4/3 = 400: whole buckets are collected from the rover until
	// the goal is met, so at least 400 and a bucket's worth more at most.
	p.Tick(420 * sec)
	gone := n - p.lb.entries
	if gone < 400 || gone > 400+64 {
		t.Fatalf("collected %d, want 400 plus at most one bucket", gone)
	}
	if p.lb.rover == 0 {
		t.Fatal("rover must move")
	}
}

func TestLBLCRSetAndPruning(t *testing.T) {
	p := mustPool(t, "lblcr", 0, Options{LBLCRExpiration: 100 * time.Second})
	a, b := dest("10.0.0.1:80", 1), dest("10.0.0.2:80", 1)
	c := dest("10.0.0.3:80", 4)
	p.Add(a, b) // list b, a
	f := dstFlow("10.99.0.9")
	if got := p.Schedule(f, 0); got != b {
		t.Fatalf("new entry: %v", name0(got))
	}
	b.Bind(false, true)
	b.Bind(false, true) // b overloaded (2 > 1) while a has 0*2 < 1
	if got := p.Schedule(f, sec); got != a {
		t.Fatalf("set grows with the wlc pick: %v", name0(got))
	}
	en := p.lb.get(&f.Dst, false)
	if len(en.set) != 2 || en.set[0] != a || en.lastmod != sec {
		t.Fatalf("set %v lastmod %d", en.set, en.lastmod)
	}
	// a is now the least loaded member and not overloaded.
	if got := p.Schedule(f, 2*sec); got != a {
		t.Fatalf("member min: %v", name0(got))
	}
	// After lblcr_expiration since lastmod, the most loaded member (b)
	// is pruned.
	p.Add(c)
	if got := p.Schedule(f, 102*sec); got != a || len(en.set) != 1 || en.set[0] != a || en.lastmod != 102*sec {
		t.Fatalf("prune: got %v set %v", name0(got), en.set)
	}
}

func TestMaglevDisruptionAndShares(t *testing.T) {
	// Removing one of N servers moves the flows of the removed server and
	// only a small share of the others' (Maglev paper: near-minimal).
	const n = 20
	p := mustPool(t, "mh", 0, Options{})
	ds := make([]*Dest, n)
	for i := range ds {
		ds[i] = dest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), 80).String(), 1)
		p.Add(ds[i])
	}
	before := append([]*Dest(nil), p.tab.Load().buckets...)
	p.Delete(ds[7])
	after := p.tab.Load().buckets
	moved := 0
	for i := range before {
		if before[i] != ds[7] && before[i] != after[i] {
			moved++
		}
	}
	m := len(before)
	// Bound: the surviving servers lose fewer slots than one server's
	// share of the table (1/N); ideal consistent hashing moves none.
	if moved > m/n {
		t.Fatalf("%d of %d slots of surviving servers moved (bound %d)", moved, m, m/n)
	}
	// Weights map to shares: weights 1..4 give slot shares proportional
	// within 2%.
	q := mustPool(t, "mh", 0, Options{MHTableIndex: 14})
	ws := []int32{1, 2, 3, 4}
	qd := make([]*Dest, len(ws))
	for i, w := range ws {
		qd[i] = dest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 2, byte(i + 1)}), 80).String(), w)
		q.Add(qd[i])
	}
	count := map[*Dest]int{}
	for _, d := range q.tab.Load().buckets {
		count[d]++
	}
	total := len(q.tab.Load().buckets)
	for i, d := range qd {
		share := float64(count[d]) / float64(total)
		want := float64(ws[i]) / 10
		if share < want-0.02 || share > want+0.02 {
			t.Errorf("weight %d: share %.3f, want %.3f±0.02", ws[i], share, want)
		}
	}
}

// naiveCheck is ip_vs_lblc_check_expire without any shortcut.
func naiveCheck(t *lbTable, now, expiration int64) {
	if t.counter%lbFullEvery == 0 {
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
	goal := min((t.entries-lbMaxSize)*4/3, lbMaxSize/2)
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

// TestLBLCCollectionShortcuts: the skipped scans and the fast-forward of an
// empty table leave the table exactly as the kernel's timer would.
func TestLBLCCollectionShortcuts(t *testing.T) {
	exp := int64(40 * 60 * sec)
	fast, slow := newLBTable(0), newLBTable(0)
	slowNext := slow.nextGC
	n := lbMaxSize + 2000
	now := int64(0)
	for step := range 30 {
		// New entries in bursts, some reused, then a time jump.
		for i := range n / 10 {
			a := netip.AddrFrom4([4]byte{10, byte(step), byte(i >> 8), byte(i)}).As16()
			for _, tb := range []*lbTable{fast, slow} {
				if e := tb.get(&a, false); e != nil {
					e.lastuse = now
					tb.minUse = min(tb.minUse, now)
				} else {
					tb.add(&a, false, now)
				}
			}
		}
		now += int64(step%7) * 7 * 60 * sec
		fast.tick(now, exp)
		for now >= slowNext {
			naiveCheck(slow, slowNext, exp)
			slowNext += lbCheckInterval
		}
		if fast.entries != slow.entries || fast.counter != slow.counter || fast.rover != slow.rover || fast.nextGC != slowNext {
			t.Fatalf("step %d: fast entries %d counter %d rover %d next %d; kernel %d %d %d %d",
				step, fast.entries, fast.counter, fast.rover, fast.nextGC, slow.entries, slow.counter, slow.rover, slowNext)
		}
	}
	// A year of idle time: everything expires and the call is quick.
	now += 365 * 24 * 3600 * sec
	fast.tick(now, exp)
	for now >= slowNext {
		naiveCheck(slow, slowNext, exp)
		slowNext += lbCheckInterval
	}
	if fast.entries != 0 || fast.counter != slow.counter || fast.nextGC != slowNext {
		t.Fatalf("after a year: entries %d counter %d/%d next %d/%d", fast.entries, fast.counter, slow.counter, fast.nextGC, slowNext)
	}
}
