package scheduler

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// BenchmarkSchedule measures one decision per op with realistic counter
// churn: every connection is bound to its server when scheduled (Bind,
// inactive), becomes established 16 decisions later (SetActive) and closes
// 1024 decisions later (Unbind), so each op changes three servers' counters
// and dirties up to three leaves of the index. cpu-ns/op is the benchmark
// goroutine's thread CPU time per op, which a busy shared machine does not
// inflate; BenchmarkChurnOnly gives the churn's own share.
func BenchmarkSchedule(b *testing.B) {
	for _, name := range Names {
		for _, n := range []int{8, 128, 1024, 16384} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				p, ds := benchPool(b, name, n)
				flows := benchFlows(4096)
				runBench(b, ds, func(i int) *Dest { return p.Schedule(&flows[i&4095], int64(i)*1000) })
			})
		}
	}
}

// BenchmarkChurnOnly is BenchmarkSchedule's churn with a fixed rotation of
// servers instead of decisions: subtract it to see the decision alone.
func BenchmarkChurnOnly(b *testing.B) {
	for _, n := range []int{8, 16384} {
		b.Run(fmt.Sprintf("wlc/%d", n), func(b *testing.B) {
			_, ds := benchPool(b, "wlc", n)
			runBench(b, ds, func(i int) *Dest { return ds[(i*7919)%n] })
		})
	}
}

func runBench(b *testing.B, ds []*Dest, pick func(i int) *Dest) {
	const ring = 1024
	open := make([]*Dest, ring)
	active := make([]bool, ring)
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	c0 := threadCPU()
	for i := 0; i < b.N; i++ {
		slot := i & (ring - 1)
		if old := open[slot]; old != nil { // the connection opened ring decisions ago closes
			old.Unbind(false, active[slot])
		}
		d := pick(i)
		open[slot], active[slot] = d, false
		if d != nil {
			d.Bind(false, false)
		}
		e := (i - 16) & (ring - 1) // the one opened 16 decisions ago is established
		if x := open[e]; x != nil && !active[e] {
			x.SetActive(true)
			active[e] = true
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(threadCPU()-c0)/float64(b.N), "cpu-ns/op")
	for i, d := range open {
		if d != nil {
			d.Unbind(false, active[i])
		}
	}
}

// BenchmarkKernelScan runs the same workload through the test's literal
// port of the kernel loops (a full scan per decision), for comparison.
func BenchmarkKernelScan(b *testing.B) {
	for _, name := range []string{"lc", "wlc", "twos"} {
		for _, n := range []int{8, 1024, 16384} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				p, ds := benchPool(b, name, n)
				k, _ := kindOf(name)
				ref := newRef(k, rand.Uint32)
				ref.list = p.Dests()
				flows := benchFlows(4096)
				runBench(b, ds, func(i int) *Dest { return ref.schedule(&flows[i&4095], int64(i)*1000) })
			})
		}
	}
}

// BenchmarkChurnByTracking is BenchmarkChurnOnly at 1024 real servers for
// each kind of tracking (see trackedEvents): rr's index follows only
// OVERLOAD, sed's also the active counter, wlc's every counter.
func BenchmarkChurnByTracking(b *testing.B) {
	for _, name := range []string{"rr", "sed", "wlc"} {
		b.Run(name+"/1024", func(b *testing.B) {
			_, ds := benchPool(b, name, 1024)
			runBench(b, ds, func(i int) *Dest { return ds[(i*7919)%1024] })
		})
	}
}

// BenchmarkDecisionOnly is one Schedule per op with no counter change at
// all: the lock, an empty drain and the decision itself, without the index
// maintenance that BenchmarkSchedule's churn causes.
func BenchmarkDecisionOnly(b *testing.B) {
	for _, name := range Names {
		for _, n := range []int{1024, 16384} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				p, _ := benchPool(b, name, n)
				flows := benchFlows(4096)
				b.ReportAllocs()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				b.ResetTimer()
				c0 := threadCPU()
				for i := 0; i < b.N; i++ {
					if p.Schedule(&flows[i&4095], int64(i)*1000) == nil {
						b.Fatal("no server")
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(threadCPU()-c0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
