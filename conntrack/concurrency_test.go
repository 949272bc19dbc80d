package conntrack

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ulvs/ulvs/scheduler"
)

// rotSched is a scheduler safe for concurrent use.
type rotSched struct {
	ds []*scheduler.Dest
	n  atomic.Uint32
}

func (r *rotSched) Schedule(*scheduler.Flow, int64) *scheduler.Dest {
	return r.ds[int(r.n.Add(1))%len(r.ds)]
}

// Many goroutines create, look up (both directions), expire, sweep and list
// at once on few shards. Checks: every hit is the flow asked for, and the
// servers' counters always add up to the table's contents.
func TestConcurrentMixedLoad(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1 << 12, Shards: 4})
	var servers []*testServer
	sched := &rotSched{}
	for _, ap := range []string{"10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:8080", "10.1.0.4:80"} {
		s, _ := addServer(t, tb, ap, MethodMasq, 0, 0)
		servers = append(servers, s)
		sched.ds = append(sched.ds, s.Dest)
	}
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	psvc := svcOf("192.0.2.2", 80, ProtoTCP)
	psvc.PersistTimeout = 30
	const nflows = 3000
	flows := make([]scheduler.Flow, nflows)
	for i := range flows {
		vip := "192.0.2.1"
		if i%2 == 1 {
			vip = "192.0.2.2"
		}
		flows[i] = flow("198.51.100.1", uint16(1000+i), vip, 80, ProtoTCP)
		flows[i].Src[14] = byte(i % 7) // a few client addresses share templates
	}
	var clock atomic.Int64
	clock.Store(1000 * sec)
	workers := 2 * runtime.GOMAXPROCS(0)
	if workers < 4 {
		workers = 4
	}
	iters := 20000
	if raceEnabled {
		iters = 8000
	}
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			var c Conn
			flags := []uint8{TCPSyn, TCPAck, TCPAck, TCPAck, TCPFin, TCPRst}
			for i := 0; i < iters; i++ {
				fi := rng.IntN(nflows)
				f := &flows[fi]
				now := clock.Load()
				fl := flags[rng.IntN(len(flags))]
				switch op := rng.IntN(10); {
				case op < 6:
					v := tb.In(f, fl, now, &c)
					if v == Miss {
						s := svc
						if fi%2 == 1 {
							s = psvc
						}
						tb.Connect(s, f, TCPSyn, now, sched, &c)
					} else if v == Hit && (c.CAddr != f.Src || c.CPort != f.SrcPort || c.VAddr != f.Dst || c.VPort != f.DstPort) {
						bad.Add(1)
					}
				case op < 8:
					if tb.LookupIn(f, &c) {
						r := reply(&c)
						var o Conn
						if tb.Out(&r, fl, now, &o) == Hit && (o.CAddr != f.Src || o.CPort != f.SrcPort) {
							bad.Add(1)
						}
					}
				case op < 9:
					if tb.LookupIn(f, &c) {
						tb.Expire(&c, now)
					}
				default:
					if rng.IntN(50) == 0 {
						clock.Add(2 * sec)
						tb.Sweep(clock.Load())
					}
				}
			}
		}(uint64(w) + 1)
	}
	// A lister walks the table meanwhile, as ipvsadm -L -c or sync would.
	stop := make(chan struct{})
	var listed atomic.Int64
	var lw sync.WaitGroup
	lw.Add(1)
	go func() {
		defer lw.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			tb.Range(clock.Load(), func(ci *ConnInfo) bool {
				listed.Add(1)
				if ci.Flags&FlagTemplate == 0 && ci.Proto != ProtoTCP {
					bad.Add(1)
				}
				return true
			})
			runtime.Gosched()
		}
	}()
	wg.Wait()
	close(stop)
	lw.Wait()
	if listed.Load() == 0 {
		t.Fatal("the lister never saw an entry")
	}
	if bad.Load() != 0 {
		t.Fatalf("%d lookups returned the wrong connection", bad.Load())
	}
	checkCounters(t, tb, servers)
	tb.Flush()
	for _, s := range servers {
		if got := counts(s); got != [3]int32{0, 0, 0} {
			t.Fatalf("server %s after Flush: %v", s.AddrPort(), got)
		}
	}
	if tb.Len() != 0 {
		t.Fatalf("len %d after Flush", tb.Len())
	}
}

