package scheduler

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func addr4(a, b, c, d byte) [16]byte {
	return netip.AddrFrom4([4]byte{a, b, c, d}).As16()
}

// conns tracks the connections the test bound, per Dest, so that unbinds and
// state changes stay consistent (counters never go negative).
type conns struct{ active, inactive map[*Dest]int }

// TestIndexedMatchesReference drives a Pool and the naive reference with
// the same random operations and requires the same decision every time.
func TestIndexedMatchesReference(t *testing.T) {
	for _, name := range []string{"rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "twos", "lblc", "lblcr"} {
		for seed := uint64(1); seed <= 12; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				runProperty(t, name, seed, 3000)
			})
		}
	}
}

func runProperty(t *testing.T, name string, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 99))
	k, _ := kindOf(name)
	r1 := rand.New(rand.NewPCG(seed, 7))
	r2 := rand.New(rand.NewPCG(seed, 7))
	p, err := New(name, 0, Options{Rand: r1.Uint32})
	if err != nil {
		t.Fatal(err)
	}
	ref := newRef(k, r2.Uint32)
	// A wide weight range for wrr in some seeds, small ones (many ties) otherwise.
	maxW := int32(4)
	if seed%3 == 0 {
		maxW = 40
	}
	nd := 5 + int(seed%4)*6
	if seed%4 == 3 {
		nd = 70 // enough adds and deletes to make the Pool re-lay out its leaves
	}
	ds := make([]*Dest, nd)
	for i := range ds {
		ds[i] = NewDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 80), 1, 0, 0)
	}
	in := map[*Dest]bool{}
	cs := conns{map[*Dest]int{}, map[*Dest]int{}}
	now := int64(0)
	thresholds := func() (uint32, uint32) {
		if rng.IntN(3) != 0 {
			return 0, 0
		}
		u := uint32(rng.IntN(6))
		l := uint32(0)
		if u > 0 {
			l = uint32(rng.IntN(int(u) + 1))
		}
		return u, l
	}
	for step := 0; step < steps; step++ {
		d := ds[rng.IntN(len(ds))]
		switch op := rng.IntN(20); {
		case op < 2: // add
			if in[d] {
				continue
			}
			u, l := thresholds()
			if err := p.AddWith(d, int32(rng.IntN(int(maxW)+1)), u, l); err != nil {
				t.Fatal(err)
			}
			ref.add(d)
			in[d] = true
		case op < 3: // delete
			if !in[d] {
				continue
			}
			if err := p.Delete(d); err != nil {
				t.Fatal(err)
			}
			ref.del(d)
			in[d] = false
		case op < 4: // edit
			if !in[d] {
				continue
			}
			u, l := thresholds()
			if err := p.Edit(d, int32(rng.IntN(int(maxW)+1)), u, l); err != nil {
				t.Fatal(err)
			}
			ref.changed()
		case op < 6: // unbind
			if cs.active[d] > 0 && rng.IntN(2) == 0 {
				cs.active[d]--
				d.Unbind(false, true)
			} else if cs.inactive[d] > 0 {
				cs.inactive[d]--
				d.Unbind(false, false)
			}
		case op < 8: // state change
			if cs.inactive[d] > 0 && rng.IntN(2) == 0 {
				cs.inactive[d]--
				cs.active[d]++
				d.SetActive(true)
			} else if cs.active[d] > 0 {
				cs.active[d]--
				cs.inactive[d]++
				d.SetActive(false)
			}
		case op < 9: // a connection bound elsewhere (sync, persistence)
			act := rng.IntN(2) == 0
			d.Bind(false, act)
			if act {
				cs.active[d]++
			} else {
				cs.inactive[d]++
			}
		case op < 10 && (k == kLBLC || k == kLBLCR):
			now += int64(rng.IntN(300)) * 1e9
			p.Tick(now)
			ref.lb.tick(now, ref.lbExp)
		default: // schedule
			now += int64(rng.IntN(3)) * 1e9
			f := Flow{Dst: addr4(10, 99, 0, byte(rng.IntN(6))), Src: addr4(192, 168, 1, byte(rng.IntN(250)))}
			got, want := p.Schedule(&f, now), ref.schedule(&f, now)
			if got != want {
				t.Fatalf("step %d: pool chose %v, reference %v\n%s", step, name0(got), name0(want), dump(ref.list))
			}
			if k == kWRR {
				rcl := -1
				if ref.cl != nil {
					rcl = int(ref.cl.slot.Load())
				}
				if p.cw != ref.cw || p.cl != rcl || p.mw != ref.mw || p.di != ref.di {
					t.Fatalf("step %d: wrr state cw=%d cl=%d mw=%d di=%d, reference cw=%d cl=%d mw=%d di=%d", step, p.cw, p.cl, p.mw, p.di, ref.cw, rcl, ref.mw, ref.di)
				}
			}
			if got != nil {
				act := rng.IntN(2) == 0
				got.Bind(false, act)
				if act {
					cs.active[got]++
				} else {
					cs.inactive[got]++
				}
			}
		}
	}
}

func name0(d *Dest) string {
	if d == nil {
		return "-"
	}
	return d.AddrPort().String()
}

func dump(list []*Dest) string {
	s := ""
	for _, d := range list {
		u, l := d.Thresholds()
		s += fmt.Sprintf("  %v w=%d a=%d i=%d fl=%d u=%d l=%d\n", d.AddrPort(), d.Weight(), d.ActiveConns(), d.InactiveConns(), d.Flags(), u, l)
	}
	return s
}
