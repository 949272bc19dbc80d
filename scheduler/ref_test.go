package scheduler

// A naive reference: the kernel's loops, ported literally, over a plain
// slice in list order. The property tests drive it and a Pool with the same
// operations and require identical decisions.

type refPool struct {
	kind  kind
	list  []*Dest // list order
	cur   *Dest   // rr cursor, nil = head
	cl    *Dest   // wrr cursor, nil = head
	cw    int32
	mw    int32
	di    int32
	lb    *lbTable
	rand  func() uint32
	lbExp int64
}

func newRef(k kind, rnd func() uint32) *refPool {
	r := &refPool{kind: k, rand: rnd, lbExp: int64(DefaultLBLCExpiration)}
	if k == kLBLC || k == kLBLCR {
		r.lb = newLBTable(0)
	}
	r.wrrInit()
	return r
}

func (r *refPool) pos(d *Dest) int {
	for i, x := range r.list {
		if x == d {
			return i
		}
	}
	return -1
}

func (r *refPool) wrrGcdMax() (g, m int32) {
	for _, d := range r.list {
		w := d.Weight()
		if w > 0 {
			if g > 0 {
				g = gcd32(w, g)
			} else {
				g = w
			}
		}
		m = max(m, w)
	}
	if g == 0 {
		g = 1
	}
	return g, m
}

func (r *refPool) wrrInit() {
	r.cl = nil
	g, m := r.wrrGcdMax()
	r.di, r.mw = g, m-(g-1)
	r.cw = r.mw
}

func (r *refPool) changed() {
	if r.kind != kWRR {
		return
	}
	r.cl = nil
	g, m := r.wrrGcdMax()
	r.di, r.mw = g, m-(g-1)
	if r.cw > r.mw || r.cw == 0 {
		r.cw = r.mw
	} else if r.di > 1 {
		r.cw = (r.cw/r.di)*r.di + 1
	}
}

func (r *refPool) add(d *Dest) {
	r.list = append([]*Dest{d}, r.list...)
	r.changed()
}

func (r *refPool) del(d *Dest) {
	i := r.pos(d)
	r.list = append(r.list[:i:i], r.list[i+1:]...)
	if r.cur == d {
		if i == 0 {
			r.cur = nil
		} else {
			r.cur = r.list[i-1]
		}
	}
	r.changed()
}

func ov(d *Dest) bool { return d.Flags()&FlagOverload != 0 }

