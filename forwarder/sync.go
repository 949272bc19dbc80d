package forwarder

import (
	"net/netip"
	"sync/atomic"

	"github.com/ulvs/ulvs/conntrack"
	"github.com/ulvs/ulvs/failover/connsync"
)

// Connection sync seam (issue 7). On the active director the data path
// hands the connections that IPVS's send rules select (connsync.ShouldSync)
// to a SyncHook, which the daemon points at its sync sender; on the backup
// the daemon inserts what it receives with SyncDest and
// conntrack.Table.SyncConn.

// SyncHook receives the connections the active streams to its backup. c
// is only valid during the call. It is called from the packet path, only
// for the packets ShouldSync selects (about one in 50 per connection, and
// each TCP close transition), so it may take a short lock (connsync.Sender
// does) but must not block, log or allocate.
//
// tmpl, when not nil, is the persistence template that controls c (IPVS
// sends templates with their connections); it is valid during the call too.
type SyncHook interface {
	SyncConn(worker int, c, tmpl *connsync.Conn)
}

// syncState is the Director's sync seam: the hook and one scratch record
// per worker, published together so that the packet path does one atomic
// load and nothing when sync is off.
type syncState struct {
	p atomic.Pointer[syncSetup]
}

type syncSetup struct {
	hook              SyncHook
	threshold, period uint32
	scratch           []syncScratch // per worker
}

type syncScratch struct {
	c, tmpl connsync.Conn
	se      conntrack.SyncEntry
}

// SetSyncHook starts (h != nil) or stops (nil) handing connection changes
// to h, with the send thresholds of sysctl sync_threshold (threshold,
// period; connsync.DefaultThreshold and DefaultPeriod when both are 0).
func (d *Director) SetSyncHook(h SyncHook, threshold, period uint32) {
	if h == nil {
		d.sync.p.Store(nil)
		return
	}
	if threshold == 0 && period == 0 {
		threshold, period = connsync.DefaultThreshold, connsync.DefaultPeriod
	}
	d.sync.p.Store(&syncSetup{hook: h, threshold: threshold, period: period,
		scratch: make([]syncScratch, len(d.workers))})
}

// syncConn is called by the worker after a client packet updated w.c. It
// converts w.c into the sync record (no allocation: netip.Addr values of
// 16-byte arrays) and hands it over when ShouldSync says so. tcpFlags is
// the packet's: a FIN or RST may have moved the state, which IPVS sends at
// once (the table does not report the previous state).
func (w *worker) syncConn(svc *Service, tcpFlags uint8) {
	su := w.d.sync.p.Load()
	if su == nil || !w.c.Valid() {
		return
	}
	ws := &su.scratch[w.id]
	sc := &ws.c
	ConnToSync(&w.c, w.d.ct, sc)
	sc.OldState = sc.State
	if tcpFlags&(conntrack.TCPFin|conntrack.TCPRst) != 0 {
		sc.OldState = 0
	}
	if !connsync.ShouldSync(sc, su.threshold, su.period) {
		return
	}
	var tmpl *connsync.Conn
	if w.c.Control && conntrack.SyncTemplateOf(&svc.ct, &w.c, &ws.se) {
		SyncEntryToSync(&ws.se, &ws.tmpl)
		tmpl = &ws.tmpl
	}
	su.hook.SyncConn(w.id, sc, tmpl)
}

// SyncEntryToSync converts a table-form record (a template from
// conntrack.SyncTemplateOf) to the wire record. It does not allocate.
func SyncEntryToSync(se *conntrack.SyncEntry, sc *connsync.Conn) {
	*sc = connsync.Conn{
		Protocol: se.Proto,
		IPv6:     se.IPv6,
		Flags:    se.Flags,
		State:    uint16(se.State),
		CPort:    se.CPort,
		VPort:    se.VPort,
		DPort:    se.DPort,
		Fwmark:   se.FWMark,
		Timeout:  se.Timeout,
		CAddr:    addrOf(&se.CAddr, se.IPv6),
		VAddr:    addrOf(&se.VAddr, se.IPv6),
		DAddr:    addrOf(&se.DAddr, se.IPv6 || !isV4Mapped(&se.DAddr)),
	}
}

