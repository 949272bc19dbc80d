package scheduler

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a Pool. The zero value gives the kernel's defaults.
type Options struct {
	// MHTableIndex is CONFIG_IP_VS_MH_TAB_INDEX, 8..17: the mh table size
	// is the prime 251, 509, 1021, 2039, 4093 (12, the default), 8191,
	// 16381, 32749, 65521 or 131071. 0 means 12.
	MHTableIndex int
	// Rand is twos' random source (the kernel's prandom_u32). nil means
	// math/rand/v2's Uint32. It is called with the Pool's lock held.
	Rand func() uint32
	// LBLCExpiration and LBLCRExpiration are the lblc_expiration and
	// lblcr_expiration sysctls; 0 means 24 h.
	LBLCExpiration, LBLCRExpiration time.Duration
	// Now is the Pool's creation time on the clock of Schedule and Tick
	// (monotonic nanoseconds); lblc/lblcr's 60-s collection timer starts
	// from it.
	Now int64
}

// Pool is the real-server list of one virtual service and its scheduler.
//
// Control-plane calls (Add, AddWith, Edit, Delete, SetScheduler, Tick) and
// Schedule are safe for concurrent use. Schedule is the per-connection path:
// it does not allocate; dh, sh and mh take no lock; the others take the
// Pool's lock for the time of one decision (IPVS takes its per-service
// sched_lock for rr, wrr, lblc and lblcr; ulvs also takes it where it
// replaces the kernel's full scans with the index).
type Pool struct {
	mu    sync.Mutex
	kind  kind
	flags Flags
	opts  Options
	mhM   int // mh table size
	mhBit int // IP_VS_MH_TAB_BITS
	rand  func() uint32

	// Leaves: capacity c, used from c-1 downwards; leaf order = list order.
	c     int
	next  int // the next free leaf; -1 when full
	leaf  []*Dest
	n     int
	track *tracker

	mx   maxTree    // rr, wrr, fo, ovf
	mn   argMinTree // lc, wlc, sed, nq, lblc, lblcr
	sm   sumTree    // twos
	half []bool     // lblc/lblcr: 2*active < weight, per leaf
	nh   int        // number of true in half

	tab atomic.Pointer[hashTable] // dh, sh, mh; nil for the others

	cursor int // rr: leaf of the last pick, -1 = list head

	cl            int // wrr: leaf of the last pick, -1 = list head
	cw, mw, di    int32
	wmax, wgcd    int32 // wrr: maximum weight, gcd of positive weights (0 = none)
	lb            *lbTable
	lastNow       int64
	lbExp, lbrExp int64
}

// New returns an empty Pool using scheduler name with flags.
func New(name string, flags Flags, opts Options) (*Pool, error) {
	k, ok := kindOf(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q (want one of rr wrr lc wlc sed nq lblc lblcr dh sh mh fo ovf twos)", ErrUnknownScheduler, name)
	}
	if err := checkFlags(k, flags); err != nil {
		return nil, err
	}
	if opts.MHTableIndex == 0 {
		opts.MHTableIndex = 12
	}
	if opts.MHTableIndex < 8 || opts.MHTableIndex > 17 {
		return nil, fmt.Errorf("%w: MHTableIndex %d not in 8..17", ErrBadOption, opts.MHTableIndex)
	}
	if opts.LBLCExpiration < 0 || opts.LBLCRExpiration < 0 {
		return nil, fmt.Errorf("%w: negative lblc/lblcr expiration", ErrBadOption)
	}
	p := &Pool{opts: opts, rand: opts.Rand, lastNow: opts.Now}
	if p.rand == nil {
		p.rand = rand.Uint32
	}
	p.mhM = mhPrimes[opts.MHTableIndex-8]
	p.mhBit = opts.MHTableIndex / 2
	p.lbExp = int64(opts.LBLCExpiration)
	if p.lbExp == 0 {
		p.lbExp = int64(DefaultLBLCExpiration)
	}
	p.lbrExp = int64(opts.LBLCRExpiration)
	if p.lbrExp == 0 {
		p.lbrExp = int64(DefaultLBLCExpiration)
	}
	p.c = 8
	p.next = p.c - 1
	p.leaf = make([]*Dest, p.c)
	p.start(k, flags)
	return p, nil
}

// Scheduler returns the scheduler's name.
func (p *Pool) Scheduler() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kind.String()
}

