// Package scheduler holds the real servers of a virtual service and the
// IPVS scheduling algorithms that pick one for each new connection.
package scheduler

// Flow is what a scheduler may look at when it picks a real server for a new
// connection: the first packet's addresses and ports. Addresses are in the
// 16-byte form of netip.Addr.As16 (IPv4 as ::ffff:a.b.c.d), network byte order.
type Flow struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Proto            uint8
	IPv6             bool
}

// tracker is a Pool's record of which Dests changed since its index was last
// brought up to date: one bit per slot, set by data-path workers without locks.
type tracker struct {
	dirty []uint64Bits
}

func (t *tracker) changed(d *Dest) {
	i := d.slot
	t.dirty[i>>6].Or(1 << (uint(i) & 63))
}
