package conntrack

import (
	"fmt"
	"net/netip"
	"testing"
)

func syncEntry(client string, cport uint16, vip string, vport uint16, rs string, dport uint16, proto uint8, m Method, st State, timeout uint32) SyncEntry {
	c, v, d := netip.MustParseAddr(client), netip.MustParseAddr(vip), netip.MustParseAddr(rs)
	return SyncEntry{Proto: proto, IPv6: c.Is6(), Flags: uint32(m), State: st, CAddr: c.As16(), VAddr: v.As16(), DAddr: d.As16(),
		CPort: cport, VPort: vport, DPort: dport, Timeout: timeout}
}

func TestSyncConnInsertIsUsedByTheDataPath(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1024})
	s, id := addServer(t, tb, "10.0.1.11:8080", MethodMasq, 0, 0)
	now := 100 * sec
	se := syncEntry("10.0.0.11", 40000, "10.0.0.100", 80, "10.0.1.11", 8080, ProtoTCP, MethodMasq, StateEstablished, 900)
	if r := tb.SyncConn(&se, id, now); r != SyncCreated {
		t.Fatalf("SyncConn = %v, want created", r)
	}
	if a, i := s.ActiveConns(), s.InactiveConns(); a != 1 || i != 0 {
		t.Fatalf("counters after an ESTABLISHED insert: active %d inactive %d, want 1 0", a, i)
	}
	var got []ConnInfo
	tb.Range(now, func(ci *ConnInfo) bool { got = append(got, *ci); return true })
	if len(got) != 1 {
		t.Fatalf("%d entries, want 1", len(got))
	}
	ci := got[0]
	if ci.Flags&FlagSync == 0 || ci.State != StateEstablished || ci.Dest != id || ci.Method != MethodMasq {
		t.Fatalf("entry %+v: want SYNC, ESTABLISHED, dest %d, Masq", ci, id)
	}
	if d := ci.Expires; d < 899*sec || d > 900*sec {
		t.Fatalf("expires in %v s, want the message's 900 s", d/sec)
	}
	// A mid-stream ACK of the client (no SYN) hits the synced entry after
	// a takeover, and the reply is found on the NAT return path.
	f := flow("10.0.0.11", 40000, "10.0.0.100", 80, ProtoTCP)
	var c Conn
	if v := tb.In(&f, TCPAck, now+sec, &c); v != Hit {
		t.Fatalf("In = %v, want hit", v)
	}
	if netip.AddrFrom16(c.DAddr).Unmap() != netip.MustParseAddr("10.0.1.11") || c.DPort != 8080 {
		t.Fatalf("In sends to %v:%d", netip.AddrFrom16(c.DAddr), c.DPort)
	}
	r := reply(&c)
	if v := tb.Out(&r, TCPAck, now+sec, &c); v != Hit {
		t.Fatalf("Out = %v, want hit", v)
	}
}

func TestSyncConnUpdate(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1024})
	s, id := addServer(t, tb, "10.0.1.11:80", MethodMasq, 0, 0)
	now := 100 * sec
	se := syncEntry("10.0.0.11", 40000, "10.0.0.100", 80, "10.0.1.11", 80, ProtoTCP, MethodMasq, StateEstablished, 900)
	tb.SyncConn(&se, id, now)
	se.State, se.Timeout = StateFinWait, 120
	if r := tb.SyncConn(&se, id, now+sec); r != SyncUpdated {
		t.Fatalf("second SyncConn = %v, want updated", r)
	}
	if n := tb.Len(); n != 1 {
		t.Fatalf("Len = %d after an update, want 1", n)
	}
	if a, i := s.ActiveConns(), s.InactiveConns(); a != 0 || i != 1 {
		t.Fatalf("counters after FIN_WAIT: active %d inactive %d, want 0 1", a, i)
	}
	var ci ConnInfo
	tb.Range(now+sec, func(c *ConnInfo) bool { ci = *c; return false })
	if ci.State != StateFinWait || ci.Expires > 120*sec || ci.Expires < 119*sec {
		t.Fatalf("after update: state %v expires %v s", ci.State.Name(ProtoTCP), ci.Expires/sec)
	}
	// Back to ESTABLISHED moves the counters back.
	se.State, se.Timeout = StateEstablished, 0
	tb.SyncConn(&se, id, now+2*sec)
	if a, i := s.ActiveConns(), s.InactiveConns(); a != 1 || i != 0 {
		t.Fatalf("counters after ESTABLISHED again: active %d inactive %d", a, i)
	}
	tb.Range(now+2*sec, func(c *ConnInfo) bool { ci = *c; return false })
	tcp, _, _ := tb.Timeouts()
	if want := int64(tcp) * sec; ci.Expires > want || ci.Expires < want-sec {
		t.Fatalf("timeout 0 should use the state table's %d s, expires in %d s", tcp, ci.Expires/sec)
	}
}