// Flags returns the scheduler flags.
func (p *Pool) Flags() Flags {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flags
}

// start sets up scheduler k's state for the current list (init_service).
func (p *Pool) start(k kind, flags Flags) {
	p.kind, p.flags = k, flags
	p.cursor = -1
	p.lb = nil
	if k == kLBLC || k == kLBLCR {
		p.lb = newLBTable(p.lastNow)
	}
	p.initIndex()
	p.wrrRecompute()
	p.cl, p.cw = -1, p.mw
	p.publishTable()
}

// SetScheduler changes the scheduler and its flags, as ipvsadm -E does: the
// real servers and their counters stay. Changing to a different scheduler
// starts its state afresh; the same scheduler keeps its state and only takes
// the new flags.
func (p *Pool) SetScheduler(name string, flags Flags) error {
	k, ok := kindOf(name)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownScheduler, name)
	}
	if err := checkFlags(k, flags); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if k == kMH && p.n > p.mhM {
		return fmt.Errorf("%w: %d real servers, table size %d", ErrTooManyServers, p.n, p.mhM)
	}
	if k == p.kind {
		p.flags = flags
		p.publishTable()
		return nil
	}
	p.start(k, flags)
	return nil
}

// indexed reports whether the scheduler keeps a per-leaf index.
func (p *Pool) indexed() bool { return !p.kind.hashed() }

// initIndex allocates the index for the current kind and capacity and fills
// it from every leaf.
func (p *Pool) initIndex() {
	p.mx, p.mn, p.sm = maxTree{}, argMinTree{}, sumTree{}
	p.half, p.nh = nil, 0
	span := p.c - (p.next + 1) // leaves in use or left empty by a delete
	switch p.kind {
	case kRR, kWRR, kFO, kOVF:
		p.mx.init(p.c)
	case kLC:
		p.mn.init(p.c, span, cmpLC)
	case kNQ:
		p.mn.init(p.c, span, cmpNQ)
	case kWLC, kSED, kLBLC, kLBLCR:
		p.mn.init(p.c, span, cmpWLC)
	case kTWOS:
		p.sm.init(p.c)
	}
	if p.kind == kLBLC || p.kind == kLBLCR {
		p.half = make([]bool, p.c)
	}
	var t *tracker
	if p.indexed() {
		t = newTracker(p.c, trackedEvents(p.kind))
	}
	p.track = t
	for i := p.next + 1; i < p.c; i++ {
		if d := p.leaf[i]; d != nil {
			d.slot.Store(int32(i))
			d.track.Store(t) // after the slot: see tracker.changed
		}
	}
	if t != nil {
		for i := p.next + 1; i < p.c; i++ {
			if p.leaf[i] != nil {
				p.refresh(i)
			}
		}
	}
}

// refresh recomputes leaf i's keys from its Dest's atomics.
func (p *Pool) refresh(i int) {
	d := p.leaf[i]
	var w, a, in int32
	var fl uint32
	if d != nil {
		w, fl, a, in = d.weight.Load(), d.flags.Load(), d.active.Load(), d.inactive.Load()
	}
	elig := d != nil && fl&FlagOverload == 0 && w > 0
	var ew int64
	if elig {
		ew = int64(w)
	}
	switch p.kind {
	case kRR:
		p.mx.set(i, min(ew, 1))
	case kWRR, kFO:
		p.mx.set(i, ew)
	case kOVF:
		if a > w {
			ew = 0
		}
		p.mx.set(i, ew)
	case kLC, kWLC, kLBLC, kLBLCR:
		p.mn.set(i, int64(a<<8+in), int32(ew))
	case kSED, kNQ:
		p.mn.set(i, int64(a+1), int32(ew))
	case kTWOS:
		p.sm.set(i, ew)
	}
	if p.half != nil {
		h := d != nil && a*2 < w
		if h != p.half[i] {
			p.half[i] = h
			if h {
				p.nh++
			} else {
				p.nh--
			}
		}
	}
}

// drain refreshes the leaves whose Dests changed since the last call.
func (p *Pool) drain() {
	t := p.track
	if t == nil {
		return
	}
	if t.summary == nil {
		for w := range t.dirty {
			if t.dirty[w].Load() != 0 {
				p.drainWord(w)
			}
		}
		return
	}
	for s := range t.summary {
		if t.summary[s].Load() == 0 {
			continue
		}
		sw := t.summary[s].Swap(0)
		for sw != 0 {
			p.drainWord(s*64 + bits.TrailingZeros64(sw))
			sw &= sw - 1
		}
	}
}

