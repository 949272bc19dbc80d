package conntrack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ulvs/ulvs/scheduler"
)

// nthFlow returns a distinct IPv4 TCP flow for each n (client address and
// port vary) to 192.0.2.1:80. It is cheap (no parsing): benchmarks call it
// per packet.
func nthFlow(n int) scheduler.Flow {
	f := scheduler.Flow{DstPort: 80, Proto: ProtoTCP}
	f.Src[10], f.Src[11] = 0xff, 0xff
	binary.BigEndian.PutUint32(f.Src[12:], 0x0a000000|uint32(n>>12))
	f.Dst = [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 1}
	f.SrcPort = uint16(1024 + n&0xfff)
	return f
}

func TestZeroAllocs(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1 << 12})
	s, _ := addServer(t, tb, "10.1.0.1:8080", MethodMasq, 0, 0)
	sched := &fixedSched{d: s.Dest}
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	psvc := svcOf("192.0.2.1", 80, ProtoTCP)
	psvc.PersistTimeout = 60
	// Warm up: allocate every chunk once, then empty the table.
	for i := 0; i < tb.Cap(); i++ {
		f := nthFlow(i)
		var c Conn
		tb.Connect(svc, &f, TCPSyn, 0, sched, &c)
	}
	tb.Flush()

	f := nthFlow(1)
	var c Conn
	tb.Connect(svc, &f, TCPSyn, 0, sched, &c)
	r := reply(&c)
	now := int64(0)
	if n := testing.AllocsPerRun(1000, func() {
		now += 1e6
		if tb.In(&f, TCPAck, now, &c) != Hit {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Errorf("In (established): %v allocs", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		now += 1e6
		if tb.Out(&r, TCPAck, now, &c) != Hit {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Errorf("Out (established): %v allocs", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if !tb.LookupIn(&f, &c) || !tb.LookupOut(&r, &c) {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Errorf("LookupIn/LookupOut: %v allocs", n)
	}
	// The flow handed to Connect escapes (Connect passes it to the
	// Scheduler interface), so a worker keeps it in its own long-lived
	// state, as the forwarder does; nothing is allocated per call.
	w := &struct{ flow scheduler.Flow }{}
	i := 100
	if n := testing.AllocsPerRun(1000, func() {
		i++
		w.flow = nthFlow(i)
		var nc Conn
		if tb.Connect(svc, &w.flow, TCPSyn, now, sched, &nc) != Created {
			t.Fatal("not created")
		}
		tb.Expire(&nc, now)
	}); n != 0 {
		t.Errorf("Connect (new flow, steady state): %v allocs", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		i++
		w.flow = nthFlow(i)
		var nc Conn
		if tb.Connect(psvc, &w.flow, TCPSyn, now, sched, &nc) != Created {
			t.Fatal("not created")
		}
		tb.Expire(&nc, now)
	}); n != 0 {
		t.Errorf("Connect (persistent, steady state): %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		now += 10 * sec
		tb.Sweep(now)
	}); n != 0 {
		t.Errorf("Sweep: %v allocs", n)
	}
}

// TestMemoryPerConnection inserts 1M IPv4 connections and divides the heap
// growth (table and indexes included) by 1M.
func TestMemoryPerConnection(t *testing.T) {
	n := 1 << 20
	if raceEnabled {
		n = 1 << 18 // same layout and ratios, a quarter of the work
	}
	const bound = 128
	runtime.GC()
	var m1, m2 runtime.MemStats
	runtime.ReadMemStats(&m1)
	tb := newTable(t, Config{MaxConns: n})
	s, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	sched := &fixedSched{d: s.Dest}
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	var c Conn
	created := 0
	for i := 0; i < n; i++ {
		f := nthFlow(i)
		if tb.Connect(svc, &f, TCPSyn, 0, sched, &c) == Created {
			created++
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&m2)
	if created < n*99/100 {
		t.Fatalf("only %d of %d connections fit (shard imbalance)", created, n)
	}
	per := float64(m2.HeapAlloc-m1.HeapAlloc) / float64(created)
	t.Logf("%d connections: %.1f bytes each (entry %d bytes), cap %d, shards %d", created, per, EntrySize, tb.Cap(), tb.Shards())
	if per > bound {
		t.Fatalf("%.1f bytes per connection, bound %d", per, bound)
	}
	runtime.KeepAlive(tb)
}

// --- benchmarks ----------------------------------------------------------------

const benchConns = 1 << 20

var benchTable struct {
	tb    *Table
	flows []scheduler.Flow
	outs  []scheduler.Flow
}

func benchSetup(b *testing.B) (*Table, []scheduler.Flow, []scheduler.Flow) {
	if benchTable.tb != nil {
		return benchTable.tb, benchTable.flows, benchTable.outs
	}
	tb, err := New(Config{MaxConns: benchConns * 2})
	if err != nil {
		b.Fatal(err)
	}
	srv, _ := addServer(b, tb, "10.1.0.1:8080", MethodMasq, 0, 0)
	d := srv.Dest
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	sched := &fixedSched{d: d}
	flows := make([]scheduler.Flow, benchConns)
	outs := make([]scheduler.Flow, benchConns)
	var c Conn
	for i := range flows {
		flows[i] = nthFlow(i)
		if tb.Connect(svc, &flows[i], TCPSyn, 0, sched, &c) != Created {
			b.Fatal("prefill failed")
		}
		tb.In(&flows[i], TCPAck, 0, &c)
		outs[i] = reply(&c)
	}
	benchTable.tb, benchTable.flows, benchTable.outs = tb, flows, outs
	return tb, flows, outs
}

// cpuTime returns the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// reportCPU adds cpu-ns/op: CPU time (all threads) per operation, which
// stays meaningful on a shared machine where wall time does not.
func reportCPU(b *testing.B, start int64) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func benchParallel(b *testing.B, procs int, fn func(i int)) {
	benchParallelN(b, procs, benchConns, fn)
}

// benchParallelN draws flow indexes uniformly from [0, n).
func benchParallelN(b *testing.B, procs, n int, fn func(i int)) {
	old := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(old)
	var seed atomic.Uint64
	start := cpuTime()
	defer func() { reportCPU(b, start) }()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine walks the flows in its own pseudo-random order.
		x := seed.Add(0x9e3779b97f4a7c15)
		for pb.Next() {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			fn(int(x % uint64(n)))
		}
	})
}

func procsList() []int {
	ps := []int{1, 2}
	if n := runtime.NumCPU(); n > 2 {
		ps = append(ps, n)
	}
	return ps
}

// replyOf is the NAT reply of nthFlow(i) in the benchmark table.
func replyOf(i int, srv *[16]byte) scheduler.Flow {
	f := nthFlow(i)
	return scheduler.Flow{Src: *srv, Dst: f.Src, SrcPort: 8080, DstPort: f.SrcPort, Proto: ProtoTCP}
}

// BenchmarkLookup: In (lookup + state step + refresh + in_pkts), Out, and
// the read-only LookupIn, with packets drawn uniformly from the 1M
// established flows (every lookup misses the CPU caches), and In with
// packets drawn from 64 or 4096 busy flows (entries in cache: the cost of
// the code itself). The flow key is computed per packet, as a parser would
// leave it in a hot buffer.
func BenchmarkLookup(b *testing.B) {
	tb, _, _ := benchSetup(b)
	srv := netip.MustParseAddr("10.1.0.1").As16()
	for _, p := range procsList() {
		b.Run(fmt.Sprintf("In/procs=%d", p), func(b *testing.B) {
			benchParallel(b, p, func(i int) {
				var c Conn
				f := nthFlow(i)
				if tb.In(&f, TCPAck, 1e6, &c) != Hit {
					b.Fatal("miss")
				}
			})
		})
		b.Run(fmt.Sprintf("InBatch32/procs=%d", p), func(b *testing.B) {
			old := runtime.GOMAXPROCS(p)
			defer runtime.GOMAXPROCS(old)
			var seed atomic.Uint64
			start := cpuTime()
			defer func() { reportCPU(b, start) }()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				x := seed.Add(0x9e3779b97f4a7c15)
				var batch [32]scheduler.Flow
				var c Conn
				for {
					n := 0
					for n < len(batch) && pb.Next() {
						x ^= x << 13
						x ^= x >> 7
						x ^= x << 17
						batch[n] = nthFlow(int(x % benchConns))
						n++
					}
					if n == 0 {
						return
					}
					tb.PrefetchIn(batch[:n])
					for i := 0; i < n; i++ {
						if tb.In(&batch[i], TCPAck, 1e6, &c) != Hit {
							b.Fatal("miss")
						}
					}
				}
			})
		})
		b.Run(fmt.Sprintf("Out/procs=%d", p), func(b *testing.B) {
			benchParallel(b, p, func(i int) {
				var c Conn
				r := replyOf(i, &srv)
				if tb.Out(&r, TCPAck, 1e6, &c) != Hit {
					b.Fatal("miss")
				}
			})
		})
		b.Run(fmt.Sprintf("LookupIn/procs=%d", p), func(b *testing.B) {
			benchParallel(b, p, func(i int) {
				var c Conn
				f := nthFlow(i)
				if !tb.LookupIn(&f, &c) {
					b.Fatal("miss")
				}
			})
		})
		for _, hot := range []int{64, 4096} {
			b.Run(fmt.Sprintf("InHot%d/procs=%d", hot, p), func(b *testing.B) {
				benchParallelN(b, p, hot, func(i int) {
					var c Conn
					f := nthFlow(i * (benchConns / hot))
					if tb.In(&f, TCPAck, 1e6, &c) != Hit {
						b.Fatal("miss")
					}
				})
			})
		}
	}
}

// BenchmarkGoMapBaseline calibrates the machine: a plain Go map with 1M
// 40-byte keys, looked up the same ways from one goroutine (no
// concurrency, no state). Compare its ns/op with BenchmarkLookup's.
func BenchmarkGoMapBaseline(b *testing.B) {
	m := make(map[scheduler.Flow]uint32, benchConns)
	for i := 0; i < benchConns; i++ {
		m[nthFlow(i)] = uint32(i)
	}
	for _, hot := range []int{benchConns, 4096} {
		b.Run(fmt.Sprintf("keys=%d", hot), func(b *testing.B) {
			x := uint64(0x9e3779b97f4a7c15)
			var sum uint32
			start := cpuTime()
			defer func() { reportCPU(b, start) }()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				sum += m[nthFlow(int(x%uint64(hot))*(benchConns/hot))]
			}
			mapSink = sum
		})
	}
}

var mapSink uint32

// BenchmarkConnect inserts new flows into a table holding 1M connections,
// expiring each right after (so the table stays at 1M): one op = one
// insert plus one delete.
func BenchmarkConnect(b *testing.B) {
	tb, _, _ := benchSetup(b)
	d := tb.Dest(1)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	for _, p := range procsList() {
		b.Run(fmt.Sprintf("procs=%d", p), func(b *testing.B) {
			var next atomic.Int64
			next.Store(benchConns * 4)
			old := runtime.GOMAXPROCS(p)
			defer runtime.GOMAXPROCS(old)
			start := cpuTime()
			defer func() { reportCPU(b, start) }()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				sched := &fixedSched{d: d}
				var c Conn
				var f scheduler.Flow
				for pb.Next() {
					f = nthFlow(int(next.Add(1)))
					if tb.Connect(svc, &f, TCPSyn, 1e6, sched, &c) != Created {
						b.Fatal("not created")
					}
					tb.Expire(&c, 1e6)
				}
			})
		})
	}
}