func TestSyncConnExpiresAndUncounts(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1024})
	s, id := addServer(t, tb, "10.0.0.51:80", MethodRoute, 0, 0)
	now := 100 * sec
	se := syncEntry("10.0.0.11", 40001, "10.0.0.100", 80, "10.0.0.51", 80, ProtoUDP, MethodRoute, 7, 5)
	se.Flags |= FlagInactive // as the active's UDP entries are
	if r := tb.SyncConn(&se, id, now); r != SyncCreated {
		t.Fatalf("SyncConn = %v", r)
	}
	var ci ConnInfo
	tb.Range(now, func(c *ConnInfo) bool { ci = *c; return false })
	if ci.State != StateNone || ci.Flags&FlagNoOutput == 0 {
		t.Fatalf("UDP DR entry: state %d flags %#x, want state 0 and NOOUTPUT", ci.State, ci.Flags)
	}
	if a, i := s.ActiveConns(), s.InactiveConns(); a != 0 || i != 1 {
		t.Fatalf("an INACTIVE UDP entry counts active %d inactive %d, want 0 1", a, i)
	}
	for i := int64(0); i <= 8; i++ {
		tb.Sweep(now + i*sec)
	}
	if n := tb.Len(); n != 0 {
		t.Fatalf("Len = %d after the 5 s timeout, want 0", n)
	}
	if a, i := s.ActiveConns(), s.InactiveConns(); a != 0 || i != 0 {
		t.Fatalf("counters after expiry: %d %d", a, i)
	}
	if err := tb.UnregisterDest(id); err != nil {
		t.Fatalf("the expired synced entry still holds its dest: %v", err)
	}
}

func TestSyncConnRefusals(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1024})
	_, id := addServer(t, tb, "10.0.1.11:80", MethodMasq, 0, 0)
	now := 100 * sec
	se := syncEntry("10.0.0.11", 40000, "10.0.0.100", 80, "10.0.1.11", 80, ProtoTCP, MethodMasq, StateEstablished, 0)
	if r := tb.SyncConn(&se, NoDest, now); r != SyncNoDest {
		t.Errorf("unknown real server: %v, want unknown-dest", r)
	}
	if r := tb.SyncConn(&se, id+7, now); r != SyncNoDest {
		t.Errorf("unregistered id: %v, want unknown-dest", r)
	}
	bad := se
	bad.State = numTCPStates
	if r := tb.SyncConn(&bad, id, now); r != SyncBadState {
		t.Errorf("bad state: %v", r)
	}
	tmpl := se
	tmpl.Flags |= FlagTemplate
	tmpl.FWMark = 5
	if r := tb.SyncConn(&tmpl, id, now); r != SyncTemplate {
		t.Errorf("fwmark template: %v", r)
	}
	if n := tb.Len(); n != 0 {
		t.Fatalf("refused entries were inserted: Len %d", n)
	}
	if SyncResult(200).String() != "unknown" || SyncNoDest.String() != "unknown-dest" {
		t.Errorf("names")
	}
}

func TestSyncConnBound(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 256, Shards: 1})
	s, id := addServer(t, tb, "10.0.1.11:80", MethodMasq, 0, 0)
	now := 100 * sec
	full := 0
	for i := 0; i < 400; i++ {
		se := syncEntry(fmt.Sprintf("10.0.%d.%d", 2+i/250, 1+i%250), 1000, "10.0.0.100", 80, "10.0.1.11", 80, ProtoTCP, MethodMasq, StateEstablished, 0)
		if r := tb.SyncConn(&se, id, now); r == SyncFull {
			full++
		} else if r != SyncCreated {
			t.Fatalf("entry %d: %v", i, r)
		}
	}
	if n := tb.Len(); n != tb.Cap() || full != 400-tb.Cap() {
		t.Fatalf("Len %d Cap %d, %d refused", n, tb.Cap(), full)
	}
	if int(s.ActiveConns()) != tb.Cap() {
		t.Fatalf("active %d, want %d", s.ActiveConns(), tb.Cap())
	}
	if st := tb.Stats(); st.Refused != uint64(full) {
		t.Fatalf("Refused %d, want %d", st.Refused, full)
	}
}

