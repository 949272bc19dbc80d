package conntrack

import (
	"net/netip"
	"strconv"
)

// Sweep expires every entry whose time is up at now (nanoseconds, the same
// clock as In). The forwarder calls it from one housekeeping loop, a few
// times per second; it takes each shard lock in turn, never two at once.
// An entry is examined when its wheel slot comes round: if a packet
// refreshed it meanwhile it is filed again under its new expiry, so the
// per-packet path never touches the wheel. Entries expire at most one slot
// (0.5 s) plus the sweep interval late. It returns how many entries were
// freed.
func (t *Table) Sweep(now int64) int {
	nowT := ticks(now)
	n := 0
	for i := range t.shards {
		n += t.sweepShard(&t.shards[i], nowT)
	}
	return n
}

func (t *Table) sweepShard(s *shard, nowT uint32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wheelStart(nowT)
	target := nowT >> slotShift
	if int32(target-s.wheelNext) >= wheelSize {
		// Every slot index comes round once in the last wheelSize slots.
		s.wheelNext = target - wheelSize + 1
	}
	n := 0
	for int32(target-s.wheelNext) >= 0 {
		i := s.wheelNext & wheelMask
		s.wheelNext++
		for {
			li := s.wheel[i]
			if li == nilIdx {
				break
			}
			t.wheelDel(s, li)
			e := t.at(s, li)
			c := e.ctl.Load()
			if int32(ctlExpiry(c)-nowT) > 0 {
				t.wheelAdd(s, li, ctlExpiry(c), nowT)
				continue
			}
			if t.expireLocked(s, li, nowT, true) {
				n++
			} else if e.wprev == nilIdx && e.ctl.Load()&ctlLive != 0 {
				// refreshed by a packet meanwhile
				t.wheelAdd(s, li, ctlExpiry(e.ctl.Load()), nowT)
			}
		}
	}
	return n
}

// Flush frees every entry (ipvsadm -C, or a restart of the data path).
// It returns how many were freed.
func (t *Table) Flush() int { return t.flush(NoDest, true) }

// FlushDest frees every entry bound to real server id, templates included
// (after their connections), for when a server is removed for good. It
// returns how many were freed.
func (t *Table) FlushDest(id DestID) int {
	if id == NoDest {
		return 0
	}
	return t.flush(id, false)
}

func (t *Table) flush(id DestID, all bool) int {
	n := 0
	for pass := 0; pass < 2; pass++ { // connections first, then templates
		for si := range t.shards {
			s := &t.shards[si]
			s.mu.Lock()
			for li, end := uint32(0), s.allocated.Load(); li < end; li++ {
				e := t.at(s, li)
				if e.ctl.Load()&ctlLive == 0 {
					continue
				}
				info := e.info.Load()
				if !all && infoDest(info) != id {
					continue
				}
				tmpl := infoFlags(info)&FlagTemplate != 0
				if tmpl != (pass == 1) {
					continue
				}
				if tmpl && e.nctl.Load() > 0 {
					continue // still controls a connection of another server
				}
				if t.freeLocked(s, li, 0, false) {
					n++
				}
			}
			s.mu.Unlock()
		}
	}
	return n
}

// Stats are table-wide counters.
type Stats struct {
	Conns     int    // entries in the table, templates included
	Templates int    // persistence templates among them
	Created   uint64 // entries created
	Refused   uint64 // new flows refused because the table was full
	Expired   uint64 // entries freed by expiry (Sweep, Expire, reuse, nodest)
}

// Stats returns the counters. It takes each shard lock briefly.
func (t *Table) Stats() Stats {
	var st Stats
	for si := range t.shards {
		s := &t.shards[si]
		s.mu.Lock()
		st.Conns += int(s.used.Load())
		st.Created += s.created
		st.Refused += s.refused
		st.Expired += s.expired
		st.Templates += s.templates
		s.mu.Unlock()
	}
	return st
}

