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

// firstPrefix2 returns, for r1 and r2 (each >= 1 and <= total), the first
// leaf whose prefix sum is >= that value. The two descents are independent
// chains of loads, so interleaving them hides half the latency.
func (t *sumTree) firstPrefix2(r1, r2 int64) (int, int) {
	n1, n2 := 1, 1
	for n1 < t.c {
		l1, l2 := t.sum[2*n1], t.sum[2*n2]
		// Without a branch (the step is a coin toss for the predictor):
		// m is -1 when the target lies right of the left child, else 0.
		// Sums are in 0..total and r in 1..total, so l-r cannot overflow.
		m1, m2 := (l1-r1)>>63, (l2-r2)>>63
		r1 -= l1 & m1
		r2 -= l2 & m2
		n1 = 2*n1 - int(m1)
		n2 = 2*n2 - int(m2)
	}
	return n1 - t.c, n2 - t.c
}

// lcNone is lc's key for an ineligible leaf: above every int32 overhead,
// and small enough that subtracting any of them cannot overflow.
const lcNone = 1 << 40

// cmpKind selects the comparison of an argMinTree.
type cmpKind uint8

const (
	cmpLC  cmpKind = iota // overhead, smaller wins
	cmpWLC                // overhead/weight by cross-multiplication (wlc, sed, lblc, lblcr)
	cmpNQ                 // idle (overhead 1 = active 0) first, then as cmpWLC
)

// argMinTree keeps, for every range, the leftmost leaf that the kernel's
// scan would pick in that range, with that leaf's key copied into the node
// so that a climb reads only the two children (16 bytes each, adjacent).
type argMinTree struct {
	c    int
	cmp  cmpKind
	node []amNode
}

type amNode struct {
	oh  int64 // the scheduler's overhead
	w   int32 // weight; 0 = not eligible
	idx int32 // the winning leaf, -1 if none is eligible
}

func (t *argMinTree) init(c int, cmp cmpKind) {
	t.c = c
	t.cmp = cmp
	t.node = make([]amNode, 2*c)
	empty := amNode{idx: -1}
	switch cmp {
	case cmpLC:
		empty.oh = lcNone
	case cmpWLC:
		empty.oh = 1
	}
	for i := range t.node {
		t.node[i] = empty
	}
}

// better reports whether b (later in list order) replaces a in the kernel's
// scan; both are eligible.
func (t *argMinTree) better(b, a *amNode) bool {
	switch t.cmp {
	case cmpLC:
		return b.oh < a.oh
	case cmpNQ:
		if a.oh == 1 {
			return false
		}
		if b.oh == 1 {
			return true
		}
	}
	return a.oh*int64(b.w) > b.oh*int64(a.w)
}

// set stores leaf i's key (w = 0: not eligible) and updates its ancestors.
//
// For lc and wlc an ineligible leaf gets a key that loses every comparison
// (lc: overhead lcNone; wlc: overhead 1 over weight 0, an infinite
// ratio: a.oh*b.w > b.oh*a.w is then true exactly when b is eligible, and
// false whenever b is not), so their climbs need no eligibility tests and
// pick a child without a branch.
func (t *argMinTree) set(i int, oh int64, w int32) {
	n := t.c + i
	leaf := int32(i)
	nv := amNode{oh: oh, w: w, idx: leaf}
	if w <= 0 {
		nv = amNode{oh: oh, idx: -1}
		switch t.cmp {
		case cmpLC:
			nv.oh = lcNone
		case cmpWLC:
			nv.oh = 1
		}
	}
	if t.node[n] == nv {
		return // nothing the comparisons see has changed
	}
	t.node[n] = nv
	// One climb per comparison, so that the loop has no switch inside. A
	// climb stops where the winner of a range and its key are unchanged and
	// it is not the leaf that moved: every ancestor then sees the same input.
	switch t.cmp {
	case cmpLC:
		t.climb(n, nv, leaf, false)
	case cmpWLC:
		t.climb(n, nv, leaf, true)
	default:
		for n > 1 {
			n >>= 1
			a, b := &t.node[2*n], &t.node[2*n+1]
			if a.idx < 0 || (b.idx >= 0 && t.better(b, a)) {
				a = b
			}
			if t.node[n] == *a && a.idx != leaf {
				return
			}
			t.node[n] = *a
		}
	}
}

// climb updates the ancestors of node n, which now holds cur, for lc
// (wlc false: b wins when b.oh < a.oh) or wlc (a.oh*b.w > b.oh*a.w).
//
// It is written for the dependency chain from one level to the next, which
// is what a climb costs: the winner is carried in registers (no reload of
// the node just stored), the sibling's load does not depend on the
// comparison, and both the comparison and the selection are done with
// masks rather than branches, whose outcome the predictor cannot guess.
// Overflow: lc keys are int32 overheads or lcNone, so b.oh-a.oh fits; wlc
// keys have |oh| <= 2^31 and 0 <= w < 2^31, so each product is below 2^62
// in magnitude and their difference fits in an int64.
func (t *argMinTree) climb(n int, cur amNode, leaf int32, wlc bool) {
	node := t.node
	for n > 1 {
		sib := node[n^1]
		// a is the left child, b the right one.
		lm := -int64(n & 1) // -1 when cur is the right child
		xo := (cur.oh ^ sib.oh) & lm
		xw := (cur.w ^ sib.w) & int32(lm)
		xi := (cur.idx ^ sib.idx) & int32(lm)
		a := amNode{oh: cur.oh ^ xo, w: cur.w ^ xw, idx: cur.idx ^ xi}
		b := amNode{oh: sib.oh ^ xo, w: sib.w ^ xw, idx: sib.idx ^ xi}
		var m int64 // -1 when b wins
		if wlc {
			m = (b.oh*int64(a.w) - a.oh*int64(b.w)) >> 63
		} else {
			m = (b.oh - a.oh) >> 63
		}
		win := amNode{
			oh:  a.oh ^ ((a.oh ^ b.oh) & m),
			w:   a.w ^ ((a.w ^ b.w) & int32(m)),
			idx: a.idx ^ ((a.idx ^ b.idx) & int32(m)),
		}
		n >>= 1
		if node[n] == win && win.idx != leaf {
			return // every ancestor sees the same input as before
		}
		node[n] = win
		cur = win
	}
}

func (t *argMinTree) root() int { return int(t.node[1].idx) }