// A synced persistence template makes a new connection of the same client
// (another port, same /24 with -M 255.255.255.0) go to the template's real
// server after a takeover, without asking the scheduler.
func TestSyncTemplateKeepsPersistence(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1024})
	s1, _ := addServer(t, tb, "10.0.1.11:80", MethodMasq, 0, 0)
	s2, id2 := addServer(t, tb, "10.0.1.12:80", MethodMasq, 0, 0)
	now := 100 * sec
	svc := svcOf("10.0.0.100", 80, ProtoTCP)
	svc.PersistTimeout = 600
	if err := svc.SetPrefix(24); err != nil {
		t.Fatal(err)
	}
	// What the active sends for a connection of 10.0.0.77:5000 to rs2.
	c := Conn{Proto: ProtoTCP, Method: MethodMasq, CAddr: netip.MustParseAddr("10.0.0.77").As16(), CPort: 5000,
		VAddr: netip.MustParseAddr("10.0.0.100").As16(), VPort: 80, DAddr: netip.MustParseAddr("10.0.1.12").As16(), DPort: 80}
	var se SyncEntry
	if !SyncTemplateOf(svc, &c, &se) {
		t.Fatal("no template for a persistent service")
	}
	if netip.AddrFrom16(se.CAddr).Unmap() != netip.MustParseAddr("10.0.0.0") || se.CPort != 0 || se.VPort != 80 || se.DPort != 80 ||
		se.Flags&FlagTemplate == 0 || se.Timeout != 600 {
		t.Fatalf("template record %+v", se)
	}
	if r := tb.SyncConn(&se, id2, now); r != SyncCreated {
		t.Fatalf("template insert: %v", r)
	}
	if r := tb.SyncConn(&se, id2, now+sec); r != SyncUpdated {
		t.Fatalf("template refresh: %v", r)
	}
	if st := tb.Stats(); st.Templates != 1 || s2.PersistentConns() != 1 {
		t.Fatalf("templates %d, rs2 persistent %d", st.Templates, s2.PersistentConns())
	}
	sched := &fixedSched{d: s1.Dest} // would pick rs1
	f := flow("10.0.0.78", 6000, "10.0.0.100", 80, ProtoTCP)
	var nc Conn
	if r := tb.Connect(svc, &f, TCPSyn, now+2*sec, sched, &nc); r != Created {
		t.Fatalf("Connect: %v", r)
	}
	if sched.calls != 0 || nc.Dest != id2 {
		t.Fatalf("new connection went to dest %d (scheduler called %d times), want the template's rs2", nc.Dest, sched.calls)
	}
	// Not persistent: no template.
	plain := svcOf("10.0.0.100", 80, ProtoTCP)
	if SyncTemplateOf(plain, &c, &se) {
		t.Fatal("template for a non-persistent service")
	}
}

func TestSyncConnCreateOnly(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 1024})
	s, id := addServer(t, tb, "10.0.1.11:80", MethodMasq, 0, 0)
	now := 100 * sec
	se := syncEntry("10.0.0.11", 40000, "10.0.0.100", 80, "10.0.1.11", 80, ProtoTCP, MethodMasq, StateEstablished, 900)
	se.CreateOnly = true
	if r := tb.SyncConn(&se, id, now); r != SyncCreated {
		t.Fatalf("create-only of a missing entry: %v", r)
	}
	state := func() State {
		var ci ConnInfo
		tb.Range(now, func(c *ConnInfo) bool { ci = *c; return false })
		return ci.State
	}
	// A refresh of the same state leaves the local entry (and its expiry) alone.
	if r := tb.SyncConn(&se, id, now+sec); r != SyncKept || state() != StateEstablished {
		t.Fatalf("create-only ESTABLISHED over ESTABLISHED: %v, state %v", r, state().Name(ProtoTCP))
	}
	// The old active saw the close: the established entry here takes it,
	// and the server's connection no longer counts as active.
	se.State = StateTimeWait
	se.Timeout = 0
	if r := tb.SyncConn(&se, id, now); r != SyncUpdated {
		t.Fatalf("create-only closing state over ESTABLISHED: %v", r)
	}
	if state() != StateTimeWait || s.ActiveConns() != 0 || s.InactiveConns() != 1 {
		t.Fatalf("after a late TIME_WAIT: %v, active %d inactive %d", state().Name(ProtoTCP), s.ActiveConns(), s.InactiveConns())
	}
	// Never back: a late ESTABLISHED (or another closing state) does not
	// undo what this director has.
	for _, st := range []State{StateEstablished, StateFinWait, StateSynRecv} {
		se.State = st
		if r := tb.SyncConn(&se, id, now); r != SyncKept || state() != StateTimeWait {
			t.Fatalf("create-only %v over TIME_WAIT: %v, state now %v", st.Name(ProtoTCP), r, state().Name(ProtoTCP))
		}
	}
}
