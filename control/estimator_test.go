package control

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ulvs/ulvs/forwarder"
)

// TestEstimatorIsAMovingAverage checks that --rate follows recent traffic
// (IPVS's estimator), not the mean since start: after a burst stops, the
// rate decays towards zero although the since-start mean stays high.
func TestEstimatorIsAMovingAverage(t *testing.T) {
	e := NewEstimator()
	k := forwarder.ServiceKey{Proto: 6, Addr: netip.MustParseAddr("10.0.0.100"), Port: 80}
	var c forwarder.Counters
	sample := func() {
		e.Sample([]forwarder.ServiceInfo{{Spec: forwarder.ServiceSpec{ServiceKey: k}, Stats: c}}, 2*time.Second)
	}
	sample()
	for i := 0; i < 20; i++ { // 1000 packets/s for 40 s
		c.InPkts += 2000
		c.Conns += 200
		sample()
	}
	if r := e.Rate(rateKey{svc: k}); r.InPPS < 990 || r.InPPS > 1000 || r.CPS < 99 || r.CPS > 100 {
		t.Fatalf("steady rate %+v, want about 1000 pps and 100 cps", r)
	}
	for i := 0; i < 8; i++ { // then silence for 16 s
		sample()
	}
	r := e.Rate(rateKey{svc: k})
	if r.InPPS > 110 {
		t.Fatalf("rate after 16 s of silence %d pps: not a moving average", r.InPPS)
	}
	if r.InPPS == 0 {
		t.Fatalf("rate dropped to 0 at once: want a decay like IPVS's estimator")
	}
	// Zeroed counters restart the estimate instead of underflowing.
	c = forwarder.Counters{}
	sample()
	if r := e.Rate(rateKey{svc: k}); r.InPPS > 110 {
		t.Fatalf("zeroing produced %d pps", r.InPPS)
	}
}
