package conntrack

import "github.com/ulvs/ulvs/scheduler"

// Connection synchronisation (IPVS-SPEC §8): the backup director inserts
// or updates the connections the active streams to it, so that after a
// takeover In finds them and their packets continue to the same real
// server. The active reads its entries with Range (for a bulk copy) and
// with the Conn the data path already holds (incremental sync).

// SyncEntry is one synchronised connection in the table's terms. The
// caller (the daemon's sync sink) converts the wire format into it and
// resolves the real server (Director.SyncDest in the forwarder).
type SyncEntry struct {
	Proto        uint8
	IPv6         bool   // client side (CAddr, VAddr)
	Flags        uint32 // IP_VS_CONN_F_* from the message: method, NOOUTPUT, INACTIVE, TEMPLATE
	State        State  // TCP state (IPVS numbering); 0 for other protocols
	CAddr, VAddr [16]byte
	DAddr        [16]byte
	CPort, VPort uint16
	DPort        uint16
	FWMark       uint32
	// Timeout is the remaining lifetime the active sent, in seconds; 0
	// uses the backup's state table. It is capped at MaxTimeout.
	Timeout uint32
	// CreateOnly leaves an existing entry as it is (SyncKept): a director
	// that is active itself trusts its own state over a late message from
	// the old active, but still learns connections it does not have. One
	// exception: a TCP connection ESTABLISHED here takes a closing state
	// (FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE) from the old
	// active, which saw a FIN or RST this director did not: otherwise the
	// connection would count as active, and hold its entry, for the whole
	// ESTABLISHED timeout after it closed.
	CreateOnly bool
}

// SyncResult is what SyncConn did with an entry; every value but
// SyncCreated and SyncUpdated is a counted drop.
type SyncResult uint8

// SyncConn results.
const (
	SyncCreated  SyncResult = iota // a new entry, flagged SYNC, bound to the real server
	SyncUpdated                    // an existing entry took the new state and expiry
	SyncNoDest                     // the real server is not registered here (unknown real server)
	SyncFull                       // the table is at its bound
	SyncTemplate                   // a template that cannot be applied (fwmark templates are not supported)
	SyncBadState                   // TCP state out of range
	SyncKept                       // CreateOnly and the entry exists: left as it is
	numSyncResults
)

var syncResultNames = [numSyncResults]string{"created", "updated", "unknown-dest", "table-full", "template", "bad-state", "kept"}

// String names the result.
func (r SyncResult) String() string {
	if r < numSyncResults {
		return syncResultNames[r]
	}
	return "unknown"
}

// NumSyncResults is the number of SyncResult values (for counter arrays).
const NumSyncResults = int(numSyncResults)

