package conntrack

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ulvs/ulvs/scheduler"
)

// server is what the table needs from a real server: the connection
// counters and the two facts persistence and expire_nodest_conn look at.
// *scheduler.Dest implements it.
type server interface {
	Bind(template, active bool)
	Unbind(template, active bool)
	SetActive(active bool)
	Available() bool
	Weight() int32
}

var _ server = (*scheduler.Dest)(nil)

// Scheduler picks a real server for a new connection. scheduler's Pool
// implements it; returning nil means no server is available.
type Scheduler interface {
	Schedule(f *scheduler.Flow, now int64) *scheduler.Dest
}

type destSlot struct {
	d      *scheduler.Dest
	srv    server
	addr   [16]byte
	port   uint16
	v6     bool
	method atomic.Uint32
	refs   atomic.Int64 // entries bound to this server
}

// destRegistry maps real servers to small integer ids, so that entries hold
// no pointers. Reads are lock-free: slots are atomic pointers, and the
// reverse map is an immutable map replaced on every registration (a
// control-plane event).
type destRegistry struct {
	mu    sync.Mutex
	slots []atomic.Pointer[destSlot] // index = DestID; 0 unused
	byPtr atomic.Pointer[map[*scheduler.Dest]DestID]
	free  []DestID
	next  DestID
}

func (r *destRegistry) init(max int) {
	r.slots = make([]atomic.Pointer[destSlot], max+1)
	m := map[*scheduler.Dest]DestID{}
	r.byPtr.Store(&m)
	r.next = 1
}

func (r *destRegistry) get(id DestID) *destSlot {
	if id == NoDest || int(id) >= len(r.slots) {
		return nil
	}
	return r.slots[id].Load()
}

func (r *destRegistry) idOf(d *scheduler.Dest) DestID {
	if d == nil {
		return NoDest
	}
	return (*r.byPtr.Load())[d]
}

// RegisterDest gives d an id for this table, with the forwarding method new
// connections to it will use. Registering d again returns the same id and
// updates the method (existing connections keep theirs, as in IPVS).
func (t *Table) RegisterDest(d *scheduler.Dest, m Method) (DestID, error) {
	return t.register(d, d, m)
}

// register is RegisterDest with the server the table calls given
// separately (tests wrap a Dest to control its availability).
func (t *Table) register(d *scheduler.Dest, srv server, m Method) (DestID, error) {
	if d == nil {
		return NoDest, fmt.Errorf("conntrack: RegisterDest(nil): %w", ErrNoDest)
	}
	if m > MethodBypass {
		return NoDest, fmt.Errorf("conntrack: RegisterDest %s: method %d: %w", d.AddrPort(), m, ErrRange)
	}
	r := &t.dests
	r.mu.Lock()
	defer r.mu.Unlock()
	if id := r.idOf(d); id != NoDest {
		r.slots[id].Load().method.Store(uint32(m))
		return id, nil
	}
	var id DestID
	if n := len(r.free); n > 0 {
		id = r.free[n-1]
		r.free = r.free[:n-1]
	} else {
		if int(r.next) >= len(r.slots) {
			return NoDest, fmt.Errorf("conntrack: RegisterDest %s: %w (%d)", d.AddrPort(), ErrTooMany, len(r.slots)-1)
		}
		id = r.next
		r.next++
	}
	ap := d.AddrPort()
	s := &destSlot{d: d, srv: srv, addr: d.Addr16(), port: ap.Port(), v6: ap.Addr().Is6() && !ap.Addr().Is4In6()}
	s.method.Store(uint32(m))
	r.slots[id].Store(s)
	old := *r.byPtr.Load()
	m2 := make(map[*scheduler.Dest]DestID, len(old)+1)
	for k, v := range old {
		m2[k] = v
	}
	m2[d] = id
	r.byPtr.Store(&m2)
	return id, nil
}

// SetDestMethod changes the forwarding method of new connections to id.
func (t *Table) SetDestMethod(id DestID, m Method) error {
	s := t.dests.get(id)
	if s == nil {
		return fmt.Errorf("conntrack: SetDestMethod(%d): %w", id, ErrNoDest)
	}
	if m > MethodBypass {
		return fmt.Errorf("conntrack: SetDestMethod(%d): method %d: %w", id, m, ErrRange)
	}
	s.method.Store(uint32(m))
	return nil
}

// UnregisterDest forgets a real server. It fails with ErrDestInUse while
// entries still refer to it (FlushDest, or let them expire, first).
func (t *Table) UnregisterDest(id DestID) error {
	r := &t.dests
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.get(id)
	if s == nil {
		return fmt.Errorf("conntrack: UnregisterDest(%d): %w", id, ErrNoDest)
	}
	if n := s.refs.Load(); n != 0 {
		return fmt.Errorf("conntrack: UnregisterDest %s: %w (%d entries)", s.d.AddrPort(), ErrDestInUse, n)
	}
	r.slots[id].Store(nil)
	old := *r.byPtr.Load()
	m2 := make(map[*scheduler.Dest]DestID, len(old))
	for k, v := range old {
		if v != id {
			m2[k] = v
		}
	}
	r.byPtr.Store(&m2)
	r.free = append(r.free, id)
	return nil
}

// Dest returns the real server registered as id, or nil.
func (t *Table) Dest(id DestID) *scheduler.Dest {
	if s := t.dests.get(id); s != nil {
		return s.d
	}
	return nil
}

// DestID returns d's id in this table, or NoDest.
func (t *Table) DestID(d *scheduler.Dest) DestID { return t.dests.idOf(d) }