// checkCounters compares every server's counters with the table's entries.
func checkCounters(t *testing.T, tb *Table, servers []*testServer) {
	t.Helper()
	type cnt struct{ a, i, p int32 }
	want := map[DestID]*cnt{}
	tb.Range(0, func(ci *ConnInfo) bool {
		c := want[ci.Dest]
		if c == nil {
			c = &cnt{}
			want[ci.Dest] = c
		}
		switch {
		case ci.Flags&FlagTemplate != 0:
			c.p++
		case ci.Flags&FlagInactive != 0:
			c.i++
		default:
			c.a++
		}
		return true
	})
	for _, s := range servers {
		w := want[tb.DestID(s.Dest)]
		if w == nil {
			w = &cnt{}
		}
		if got := counts(s); got != [3]int32{w.a, w.i, w.p} {
			t.Fatalf("server %s counters %v, table has %d/%d/%d", s.AddrPort(), got, w.a, w.i, w.p)
		}
	}
}

// Concurrent Connect of the same new flow creates one connection.
func TestConcurrentConnectSameFlow(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1 << 10, Shards: 2})
	s, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoUDP)
	svc.PersistTimeout = 60
	sched := &rotSched{ds: []*scheduler.Dest{s.Dest}}
	var created, existing atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := 0; p < 200; p++ {
				f := flow("198.51.100.1", uint16(p+1), "192.0.2.1", 80, ProtoUDP)
				var c Conn
				switch tb.Connect(svc, &f, 0, 0, sched, &c) {
				case Created:
					created.Add(1)
				case Existing:
					existing.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if created.Load() != 200 || existing.Load() != 7*200 || tb.Len() != 201 {
		t.Fatalf("created %d existing %d len %d", created.Load(), existing.Load(), tb.Len())
	}
	checkCounters(t, tb, []*testServer{s})
	if tm := templates(tb, 0); len(tm) != 1 || tm[0].Controls != 200 {
		t.Fatalf("template %+v", tm)
	}
}

// Lock-free lookups of stable flows never miss and never return another
// flow while other entries of the same chains are freed and their slots
// reused, over and over.
func TestLockFreeLookupUnderChurn(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64, Shards: 1}) // 64 buckets: long shared chains
	s, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoUDP)
	sched := &rotSched{ds: []*scheduler.Dest{s.Dest}}
	const stable = 24
	flows := make([]scheduler.Flow, stable)
	var c Conn
	for i := range flows {
		flows[i] = flow("198.51.100.1", uint16(100+i), "192.0.2.1", 80, ProtoUDP)
		if tb.Connect(svc, &flows[i], 0, 0, sched, &c) != Created {
			t.Fatal("setup")
		}
	}
	iters := 200000
	if raceEnabled {
		iters = 20000
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // churn: create and free 40 other flows in the same buckets
		defer wg.Done()
		defer stop.Store(true)
		var cc Conn
		var f scheduler.Flow
		for i := 0; i < iters; i++ {
			f = flow("198.51.100.2", uint16(1000+i%40), "192.0.2.1", 80, ProtoUDP)
			if tb.Connect(svc, &f, 0, 0, sched, &cc) == Created {
				tb.Expire(&cc, 0)
			}
		}
	}()
	var misses, wrong atomic.Int64
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			var cc Conn
			for i := 0; !stop.Load(); i++ {
				f := &flows[(i+r*7)%stable]
				if r == 0 {
					if !tb.LookupIn(f, &cc) {
						misses.Add(1)
					} else if cc.CPort != f.SrcPort || cc.CAddr != f.Src {
						wrong.Add(1)
					}
				} else {
					rf := scheduler.Flow{Src: s.Addr16(), Dst: f.Src, SrcPort: 80, DstPort: f.SrcPort, Proto: ProtoUDP}
					if !tb.LookupOut(&rf, &cc) {
						misses.Add(1)
					} else if cc.CPort != f.SrcPort {
						wrong.Add(1)
					}
				}
			}
		}(r)
	}
	wg.Wait()
	if misses.Load() != 0 || wrong.Load() != 0 {
		t.Fatalf("stable flows: %d misses, %d wrong hits", misses.Load(), wrong.Load())
	}
	if tb.Len() != stable {
		t.Fatalf("len %d, want %d", tb.Len(), stable)
	}
}