// ConnToSync fills sc from a connection of table t (for incremental sync
// and for a bulk copy over Range): addresses, ports, method and flags,
// state, its state's timeout in seconds and in_pkts. It does not allocate.
func ConnToSync(c *conntrack.Conn, t *conntrack.Table, sc *connsync.Conn) {
	*sc = connsync.Conn{
		Protocol: c.Proto,
		IPv6:     c.IPv6,
		Flags:    c.Flags &^ conntrack.FlagHashed,
		State:    uint16(c.State),
		CPort:    c.CPort,
		VPort:    c.VPort,
		DPort:    c.DPort,
		Fwmark:   c.FWMark,
		Timeout:  uint32(t.StateTimeout(c.Proto, c.State)),
		CAddr:    addrOf(&c.CAddr, c.IPv6),
		VAddr:    addrOf(&c.VAddr, c.IPv6),
		DAddr:    addrOf(&c.DAddr, c.DIPv6),
		InPkts:   c.InPkts,
	}
}

func addrOf(a *[16]byte, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16(*a)
	}
	return netip.AddrFrom4([4]byte(a[12:16]))
}

func addr16(a netip.Addr) [16]byte { return a.As16() }

// SyncEntry converts a received sync record into the table's form.
func SyncEntry(sc *connsync.Conn, se *conntrack.SyncEntry) {
	*se = conntrack.SyncEntry{
		Proto:   sc.Protocol,
		IPv6:    sc.IPv6,
		Flags:   sc.Flags,
		State:   conntrack.State(sc.State),
		CAddr:   addr16(sc.CAddr),
		VAddr:   addr16(sc.VAddr),
		DAddr:   addr16(sc.DAddr),
		CPort:   sc.CPort,
		VPort:   sc.VPort,
		DPort:   sc.DPort,
		FWMark:  sc.Fwmark,
		Timeout: sc.Timeout,
	}
	if sc.State > 0xff {
		se.State = 0xff // out of range: SyncConn refuses it
	}
}

// SyncDest finds the registered real server a synced connection belongs
// to, as IPVS's ip_vs_find_dest does: the virtual service (protocol, VIP,
// port) of this director's current table, then its real server at daddr
// and dport. It returns conntrack.NoDest when either is unknown here.
func (d *Director) SyncDest(se *conntrack.SyncEntry) conntrack.DestID {
	d.ctl.Lock() // svc.dests changes under ctl; this is not the packet path
	defer d.ctl.Unlock()
	tab := d.table.Load()
	svc := tab.lookup(se.Proto, &se.VAddr, se.VPort)
	if svc == nil {
		return conntrack.NoDest
	}
	var ip netip.Addr
	if v4 := se.DAddr; isV4Mapped(&v4) {
		ip = netip.AddrFrom4([4]byte(v4[12:16]))
	} else {
		ip = netip.AddrFrom16(se.DAddr)
	}
	if ds := svc.dests[netip.AddrPortFrom(ip, se.DPort)]; ds != nil {
		return ds.id
	}
	if ds := svc.dests[netip.AddrPortFrom(netip.AddrFrom16(se.DAddr), se.DPort)]; ds != nil {
		return ds.id
	}
	if se.Flags&conntrack.FlagTemplate != 0 && se.DPort == 0 {
		// Templates of FTP and all-ports services carry no port.
		for ap, ds := range svc.dests {
			if ap.Addr() == ip {
				return ds.id
			}
		}
	}
	return conntrack.NoDest
}

func isV4Mapped(a *[16]byte) bool {
	for i := 0; i < 10; i++ {
		if a[i] != 0 {
			return false
		}
	}
	return a[10] == 0xff && a[11] == 0xff
}
