package conntrack

import "testing"

// The flow hash spreads structured traffic (few client addresses, sequential
// ports) evenly: no long chains, shards evenly filled.
func TestHashSpread(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1 << 17, Shards: 64})
	s, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	var c Conn
	const n = 1 << 16
	for i := 0; i < n; i++ {
		f := nthFlow(i)
		if tb.Connect(svc, &f, TCPSyn, 0, &fixedSched{d: s.Dest}, &c) != Created {
			t.Fatal("not created")
		}
	}
	longest, minUsed, maxUsed := 0, n, 0
	for si := range tb.shards {
		sh := &tb.shards[si]
		u := int(sh.used.Load())
		minUsed, maxUsed = min(minUsed, u), max(maxUsed, u)
		for b := range sh.inB {
			k := 0
			for li := sh.inB[b].Load(); li != nilIdx; li = tb.at(sh, li).nextIn.Load() {
				k++
			}
			longest = max(longest, k)
		}
	}
	// 64K entries in 128K buckets: a Poisson(0.5) chain beyond 9 is
	// astronomically unlikely; per shard, 1024 +- 32 (one sigma): allow 5.5.
	if longest > 9 || minUsed < 850 || maxUsed > 1200 {
		t.Fatalf("longest chain %d, shard fill %d..%d", longest, minUsed, maxUsed)
	}
}
