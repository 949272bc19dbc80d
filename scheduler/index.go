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
// so that a climb reads only the children.
//
// It is 4-ary: node n's children are 4n..4n+3 (one 64-byte line), the root
// is node 1 (children 4..7; nodes 2 and 3 are unused) and leaves occupy
// nodes base..2*base-1, base being the smallest power of 4 >= the span of
// leaves in use: those are the rightmost of the Pool's c leaves, so leaf i
// is node first+i with first = 2*base-c, and the tree is only as deep as
// the live servers need (5 levels for 1024 of them in 2048 leaves, not 6).
// The Pool rebuilds the tree when an add goes beyond its span. A node's
// winner is that of a binary tournament over its children, ((0,1),(2,3)),
// which is exactly what a binary tree over the same leaves computes; only
// half of the levels are stored, so a climb does half the stores, stop
// tests and loop steps (6 levels instead of 11 at 1024 real servers), and
// the comparison of the pair the climb did not come from is off its
// dependency chain.
type argMinTree struct {
	base  int
	first int // the node of leaf 0 (leaves below c-base are not covered)
	cmp   cmpKind
	node  []amNode
}

type amNode struct {
	oh int64 // the scheduler's overhead
	wi int64 // weight<<32 | uint32(winning leaf); see mkNode
}

// mkNode packs a node: weight w (0 = not eligible) and the winning leaf idx
// (-1 if none is eligible) share one word, so that a branch-free selection
// moves two words, not three.
func mkNode(oh int64, w, idx int32) amNode {
	return amNode{oh: oh, wi: int64(w)<<32 | int64(uint32(idx))}
}

func (a amNode) idx() int32 { return int32(a.wi) }

// init makes an empty tree over the last span (or more) of c leaves.
func (t *argMinTree) init(c, span int, cmp cmpKind) {
	t.base = 4
	for t.base < span {
		t.base *= 4
	}
	t.first = 2*t.base - c
	t.cmp = cmp
	t.node = make([]amNode, 2*t.base)
	empty := mkNode(0, 0, -1)
	switch cmp {
	case cmpLC:
		empty.oh = lcNone
	case cmpWLC:
		empty.oh = 1
	case cmpNQ:
		empty.oh = 2
	}
	for i := range t.node {
		t.node[i] = empty
	}
}

// set stores leaf i's key (w = 0: not eligible) and updates its ancestors.
//
// An ineligible leaf gets a key that loses every comparison (lc: overhead
// lcNone; wlc: overhead 1 over weight 0, an infinite ratio: a.oh*b.w >
// b.oh*a.w is then true exactly when b is eligible, and false whenever b
// is not; nq: overhead 2 over weight 0, likewise and never idle), so the
// climbs need no eligibility tests and pick a child without a branch.
func (t *argMinTree) set(i int, oh int64, w int32) {
	n := t.first + i
	leaf := int32(i)
	nv := mkNode(oh, w, leaf)
	if w <= 0 {
		nv = mkNode(oh, 0, -1)
		switch t.cmp {
		case cmpLC:
			nv.oh = lcNone
		case cmpWLC:
			nv.oh = 1
		case cmpNQ:
			nv.oh = 2
		}
	}
	if t.node[n] == nv {
		return // nothing the comparisons see has changed
	}
	t.node[n] = nv
	// One climb per comparison, so that the loop has no switch inside. A
	// climb stops where the winner of a range and its key are unchanged and
	// it is not the leaf that moved: every ancestor then sees the same input.
	node := t.node
	switch t.cmp {
	case cmpLC:
		for n > 1 {
			q := (*[4]amNode)(node[n&^3:])
			win := pickLC(pickLC(q[0], q[1]), pickLC(q[2], q[3]))
			n >>= 2
			if node[n] == win && win.idx() != leaf {
				return
			}
			node[n] = win
		}
	case cmpWLC:
		for n > 1 {
			q := (*[4]amNode)(node[n&^3:])
			win := pickWLC(pickWLC(q[0], q[1]), pickWLC(q[2], q[3]))
			n >>= 2
			if node[n] == win && win.idx() != leaf {
				return
			}
			node[n] = win
		}
	case cmpNQ:
		for n > 1 {
			q := (*[4]amNode)(node[n&^3:])
			win := pickNQ(pickNQ(q[0], q[1]), pickNQ(q[2], q[3]))
			n >>= 2
			if node[n] == win && win.idx() != leaf {
				return
			}
			node[n] = win
		}
	}
}

// pickLC and pickWLC return b if it replaces a (a before b in list order)
// in lc's or wlc's scan, else a, without a branch: the outcome is what a
// branch predictor cannot guess. Overflow: lc keys are int32 overheads or
// lcNone, so b.oh-a.oh fits in an int64; wlc keys have |oh| <= 2^31 and
// 0 <= w < 2^31, so each product is below 2^62 in magnitude and their
// difference fits.
func pickLC(a, b amNode) amNode {
	return sel(a, b, (b.oh-a.oh)>>63)
}

func pickWLC(a, b amNode) amNode {
	return sel(a, b, (b.oh*(a.wi>>32)-a.oh*(b.wi>>32))>>63)
}

// pickNQ is nq's comparison: an idle leaf (overhead active+1 = 1) wins at
// once, so b replaces a when a is not idle and b is idle or has the smaller
// ratio. Ineligible leaves have overhead 2 over weight 0: never idle, and
// the ratio test then goes against them exactly as in pickWLC.
func pickNQ(a, b amNode) amNode {
	m := (b.oh*(a.wi>>32) - a.oh*(b.wi>>32)) >> 63
	return sel(a, b, ^isOne(a.oh)&(isOne(b.oh)|m))
}

// isOne is -1 when x == 1, else 0.
func isOne(x int64) int64 {
	var m int64
	if x == 1 {
		m = -1
	}
	return m
}

// sel returns b when m is -1 and a when m is 0.
func sel(a, b amNode, m int64) amNode {
	return amNode{oh: a.oh ^ ((a.oh ^ b.oh) & m), wi: a.wi ^ ((a.wi ^ b.wi) & m)}
}

// covers reports whether leaf i has a node.
func (t *argMinTree) covers(i int) bool { return t.first+i >= t.base }

func (t *argMinTree) root() int { return int(t.node[1].idx()) }
