package control

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/forwarder"
)

// Estimator computes the --rate columns as IPVS's estimator does
// (ip_vs_est.c): every 2 seconds it takes the increase of each counter and
// moves an exponentially weighted average a quarter of the way towards it,
// so a rate reflects roughly the last 8 seconds, not the mean since start.
type Estimator struct {
	mu    sync.Mutex
	state map[rateKey]*estimate
	// Period is the sampling period (2 s, as in IPVS).
	Period time.Duration
}

type rateKey struct {
	svc  forwarder.ServiceKey
	dest netip.AddrPort // zero for the service itself
}

type estimate struct {
	last forwarder.Counters
	avg  [5]float64 // cps, inpps, outpps, inbps, outbps
	seen bool
}

// NewEstimator returns an estimator with IPVS's 2-second period.
func NewEstimator() *Estimator {
	return &Estimator{state: map[rateKey]*estimate{}, Period: 2 * time.Second}
}

// Run samples d every Period until ctx ends.
func (e *Estimator) Run(ctx context.Context, d *forwarder.Director) {
	t := time.NewTicker(e.Period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.Sample(d.Services(), e.Period)
		}
	}
}

// Sample feeds one sample of every service and real server, taken period
// after the previous one.
func (e *Estimator) Sample(svcs []forwarder.ServiceInfo, period time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	live := make(map[rateKey]bool, len(e.state))
	for i := range svcs {
		k := rateKey{svc: svcs[i].Spec.ServiceKey}
		e.update(k, svcs[i].Stats, period)
		live[k] = true
		for j := range svcs[i].Dests {
			dk := rateKey{svc: k.svc, dest: svcs[i].Dests[j].Spec.Addr}
			e.update(dk, svcs[i].Dests[j].Stats, period)
			live[dk] = true
		}
	}
	for k := range e.state {
		if !live[k] {
			delete(e.state, k)
		}
	}
}

func (e *Estimator) update(k rateKey, c forwarder.Counters, period time.Duration) {
	st := e.state[k]
	if st == nil {
		st = &estimate{}
		e.state[k] = st
	}
	if !st.seen || c.Conns < st.last.Conns || c.InPkts < st.last.InPkts {
		// First sample, or the counters were zeroed: start from here.
		st.last, st.seen = c, true
		return
	}
	sec := period.Seconds()
	cur := [5]float64{
		float64(c.Conns-st.last.Conns) / sec,
		float64(c.InPkts-st.last.InPkts) / sec,
		float64(c.OutPkts-st.last.OutPkts) / sec,
		float64(c.InBytes-st.last.InBytes) / sec,
		float64(c.OutBytes-st.last.OutBytes) / sec,
	}
	for i := range cur {
		st.avg[i] += (cur[i] - st.avg[i]) / 4
	}
	st.last = c
}

// Rate returns the current estimate for k.
func (e *Estimator) Rate(k rateKey) ipvsadm.Rate {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.state[k]
	if st == nil {
		return ipvsadm.Rate{}
	}
	r := func(v float64) uint64 { return uint64(v + 0.5) }
	return ipvsadm.Rate{CPS: r(st.avg[0]), InPPS: r(st.avg[1]), OutPPS: r(st.avg[2]), InBPS: r(st.avg[3]), OutBPS: r(st.avg[4])}
}
