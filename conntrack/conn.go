package conntrack

import (
	"github.com/ulvs/ulvs/scheduler"
)

const ftpPort = 21

// rearm is how long an expired entry that still controls others lives on.
const rearm = 60 * tickHz

func inKey(f *scheduler.Flow, template bool) lkey {
	var k lkey
	k.a0, k.a1 = addrWords(&f.Src)
	k.b0, k.b1 = addrWords(&f.Dst)
	k.pw = uint64(f.SrcPort) | uint64(f.DstPort)<<16 | uint64(f.Proto)<<48
	if f.IPv6 {
		k.pw |= afClient6
	}
	if template {
		k.pw |= isTemplate
	}
	k.pm = pmInbound
	return k
}

// In handles a packet from a client (the inbound direction): it looks the
// flow up without a lock, applies conn_reuse_mode and expire_nodest_conn,
// runs the state machine with the IN (or INPUT-ONLY) table, refreshes the
// expiry, counts in_pkts and copies the connection into c. tcpFlags is
// byte 13 of the TCP header (ignored for other protocols); now is in
// nanoseconds on any monotonic base, the same for every call.
func (t *Table) In(f *scheduler.Flow, tcpFlags uint8, now int64, c *Conn) Verdict {
	k := inKey(f, false)
	h := t.hash(k.a0, k.a1, f.SrcPort, f.Proto, f.IPv6)
	si := t.shardOf(h)
	s := &t.shards[si]
	li, ctl, ok := t.findIn(s, h&t.bmask, &k)
	if !ok {
		return Miss
	}
	e := t.at(s, li)
	info := e.info.Load()
	ds := t.dests.get(infoDest(info))
	if f.Proto == ProtoTCP && tcpFlags&TCPSyn != 0 && e.control.Load() == 0 {
		st := t.settings.Load()
		resched := false
		if st.ExpireNodestConn && ds != nil && ds.srv.Weight() == 0 {
			resched = true
		} else if st.ConnReuseMode != 0 {
			switch ctlState(ctl) {
			case StateTimeWait, StateClose:
				resched = true
			case StateFinWait:
				resched = st.ConnReuseMode&2 != 0 && ctl&ctlNoOutput != 0
			}
		}
		if resched && e.nctl.Load() == 0 {
			t.expireNow(s, si, li, ctlGen(ctl), ticks(now))
			return Miss
		}
	}
	if ds != nil && !ds.srv.Available() {
		if t.settings.Load().ExpireNodestConn {
			t.expireNow(s, si, li, ctlGen(ctl), ticks(now))
			return Miss
		}
		return DropNoDest
	}
	t.fillIn(e, si, li, ctl, f, c)
	nc, ok := t.step(s, li, e, ctl, f.Proto, tcpFlags, false, ticks(now))
	if !ok {
		return Miss
	}
	c.InPkts = e.inPkts.Add(1)
	c.setDyn(nc)
	return Hit
}

// Out handles a packet from a real server (a NAT reply, or a packet from a
// VIP for other methods): it looks up the outbound index, clears NOOUTPUT,
// runs the OUT table and refreshes the expiry. f is the packet as seen:
// Src is the real server (or VIP), Dst the client.
func (t *Table) Out(f *scheduler.Flow, tcpFlags uint8, now int64, c *Conn) Verdict {
	var k lkey
	k.a0, k.a1 = addrWords(&f.Src)
	k.b0, k.b1 = addrWords(&f.Dst)
	h := t.hash(k.b0, k.b1, f.DstPort, f.Proto, f.IPv6)
	si := t.shardOf(h)
	s := &t.shards[si]
	li, ctl, ok := t.findOut(s, h&t.bmask, &k, f.SrcPort, f.DstPort, f.Proto, f.IPv6)
	if !ok {
		return Miss
	}
	e := t.at(s, li)
	t.fill(e, si, li, ctl, c)
	nc, ok := t.step(s, li, e, ctl, f.Proto, tcpFlags, true, ticks(now))
	if !ok {
		return Miss
	}
	c.setDyn(nc)
	return Hit
}

