package forwarder

import (
	"context"
	"time"
)

// Resolver keeps a NeighTable filled: it is the table's only writer. Workers
// tell it which next hops they failed to resolve (Want) and which addresses
// they saw on the wire (Learn); both calls are non-blocking and allocation
// free, so the data path can make them for every packet if it must.
//
// It asks for an address with the Solicit function (an ARP request or an
// IPv6 neighbour solicitation, sent by the director), repeats the question
// while the answer is missing, and re-asks for entries that are in use and
// have not been confirmed for RefreshAfter, so a real server that changes its
// MAC address is followed within that time.
type Resolver struct {
	Table *NeighTable
	// Solicit sends a request for ip's link-layer address.
	Solicit func(ip [16]byte) error
	// Now returns monotonic nanoseconds; tests inject a fake clock.
	Now func() int64

	// RetryAfter is how long to wait for an answer before asking again.
	RetryAfter time.Duration
	// RefreshAfter is the age after which a used entry is confirmed again.
	RefreshAfter time.Duration

	want  chan [16]byte
	learn chan learned

	pending map[[16]byte]asked
	scratch []neighEntry
}

type asked struct{ first, last int64 }

type learned struct {
	ip  [16]byte
	mac [6]byte
	// onlyUpdate is set for addresses seen in passing (the sender of an ARP
	// request, say): they refresh an existing entry but do not add one, as
	// the kernel does, so that a flood of ARP cannot fill the table.
	onlyUpdate bool
}

// NewResolver returns a resolver for t. Run must be called for it to work.
func NewResolver(t *NeighTable, solicit func([16]byte) error, now func() int64) *Resolver {
	return &Resolver{
		Table:        t,
		Solicit:      solicit,
		Now:          now,
		RetryAfter:   time.Second,
		RefreshAfter: 30 * time.Second,
		want:         make(chan [16]byte, 1024),
		learn:        make(chan learned, 1024),
		pending:      make(map[[16]byte]asked),
	}
}

// Want asks for ip to be resolved. It never blocks: when the resolver is
// behind, the request is dropped and the next packet asks again.
func (r *Resolver) Want(ip *[16]byte) {
	select {
	case r.want <- *ip:
	default:
	}
}

// Learn records that ip is at mac (an ARP or NDP answer). It never blocks.
func (r *Resolver) Learn(ip *[16]byte, mac [6]byte) {
	select {
	case r.learn <- learned{ip: *ip, mac: mac}:
	default:
	}
}

// Seen refreshes ip's entry if there is one, without creating it.
func (r *Resolver) Seen(ip *[16]byte, mac [6]byte) {
	select {
	case r.learn <- learned{ip: *ip, mac: mac, onlyUpdate: true}:
	default:
	}
}

// Run serves requests until ctx ends.
func (r *Resolver) Run(ctx context.Context) {
	tick := time.NewTicker(r.RetryAfter / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ip := <-r.want:
			r.handleWant(ip)
		case l := <-r.learn:
			r.handleLearn(l)
		case <-tick.C:
			r.housekeep()
		}
	}
}

func (r *Resolver) handleWant(ip [16]byte) {
	now := r.Now()
	if _, ok := r.Table.Lookup(&ip, now); ok {
		return // answered meanwhile
	}
	if _, ok := r.pending[ip]; ok {
		return // housekeep repeats the question
	}
	r.ask(ip, now)
}

func (r *Resolver) ask(ip [16]byte, now int64) {
	r.pending[ip] = asked{first: now, last: now}
	_ = r.Solicit(ip) // a failed send is retried by housekeep
}

func (r *Resolver) handleLearn(l learned) {
	now := r.Now()
	if l.onlyUpdate {
		if _, ok := r.Table.Lookup(&l.ip, 0); !ok {
			if _, asked := r.pending[l.ip]; !asked {
				return
			}
		}
	}
	delete(r.pending, l.ip)
	r.Table.set(&l.ip, l.mac, now)
}

// housekeep repeats unanswered requests (for a bounded time) and refreshes
// entries that are in use but old.
func (r *Resolver) housekeep() {
	now := r.Now()
	for ip, a := range r.pending {
		switch {
		case now-a.first >= 10*int64(r.RetryAfter):
			delete(r.pending, ip) // give up until a packet wants it again
		case now-a.last >= int64(r.RetryAfter):
			a.last = now
			r.pending[ip] = a
			_ = r.Solicit(ip) // a failed send is retried at the next tick
		}
	}
	r.scratch = r.Table.entries(r.scratch[:0])
	for _, e := range r.scratch {
		stale := now-e.Seen >= int64(r.RefreshAfter)
		inUse := now-e.Used < int64(r.RefreshAfter)
		if stale && inUse {
			if _, ok := r.pending[e.IP]; !ok {
				r.ask(e.IP, now)
			}
		}
	}
}