func TestPrefetchChangesNothing(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1 << 10})
	s, _ := addServer(t, tb, "10.1.0.1:8080", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	batch := make([]scheduler.Flow, 100)
	outs := make([]scheduler.Flow, 100)
	var c Conn
	for i := range batch {
		batch[i] = nthFlow(i * 3)
		if i%2 == 0 {
			tb.Connect(svc, &batch[i], TCPSyn, 0, &fixedSched{d: s.Dest}, &c)
		}
		outs[i] = scheduler.Flow{Src: s.Addr16(), Dst: batch[i].Src, SrcPort: 8080, DstPort: batch[i].SrcPort, Proto: ProtoTCP}
	}
	tb.PrefetchIn(batch)
	tb.PrefetchOut(outs)
	if n := testing.AllocsPerRun(10, func() { tb.PrefetchIn(batch); tb.PrefetchOut(outs) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
	for i := range batch {
		if tb.In(&batch[i], TCPAck, 0, &c) == Hit != (i%2 == 0) {
			t.Fatalf("flow %d: wrong verdict after prefetch", i)
		}
		if tb.Out(&outs[i], TCPAck, 0, &c) == Hit != (i%2 == 0) {
			t.Fatalf("reply %d: wrong verdict after prefetch", i)
		}
	}
	if tb.Len() != 50 {
		t.Fatalf("len %d", tb.Len())
	}
}
