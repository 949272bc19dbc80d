package conntrack

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestSweepRefilesPastTheHorizon guards against a hang found end to end: a
// UDP entry created with NONE's 2 s expiry and refreshed to UDP's 300 s (past
// the 256 s wheel horizon) was re-filed into the very slot Sweep was
// emptying, so Sweep looped forever holding the shard lock.
func TestSweepRefilesPastTheHorizon(t *testing.T) {
	tb, _, f, c := udpConn(t)
	done := make(chan struct{})
	var at atomic.Int64
	go func() {
		defer close(done)
		for ms := int64(0); ms <= 600_000; ms += 100 { // 10 simulated minutes
			now := ms * int64(time.Millisecond)
			if ms%10_000 == 0 {
				tb.In(&f, 0, now, &c) // a datagram every 10 s keeps it alive
			}
			at.Store(ms)
			tb.Sweep(now)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Sweep(%d ms) did not return within 20 s: stuck", at.Load())
	}
	if tb.Len() != 1 {
		t.Fatalf("the refreshed UDP entry is gone: %d entries", tb.Len())
	}
}
