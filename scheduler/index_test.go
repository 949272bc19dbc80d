package scheduler

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestBranchFreePicks checks the branch-free comparisons of the argmin tree
// against the kernel's tests written plainly, at the edges of their int32
// inputs (where an overflow in the mask arithmetic would show).
func TestBranchFreePicks(t *testing.T) {
	edge := []int32{math.MinInt32, math.MinInt32 + 1, -256, -1, 0, 1, 2, 255, 256, math.MaxInt32 - 1, math.MaxInt32}
	weights := []int32{0, 1, 2, 7, 256, math.MaxInt32 - 1, math.MaxInt32}
	r := rand.New(rand.NewPCG(1, 2))
	type key struct {
		oh int32
		w  int32 // 0 = not eligible
	}
	var keys []key
	for _, oh := range edge {
		for _, w := range weights {
			keys = append(keys, key{oh, w})
		}
	}
	for range 200 {
		keys = append(keys, key{int32(r.Uint32()), int32(r.Uint32() >> 1)}, key{int32(r.Uint32() >> 20), int32(r.Uint32() >> 28)})
	}
	// want reports whether b replaces a in the kernel's scan (a first).
	want := func(cmp cmpKind, a, b key) bool {
		if b.w <= 0 {
			return false
		}
		if a.w <= 0 {
			return true
		}
		switch cmp {
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
		return int64(a.oh)*int64(b.w) > int64(b.oh)*int64(a.w)
	}
	for _, cmp := range []cmpKind{cmpLC, cmpWLC, cmpNQ} {
		var tr argMinTree
		tr.init(2, 2, cmp)
		for _, a := range keys {
			for _, b := range keys {
				tr.set(0, int64(a.oh), a.w)
				tr.set(1, int64(b.oh), b.w)
				got := tr.root()
				exp := -1
				switch {
				case want(cmp, a, b):
					exp = 1
				case a.w > 0:
					exp = 0
				}
				if got != exp {
					t.Fatalf("cmp %d: a=%+v b=%+v: root leaf %d, want %d", cmp, a, b, got, exp)
				}
			}
		}
	}
}