func (r *refPool) schedule(f *Flow, now int64) *Dest {
	switch r.kind {
	case kRR:
		start := -1
		if r.cur != nil {
			start = r.pos(r.cur)
		}
		for i := start + 1; i < len(r.list); i++ {
			if d := r.list[i]; !ov(d) && d.Weight() > 0 {
				r.cur = d
				return d
			}
		}
		if start == -1 {
			return nil
		}
		for i := 0; i <= start; i++ {
			if d := r.list[i]; !ov(d) && d.Weight() > 0 {
				r.cur = d
				return d
			}
		}
		return nil
	case kWRR:
		return r.wrr()
	case kLC:
		var least *Dest
		var loh int32
		for _, d := range r.list {
			if ov(d) || d.Weight() == 0 {
				continue
			}
			if doh := d.overhead(); least == nil || doh < loh {
				least, loh = d, doh
			}
		}
		return least
	case kWLC, kSED:
		ohf := func(d *Dest) int64 { return int64(d.overhead()) }
		if r.kind == kSED {
			ohf = func(d *Dest) int64 { return int64(d.ActiveConns() + 1) }
		}
		return wlcScan(r.list, ohf)
	case kNQ:
		var least *Dest
		var loh int64
		for _, d := range r.list {
			if ov(d) || d.Weight() == 0 {
				continue
			}
			doh := int64(d.ActiveConns() + 1)
			if d.ActiveConns() == 0 {
				return d
			}
			if least == nil || loh*int64(d.Weight()) > doh*int64(least.Weight()) {
				least, loh = d, doh
			}
		}
		return least
	case kFO:
		var h *Dest
		hw := int32(0)
		for _, d := range r.list {
			if !ov(d) && d.Weight() > hw {
				h, hw = d, d.Weight()
			}
		}
		return h
	case kOVF:
		var h *Dest
		for _, d := range r.list {
			w := d.Weight()
			if ov(d) || d.ActiveConns() > w || w == 0 {
				continue
			}
			if h == nil || w > h.Weight() {
				h = d
			}
		}
		return h
	case kTWOS:
		var c1, c2 *Dest
		total := int32(0)
		for _, d := range r.list {
			if !ov(d) && d.Weight() > 0 {
				total += d.Weight()
				c1 = d
			}
		}
		if c1 == nil {
			return nil
		}
		total++
		r1 := int32(r.rand() % uint32(total))
		r2 := int32(r.rand() % uint32(total))
		w1, w2 := int32(-1), int32(-1)
		var oh1, oh2 int32
		for _, d := range r.list {
			w := d.Weight()
			if ov(d) || w <= 0 {
				continue
			}
			r1 -= w
			r2 -= w
			if r1 <= 0 && w1 == -1 {
				c1, w1, oh1 = d, w, d.overhead()
			}
			if r2 <= 0 && w2 == -1 {
				c2, w2, oh2 = d, w, d.overhead()
			}
			if w1 != -1 && w2 != -1 {
				break
			}
		}
		if c2 != nil && w2*oh1 > w1*oh2 {
			c1 = c2
		}
		return c1
	case kLBLC:
		en := r.lb.get(&f.Dst, f.IPv6)
		if en != nil {
			en.lastuse = now
			d := en.dest
			if d.Available() && d.Weight() > 0 && !r.isOverloaded(d) {
				return d
			}
		}
		d := wlcScan(r.list, func(d *Dest) int64 { return int64(d.overhead()) })
		if d == nil {
			return nil
		}
		if en == nil {
			en = r.lb.add(&f.Dst, f.IPv6, now)
		}
		if en.dest != d {
			en.dest, en.lastuse = d, now
		}
		return d
	case kLBLCR:
		wlc := func() *Dest { return wlcScan(r.list, func(d *Dest) int64 { return int64(d.overhead()) }) }
		en := r.lb.get(&f.Dst, f.IPv6)
		if en == nil {
			d := wlc()
			if d == nil {
				return nil
			}
			en = r.lb.add(&f.Dst, f.IPv6, now)
			en.set = []*Dest{d}
			en.lastmod = now
			return d
		}
		en.lastuse = now
		n := setMin(en.set)
		if len(en.set) > 1 && now > en.lastmod+r.lbExp {
			if m := setMax(en.set); m != nil {
				for i, x := range en.set {
					if x == m {
						en.set = append(en.set[:i:i], en.set[i+1:]...)
						en.lastmod = now
						break
					}
				}
			}
		}
		if n != nil && !r.isOverloaded(n) {
			return n
		}
		d := wlc()
		if d == nil {
			return nil
		}
		for _, x := range en.set {
			if x == d {
				return d
			}
		}
		en.set = append([]*Dest{d}, en.set...)
		en.lastmod = now
		return d
	}
	panic("reference: scheduler not modelled")
}

func (r *refPool) isOverloaded(d *Dest) bool {
	if d.ActiveConns() > d.Weight() {
		for _, m := range r.list {
			if m.ActiveConns()*2 < m.Weight() {
				return true
			}
		}
	}
	return false
}

func wlcScan(list []*Dest, ohf func(*Dest) int64) *Dest {
	i := 0
	var least *Dest
	var loh int64
	for ; i < len(list); i++ {
		if d := list[i]; !ov(d) && d.Weight() > 0 {
			least, loh = d, ohf(d)
			break
		}
	}
	if least == nil {
		return nil
	}
	for i++; i < len(list); i++ {
		d := list[i]
		if ov(d) {
			continue
		}
		doh := ohf(d)
		if loh*int64(d.Weight()) > doh*int64(least.Weight()) {
			least, loh = d, doh
		}
	}
	return least
}

// wrr is ip_vs_wrr_schedule ported line by line.
func (r *refPool) wrr() *Dest {
	if r.mw == 0 {
		return nil
	}
	last := r.cl
	var stop *Dest
	lastPass, restarted := false, false
	start := -1
	if r.cl != nil {
		start = r.pos(r.cl)
	}
	for {
		for i := start + 1; i < len(r.list); i++ {
			d := r.list[i]
			if !ov(d) && d.Weight() >= r.cw {
				r.cl = d
				return d
			}
			if d == stop {
				r.cl = d
				return nil
			}
		}
		r.cw -= r.di
		if r.cw <= 0 {
			r.cw = r.mw
			if lastPass || last == nil {
				r.cl = nil
				return nil
			}
			restarted = true
		}
		lastPass = r.cw <= r.di
		if lastPass && restarted && last != nil {
			stop = last
		}
		start = -1
	}
}
