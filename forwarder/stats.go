package forwarder

import "sync/atomic"

// Counters are the IPVS statistics of a service or real server.
type Counters struct {
	Conns    uint64 // connections scheduled
	InPkts   uint64 // packets client -> real server
	OutPkts  uint64 // packets real server -> client (NAT only)
	InBytes  uint64
	OutBytes uint64
}

// Add adds o to c.
func (c *Counters) Add(o Counters) {
	c.Conns += o.Conns
	c.InPkts += o.InPkts
	c.OutPkts += o.OutPkts
	c.InBytes += o.InBytes
	c.OutBytes += o.OutBytes
}

// counterSet is one worker's copy of a Counters. Only its worker writes it
// (load + store, no locked instruction); readers sum all workers' copies.
type counterSet struct {
	conns, inPkts, outPkts, inBytes, outBytes atomic.Uint64
	_                                         [24]byte // one cache line per set
}

func bump(c *atomic.Uint64, n uint64) { c.Store(c.Load() + n) }

func (c *counterSet) load() Counters {
	return Counters{c.conns.Load(), c.inPkts.Load(), c.outPkts.Load(), c.inBytes.Load(), c.outBytes.Load()}
}

// workerStats is everything one worker counts. Arrays are sized once, at
// start, so the packet path never allocates or grows them.
type workerStats struct {
	drops    [numDrops]atomic.Uint64
	services []counterSet // by service id
	dests    []counterSet // by conntrack.DestID
	arpReplies,
	ndpReplies,
	icmpSent atomic.Uint64
	_ [40]byte
}

func (w *workerStats) drop(d Drop) { bump(&w.drops[d], 1) }

// stats holds every worker's counters plus the offsets that zeroing (ipvsadm
// -Z) and id reuse subtract, so that workers never have to be stopped.
type stats struct {
	workers []*workerStats
	// base holds the value at the last reset of each id, per worker summed.
	svcBase  []atomic.Pointer[Counters]
	destBase []atomic.Pointer[Counters]
}

func newStats(workers, maxServices, maxDests int) *stats {
	s := &stats{
		svcBase:  make([]atomic.Pointer[Counters], maxServices),
		destBase: make([]atomic.Pointer[Counters], maxDests+1),
	}
	for i := 0; i < workers; i++ {
		s.workers = append(s.workers, &workerStats{
			services: make([]counterSet, maxServices),
			dests:    make([]counterSet, maxDests+1),
		})
	}
	return s
}

func (s *stats) sumService(id int) (c Counters) {
	for _, w := range s.workers {
		c.Add(w.services[id].load())
	}
	return c
}

func (s *stats) sumDest(id int) (c Counters) {
	if id >= len(s.destBase) {
		return c
	}
	for _, w := range s.workers {
		c.Add(w.dests[id].load())
	}
	return c
}

func sub(a Counters, b *Counters) Counters {
	if b == nil {
		return a
	}
	return Counters{a.Conns - b.Conns, a.InPkts - b.InPkts, a.OutPkts - b.OutPkts, a.InBytes - b.InBytes, a.OutBytes - b.OutBytes}
}

func (s *stats) service(id int) Counters { return sub(s.sumService(id), s.svcBase[id].Load()) }

func (s *stats) dest(id int) Counters {
	if id >= len(s.destBase) {
		return Counters{}
	}
	return sub(s.sumDest(id), s.destBase[id].Load())
}

func (s *stats) resetService(id int) {
	c := s.sumService(id)
	s.svcBase[id].Store(&c)
}

func (s *stats) resetDest(id int) {
	if id >= len(s.destBase) {
		return
	}
	c := s.sumDest(id)
	s.destBase[id].Store(&c)
}

// Drops returns the per-reason drop counters summed over the workers.
func (s *stats) drops() map[string]uint64 {
	out := make(map[string]uint64, numDrops)
	for d := Drop(1); d < numDrops; d++ {
		var n uint64
		for _, w := range s.workers {
			n += w.drops[d].Load()
		}
		out[d.String()] = n
	}
	return out
}
