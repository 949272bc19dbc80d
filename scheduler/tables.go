package scheduler

// Lookup tables of dh, sh and mh: built by the control plane on add, delete
// and (sh, mh) edit, published as an immutable snapshot, read without locks.

// mhPrimes are the mh table sizes, indexed by CONFIG_IP_VS_MH_TAB_INDEX-8.
var mhPrimes = [...]int{251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071}

type hashTable struct {
	kind    kind
	flags   Flags
	buckets []*Dest
}

// usable is the sh/mh is_unavailable test inverted: weight > 0 and not
// OVERLOAD. (sh and mh do not look at AVAILABLE: their tables are rebuilt
// on delete.)
func usable(d *Dest) bool {
	return d.weight.Load() > 0 && d.flags.Load()&FlagOverload == 0
}

func (t *hashTable) lookup(f *Flow) *Dest {
	switch t.kind {
	case kDH:
		d := t.buckets[hash32(fold(&f.Dst, f.IPv6), 8)]
		if d == nil || d.flags.Load()&(FlagAvailable|FlagOverload) != FlagAvailable || d.weight.Load() <= 0 {
			return nil
		}
		return d
	case kSH:
		var port uint16
		if t.flags&FlagSched2 != 0 {
			port = l4Port(f)
		}
		addr := fold(&f.Src, f.IPv6)
		ihash := hash32(uint32(port)+addr, 8)
		d := t.buckets[ihash]
		if d == nil || usable(d) {
			return d
		}
		if t.flags&FlagSched1 == 0 {
			return nil
		}
		for k := uint32(0); k < 256; k++ {
			d = t.buckets[(k+2*ihash)%256]
			if d == nil {
				return nil
			}
			if usable(d) {
				return d
			}
		}
		return nil
	default: // kMH
		var port uint16
		if t.flags&FlagSched2 != 0 {
			port = l4Port(f)
		}
		addr := fold(&f.Src, f.IPv6)
		m := uint32(len(t.buckets))
		ihash := mhHash(addr, port, &mhKey1, 0) % m
		d := t.buckets[ihash]
		if d == nil || usable(d) {
			return d
		}
		if t.flags&FlagSched1 == 0 {
			return nil
		}
		for k := uint32(0); k < m; k++ {
			d = t.buckets[mhHash(addr, port, &mhKey1, (k+ihash)%m)%m]
			if d == nil {
				return nil
			}
			if usable(d) {
				return d
			}
		}
		return nil
	}
}

// buildDH fills 256 buckets cyclically with the list, one bucket each.
func buildDH(list []*Dest) []*Dest {
	b := make([]*Dest, 256)
	if len(list) == 0 {
		return b
	}
	for i := range b {
		b[i] = list[i%len(list)]
	}
	return b
}

// buildSH fills 256 buckets cyclically, weight buckets per server; a server
// of weight 0 still gets one (the kernel's test is ++count >= weight).
func buildSH(list []*Dest) []*Dest {
	b := make([]*Dest, 256)
	if len(list) == 0 {
		return b
	}
	p, count := 0, int32(0)
	for i := range b {
		d := list[p]
		b[i] = d
		count++
		if count >= d.weight.Load() {
			p = (p + 1) % len(list)
			count = 0
		}
	}
	return b
}

// mhSetup is ip_vs_mh_dest_setup.
type mhSetup struct {
	offset, skip, perm uint32
	turns              int32
}

// buildMH is ip_vs_mh_permutate + ip_vs_mh_populate for table size m and
// TAB_BITS tabBits.
func buildMH(list []*Dest, m int, tabBits int) []*Dest {
	b := make([]*Dest, m)
	g := int32(0)
	maxLW := int32(0)
	for _, d := range list {
		if w := d.lastWeight.Load(); w > 0 {
			if g > 0 {
				g = gcd32(w, g)
			} else {
				g = w
			}
			maxLW = max(maxLW, w)
		}
	}
	if g < 1 {
		return b // no positive last_weight: empty table
	}
	rshift := 0
	if s := fls(uint32(maxLW/g)) - tabBits; s > 0 {
		rshift = s
	}
	setup := make([]mhSetup, len(list))
	for i, d := range list {
		addr, port := foldAddr(d.addr.Addr()), d.addr.Port()
		s := &setup[i]
		s.offset = mhHash(addr, port, &mhKey1, 0) % uint32(m)
		s.skip = mhHash(addr, port, &mhKey2, 0)%uint32(m-1) + 1
		s.perm = s.offset
		lw := d.lastWeight.Load()
		s.turns = (lw / g) >> rshift
		if s.turns == 0 && lw != 0 {
			s.turns = 1
		}
	}
	taken := make([]uint64, (m+63)/64)
	n, dt := 0, int32(0)
	for n < m {
		for i := 0; i < len(list); {
			s := &setup[i]
			if s.turns < 1 {
				i++
				continue
			}
			c := s.perm
			for taken[c>>6]&(1<<(c&63)) != 0 {
				s.perm += s.skip
				if s.perm >= uint32(m) {
					s.perm -= uint32(m)
				}
				c = s.perm
			}
			taken[c>>6] |= 1 << (c & 63)
			b[c] = list[i]
			if n++; n == m {
				return b
			}
			if dt++; dt >= s.turns {
				dt = 0
				i++
			}
		}
	}
	return b
}

func gcd32(a, b int32) int32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// fls is the kernel's fls: the 1-based index of the highest set bit, 0 for 0.
func fls(x uint32) int {
	n := 0
	for x != 0 {
		n++
		x >>= 1
	}
	return n
}
