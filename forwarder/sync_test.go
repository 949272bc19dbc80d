package forwarder

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ulvs/ulvs/conntrack"
	"github.com/ulvs/ulvs/failover/connsync"
	"github.com/ulvs/ulvs/forwarder/engine"
)

// recordHook keeps the records the data path hands over (copies; the
// slice is preallocated so that the allocation test measures the seam).
type recordHook struct{ got, tmpl []connsync.Conn }

func (h *recordHook) SyncConn(_ int, c, tmpl *connsync.Conn) {
	h.got = append(h.got, *c)
	if tmpl != nil {
		h.tmpl = append(h.tmpl, *tmpl)
	}
}

func TestSyncSeamFollowsShouldSync(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodMasq, 1)
	h := &recordHook{}
	l.d.SetSyncHook(h, 0, 0) // defaults: 3 50
	src, dst := netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80)
	l.feed(engine.Public, tcpFrame(t, macClient, macPub, src, dst, "S", nil))
	l.feed(engine.Public, tcpFrame(t, macClient, macPub, src, dst, "A", nil))
	if len(h.got) != 0 {
		t.Fatalf("synced before the 3rd packet: %+v", h.got)
	}
	for i := 3; i <= 103; i++ {
		l.feed(engine.Public, tcpFrame(t, macClient, macPub, src, dst, "A", []byte("x")))
	}
	// in_pkts 3, 53 and 103.
	if len(h.got) != 3 {
		t.Fatalf("%d records for 103 packets, want 3 (in_pkts %% 50 == 3)", len(h.got))
	}
	c := h.got[0]
	if c.Protocol != 6 || c.CAddr != client || c.VAddr != vip || c.DAddr != rsAddr(1) || c.CPort != 40000 || c.VPort != 80 || c.DPort != 80 {
		t.Fatalf("record %+v", c)
	}
	if c.State != uint16(conntrack.StateEstablished) || c.Flags&conntrack.FlagFwdMask != uint32(conntrack.MethodMasq) || c.Flags&conntrack.FlagHashed != 0 {
		t.Fatalf("record state %d flags %#x", c.State, c.Flags)
	}
	tcp, _, _ := l.d.ct.Timeouts()
	if c.Timeout != uint32(tcp) || c.InPkts != 3 {
		t.Fatalf("record timeout %d in_pkts %d, want %d and 3", c.Timeout, c.InPkts, tcp)
	}
	// A FIN moves the connection to a closing state (CLOSE_WAIT here, no
	// output having been seen): sent at once.
	n := len(h.got)
	l.feed(engine.Public, tcpFrame(t, macClient, macPub, src, dst, "FA", nil))
	if len(h.got) != n+1 || h.got[n].State != uint16(conntrack.StateCloseWait) {
		t.Fatalf("FIN not synced at once: %d records, last %+v", len(h.got), h.got[len(h.got)-1])
	}
	// No hook: nothing.
	l.d.SetSyncHook(nil, 0, 0)
	n = len(h.got)
	for i := 0; i < 60; i++ {
		l.feed(engine.Public, tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40001), dst, "S", nil))
	}
	if len(h.got) != n {
		t.Fatalf("records without a hook")
	}
}

func TestSyncSeamAllocatesNothing(t *testing.T) {
	l := newLab(t)
	l.addService("wlc", conntrack.MethodMasq, 3)
	h := &recordHook{got: make([]connsync.Conn, 0, 4096)}
	// period 1, threshold 0: every packet is handed over, the worst case.
	l.d.SetSyncHook(h, 0, 1)
	syn := tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "S", nil)
	ack := tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80), "A", []byte("GET / HTTP/1.0\r\n\r\n"))
	l.feed(engine.Public, syn)
	l.q.sent = make([]sentFrame, 0, 1)
	w := l.w
	allocs := testing.AllocsPerRun(1000, func() {
		bp := &w.rx[0]
		bp.Off, bp.Iface = engine.Headroom, engine.Public
		bp.Len = copy(bp.Buf[bp.Off:], ack)
		w.tx = w.tx[:0]
		w.now = l.now
		if d := w.handle(bp); d != 0 {
			t.Fatalf("dropped: %v", d)
		}
	})
	if allocs != 0 {
		t.Fatalf("packet path with the sync seam allocates %v times per packet", allocs)
	}
	if len(h.got) < 1000 {
		t.Fatalf("the hook saw %d packets, want every one", len(h.got))
	}
}