// LookupIn copies the connection of an inbound flow into c without
// changing it (for ICMP errors that quote a packet). It reports whether
// one was found.
func (t *Table) LookupIn(f *scheduler.Flow, c *Conn) bool {
	k := inKey(f, false)
	h := t.hash(k.a0, k.a1, f.SrcPort, f.Proto, f.IPv6)
	si := t.shardOf(h)
	s := &t.shards[si]
	li, ctl, ok := t.findIn(s, h&t.bmask, &k)
	if ok {
		ok = t.fillChecked(t.at(s, li), si, li, ctl, c)
	}
	return ok
}

// fillChecked is fill followed by a check that the entry was not freed
// while it was being copied.
func (t *Table) fillChecked(e entry, si, li uint32, ctl uint64, c *Conn) bool {
	t.fill(e, si, li, ctl, c)
	cur := e.ctl.Load()
	return cur&ctlLive != 0 && ctlGen(cur) == ctlGen(ctl)
}

// LookupOut is LookupIn for the outbound index.
func (t *Table) LookupOut(f *scheduler.Flow, c *Conn) bool {
	var k lkey
	k.a0, k.a1 = addrWords(&f.Src)
	k.b0, k.b1 = addrWords(&f.Dst)
	h := t.hash(k.b0, k.b1, f.DstPort, f.Proto, f.IPv6)
	si := t.shardOf(h)
	s := &t.shards[si]
	li, ctl, ok := t.findOut(s, h&t.bmask, &k, f.SrcPort, f.DstPort, f.Proto, f.IPv6)
	if ok {
		ok = t.fillChecked(t.at(s, li), si, li, ctl, c)
	}
	return ok
}

// step applies one packet to e: the state transition, NOOUTPUT, the
// active/inactive counters and the expiry, with one compare-and-swap of the
// ctl word. It fails if the entry was freed meanwhile.
func (t *Table) step(s *shard, li uint32, e entry, c uint64, proto, flags uint8, output bool, nowT uint32) (uint64, bool) {
	g := ctlGen(c)
	for {
		nc := c
		if output {
			nc &^= ctlNoOutput
		}
		var to uint32
		if proto == ProtoTCP {
			ns := NextTCPState(ctlState(c), flags, output, c&ctlNoOutput != 0)
			nc = ctlSetState(nc, ns)
			if ns.active() {
				nc &^= ctlInactive
			} else {
				nc |= ctlInactive
			}
			to = t.timeouts[ns].Load()
		} else {
			to = t.timeouts[udpSlot].Load()
		}
		nc = ctlWith(nc, nowT+to)
		if nc == c {
			// Nothing to write, but the caller's copy of the entry must
			// still be of this generation.
			if cur := e.ctl.Load(); cur&ctlLive == 0 || ctlGen(cur) != g {
				return cur, false
			}
		}
		if nc == c || e.ctl.CompareAndSwap(c, nc) {
			// Only a change of state or flags (or UDP output, which
			// assures the template) has follow-ups; a refresh has none.
			if (c^nc)&^ctlExpMask != 0 || (output && proto != ProtoTCP) {
				t.afterStep(e, c, nc, proto, output)
			}
			if int32(ctlExpiry(nc)>>slotShift-e.filed.Load()) < 0 {
				t.refile(s, li, nc)
			}
			return nc, true
		}
		c = e.ctl.Load()
		if c&ctlLive == 0 || ctlGen(c) != g {
			return c, false
		}
	}
}

// refile moves an entry whose expiry got shorter (a state change such as
// ESTABLISHED -> CLOSE) to its earlier wheel slot, so that it expires on
// time. It runs on state changes only, never for a plain refresh, and
// gives up rather than wait if the shard is busy (the entry then expires
// when its old slot comes round).
func (t *Table) refile(s *shard, li uint32, nc uint64) {
	if !s.mu.TryLock() {
		return
	}
	e := t.at(s, li)
	c := e.ctl.Load()
	if c&ctlLive != 0 && ctlGen(c) == ctlGen(nc) && e.wprev != nilIdx {
		t.wheelDel(s, li)
		t.wheelAdd(s, li, ctlExpiry(c), ctlExpiry(c))
	}
	s.mu.Unlock()
}

