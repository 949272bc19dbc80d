package forwarder

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"

	"github.com/ulvs/ulvs/conntrack"
	"github.com/ulvs/ulvs/forwarder/engine"
)

// manyFlows opens n TCP connections through l's NAT service (SYNs fed in
// batches) and returns, per flow, an ACK frame of the established
// connection and the real server's MAC the SYN went to.
func manyFlows(t testing.TB, l *lab, n int) (acks [][]byte, dest [][6]byte) {
	tt := &testing.T{}
	batch := len(l.w.rx)
	var syns [][]byte
	for i := 0; i < n; i++ {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(150 + i/60000)}), uint16(2000+i%60000))
		syns = append(syns, tcpFrame(tt, macClient, macPub, src, netip.AddrPortFrom(vip, 80), "S", nil))
		acks = append(acks, tcpFrame(tt, macClient, macPub, src, netip.AddrPortFrom(vip, 80), "A", make([]byte, 18)))
	}
	dest = make([][6]byte, n)
	for i := 0; i < n; i += batch {
		sent := l.feed(engine.Public, syns[i:min(i+batch, n)]...)
		if len(sent) != min(batch, n-i) {
			t.Fatalf("SYN batch at %d: %d of %d forwarded", i, len(sent), min(batch, n-i))
		}
		for j, s := range sent {
			copy(dest[i+j][:], s.frame[0:6])
		}
	}
	return acks, dest
}

// TestRoundPrefetchLargeTable: with a table larger than the prefetch
// threshold the worker prefetches each batch, and every established flow
// still reaches the real server its SYN went to, without allocating.
func TestRoundPrefetchLargeTable(t *testing.T) {
	l := newLabConns(t, 1<<16)
	l.addService("rr", conntrack.MethodMasq, 3)
	const n = prefetchMinConns + 4000
	acks, dest := manyFlows(t, l, n)
	if got := l.d.ct.Len(); got < prefetchMinConns {
		t.Fatalf("table holds %d entries, want at least %d", got, prefetchMinConns)
	}
	l.now += 2 * prefetchRecheck // past the next size check
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)
	batch := len(l.w.rx)
	for i := 0; i+batch <= n; i += batch {
		frames := make([][]byte, batch)
		for j := range frames {
			frames[j] = acks[order[i+j]]
		}
		sent := l.feed(engine.Public, frames...)
		if len(sent) != batch {
			t.Fatalf("batch at %d: %d of %d forwarded", i, len(sent), batch)
		}
		for j, s := range sent {
			var mac [6]byte
			copy(mac[:], s.frame[0:6])
			if mac != dest[order[i+j]] {
				t.Fatalf("flow %d went to %x, its SYN to %x", order[i+j], mac, dest[order[i+j]])
			}
		}
	}
	if !l.w.bigTable || len(l.w.pfIn) != batch {
		t.Fatalf("the worker did not prefetch (bigTable %v, %d inbound flows prefetched)", l.w.bigTable, len(l.w.pfIn))
	}
	w := l.w
	w.q = &countQueue{}
	allocs := testing.AllocsPerRun(200, func() {
		for j := 0; j < batch; j++ {
			bp := &w.rx[j]
			bp.Off, bp.Iface = engine.Headroom, engine.Public
			bp.Len = copy(bp.Buf[bp.Off:], acks[j])
		}
		w.round(batch)
	})
	if allocs != 0 {
		t.Fatalf("a prefetched round allocates %v times", allocs)
	}
}

// BenchmarkRoundManyFlows: established NAT flows hit in random order in a
// table far larger than the CPU caches, with and without the batch
// prefetch (cpu-ns/op is per frame).
func BenchmarkRoundManyFlows(b *testing.B) {
	for _, pf := range []bool{false, true} {
		name := "prefetch=off"
		if pf {
			name = "prefetch=on"
		}
		b.Run(name, func(b *testing.B) {
			l := newLabConns(&testing.T{}, 1<<20)
			l.addService("rr", conntrack.MethodMasq, 3)
			const n = 240000
			acks, _ := manyFlows(b, l, n)
			order := rand.New(rand.NewPCG(3, 4)).Perm(n)
			w := l.w
			sink := &countQueue{}
			w.q = sink
			batch := len(w.rx)
			if !pf {
				w.bigTable, w.sizeCheck = false, math.MaxInt64
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := threadCPU()
			k := 0
			for i := 0; i < b.N; i += batch {
				for j := 0; j < batch; j++ {
					bp := &w.rx[j]
					bp.Off, bp.Iface = engine.Headroom, engine.Public
					bp.Len = copy(bp.Buf[bp.Off:], acks[order[k]])
					k++
					if k == n {
						k = 0
					}
				}
				w.round(batch)
			}
			b.StopTimer()
			b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
