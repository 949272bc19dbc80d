package scheduler

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

// TestConcurrentUse runs data-path workers (Schedule, Bind, SetActive,
// Unbind) against control-plane changes; run with -race. Afterwards the
// index must agree with the reference on the final state.
func TestConcurrentUse(t *testing.T) {
	for _, name := range Names {
		t.Run(name, func(t *testing.T) {
			p := mustPool(t, name, 0, Options{})
			ds := make([]*Dest, 40)
			for i := range ds {
				ds[i] = NewDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80), int32(i%5+1), uint32(i%3)*4, 0)
			}
			p.Add(ds[:20]...)
			var wg sync.WaitGroup
			for w := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var held []*Dest
					for i := range 2000 {
						f := Flow{Src: addr4(192, 168, byte(w), byte(i)), Dst: addr4(10, 99, 0, byte(i%7)), Proto: 6, SrcPort: uint16(i)}
						if d := p.Schedule(&f, int64(i)*1e6); d != nil {
							d.Bind(false, false)
							d.SetActive(true)
							held = append(held, d)
						}
						if len(held) > 10 {
							held[0].Unbind(false, true)
							held = held[1:]
						}
						if i%500 == 0 {
							p.Tick(int64(i) * 1e6)
						}
					}
					for _, d := range held {
						d.Unbind(false, true)
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 300 {
					d := ds[20+i%20]
					switch i % 3 {
					case 0:
						p.Add(d)
					case 1:
						p.Edit(d, int32(i%4), 0, 0)
					case 2:
						p.Delete(d)
					}
				}
			}()
			wg.Wait()
			for _, d := range ds {
				if d.ActiveConns() != 0 || d.InactiveConns() != 0 {
					t.Fatalf("%v: counters %d/%d after all unbinds", d.AddrPort(), d.ActiveConns(), d.InactiveConns())
				}
			}
			// The index has caught up: lc-style pools pick what a scan picks.
			if k, _ := kindOf(name); k == kWLC || k == kLC || k == kSED || k == kNQ || k == kFO || k == kOVF {
				ref := newRef(k, nil)
				ref.list = p.Dests()
				f := Flow{}
				if got, want := p.Schedule(&f, 0), ref.schedule(&f, 0); got != want {
					t.Fatalf("after the storm: pool %v, reference %v", name0(got), name0(want))
				}
			}
		})
	}
}

// TestScheduleDoesNotAllocate asserts the per-connection path allocates
// nothing, for every scheduler, with counter churn between decisions.
func TestScheduleDoesNotAllocate(t *testing.T) {
	for _, name := range Names {
		t.Run(name, func(t *testing.T) {
			p, ds := benchPool(t, name, 64)
			flows := benchFlows(64)
			i := 0
			allocs := testing.AllocsPerRun(1000, func() {
				f := &flows[i%len(flows)]
				d := p.Schedule(f, int64(i)*1e6)
				if d != nil {
					d.Bind(false, true)
				}
				ds[(i*7)%len(ds)].Unbind(false, true)
				ds[(i*7)%len(ds)].Bind(false, true)
				if d != nil {
					d.Unbind(false, true)
				}
				i++
			})
			if allocs != 0 {
				t.Fatalf("%s: %v allocations per decision", name, allocs)
			}
		})
	}
}

// benchPool builds a pool of n servers with varied weights and some load.
func benchPool(tb testing.TB, name string, n int) (*Pool, []*Dest) {
	opts := Options{}
	if name == "mh" {
		for opts.MHTableIndex = 12; mhPrimes[opts.MHTableIndex-8] < n; opts.MHTableIndex++ {
		}
	}
	p, err := New(name, 0, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ds := make([]*Dest, n)
	for i := range ds {
		w := int32(i%8 + 1)
		if name == "ovf" {
			// ovf skips servers with more active connections than their
			// weight: with small weights a small pool is soon all skipped
			// and the benchmark would time "no server".
			w += 1000
		}
		ds[i] = NewDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 80), w, 0, 0)
	}
	if err := p.Add(ds...); err != nil {
		tb.Fatal(fmt.Errorf("%s: %w", name, err))
	}
	for i, d := range ds {
		for range i % 5 {
			d.Bind(false, true)
		}
		for range i % 3 {
			d.Bind(false, false)
		}
	}
	return p, ds
}

func benchFlows(n int) []Flow {
	fs := make([]Flow, n)
	for i := range fs {
		fs[i] = Flow{Src: addr4(192, 168, byte(i>>8), byte(i)), Dst: addr4(10, 99, 0, byte(i%16)), Proto: 6, SrcPort: uint16(1024 + i), DstPort: 80}
	}
	return fs
}