// afterStep does what follows a won transition: counter moves and
// "assuring" the controlling template.
func (t *Table) afterStep(e entry, c, nc uint64, proto uint8, output bool) {
	if (c^nc)&ctlInactive != 0 {
		if ds := t.dests.get(infoDest(e.info.Load())); ds != nil {
			ds.srv.SetActive(nc&ctlInactive == 0)
		}
	}
	ctrl := e.control.Load()
	if ctrl == 0 {
		return
	}
	if (proto == ProtoTCP && ctlState(nc) == StateEstablished) || (proto != ProtoTCP && output) {
		te := t.entryG(ctrl - 1)
		if te.ctl.Load()&ctlAssured == 0 {
			te.ctl.Or(ctlAssured)
		}
	}
}

// fillIn is fill for In, which already knows the client side (the key
// matched f) and counts in_pkts itself.
func (t *Table) fillIn(e entry, si, li uint32, ctl uint64, f *scheduler.Flow, c *Conn) {
	c.ref = t.global(si, li) + 1
	c.gen = ctlGen(ctl)
	info := e.info.Load()
	p := e.ports.Load()
	fl := infoFlags(info)
	c.Dest = infoDest(info)
	c.Method = Method(fl & FlagFwdMask)
	c.Flags = fl | FlagHashed
	c.Proto = f.Proto
	c.IPv6 = f.IPv6
	c.DIPv6 = p&afDest6 != 0
	c.CPort, c.VPort, c.DPort = f.SrcPort, f.DstPort, uint16(p>>32)
	c.CAddr = f.Src
	c.VAddr = f.Dst
	c.DAddr = wordsAddr(e.daddr[0].Load(), e.daddr[1].Load())
	c.FWMark = e.fwmark.Load()
	c.Control = e.control.Load() != 0
}

// fill copies e into c (ctl is the word read with the key).
func (t *Table) fill(e entry, si, li uint32, ctl uint64, c *Conn) {
	c.ref = t.global(si, li) + 1
	c.gen = ctlGen(ctl)
	info := e.info.Load()
	p := e.ports.Load()
	fl := infoFlags(info)
	c.Dest = infoDest(info)
	c.Method = Method(fl & FlagFwdMask)
	c.Flags = fl | FlagHashed
	c.Proto = uint8(p >> 48)
	c.IPv6 = p&afClient6 != 0
	c.DIPv6 = p&afDest6 != 0
	c.CPort, c.VPort, c.DPort = uint16(p), uint16(p>>16), uint16(p>>32)
	c.CAddr = wordsAddr(e.caddr[0].Load(), e.caddr[1].Load())
	c.VAddr = wordsAddr(e.vaddr[0].Load(), e.vaddr[1].Load())
	c.DAddr = wordsAddr(e.daddr[0].Load(), e.daddr[1].Load())
	c.FWMark = e.fwmark.Load()
	c.InPkts = e.inPkts.Load()
	c.Control = e.control.Load() != 0
	c.setDyn(ctl)
}

func (c *Conn) setDyn(ctl uint64) {
	c.State = ctlState(ctl)
	c.Flags &^= FlagNoOutput | FlagInactive
	if ctl&ctlNoOutput != 0 {
		c.Flags |= FlagNoOutput
	}
	if ctl&ctlInactive != 0 {
		c.Flags |= FlagInactive
	}
}

// Expire ends the connection c names now, as IPVS's ip_vs_conn_expire_now
// does (a template that still controls connections is re-armed for 60 s
// instead). It reports whether the entry was still there.
func (t *Table) Expire(c *Conn, now int64) bool {
	if c.ref == 0 {
		return false
	}
	si, li := t.split(c.ref - 1)
	if int(si) >= len(t.shards) {
		return false
	}
	return t.expireNow(&t.shards[si], si, li, c.gen, ticks(now))
}

