package scheduler

// The per-Pool index: trees over leaf positions, where leaf order is the
// IPVS list order (see the package documentation). Capacity c is a power of
// two; node 1 is the root and leaf i is node c+i.

// maxTree keeps the maximum key of every range.
type maxTree struct {
	c   int
	val []int64
}

func (t *maxTree) init(c int) {
	t.c = c
	t.val = make([]int64, 2*c)
}

func (t *maxTree) set(i int, v int64) {
	n := t.c + i
	if t.val[n] == v {
		return
	}
	t.val[n] = v
	for n > 1 {
		n >>= 1
		m := max(t.val[2*n], t.val[2*n+1])
		if t.val[n] == m {
			return // ancestors already hold this maximum
		}
		t.val[n] = m
	}
}

func (t *maxTree) root() int64 { return t.val[1] }

// firstAtLeast returns the first leaf at or after from whose key is >= x, or
// -1. It climbs from the leaf until a subtree to the right holds such a key,
// then descends to its leftmost one: O(log c).
func (t *maxTree) firstAtLeast(from int, x int64) int {
	if from < 0 {
		from = 0
	}
	if from >= t.c {
		return -1
	}
	n := t.c + from
	for t.val[n] < x {
		for n&1 == 1 { // a right child: its right neighbours are in an ancestor's right sibling
			n >>= 1
			if n == 0 {
				return -1
			}
		}
		n++
	}
	for n < t.c {
		if t.val[2*n] >= x {
			n = 2 * n
		} else {
			n = 2*n + 1
		}
	}
	return n - t.c
}

// sumTree keeps the sum of the keys of every range.
type sumTree struct {
	c   int
	sum []int64
}

func (t *sumTree) init(c int) {
	t.c = c
	t.sum = make([]int64, 2*c)
}

func (t *sumTree) set(i int, v int64) {
	n := t.c + i
	d := v - t.sum[n]
	if d == 0 {
		return
	}
	for ; n >= 1; n >>= 1 {
		t.sum[n] += d
	}
}

func (t *sumTree) total() int64 { return t.sum[1] }

// firstPrefix returns the first leaf whose prefix sum is >= r (r >= 1 and
// r <= total).
func (t *sumTree) firstPrefix(r int64) int {
	n := 1
	for n < t.c {
		if t.sum[2*n] >= r {
			n = 2 * n
		} else {
			r -= t.sum[2*n]
			n = 2*n + 1
		}
	}
	return n - t.c
}

// cmpKind selects the comparison of an argMinTree.
type cmpKind uint8

const (
	cmpLC  cmpKind = iota // overhead, smaller wins
	cmpWLC                // overhead/weight by cross-multiplication (wlc, sed, lblc, lblcr)
	cmpNQ                 // idle (overhead 1 = active 0) first, then as cmpWLC
)

// argMinTree keeps, for every range, the leftmost leaf that the kernel's
// scan would pick in that range (-1 if none is eligible).
type argMinTree struct {
	c   int
	cmp cmpKind
	win []int32
	key []amKey // per leaf
}

type amKey struct {
	oh int64 // the scheduler's overhead
	w  int64 // weight; 0 = not eligible
}

func (t *argMinTree) init(c int, cmp cmpKind) {
	t.c = c
	t.cmp = cmp
	t.win = make([]int32, 2*c)
	for i := range t.win {
		t.win[i] = -1
	}
	t.key = make([]amKey, c)
}

// better reports whether leaf b (later in list order) replaces leaf a in the
// kernel's scan.
func (t *argMinTree) better(b, a int32) bool {
	ka, kb := &t.key[a], &t.key[b]
	switch t.cmp {
	case cmpLC:
		return kb.oh < ka.oh
	case cmpNQ:
		if ka.oh == 1 {
			return false
		}
		if kb.oh == 1 {
			return true
		}
	}
	return ka.oh*kb.w > kb.oh*ka.w
}

// set stores leaf i's key (w = 0: not eligible) and updates its ancestors.
func (t *argMinTree) set(i int, oh, w int64) {
	k := &t.key[i]
	n := t.c + i
	leaf := int32(i)
	nl := int32(-1)
	if w > 0 {
		nl = leaf
	}
	if k.oh == oh && k.w == w && t.win[n] == nl {
		return // nothing the comparisons see has changed
	}
	k.oh, k.w = oh, w
	t.win[n] = nl
	// One loop per comparison, so that the climb has no switch inside.
	switch t.cmp {
	case cmpLC:
		for n > 1 {
			n >>= 1
			a, b := t.win[2*n], t.win[2*n+1]
			if a < 0 || (b >= 0 && t.key[b].oh < t.key[a].oh) {
				a = b
			}
			if a == t.win[n] && a != leaf {
				// The winner here is unchanged and is not the leaf whose
				// key moved, so every ancestor sees the same candidates.
				return
			}
			t.win[n] = a
		}
	case cmpWLC:
		for n > 1 {
			n >>= 1
			a, b := t.win[2*n], t.win[2*n+1]
			if a < 0 {
				a = b
			} else if b >= 0 {
				ka, kb := &t.key[a], &t.key[b]
				if ka.oh*kb.w > kb.oh*ka.w {
					a = b
				}
			}
			if a == t.win[n] && a != leaf {
				return
			}
			t.win[n] = a
		}
	default:
		for n > 1 {
			n >>= 1
			a, b := t.win[2*n], t.win[2*n+1]
			if a < 0 || (b >= 0 && t.better(b, a)) {
				a = b
			}
			if a == t.win[n] && a != leaf {
				return
			}
			t.win[n] = a
		}
	}
}

func (t *argMinTree) root() int { return int(t.win[1]) }
