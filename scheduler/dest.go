package scheduler

import (
	"net/netip"
	"sync/atomic"
)

// Dest flags, with the values of IPVS's IP_VS_DEST_F_*.
const (
	// FlagAvailable is set while the real server belongs to its service; it is
	// cleared on delete, so that connections still pointing at the server can
	// tell (expire_nodest_conn, persistence templates).
	FlagAvailable uint32 = 0x1
	// FlagOverload is set and cleared by the upper and lower connection
	// thresholds (IPVS-SPEC §1).
	FlagOverload uint32 = 0x2
)

// Dest is a real server of one virtual service as the schedulers and the
// connection table see it.
//
// Its address is fixed at creation. Everything else is mutable and safe for
// concurrent use: data-path workers move the connection counters with atomic
// operations while schedulers read them, and the control plane changes the
// weight and thresholds through the Pool that owns the Dest (never directly,
// because weight changes must also update the scheduler's own state).
type Dest struct {
	addr netip.AddrPort
	a16  [16]byte // addr in the 16-byte form used by Flow

	weight     atomic.Int32
	lastWeight atomic.Int32 // last non-zero weight (mh), or the weight at add time
	upper      atomic.Uint32
	lower      atomic.Uint32
	flags      atomic.Uint32

	active   atomic.Int32
	inactive atomic.Int32
	persist  atomic.Int32

	// Opaque is a small value owned by the code that creates the Dest (the
	// forwarder stores the forwarding method and its dest index there). The
	// scheduler package never reads it.
	Opaque atomic.Uint64

	// track is set by the Pool that owns the Dest; it tells incremental
	// schedulers that the server's load, weight or flags changed.
	track atomic.Pointer[tracker]
	slot  atomic.Int32 // the Dest's leaf in its Pool's index, valid while tracked

	pool atomic.Pointer[Pool] // the Pool the Dest belongs to (nil when deleted)
}

// NewDest returns a real server at addr with the given weight and connection
// thresholds (0 = no threshold). It is not yet AVAILABLE: Pool.Add makes it so.
func NewDest(addr netip.AddrPort, weight int32, upper, lower uint32) *Dest {
	d := &Dest{addr: addr, a16: addr.Addr().As16()}
	d.slot.Store(-1)
	d.weight.Store(weight)
	d.lastWeight.Store(weight)
	d.upper.Store(upper)
	d.lower.Store(lower)
	return d
}

// AddrPort returns the real server's address and port.
func (d *Dest) AddrPort() netip.AddrPort { return d.addr }

// Addr16 returns the real server's address in the 16-byte form of Flow.
func (d *Dest) Addr16() [16]byte { return d.a16 }

// Weight returns the current weight; 0 means quiesced.
func (d *Dest) Weight() int32 { return d.weight.Load() }

// LastWeight returns the last non-zero weight (the weight at add time if it
// has never been non-zero), which mh uses to size its table.
func (d *Dest) LastWeight() int32 { return d.lastWeight.Load() }

// Thresholds returns the upper and lower connection thresholds.
func (d *Dest) Thresholds() (upper, lower uint32) { return d.upper.Load(), d.lower.Load() }

// Flags returns FlagAvailable and FlagOverload as currently set.
func (d *Dest) Flags() uint32 { return d.flags.Load() }

// Available reports whether the Dest still belongs to its service.
func (d *Dest) Available() bool { return d.flags.Load()&FlagAvailable != 0 }

// Overloaded reports whether the OVERLOAD flag is set.
func (d *Dest) Overloaded() bool { return d.flags.Load()&FlagOverload != 0 }

// ActiveConns, InactiveConns and PersistentConns return the connection
// counters as IPVS keeps them (templates count in PersistentConns only).
func (d *Dest) ActiveConns() int32     { return d.active.Load() }
func (d *Dest) InactiveConns() int32   { return d.inactive.Load() }
func (d *Dest) PersistentConns() int32 { return d.persist.Load() }

// overhead is IPVS's ip_vs_dest_conn_overhead: active*256 + inactive,
// computed in C int (32 bits, wrapping) as the kernel does.
func (d *Dest) overhead() int32 {
	return d.active.Load()<<8 + d.inactive.Load()
}

func (d *Dest) totalConns() int32 {
	return d.active.Load() + d.inactive.Load()
}

// Bind counts a new connection on the real server (IPVS ip_vs_bind_dest).
// template connections count in PersistentConns; others count as inactive
// unless active is true (a synced connection may arrive already active).
// It then applies the OVERLOAD set rule.
func (d *Dest) Bind(template, active bool) {
	var ev uint32
	switch {
	case template:
		d.persist.Add(1)
	case active:
		d.active.Add(1)
		ev = evActive
	default:
		d.inactive.Add(1)
		ev = evInactive
	}
	// ip_vs_dest_totalconns is an int compared with the __u32 threshold, so
	// C converts it to unsigned: the comparison is done in uint32.
	if u := d.upper.Load(); u != 0 && uint32(d.totalConns()) >= u {
		if d.flags.Or(FlagOverload)&FlagOverload == 0 {
			ev |= evFlags
		}
	}
	d.changed(ev)
}

// Unbind uncounts a connection that is being freed (IPVS ip_vs_unbind_dest)
// and applies the OVERLOAD clear rule.
func (d *Dest) Unbind(template, active bool) {
	var ev uint32
	switch {
	case template:
		d.persist.Add(-1)
	case active:
		d.active.Add(-1)
		ev = evActive
	default:
		d.inactive.Add(-1)
		ev = evInactive
	}
	// As in the kernel, the int total is compared with __u32 thresholds in
	// unsigned 32-bit arithmetic (u_threshold*3 wraps there too).
	total := uint32(d.totalConns())
	upper, lower := d.upper.Load(), d.lower.Load()
	var clear bool
	switch {
	case lower != 0:
		clear = total < lower
	case upper != 0:
		clear = total*4 < upper*3
	default:
		clear = true
	}
	// The plain load first spares the read-modify-write when the flag is
	// already clear (the common case). A Bind setting it concurrently is
	// then ordered after this clear, as it could have been anyway.
	if clear && d.flags.Load()&FlagOverload != 0 {
		if d.flags.And(^FlagOverload)&FlagOverload != 0 {
			ev |= evFlags
		}
	}
	d.changed(ev)
}

// SetActive moves one connection between the inactive and active counters,
// as a state change does (TCP reaching or leaving ESTABLISHED, say).
// It does not touch the OVERLOAD flag, as in IPVS.
func (d *Dest) SetActive(active bool) {
	if active {
		d.inactive.Add(-1)
		d.active.Add(1)
	} else {
		d.active.Add(-1)
		d.inactive.Add(1)
	}
	d.changed(evActive | evInactive)
}

// changed tells the owning Pool's incremental index, if any, that the Dest's
// load or flags moved (ev), when its keys depend on that.
func (d *Dest) changed(ev uint32) {
	if t := d.track.Load(); t != nil && t.want&ev != 0 {
		t.changed(d)
	}
}