func TestSyncDestAndEntry(t *testing.T) {
	l := newLab(t)
	l.addService("rr", conntrack.MethodRoute, 2)
	sc := connsync.Conn{Protocol: 6, Flags: uint32(conntrack.MethodRoute), State: uint16(conntrack.StateEstablished),
		CPort: 1234, VPort: 80, DPort: 80, Timeout: 900, CAddr: client, VAddr: vip, DAddr: rsAddr(2)}
	var se conntrack.SyncEntry
	SyncEntry(&sc, &se)
	id := l.d.SyncDest(&se)
	if id == conntrack.NoDest || l.d.ct.Dest(id).AddrPort() != netip.AddrPortFrom(rsAddr(2), 80) {
		t.Fatalf("SyncDest = %d", id)
	}
	if r := l.d.ct.SyncConn(&se, id, l.now); r != conntrack.SyncCreated {
		t.Fatalf("SyncConn %v", r)
	}
	sc.DAddr = rsAddr(3) // not a real server of this service here
	SyncEntry(&sc, &se)
	if id := l.d.SyncDest(&se); id != conntrack.NoDest {
		t.Fatalf("unknown real server resolved to %d", id)
	}
	sc.DAddr, sc.VPort = rsAddr(1), 81 // no such service
	SyncEntry(&sc, &se)
	if id := l.d.SyncDest(&se); id != conntrack.NoDest {
		t.Fatalf("unknown service resolved to %d", id)
	}
	// After a takeover, a mid-stream packet of the synced connection is
	// forwarded (DR: to rs2's MAC), not dropped as "not new".
	out := l.feed(engine.Public, tcpFrame(t, macClient, macPub, netip.AddrPortFrom(client, 1234), netip.AddrPortFrom(vip, 80), "A", []byte("x")))
	if len(out) != 1 {
		t.Fatalf("synced connection's packet: %d frames (drops %v)", len(out), nonZero(l.d.Drops()))
	}
	eth, _, _ := decodeTCP(t, out[0].frame)
	if [6]byte(eth.DstMAC) != rsMAC(2) {
		t.Fatalf("sent to %v, want rs2", eth.DstMAC)
	}
}

func TestSyncSeamSendsTemplateOfPersistentService(t *testing.T) {
	l := newLab(t)
	k := ServiceKey{Proto: 6, Addr: vip, Port: 80}
	if err := l.d.AddService(ServiceSpec{ServiceKey: k, Scheduler: "rr", Persistence: 600 * time.Second, Netmask: 24}); err != nil {
		t.Fatal(err)
	}
	if err := l.d.AddDest(k, DestSpec{Addr: netip.AddrPortFrom(rsAddr(1), 80), Method: conntrack.MethodMasq, Weight: 1}); err != nil {
		t.Fatal(err)
	}
	h := &recordHook{got: make([]connsync.Conn, 0, 4096), tmpl: make([]connsync.Conn, 0, 4096)}
	l.d.SetSyncHook(h, 0, 0)
	src, dst := netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(vip, 80)
	for _, fl := range []string{"S", "A", "A"} {
		l.feed(engine.Public, tcpFrame(t, macClient, macPub, src, dst, fl, nil))
	}
	if len(h.got) != 1 || len(h.tmpl) != 1 {
		t.Fatalf("%d records, %d templates; want 1 and 1", len(h.got), len(h.tmpl))
	}
	tm := h.tmpl[0]
	if tm.Flags&conntrack.FlagTemplate == 0 || tm.CAddr != netip.MustParseAddr("10.0.0.0") || tm.CPort != 0 ||
		tm.VAddr != vip || tm.VPort != 80 || tm.DAddr != rsAddr(1) || tm.DPort != 80 || tm.Timeout != 600 {
		t.Fatalf("template record %+v", tm)
	}
	// The template path allocates nothing either.
	l.d.SetSyncHook(h, 0, 1)
	ack := tcpFrame(t, macClient, macPub, src, dst, "A", []byte("x"))
	l.q.sent = make([]sentFrame, 0, 1)
	w := l.w
	h.got, h.tmpl = h.got[:0], h.tmpl[:0]
	allocs := testing.AllocsPerRun(500, func() {
		bp := &w.rx[0]
		bp.Off, bp.Iface = engine.Headroom, engine.Public
		bp.Len = copy(bp.Buf[bp.Off:], ack)
		w.tx = w.tx[:0]
		w.now = l.now
		if d := w.handle(bp); d != 0 {
			t.Fatalf("dropped: %v", d)
		}
	})
	if allocs != 0 || len(h.tmpl) < 500 {
		t.Fatalf("template path: %v allocations per packet, %d templates", allocs, len(h.tmpl))
	}
}