// SyncConn applies one synchronised connection, with IPVS's rules for a
// backup (ip_vs_proc_conn):
//
//   - an unknown connection is created, flagged SYNC, with the method of
//     the message, bound to dest (which counts it as active or inactive by
//     its state), and expires after the message's timeout (or the state
//     table's when 0);
//   - a known one takes the new state, NOOUTPUT/INACTIVE and expiry; the
//     real server's active/inactive counters move when INACTIVE changes;
//     its real server binding is kept (as IPVS keeps cp->dest);
//   - TCP connections not in ESTABLISHED count as inactive.
//
// dest must be registered (NoDest or an unregistered id is SyncNoDest:
// the backup cannot forward to a server it does not know). now is the
// table's clock. It takes the connection's shard lock; it is meant for
// the sync receiver's goroutine, not the packet path.
func (t *Table) SyncConn(se *SyncEntry, dest DestID, now int64) SyncResult {
	if se.Flags&FlagTemplate != 0 {
		return t.syncTemplate(se, dest, now)
	}
	if se.Proto == ProtoTCP && se.State >= numTCPStates {
		return SyncBadState
	}
	ds := t.dests.get(dest)
	if ds == nil {
		return SyncNoDest
	}
	nowT := ticks(now)
	state := se.State
	if se.Proto != ProtoTCP {
		state = StateNone
	}
	inactive := se.Flags&FlagInactive != 0
	if se.Proto == ProtoTCP {
		inactive = state != StateEstablished
	}
	var to uint32
	if se.Timeout != 0 {
		secs := se.Timeout
		if secs > MaxTimeout {
			secs = MaxTimeout
		}
		to = secs * tickHz
	} else if se.Proto == ProtoTCP {
		to = t.timeouts[state].Load()
	} else {
		to = t.timeouts[udpSlot].Load()
	}
	exp := nowT + to
	method := Method(se.Flags & FlagFwdMask)
	noOutput := method != MethodMasq || se.Flags&FlagNoOutput != 0

	f := flowOf(se)
	k := inKey(&f, false)
	h := t.hash(k.a0, k.a1, se.CPort, se.Proto, se.IPv6)
	s := &t.shards[t.shardOf(h)]
	b := h & t.bmask

	s.mu.Lock()
	defer s.mu.Unlock()
	if li, c, ok := t.findInLocked(s, b, &k); ok {
		if se.CreateOnly && !(se.Proto == ProtoTCP && ctlState(c) == StateEstablished && closing(state)) {
			return SyncKept
		}
		e := t.at(s, li)
		for {
			c := e.ctl.Load()
			if c&ctlLive == 0 {
				break // freed under us: create it below
			}
			nc := ctlWith(ctlSetState(c, state), exp)
			nc &^= ctlInactive | ctlNoOutput
			if inactive {
				nc |= ctlInactive
			}
			if noOutput && c&ctlNoOutput != 0 {
				nc |= ctlNoOutput // output seen here already clears it for good
			}
			if !e.ctl.CompareAndSwap(c, nc) {
				continue
			}
			if (c^nc)&ctlInactive != 0 {
				if d := t.dests.get(infoDest(e.info.Load())); d != nil {
					d.srv.SetActive(nc&ctlInactive == 0)
				}
			}
			if e.wprev != nilIdx { // refile under the new expiry, as refile does
				t.wheelDel(s, li)
				t.wheelAdd(s, li, exp, nowT)
			}
			return SyncUpdated
		}
	}
	li := t.alloc(s)
	if li == nilIdx {
		s.refused++
		return SyncFull
	}
	e := t.at(s, li)
	e.setAddrs(&k, &se.DAddr, se.DPort, ds.v6)
	e.info.Store(mkInfo(dest, uint32(method)|FlagSync))
	e.control.Store(0)
	e.nctl.Store(0)
	e.inPkts.Store(0)
	e.timeout.Store(0)
	e.fwmark.Store(se.FWMark)
	ctl := e.ctl.Load()&(0xffff<<ctlGenShift) | ctlLive | uint64(exp)
	ctl = ctlSetState(ctl, state)
	if inactive {
		ctl |= ctlInactive
	}
	if noOutput {
		ctl |= ctlNoOutput
	}
	ds.srv.Bind(false, !inactive)
	ds.refs.Add(1)
	e.ctl.Store(ctl)
	t.linkIn(s, b, li)
	t.linkOut(s, b, li)
	t.wheelAdd(s, li, exp, nowT)
	s.created++
	return SyncCreated
}

// flowOf is the inbound flow of a synced entry (client -> VIP).
func flowOf(se *SyncEntry) (f scheduler.Flow) {
	f.Src, f.Dst = se.CAddr, se.VAddr
	f.SrcPort, f.DstPort = se.CPort, se.VPort
	f.Proto = se.Proto
	f.IPv6 = se.IPv6
	return f
}

// DefaultSyncPersist is the lifetime of a synced template whose message
// carries no timeout (IPVS's default persistence, 300 s).
const DefaultSyncPersist = 300