// Len returns the number of entries, templates included. It takes no
// lock: entries created or freed meanwhile may or may not be counted.
func (t *Table) Len() int {
	n := 0
	for si := range t.shards {
		n += int(t.shards[si].used.Load())
	}
	return n
}

// ConnInfo is one entry as listings and the sync daemon see it.
type ConnInfo struct {
	Conn
	Expires  int64 // nanoseconds left before expiry (0 if already due)
	Assured  bool  // template: a controlled connection was established
	Controls int32 // template: connections it controls
}

// Range calls fn for every live entry, templates included, until fn
// returns false. It takes no lock and does not stop the data path: each
// entry is read with the same generation check as a lookup, so an entry is
// either seen whole or skipped (if it is freed while being read). Entries
// created or freed during the walk may or may not be seen. now is used for
// Expires.
func (t *Table) Range(now int64, fn func(*ConnInfo) bool) {
	nowT := ticks(now)
	var ci ConnInfo
	for si := range t.shards {
		s := &t.shards[si]
		end := s.allocated.Load()
		for li := uint32(0); li < end; li++ {
			e := t.at(s, li)
			c := e.ctl.Load()
			if c&ctlLive == 0 {
				continue
			}
			t.fill(e, uint32(si), li, c, &ci.Conn)
			ci.Controls = e.nctl.Load()
			p := e.ports.Load()
			c2 := e.ctl.Load()
			if c2&ctlLive == 0 || ctlGen(c2) != ctlGen(c) {
				continue
			}
			ci.Conn.setDyn(c2)
			ci.Assured = c2&ctlAssured != 0
			ci.Expires = 0
			if d := int32(ctlExpiry(c2) - nowT); d > 0 {
				ci.Expires = int64(d) * tickNs
			}
			if p&isTemplate != 0 {
				ci.Flags |= FlagTemplate
			}
			if !fn(&ci) {
				return
			}
		}
	}
}

// ListHeader is the header `ipvsadm -L -c -n` prints above AppendListLine's
// rows.
const ListHeader = "IPVS connection entries\npro expire state       source             virtual            destination\n"

// AppendListLine appends ci as a row of `ipvsadm -L -c -n`:
// proto, expire MM:SS, state, source, virtual, destination.
func (ci *ConnInfo) AppendListLine(dst []byte) []byte {
	start := len(dst)
	pad := func(w int) {
		for len(dst)-start < w {
			dst = append(dst, ' ')
		}
		dst = append(dst, ' ')
		start = len(dst)
	}
	dst = append(dst, protoName(ci.Proto)...)
	pad(3)
	secs := ci.Expires / 1e9
	dst = appendTwo(dst, secs/60)
	dst = append(dst, ':')
	dst = appendTwo(dst, secs%60)
	pad(6)
	dst = append(dst, ci.State.Name(ci.Proto)...)
	pad(11)
	dst = appendAddrPort(dst, ci.CAddr, ci.CPort, ci.IPv6)
	pad(18)
	dst = appendAddrPort(dst, ci.VAddr, ci.VPort, ci.IPv6)
	pad(18)
	dst = appendAddrPort(dst, ci.DAddr, ci.DPort, ci.DIPv6)
	return append(dst, '\n')
}

func appendTwo(dst []byte, v int64) []byte {
	if v < 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, v, 10)
}

func appendAddrPort(dst []byte, a [16]byte, port uint16, v6 bool) []byte {
	ad := netip.AddrFrom16(a)
	if !v6 {
		ad = ad.Unmap()
	}
	return netip.AddrPortFrom(ad, port).AppendTo(dst)
}

func protoName(p uint8) string {
	switch p {
	case 0:
		return "IP"
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case 132:
		return "SCTP"
	case 1:
		return "ICMP"
	case 58:
		return "ICMPv6"
	}
	return "IP_" + strconv.Itoa(int(p))
}