// drainWord refreshes the leaves marked in dirty word w and clears it.
func (p *Pool) drainWord(w int) {
	dw := p.track.dirty[w].Swap(0)
	for dw != 0 {
		p.refresh(w*64 + bits.TrailingZeros64(dw))
		dw &= dw - 1
	}
}

// relayout moves the live leaves to the right end of a new capacity c.
func (p *Pool) relayout(c int) {
	live := p.list()
	leaf := make([]*Dest, c)
	base := c - len(live)
	// rr's cursor: the new leaf of the cursor's Dest, or of its list
	// predecessor if the cursor sits on a deleted (empty) leaf.
	cur := -1
	for i, j := p.next+1, base; i < p.c; i++ {
		if p.leaf[i] == nil {
			continue
		}
		if i <= p.cursor {
			cur = j
		}
		leaf[j] = p.leaf[i]
		j++
	}
	p.cursor = cur
	p.cl = -1 // wrr: every caller of relayout resets it anyway
	p.c, p.leaf, p.next = c, leaf, base-1
	p.initIndex()
}

// list returns the live Dests in list order.
func (p *Pool) list() []*Dest {
	out := make([]*Dest, 0, p.n)
	for i := p.next + 1; i < p.c; i++ {
		if d := p.leaf[i]; d != nil {
			out = append(out, d)
		}
	}
	return out
}

// Dests returns the real servers in list order (most recently added first).
func (p *Pool) Dests() []*Dest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.list()
}

// Len returns the number of real servers.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Add adds real servers, in order, each with its Dest's current weight and
// thresholds (see AddWith). Each goes to the head of the list. On error,
// the servers before the failing one stay added.
func (p *Pool) Add(ds ...*Dest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.publishTable()
	for _, d := range ds {
		if d == nil {
			return fmt.Errorf("%w: nil real server", ErrRange)
		}
		u, l := d.Thresholds()
		if err := p.add(d, d.Weight(), u, l); err != nil {
			return err
		}
	}
	return nil
}