func (t *Table) expireNow(s *shard, si, li uint32, gen uint16, nowT uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if li >= s.allocated.Load() {
		return false
	}
	c := t.at(s, li).ctl.Load()
	if c&ctlLive == 0 || ctlGen(c) != gen {
		return false
	}
	t.expireLocked(s, li, nowT, false)
	return true
}

// expireLocked is IPVS's ip_vs_conn_expire for an entry whose time is up:
// re-armed while it controls others, otherwise freed. s.mu held.
// With onlyIfDue it gives up (and returns false) when a packet refreshed
// the entry meanwhile.
func (t *Table) expireLocked(s *shard, li uint32, nowT uint32, onlyIfDue bool) bool {
	e := t.at(s, li)
	if e.nctl.Load() > 0 {
		for {
			c := e.ctl.Load()
			if e.ctl.CompareAndSwap(c, ctlWith(c, nowT+rearm)) {
				break
			}
		}
		t.wheelDel(s, li)
		t.wheelAdd(s, li, nowT+rearm, nowT)
		return false
	}
	if !t.freeLocked(s, li, nowT, onlyIfDue) {
		return false
	}
	s.expired++
	return true
}

// freeLocked unlinks, uncounts and frees an entry. s.mu held.
// With onlyIfDue it frees only an entry whose expiry has passed at nowT.
func (t *Table) freeLocked(s *shard, li uint32, nowT uint32, onlyIfDue bool) bool {
	e := t.at(s, li)
	var c uint64
	for {
		c = e.ctl.Load()
		if c&ctlLive == 0 {
			return false
		}
		if onlyIfDue && int32(ctlExpiry(c)-nowT) > 0 {
			return false
		}
		nc := c&^(ctlLive|0xffff<<ctlGenShift) | uint64(ctlGen(c)+1)<<ctlGenShift
		if e.ctl.CompareAndSwap(c, nc) {
			break
		}
	}
	p := e.ports.Load()
	if p&rekeyed == 0 {
		a0, a1 := e.caddr[0].Load(), e.caddr[1].Load()
		h := t.hash(a0, a1, uint16(p), uint8(p>>48), p&afClient6 != 0)
		b := h & t.bmask
		t.unlinkIn(s, b, li)
		if p&isTemplate == 0 {
			t.unlinkOut(s, b, li)
		}
	}
	t.wheelDel(s, li)
	info := e.info.Load()
	if ds := t.dests.get(infoDest(info)); ds != nil {
		ds.srv.Unbind(p&isTemplate != 0, c&ctlInactive == 0)
		ds.refs.Add(-1)
	}
	if ctrl := e.control.Load(); ctrl != 0 {
		t.entryG(ctrl - 1).nctl.Add(-1)
		e.control.Store(0)
	}
	if p&isTemplate != 0 {
		s.templates--
	}
	t.release(s, li)
	return true
}