// syncTemplate inserts or refreshes a persistence template (flags
// TEMPLATE), keyed as persist keys it: the masked client address, client
// port 0, the VIP and the service port (0 for all-ports and FTP services).
// New connections of that client then go to the same real server after a
// takeover. Synced templates control no connection here (IPVS's backup
// does not link them either); they live for the message's timeout.
func (t *Table) syncTemplate(se *SyncEntry, dest DestID, now int64) SyncResult {
	if se.FWMark != 0 || se.Proto == 0 {
		return SyncTemplate
	}
	ds := t.dests.get(dest)
	if ds == nil {
		return SyncNoDest
	}
	nowT := ticks(now)
	secs := se.Timeout
	if secs == 0 {
		secs = DefaultSyncPersist
	}
	if secs > MaxTimeout {
		secs = MaxTimeout
	}
	to := secs * tickHz
	exp := nowT + to
	method := Method(se.Flags & FlagFwdMask)
	f := flowOf(se)
	k := inKey(&f, true)
	h := t.hash(k.a0, k.a1, se.CPort, se.Proto, se.IPv6)
	s := &t.shards[t.shardOf(h)]
	b := h & t.bmask

	s.mu.Lock()
	defer s.mu.Unlock()
	if li, _, ok := t.findInLocked(s, b, &k); ok {
		if se.CreateOnly {
			return SyncKept
		}
		e := t.at(s, li)
		e.timeout.Store(to)
		for {
			c := e.ctl.Load()
			if c&ctlLive == 0 {
				break
			}
			if !e.ctl.CompareAndSwap(c, ctlWith(c, exp)) {
				continue
			}
			if e.wprev != nilIdx {
				t.wheelDel(s, li)
				t.wheelAdd(s, li, exp, nowT)
			}
			return SyncUpdated
		}
	}
	li := t.alloc(s)
	if li == nilIdx {
		s.refused++
		return SyncFull
	}
	e := t.at(s, li)
	e.setAddrs(&k, &se.DAddr, se.DPort, ds.v6)
	e.info.Store(mkInfo(dest, uint32(method)|FlagTemplate|FlagSync))
	e.control.Store(0)
	e.nctl.Store(0)
	e.inPkts.Store(0)
	e.timeout.Store(to)
	e.fwmark.Store(0)
	ctl := e.ctl.Load()&(0xffff<<ctlGenShift) | ctlLive | ctlInactive | uint64(exp)
	if method != MethodMasq {
		ctl |= ctlNoOutput
	}
	ds.srv.Bind(true, false)
	ds.refs.Add(1)
	e.ctl.Store(ctl)
	t.linkIn(s, b, li)
	t.wheelAdd(s, li, exp, nowT)
	s.created++
	s.templates++
	return SyncCreated
}

// SyncTemplateOf describes the persistence template that controls c, a
// connection of the persistent service svc, as the active sends it with
// c: the client address masked by the service's netmask, client port 0,
// the VIP and the service port (0 for FTP, and for connections of an
// all-ports service to another port), the real server, TEMPLATE and the
// persistence timeout. It reports false when svc is not persistent or is
// an fwmark service. It does not allocate.
func SyncTemplateOf(svc *Service, c *Conn, se *SyncEntry) bool {
	if svc.PersistTimeout == 0 || svc.FWMark != 0 {
		return false
	}
	mask := svc.Netmask()
	*se = SyncEntry{Proto: c.Proto, IPv6: c.IPv6, Flags: uint32(c.Method) | FlagTemplate,
		VAddr: c.VAddr, DAddr: c.DAddr, Timeout: svc.PersistTimeout}
	for i := range se.CAddr {
		se.CAddr[i] = c.CAddr[i] & mask[i]
	}
	if c.VPort == svc.Port && svc.Port != ftpPort {
		se.VPort, se.DPort = c.VPort, c.DPort
	}
	return true
}

// closing reports whether st is a TCP state after a FIN or RST.
func closing(st State) bool {
	switch st {
	case StateFinWait, StateCloseWait, StateLastAck, StateTimeWait, StateClose:
		return true
	}
	return false
}