// AddWith adds d with the given weight and thresholds, as ip_vs_add_dest
// does, also for a Dest that was deleted before (the kernel's trash): it is
// revived with its counters. It sets AVAILABLE and last_weight, and clears
// OVERLOAD when upper is 0 or above the Dest's previous upper threshold.
func (p *Pool) AddWith(d *Dest, weight int32, upper, lower uint32) error {
	if d == nil {
		return fmt.Errorf("%w: nil real server", ErrRange)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.add(d, weight, upper, lower); err != nil {
		return err
	}
	p.publishTable()
	return nil
}

func checkRange(d *Dest, weight int32, upper, lower uint32) error {
	if weight < 0 {
		return fmt.Errorf("%w: %v: weight %d < 0", ErrRange, d.addr, weight)
	}
	if lower > upper {
		return fmt.Errorf("%w: %v: lower threshold %d > upper threshold %d", ErrRange, d.addr, lower, upper)
	}
	return nil
}

func (p *Pool) add(d *Dest, weight int32, upper, lower uint32) error {
	if err := checkRange(d, weight, upper, lower); err != nil {
		return err
	}
	if p.kind == kMH && p.n+1 > p.mhM {
		return fmt.Errorf("%w: %v would be server %d, table size %d", ErrTooManyServers, d.addr, p.n+1, p.mhM)
	}
	if !d.pool.CompareAndSwap(nil, p) {
		return fmt.Errorf("%w: %v", ErrExists, d.addr)
	}
	// __ip_vs_update_dest(add=1)
	d.lastWeight.Store(weight)
	d.weight.Store(weight)
	d.flags.Or(FlagAvailable)
	if upper == 0 || upper > d.upper.Load() {
		d.flags.And(^FlagOverload)
	}
	d.upper.Store(upper)
	d.lower.Store(lower)
	if p.next < 0 {
		p.relayout(max(8, 1<<bits.Len(uint(2*(p.n+1)))))
	}
	i := p.next
	p.next--
	p.leaf[i] = d
	p.n++
	d.slot.Store(int32(i))
	d.track.Store(p.track)
	if p.mn.node != nil && !p.mn.covers(i) {
		p.initIndex() // the arg-min tree is rebuilt over a 4x larger span
	} else if p.track != nil {
		p.refresh(i)
	}
	// add_dest
	if p.kind == kWRR {
		if weight > 0 {
			if p.wgcd > 0 {
				p.wgcd = gcd32(weight, p.wgcd)
			} else {
				p.wgcd = weight
			}
		}
		p.wmax = max(p.wmax, weight)
		p.wrrChanged()
	}
	return nil
}

// Edit changes a real server's weight and thresholds (ipvsadm -e) with the
// kernel's rules: ERANGE for weight < 0 or lower > upper; last_weight keeps
// the last non-zero weight; OVERLOAD is cleared when upper is 0 or raised.
func (p *Pool) Edit(d *Dest, weight int32, upper, lower uint32) error {
	if d == nil {
		return fmt.Errorf("%w: nil real server", ErrNotFound)
	}
	if err := checkRange(d, weight, upper, lower); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if d.pool.Load() != p {
		return fmt.Errorf("%w: %v", ErrNotFound, d.addr)
	}
	if weight != 0 {
		d.lastWeight.Store(weight)
	}
	d.weight.Store(weight)
	if upper == 0 || upper > d.upper.Load() {
		d.flags.And(^FlagOverload)
	}
	d.upper.Store(upper)
	d.lower.Store(lower)
	if p.track != nil {
		p.refresh(int(d.slot.Load()))
	}
	switch p.kind {
	case kWRR:
		p.wrrRecompute()
		p.wrrChanged()
	case kSH, kMH:
		p.publishTable()
	}
	return nil
}

// Delete removes a real server: it clears AVAILABLE and leaves the list.
// Its counters stay with the Dest; connections still bound to it keep
// calling Unbind. Adding it again revives it.
func (p *Pool) Delete(d *Dest) error {
	if d == nil {
		return fmt.Errorf("%w: nil real server", ErrNotFound)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if d.pool.Load() != p {
		return fmt.Errorf("%w: %v", ErrNotFound, d.addr)
	}
	d.flags.And(^FlagAvailable)
	i := int(d.slot.Load())
	d.track.Store(nil)
	d.slot.Store(-1)
	d.pool.Store(nil)
	p.leaf[i] = nil
	p.n--
	if p.track != nil {
		p.refresh(i)
	}
	// rr: a cursor on the deleted leaf now sits on an empty leaf, which
	// the scans treat exactly as the kernel treats its list predecessor.
	switch p.kind {
	case kWRR:
		p.wrrRecompute()
		p.wrrChanged()
	case kDH, kSH, kMH:
		p.publishTable()
	}
	if p.c > 64 && p.n < p.c/8 {
		p.relayout(max(8, 1<<bits.Len(uint(2*p.n))))
		if p.kind == kWRR {
			p.wrrChanged()
		}
	}
	return nil
}

// wrrRecompute recomputes the maximum weight and the gcd of positive weights.
func (p *Pool) wrrRecompute() {
	p.wmax, p.wgcd = 0, 0
	for i := p.next + 1; i < p.c; i++ {
		d := p.leaf[i]
		if d == nil {
			continue
		}
		w := d.weight.Load()
		p.wmax = max(p.wmax, w)
		if w > 0 {
			if p.wgcd > 0 {
				p.wgcd = gcd32(w, p.wgcd)
			} else {
				p.wgcd = w
			}
		}
	}
	p.di = max(p.wgcd, 1)
	p.mw = p.wmax - (p.di - 1)
}

// wrrChanged is ip_vs_wrr_dest_changed (after wrrRecompute or the
// incremental update in add).
func (p *Pool) wrrChanged() {
	p.cl = -1
	p.di = max(p.wgcd, 1)
	p.mw = p.wmax - (p.di - 1)
	if p.cw > p.mw || p.cw == 0 {
		p.cw = p.mw
	} else if p.di > 1 {
		p.cw = (p.cw/p.di)*p.di + 1
	}
}

// publishTable rebuilds the dh/sh/mh table from the list.
func (p *Pool) publishTable() {
	if !p.kind.hashed() {
		p.tab.Store(nil)
		return
	}
	list := p.list()
	t := &hashTable{kind: p.kind, flags: p.flags}
	switch p.kind {
	case kDH:
		t.buckets = buildDH(list)
	case kSH:
		t.buckets = buildSH(list)
	case kMH:
		t.buckets = buildMH(list, p.mhM, p.mhBit)
	}
	p.tab.Store(t)
}

// Tick runs periodic work due by now (monotonic nanoseconds): the lblc and
// lblcr 60-s table collection. Call it about once a second; each collection
// due since the last call runs at its own due time.
func (p *Pool) Tick(now int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now > p.lastNow {
		p.lastNow = now
	}
	switch p.kind {
	case kLBLC:
		p.lb.tick(now, p.lbExp)
	case kLBLCR:
		p.lb.tick(now, p.lbrExp)
	}
}

// Schedule picks the real server for a new connection whose first packet is
// f, at time now (monotonic nanoseconds; only lblc and lblcr look at it). It
// returns nil when no server is available. It does not allocate.
func (p *Pool) Schedule(f *Flow, now int64) *Dest {
	if t := p.tab.Load(); t != nil {
		return t.lookup(f)
	}
	p.mu.Lock()
	p.drain()
	var d *Dest
	switch p.kind {
	case kRR:
		d = p.schedRR()
	case kWRR:
		d = p.schedWRR()
	case kLC, kWLC, kSED, kNQ:
		if i := p.mn.root(); i >= 0 {
			d = p.leaf[i]
		}
	case kFO, kOVF:
		if top := p.mx.root(); top > 0 {
			d = p.leaf[p.mx.firstAtLeast(0, top)]
		}
	case kTWOS:
		d = p.schedTwos()
	case kLBLC:
		p.lastNow = now
		d = p.schedLBLC(f, now)
	case kLBLCR:
		p.lastNow = now
		d = p.schedLBLCR(f, now)
	default:
		// SetScheduler switched to dh, sh or mh while this call waited.
		d = p.tab.Load().lookup(f)
	}
	p.mu.Unlock()
	return d
}

func (p *Pool) schedRR() *Dest {
	j := p.mx.firstAtLeast(p.cursor+1, 1)
	if j < 0 && p.cursor >= 0 {
		// Second lap, from the head up to and including the cursor.
		if j = p.mx.firstAtLeast(0, 1); j > p.cursor {
			j = -1
		}
	}
	if j < 0 {
		return nil
	}
	p.cursor = j
	return p.leaf[j]
}

// schedWRR is ip_vs_wrr_schedule with the inner scan replaced by the max
// tree's "next leaf with weight >= cw" query.
func (p *Pool) schedWRR() *Dest {
	if p.mw == 0 {
		return nil
	}
	last, stop := p.cl, -2
	lastPass, restarted := false, false
	from := p.cl + 1
	for {
		j := p.mx.firstAtLeast(from, int64(p.cw))
		if stop >= from && (j < 0 || stop < j) {
			p.cl = stop
			return nil
		}
		if j >= 0 {
			p.cl = j
			return p.leaf[j]
		}
		if from == 0 {
			// No server at all has weight >= cw. The kernel would make
			// passes at cw - di, cw - 2di, ... that find nothing until cw
			// drops to the best weight; none of them wraps (cw stays above
			// best >= 0). Do those steps at once, keeping lastPass and stop
			// as the last of them leaves them, and make the final pass.
			if top := p.mx.root(); int64(p.cw) > top {
				steps := (int64(p.cw)-top+int64(p.di)-1)/int64(p.di) - 1
				if restarted && last != -1 {
					// The kernel stops at the first cw <= di.
					if i0 := (int64(p.cw)+int64(p.di)-1)/int64(p.di) - 1; i0 >= 1 && i0 < steps {
						steps = i0
					}
				}
				if steps > 0 {
					p.cw -= int32(steps) * p.di
					lastPass = p.cw <= p.di
					if lastPass && restarted && last != -1 {
						stop = last
					}
					continue
				}
			}
		}
		p.cw -= p.di
		if p.cw <= 0 {
			p.cw = p.mw
			if lastPass || last == -1 {
				p.cl = -1
				return nil
			}
			restarted = true
		}
		lastPass = p.cw <= p.di
		if lastPass && restarted && last != -1 {
			stop = last
		}
		from = 0
	}
}

func (p *Pool) schedTwos() *Dest {
	total := p.sm.total()
	if total == 0 {
		return nil
	}
	tw := uint32(total + 1)
	r1 := int64(p.rand() % tw)
	r2 := int64(p.rand() % tw)
	i1, i2 := p.sm.firstPrefix2(max(r1, 1), max(r2, 1))
	d1, d2 := p.leaf[i1], p.leaf[i2]
	w1, w2 := int32(p.sm.sum[p.c+i1]), int32(p.sm.sum[p.c+i2])
	// int arithmetic as in the kernel (32-bit, wrapping)
	if w2*d1.overhead() > w1*d2.overhead() {
		return d2
	}
	return d1
}

// wlcPick is __ip_vs_lblc_schedule / __ip_vs_lblcr_schedule: wlc over all.
func (p *Pool) wlcPick() *Dest {
	if i := p.mn.root(); i >= 0 {
		return p.leaf[i]
	}
	return nil
}

// lbOverloaded is is_overloaded of lblc/lblcr.
func (p *Pool) lbOverloaded(d *Dest) bool {
	return d.active.Load() > d.weight.Load() && p.nh > 0
}

func (p *Pool) schedLBLC(f *Flow, now int64) *Dest {
	en := p.lb.get(&f.Dst, f.IPv6)
	if en != nil {
		en.lastuse = now
		p.lb.minUse = min(p.lb.minUse, now)
		d := en.dest
		if d.flags.Load()&FlagAvailable != 0 && d.weight.Load() > 0 && !p.lbOverloaded(d) {
			return d
		}
	}
	d := p.wlcPick()
	if d == nil {
		return nil
	}
	if en == nil {
		en = p.lb.add(&f.Dst, f.IPv6, now)
	}
	if en.dest != d {
		// ip_vs_lblc_new replaces the entry with a fresh one.
		en.dest, en.lastuse = d, now
		p.lb.minUse = min(p.lb.minUse, now)
	}
	return d
}

// setMin is ip_vs_dest_set_min.
func setMin(set []*Dest) *Dest {
	var least *Dest
	var loh int64
	i := 0
	for ; i < len(set); i++ {
		d := set[i]
		fl := d.flags.Load()
		if fl&FlagOverload != 0 {
			continue
		}
		if d.weight.Load() > 0 && fl&FlagAvailable != 0 {
			least, loh = d, int64(d.overhead())
			break
		}
	}
	if least == nil {
		return nil
	}
	for i++; i < len(set); i++ {
		d := set[i]
		fl := d.flags.Load()
		if fl&FlagOverload != 0 {
			continue
		}
		doh := int64(d.overhead())
		if loh*int64(d.weight.Load()) > doh*int64(least.weight.Load()) && fl&FlagAvailable != 0 {
			least, loh = d, doh
		}
	}
	return least
}

// setMax is ip_vs_dest_set_max.
func setMax(set []*Dest) *Dest {
	var most *Dest
	var moh int64
	i := 0
	for ; i < len(set); i++ {
		if set[i].weight.Load() > 0 {
			most, moh = set[i], int64(set[i].overhead())
			break
		}
	}
	if most == nil {
		return nil
	}
	for i++; i < len(set); i++ {
		d := set[i]
		doh := int64(d.overhead())
		dw := d.weight.Load()
		if moh*int64(dw) < doh*int64(most.weight.Load()) && dw > 0 {
			most, moh = d, doh
		}
	}
	return most
}

func (p *Pool) schedLBLCR(f *Flow, now int64) *Dest {
	en := p.lb.get(&f.Dst, f.IPv6)
	if en == nil {
		d := p.wlcPick()
		if d == nil {
			return nil
		}
		en = p.lb.add(&f.Dst, f.IPv6, now)
		en.set = append(en.set, d)
		en.lastmod = now
		return d
	}
	en.lastuse = now
	p.lb.minUse = min(p.lb.minUse, now)
	n := setMin(en.set)
	if len(en.set) > 1 && now > en.lastmod+p.lbrExp {
		if m := setMax(en.set); m != nil {
			for i, x := range en.set {
				if x == m {
					copy(en.set[i:], en.set[i+1:])
					en.set[len(en.set)-1] = nil
					en.set = en.set[:len(en.set)-1]
					en.lastmod = now
					break
				}
			}
		}
	}
	if n != nil && !p.lbOverloaded(n) {
		return n
	}
	d := p.wlcPick()
	if d == nil {
		return nil
	}
	for _, x := range en.set {
		if x == d {
			return d
		}
	}
	en.set = append(en.set, nil)
	copy(en.set[1:], en.set)
	en.set[0] = d
	en.lastmod = now
	return d
}