// Connect schedules the first packet of a flow that In missed: it checks
// that the packet may start a connection, applies persistence (spec §3),
// asks sched for a real server when needed, creates the entry, runs the
// state machine for this packet and copies the connection into c.
// sched is called at most once, never for a flow that reuses a template.
// Nothing is allocated once the table has warmed up.
func (t *Table) Connect(svc *Service, f *scheduler.Flow, tcpFlags uint8, now int64, sched Scheduler, c *Conn) Result {
	if f.Proto == ProtoTCP {
		if tcpFlags&TCPRst != 0 || (tcpFlags&TCPSyn == 0 && !t.settings.Load().SloppyTCP) {
			return NotNew
		}
	}
	persistent := svc.PersistTimeout != 0
	if !persistent && svc.FWMark == 0 && f.DstPort != svc.Port {
		return WrongPort
	}
	nowT := ticks(now)
	var (
		did  DestID
		ds   *destSlot
		tmpl uint32 // global index + 1 of the template, holding one nctl reference
	)
	if persistent {
		r := t.persist(svc, f, now, nowT, sched, &did, &tmpl)
		if r != Created {
			return r
		}
		ds = t.dests.get(did)
	} else {
		d := sched.Schedule(f, now)
		if d == nil {
			return NoServer
		}
		did = t.dests.idOf(d)
		if ds = t.dests.get(did); ds == nil {
			return UnknownDest
		}
	}
	dport := f.DstPort
	if persistent {
		if dport == svc.Port && ds.port != 0 {
			dport = ds.port
		}
	} else if ds.port != 0 {
		dport = ds.port
	}
	method := Method(ds.method.Load())
	sflags := uint32(method)
	if svc.OnePacket && f.Proto == ProtoUDP {
		// ops: the connection lives for this packet only and is never hashed.
		ds.srv.Bind(false, false)
		ds.srv.Unbind(false, false)
		if tmpl != 0 {
			t.entryG(tmpl - 1).nctl.Add(-1)
		}
		*c = Conn{Dest: did, Method: method, Flags: sflags | FlagOnePacket | FlagInactive, Proto: f.Proto,
			IPv6: f.IPv6, DIPv6: ds.v6, CAddr: f.Src, VAddr: f.Dst, DAddr: ds.addr,
			CPort: f.SrcPort, VPort: f.DstPort, DPort: dport, FWMark: svc.FWMark, InPkts: 1, Control: tmpl != 0}
		if method != MethodMasq {
			c.Flags |= FlagNoOutput
		}
		return Created
	}

	k := inKey(f, false)
	h := t.hash(k.a0, k.a1, f.SrcPort, f.Proto, f.IPv6)
	si := t.shardOf(h)
	s := &t.shards[si]
	b := h & t.bmask
	s.mu.Lock()
	if li, ctl, ok := t.findInLocked(s, b, &k); ok {
		// Another worker created it first.
		s.mu.Unlock()
		if tmpl != 0 {
			t.entryG(tmpl - 1).nctl.Add(-1)
		}
		e := t.at(s, li)
		t.fill(e, si, li, ctl, c)
		nc, ok := t.step(s, li, e, ctl, f.Proto, tcpFlags, false, nowT)
		if !ok {
			return Existing // freed meanwhile; c still describes it
		}
		c.InPkts = e.inPkts.Add(1)
		c.setDyn(nc)
		return Existing
	}
	li := t.alloc(s)
	if li == nilIdx {
		s.refused++
		s.mu.Unlock()
		if tmpl != 0 {
			t.entryG(tmpl - 1).nctl.Add(-1)
		}
		return Full
	}
	e := t.at(s, li)
	e.setAddrs(&k, &ds.addr, dport, ds.v6)
	e.info.Store(mkInfo(did, sflags))
	e.control.Store(tmpl)
	e.nctl.Store(0)
	e.inPkts.Store(0)
	e.timeout.Store(0)
	e.fwmark.Store(svc.FWMark)
	ctl := e.ctl.Load()&(0xffff<<ctlGenShift) | ctlLive | ctlInactive | uint64(nowT+t.timeouts[StateNone].Load())
	if method != MethodMasq {
		ctl |= ctlNoOutput
	}
	ds.srv.Bind(false, false)
	ds.refs.Add(1)
	e.ctl.Store(ctl)
	t.linkIn(s, b, li)
	t.linkOut(s, b, li)
	t.wheelAdd(s, li, ctlExpiry(ctl), nowT)
	s.created++
	s.mu.Unlock()

	t.fill(e, si, li, ctl, c)
	nc, ok := t.step(s, li, e, ctl, f.Proto, tcpFlags, false, nowT)
	if ok {
		c.InPkts = e.inPkts.Add(1)
		c.setDyn(nc)
	}
	return Created
}

// persist finds or makes the persistence template of a new flow (IPVS
// ip_vs_sched_persist) and returns its server in *did and the template
// (global index + 1, with one nctl reference taken) in *tmpl.
func (t *Table) persist(svc *Service, f *scheduler.Flow, now int64, nowT uint32, sched Scheduler, did *DestID, tmpl *uint32) Result {
	mask := svc.Netmask()
	var tf scheduler.Flow
	for i := range tf.Src {
		tf.Src[i] = f.Src[i] & mask[i]
	}
	tf.Proto = f.Proto
	tf.IPv6 = f.IPv6
	tf.Dst = f.Dst
	if f.DstPort == svc.Port {
		if svc.Port != ftpPort {
			tf.DstPort = f.DstPort
		}
	} else if svc.FWMark != 0 {
		tf.Proto = 0
		tf.Dst = [16]byte{}
		m := svc.FWMark
		if f.IPv6 {
			tf.Dst[0], tf.Dst[1], tf.Dst[2], tf.Dst[3] = byte(m>>24), byte(m>>16), byte(m>>8), byte(m)
		} else {
			tf.Dst[10], tf.Dst[11] = 0xff, 0xff
			tf.Dst[12], tf.Dst[13], tf.Dst[14], tf.Dst[15] = byte(m>>24), byte(m>>16), byte(m>>8), byte(m)
		}
	}
	k := inKey(&tf, true)
	h := t.hash(k.a0, k.a1, 0, tf.Proto, tf.IPv6)
	si := t.shardOf(h)
	s := &t.shards[si]
	b := h & t.bmask

	s.mu.Lock()
	defer s.mu.Unlock()
	li, _, ok := t.findInLocked(s, b, &k)
	if ok {
		e := t.at(s, li)
		ds := t.dests.get(infoDest(e.info.Load()))
		valid := ds != nil && ds.srv.Available() &&
			!(t.settings.Load().ExpireQuiescentTemplate && ds.srv.Weight() == 0)
		if valid {
			*did = infoDest(e.info.Load())
			e.nctl.Add(1)
			for {
				c := e.ctl.Load()
				if e.ctl.CompareAndSwap(c, ctlWith(c, nowT+e.timeout.Load())) {
					break
				}
			}
			*tmpl = t.global(si, li) + 1
			return Created
		}
		// Invalidate: re-key so that it never matches again (vport = dport
		// = 0xffff, cport = 0) and leave it to expire.
		t.unlinkIn(s, b, li)
		p := e.ports.Load()
		p = p&^(0xffff|0xffff<<16|0xffff<<32) | 0xffff<<16 | 0xffff<<32 | rekeyed
		e.ports.Store(p)
	}
	d := sched.Schedule(f, now)
	if d == nil {
		return NoServer
	}
	id := t.dests.idOf(d)
	ds := t.dests.get(id)
	if ds == nil {
		return UnknownDest
	}
	li = t.alloc(s)
	if li == nilIdx {
		s.refused++
		return Full
	}
	var dport uint16
	if f.DstPort == svc.Port && svc.Port != ftpPort {
		dport = ds.port
	}
	method := Method(ds.method.Load())
	e := t.at(s, li)
	e.setAddrs(&k, &ds.addr, dport, ds.v6)
	e.info.Store(mkInfo(id, uint32(method)|FlagTemplate))
	e.control.Store(0)
	e.nctl.Store(1)
	e.inPkts.Store(0)
	to := svc.PersistTimeout
	if to > MaxTimeout {
		to = MaxTimeout
	}
	e.timeout.Store(to * tickHz)
	e.fwmark.Store(svc.FWMark)
	ctl := e.ctl.Load()&(0xffff<<ctlGenShift) | ctlLive | ctlInactive | uint64(nowT+to*tickHz)
	if method != MethodMasq {
		ctl |= ctlNoOutput
	}
	ds.srv.Bind(true, false)
	ds.refs.Add(1)
	e.ctl.Store(ctl)
	t.linkIn(s, b, li)
	t.wheelAdd(s, li, ctlExpiry(ctl), nowT)
	s.created++
	s.templates++
	*did = id
	*tmpl = t.global(si, li) + 1
	return Created
}
