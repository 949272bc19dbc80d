package conntrack

import (
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/ulvs/ulvs/scheduler"
)

func TestPersistenceSameClientSameServer(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 256})
	a, _ := addServer(t, tb, "10.1.0.1:8080", MethodMasq, 0, 0)
	b, _ := addServer(t, tb, "10.1.0.2:8080", MethodMasq, 0, 0)
	sched := &rrSched{ds: []*testServer{a, b}}
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	svc.PersistTimeout = 360
	var first Conn
	for p := uint16(1000); p < 1010; p++ {
		f := flow("198.51.100.7", p, "192.0.2.1", 80, ProtoTCP)
		var c Conn
		if r := tb.Connect(svc, &f, TCPSyn, 0, sched, &c); r != Created {
			t.Fatalf("port %d: %s", p, r)
		}
		if p == 1000 {
			first = c
		}
		if c.DAddr != first.DAddr {
			t.Fatalf("port %d went to another server", p)
		}
		if !c.Control {
			t.Fatalf("child not controlled by its template")
		}
		if c.DPort != 8080 {
			t.Fatalf("child dport %d, want the server's port 8080 (packet port == service port)", c.DPort)
		}
	}
	if sched.calls != 1 {
		t.Fatalf("scheduler called %d times, want 1", sched.calls)
	}
	tm := templates(tb, 0)
	if len(tm) != 1 {
		t.Fatalf("%d templates, want 1", len(tm))
	}
	if tm[0].CPort != 0 || tm[0].VPort != 80 || tm[0].DPort != 8080 || tm[0].Controls != 10 || tm[0].Expires != 360*sec {
		t.Fatalf("template %+v", tm[0])
	}
	srv := a
	if first.Dest != tb.DestID(a.Dest) {
		srv = b
	}
	if got := counts(srv); got[2] != 1 || got[0] != 10 {
		t.Fatalf("counters %v, want 10 active (SYN_RECV), 1 persistent", got)
	}
	// A different client gets scheduled.
	f := flow("198.51.100.8", 1000, "192.0.2.1", 80, ProtoTCP)
	var c Conn
	tb.Connect(svc, &f, TCPSyn, 0, sched, &c)
	if sched.calls != 2 || c.DAddr == first.DAddr {
		t.Fatalf("second client: calls %d, same server %v", sched.calls, c.DAddr == first.DAddr)
	}
}

func TestPersistenceNetmask(t *testing.T) {
	for _, tc := range []struct {
		mask  string
		calls int
	}{{"255.255.255.0", 1}, {"255.255.255.255", 2}, {"", 2}} {
		tb := newTable(t, Config{MaxConns: 256})
		a, _ := addServer(t, tb, "10.1.0.1:80", MethodRoute, 0, 0)
		b, _ := addServer(t, tb, "10.1.0.2:80", MethodRoute, 0, 0)
		sched := &rrSched{ds: []*testServer{a, b}}
		svc := svcOf("192.0.2.1", 80, ProtoTCP)
		svc.PersistTimeout = 300
		if tc.mask != "" {
			if err := svc.SetNetmask(netip.MustParseAddr(tc.mask)); err != nil {
				t.Fatal(err)
			}
		}
		var c1, c2 Conn
		f1 := flow("198.51.100.1", 1000, "192.0.2.1", 80, ProtoTCP)
		f2 := flow("198.51.100.2", 1000, "192.0.2.1", 80, ProtoTCP)
		tb.Connect(svc, &f1, TCPSyn, 0, sched, &c1)
		tb.Connect(svc, &f2, TCPSyn, 0, sched, &c2)
		if sched.calls != tc.calls || (c1.DAddr == c2.DAddr) != (tc.calls == 1) {
			t.Errorf("mask %q: %d scheduler calls, same server %v", tc.mask, sched.calls, c1.DAddr == c2.DAddr)
		}
		if tc.calls == 1 {
			tm := templates(tb, 0)
			if len(tm) != 1 || netip.AddrFrom16(tm[0].CAddr).Unmap() != netip.MustParseAddr("198.51.100.0") {
				t.Errorf("template source %v, want the masked 198.51.100.0", tm)
			}
		}
	}
	// IPv6 prefix.
	tb := newTable(t, Config{MaxConns: 256})
	a, _ := addServer(t, tb, "[2001:db8::1]:80", MethodRoute, 0, 0)
	b, _ := addServer(t, tb, "[2001:db8::2]:80", MethodRoute, 0, 0)
	sched := &rrSched{ds: []*testServer{a, b}}
	svc := svcOf("2001:db8:ffff::1", 80, ProtoTCP)
	svc.PersistTimeout = 300
	if err := svc.SetPrefix(64); err != nil {
		t.Fatal(err)
	}
	var c1, c2, c3 Conn
	f1 := flow("2001:db8:1:2::10", 1000, "2001:db8:ffff::1", 80, ProtoTCP)
	f2 := flow("2001:db8:1:2::20", 1000, "2001:db8:ffff::1", 80, ProtoTCP)
	f3 := flow("2001:db8:1:3::10", 1000, "2001:db8:ffff::1", 80, ProtoTCP)
	tb.Connect(svc, &f1, TCPSyn, 0, sched, &c1)
	tb.Connect(svc, &f2, TCPSyn, 0, sched, &c2)
	tb.Connect(svc, &f3, TCPSyn, 0, sched, &c3)
	if sched.calls != 2 || c1.DAddr != c2.DAddr || !c1.IPv6 || !c1.DIPv6 {
		t.Fatalf("IPv6 /64: calls %d, same %v", sched.calls, c1.DAddr == c2.DAddr)
	}
	if err := svc.SetPrefix(129); !errors.Is(err, ErrRange) {
		t.Fatalf("prefix 129: %v", err)
	}
}

// By default weight 0 and OVERLOAD do not break persistence.
func TestPersistenceSurvivesWeightZeroAndOverload(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 256})
	a, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 2, 0) // upper threshold 2
	b, _ := addServer(t, tb, "10.1.0.2:80", MethodMasq, 0, 0)
	sched := &rrSched{ds: []*testServer{a, b}}
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	svc.PersistTimeout = 300
	var c Conn
	for p := uint16(1); p <= 3; p++ {
		f := flow("198.51.100.1", p, "192.0.2.1", 80, ProtoTCP)
		tb.Connect(svc, &f, TCPSyn, 0, sched, &c)
		if c.Dest != tb.DestID(a.Dest) {
			t.Fatalf("conn %d not on a", p)
		}
	}
	if !a.Overloaded() {
		t.Fatalf("a not OVERLOAD after 3 conns with upper threshold 2")
	}
	a.weight.Store(0)
	f := flow("198.51.100.1", 4, "192.0.2.1", 80, ProtoTCP)
	if r := tb.Connect(svc, &f, TCPSyn, 0, sched, &c); r != Created || c.Dest != tb.DestID(a.Dest) {
		t.Fatalf("weight 0 + OVERLOAD broke persistence: %s, dest %d", r, c.Dest)
	}
	if sched.calls != 1 {
		t.Fatalf("scheduler called %d times", sched.calls)
	}
	// expire_quiescent_template=1: the weight-0 template is invalidated.
	tb.SetSettings(Settings{ConnReuseMode: 1, ExpireQuiescentTemplate: true})
	f = flow("198.51.100.1", 5, "192.0.2.1", 80, ProtoTCP)
	if r := tb.Connect(svc, &f, TCPSyn, 0, sched, &c); r != Created || c.Dest != tb.DestID(b.Dest) {
		t.Fatalf("expire_quiescent_template: %s, dest %d, want b", r, c.Dest)
	}
	tm := templates(tb, 0)
	if len(tm) != 2 {
		t.Fatalf("%d templates, want the re-keyed old one and a new one", len(tm))
	}
	rekeyedSeen := false
	for _, x := range tm {
		if x.VPort == 0xffff && x.DPort == 0xffff && x.CPort == 0 {
			rekeyedSeen = true
			if x.Dest != tb.DestID(a.Dest) || x.Controls != 4 {
				t.Fatalf("re-keyed template %+v", x)
			}
		}
	}
	if !rekeyedSeen {
		t.Fatalf("old template not re-keyed: %+v", tm)
	}
}

func TestPersistenceDeletedServer(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 256})
	a, _ := addServer(t, tb, "10.1.0.1:80", MethodRoute, 0, 0)
	b, _ := addServer(t, tb, "10.1.0.2:80", MethodRoute, 0, 0)
	sched := &rrSched{ds: []*testServer{a, b}}
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	svc.PersistTimeout = 300
	var c Conn
	f := flow("198.51.100.1", 1, "192.0.2.1", 80, ProtoTCP)
	tb.Connect(svc, &f, TCPSyn, 0, sched, &c)
	a.unavailable.Store(true)
	f = flow("198.51.100.1", 2, "192.0.2.1", 80, ProtoTCP)
	if r := tb.Connect(svc, &f, TCPSyn, 0, sched, &c); r != Created || c.Dest != tb.DestID(b.Dest) {
		t.Fatalf("deleted server kept persistence: %s dest %d", r, c.Dest)
	}
}

func TestPersistencePortRules(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 256})
	a, _ := addServer(t, tb, "10.1.0.1:0", MethodRoute, 0, 0)
	b, _ := addServer(t, tb, "10.1.0.2:8080", MethodMasq, 0, 0)

	// Port-0 service: template vport 0 and dport 0; child keeps the packet port.
	svc := svcOf("192.0.2.1", 0, ProtoTCP)
	svc.PersistTimeout = 60
	f := flow("198.51.100.1", 1, "192.0.2.1", 443, ProtoTCP)
	var c Conn
	if r := tb.Connect(svc, &f, TCPSyn, 0, &fixedSched{d: a.Dest}, &c); r != Created {
		t.Fatal(r)
	}
	if c.DPort != 443 || c.VPort != 443 {
		t.Fatalf("port-0 service child v/d port %d/%d, want 443/443", c.VPort, c.DPort)
	}
	tm := templates(tb, 0)
	if len(tm) != 1 || tm[0].VPort != 0 || tm[0].DPort != 0 {
		t.Fatalf("port-0 template %+v", tm)
	}
	tb.Flush()

	// FTP: template <caddr,0,vaddr,0,daddr,0>.
	svc = svcOf("192.0.2.1", 21, ProtoTCP)
	svc.PersistTimeout = 60
	f = flow("198.51.100.1", 1, "192.0.2.1", 21, ProtoTCP)
	tb.Connect(svc, &f, TCPSyn, 0, &fixedSched{d: b.Dest}, &c)
	tm = templates(tb, 0)
	if len(tm) != 1 || tm[0].VPort != 0 || tm[0].DPort != 0 || c.DPort != 8080 {
		t.Fatalf("FTP template %+v child dport %d", tm, c.DPort)
	}
	tb.Flush()

	// fwmark: template proto IP (0), vaddr = the mark, vport 0.
	svc = &Service{FWMark: 7, PersistTimeout: 60}
	f = flow("198.51.100.1", 1, "192.0.2.9", 80, ProtoTCP)
	tb.Connect(svc, &f, TCPSyn, 0, &fixedSched{d: a.Dest}, &c)
	tm = templates(tb, 0)
	if len(tm) != 1 || tm[0].Proto != 0 || tm[0].VPort != 0 || netip.AddrFrom16(tm[0].VAddr).Unmap() != netip.MustParseAddr("0.0.0.7") {
		t.Fatalf("fwmark template %+v", tm)
	}
	if c.FWMark != 7 || c.VPort != 80 || c.DPort != 80 {
		t.Fatalf("fwmark child %+v", c)
	}
	var line []byte
	line = tm[0].AppendListLine(line)
	if !strings.HasPrefix(string(line), "IP  ") {
		t.Fatalf("fwmark template listed as %q", line)
	}
}

// A template lives while it controls connections (re-armed 60 s), then goes.
func TestTemplateKeptAliveByChildren(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 256})
	a, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	svc.PersistTimeout = 10
	f := flow("198.51.100.1", 1, "192.0.2.1", 80, ProtoTCP)
	var c Conn
	tb.Connect(svc, &f, TCPSyn, 0, &fixedSched{d: a.Dest}, &c)
	tb.In(&f, TCPAck, 0, &c) // ES: 900 s
	if tm := templates(tb, 0); len(tm) != 1 || !tm[0].Assured {
		t.Fatalf("template not assured after ESTABLISHED: %+v", tm)
	}
	for now := int64(1); now <= 100; now++ {
		tb.Sweep(now * sec)
	}
	// Expired at 10 s while controlling a connection: re-armed for 60 s
	// (to 70 s), and again at 70 s (to 130 s).
	tm := templates(tb, 100*sec)
	if len(tm) != 1 {
		t.Fatalf("template gone while its connection lives")
	}
	if tm[0].Expires != 30*sec {
		t.Fatalf("template expires in %d s, want 30 (re-armed at 70 s for 60 s)", tm[0].Expires/sec)
	}
	// The connection resets at 100 s (CLOSE, 10 s) and expires at 110 s;
	// the template lives on until its re-armed time, 130 s.
	tb.In(&f, TCPRst, 100*sec, &c)
	for now := int64(101); now <= 120; now++ {
		tb.Sweep(now * sec)
	}
	if tb.Len() != 1 {
		t.Fatalf("len %d after the connection expired, want 1 (template)", tb.Len())
	}
	if got := counts(a); got != [3]int32{0, 0, 1} {
		t.Fatalf("counters %v, want only the template", got)
	}
	for now := int64(121); now <= 132; now++ {
		tb.Sweep(now * sec)
	}
	if tb.Len() != 0 || counts(a) != [3]int32{0, 0, 0} {
		t.Fatalf("template still there: len %d counters %v", tb.Len(), counts(a))
	}
}

func TestConnReuse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    int
		state   State
		dr      bool
		resched bool
	}{
		{"TW mode1", 1, StateTimeWait, false, true},
		{"CLOSE mode1", 1, StateClose, false, true},
		{"ES mode1", 1, StateEstablished, false, false},
		{"TW mode0", 0, StateTimeWait, false, false},
		{"FW+NOOUTPUT mode1", 1, StateFinWait, true, false},
		{"FW+NOOUTPUT mode3", 3, StateFinWait, true, true},
		{"FW NAT mode3", 3, StateFinWait, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, Config{MaxConns: 64})
			tb.SetSettings(Settings{ConnReuseMode: tc.mode})
			m := MethodMasq
			if tc.dr {
				m = MethodRoute
			}
			a, _ := addServer(t, tb, "10.1.0.1:80", m, 0, 0)
			b, _ := addServer(t, tb, "10.1.0.2:80", m, 0, 0)
			sched := &rrSched{ds: []*testServer{a, b}}
			svc := svcOf("192.0.2.1", 80, ProtoTCP)
			f := flow("198.51.100.1", 1, "192.0.2.1", 80, ProtoTCP)
			var c Conn
			tb.Connect(svc, &f, TCPSyn, 0, sched, &c)
			forceState(t, tb, &c, tc.state)
			v := tb.In(&f, TCPSyn, sec, &c)
			if tc.resched {
				if v != Miss || tb.Len() != 0 {
					t.Fatalf("SYN on %s: %s, len %d; want miss and the old one expired", tc.name, v, tb.Len())
				}
				if r := tb.Connect(svc, &f, TCPSyn, sec, sched, &c); r != Created || sched.calls != 2 {
					t.Fatalf("reschedule: %s calls %d", r, sched.calls)
				}
				if got := counts(a); got != [3]int32{0, 0, 0} {
					t.Fatalf("old server counters %v", got)
				}
			} else if v != Hit {
				t.Fatalf("SYN on %s: %s, want hit", tc.name, v)
			}
		})
	}
	// A controlled (persistent) connection in TIME_WAIT is not reused.
	tb := newTable(t, Config{MaxConns: 64})
	a, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	svc.PersistTimeout = 100
	f := flow("198.51.100.1", 1, "192.0.2.1", 80, ProtoTCP)
	var c Conn
	tb.Connect(svc, &f, TCPSyn, 0, &fixedSched{d: a.Dest}, &c)
	forceState(t, tb, &c, StateTimeWait)
	if v := tb.In(&f, TCPSyn, sec, &c); v != Hit || c.State != StateSynRecv {
		t.Fatalf("controlled TW + SYN: %s state %s, want hit SYN_RECV", v, c.State.Name(ProtoTCP))
	}
}

func TestExpireNodestConn(t *testing.T) {
	for _, expire := range []bool{false, true} {
		tb := newTable(t, Config{MaxConns: 64})
		tb.SetSettings(Settings{ConnReuseMode: 1, ExpireNodestConn: expire})
		a, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
		b, _ := addServer(t, tb, "10.1.0.2:80", MethodMasq, 0, 0)
		sched := &rrSched{ds: []*testServer{a, b}}
		svc := svcOf("192.0.2.1", 80, ProtoUDP)
		f := flow("198.51.100.1", 1, "192.0.2.1", 80, ProtoUDP)
		var c Conn
		tb.Connect(svc, &f, 0, 0, sched, &c)
		a.unavailable.Store(true)
		v := tb.In(&f, 0, sec, &c)
		if !expire {
			if v != DropNoDest || tb.Len() != 1 {
				t.Fatalf("expire_nodest_conn=0: %s len %d, want drop and the entry kept", v, tb.Len())
			}
			continue
		}
		if v != Miss || tb.Len() != 0 || counts(a) != [3]int32{0, 0, 0} {
			t.Fatalf("expire_nodest_conn=1: %s len %d counters %v", v, tb.Len(), counts(a))
		}
		if r := tb.Connect(svc, &f, 0, sec, sched, &c); r != Created || c.Dest != tb.DestID(b.Dest) {
			t.Fatalf("reschedule: %s dest %d", r, c.Dest)
		}
	}
	// With expire_nodest_conn=1 a SYN to a weight-0 server is rescheduled.
	tb := newTable(t, Config{MaxConns: 64})
	tb.SetSettings(Settings{ConnReuseMode: 1, ExpireNodestConn: true})
	a, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	f := flow("198.51.100.1", 1, "192.0.2.1", 80, ProtoTCP)
	var c Conn
	tb.Connect(svc, &f, TCPSyn, 0, &fixedSched{d: a.Dest}, &c)
	tb.In(&f, TCPAck, 0, &c)
	a.weight.Store(0)
	if v := tb.In(&f, TCPAck, 0, &c); v != Hit {
		t.Fatalf("ACK to weight-0 server: %s, want hit", v)
	}
	if v := tb.In(&f, TCPSyn, 0, &c); v != Miss || tb.Len() != 0 {
		t.Fatalf("SYN to weight-0 server with expire_nodest_conn: %s len %d", v, tb.Len())
	}
}

func TestConnectChecks(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64})
	a, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	sched := &fixedSched{d: a.Dest}
	var c Conn
	f := flow("198.51.100.1", 1, "192.0.2.1", 80, ProtoTCP)
	for _, tc := range []struct {
		flags uint8
		want  Result
	}{{TCPAck, NotNew}, {TCPSyn | TCPRst, NotNew}, {TCPFin, NotNew}} {
		if r := tb.Connect(svc, &f, tc.flags, 0, sched, &c); r != tc.want {
			t.Errorf("flags %#x: %s, want %s", tc.flags, r, tc.want)
		}
	}
	tb.SetSettings(Settings{ConnReuseMode: 1, SloppyTCP: true})
	if r := tb.Connect(svc, &f, TCPAck, 0, sched, &c); r != Created || c.State != StateEstablished {
		t.Errorf("sloppy_tcp ACK: %s %s", r, c.State.Name(ProtoTCP))
	}
	tb.SetSettings(DefaultSettings())
	g := flow("198.51.100.1", 2, "192.0.2.1", 81, ProtoTCP)
	if r := tb.Connect(svc, &g, TCPSyn, 0, sched, &c); r != WrongPort {
		t.Errorf("other port: %s", r)
	}
	g = flow("198.51.100.1", 2, "192.0.2.1", 80, ProtoTCP)
	if r := tb.Connect(svc, &g, TCPSyn, 0, &fixedSched{}, &c); r != NoServer {
		t.Errorf("no server: %s", r)
	}
	// SYN+ACK may start a connection.
	if r := tb.Connect(svc, &g, TCPSyn|TCPAck, 0, sched, &c); r != Created {
		t.Errorf("SYN+ACK: %s", r)
	}
	// A second Connect for the same flow finds the first.
	if r := tb.Connect(svc, &g, TCPSyn, 0, sched, &c); r != Existing {
		t.Errorf("duplicate: %s", r)
	}
	if err := tb.SetSettings(Settings{ConnReuseMode: 4}); !errors.Is(err, ErrRange) {
		t.Errorf("conn_reuse_mode 4: %v", err)
	}
}

func TestNewConnectionCounting(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64})
	a, _ := addServer(t, tb, "10.1.0.1:80", MethodRoute, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	f := flow("198.51.100.1", 1, "192.0.2.1", 80, ProtoTCP)
	var c Conn
	// sloppy ACK-less segment with only PSH -> CLOSE (inactive): the
	// connection is counted inactive at creation and stays inactive.
	tb.SetSettings(Settings{ConnReuseMode: 1, SloppyTCP: true})
	tb.Connect(svc, &f, 0x08, 0, &fixedSched{d: a.Dest}, &c)
	if a.binds.Load() != 1 || counts(a) != [3]int32{0, 1, 0} {
		t.Fatalf("binds %d counters %v", a.binds.Load(), counts(a))
	}
	if c.Flags&(FlagInactive|FlagNoOutput|FlagFwdMask) != FlagInactive|FlagNoOutput|uint32(MethodRoute) {
		t.Fatalf("DR flags %#x", c.Flags)
	}
	// SYN from NONE -> SYN_RECV: active.
	g := flow("198.51.100.1", 2, "192.0.2.1", 80, ProtoTCP)
	tb.Connect(svc, &g, TCPSyn, 0, &fixedSched{d: a.Dest}, &c)
	if counts(a) != [3]int32{1, 1, 0} || c.State != StateSynRecv {
		t.Fatalf("counters %v state %s", counts(a), c.State.Name(ProtoTCP))
	}
}

func TestOverloadClearedOnExpiry(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64})
	a, _ := addServer(t, tb, "10.1.0.1:53", MethodMasq, 2, 0)
	svc := svcOf("192.0.2.1", 53, ProtoUDP)
	for p := uint16(1); p <= 2; p++ {
		f := flow("198.51.100.1", p, "192.0.2.1", 53, ProtoUDP)
		var c Conn
		tb.Connect(svc, &f, 0, 0, &fixedSched{d: a.Dest}, &c)
	}
	if !a.Overloaded() {
		t.Fatal("not OVERLOAD at the upper threshold")
	}
	if n := tb.Sweep(301 * sec); n != 2 {
		t.Fatalf("swept %d", n)
	}
	if a.Overloaded() || counts(a) != [3]int32{0, 0, 0} {
		t.Fatalf("after expiry: overload %v counters %v", a.Overloaded(), counts(a))
	}
}

func TestBoundRefusesNewFlowsOnly(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64, Shards: 1})
	a, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	sched := &fixedSched{d: a.Dest}
	var c Conn
	for p := uint16(1); p <= 64; p++ {
		f := flow("198.51.100.1", p, "192.0.2.1", 80, ProtoTCP)
		if r := tb.Connect(svc, &f, TCPSyn, 0, sched, &c); r != Created {
			t.Fatalf("flow %d: %s", p, r)
		}
	}
	f := flow("198.51.100.1", 65, "192.0.2.1", 80, ProtoTCP)
	if r := tb.Connect(svc, &f, TCPSyn, 0, sched, &c); r != Full {
		t.Fatalf("65th flow: %s, want %s", r, Full)
	}
	if st := tb.Stats(); st.Refused != 1 || st.Conns != 64 {
		t.Fatalf("stats %+v", st)
	}
	if counts(a) != [3]int32{64, 0, 0} {
		t.Fatalf("counters changed by a refusal: %v", counts(a))
	}
	// Existing flows are undisturbed.
	for p := uint16(1); p <= 64; p++ {
		g := flow("198.51.100.1", p, "192.0.2.1", 80, ProtoTCP)
		if v := tb.In(&g, TCPAck, sec, &c); v != Hit || c.State != StateEstablished {
			t.Fatalf("flow %d after refusal: %s", p, v)
		}
	}
	// A persistent flow whose template cannot be made is refused too.
	tb.Flush()
	psvc := svcOf("192.0.2.1", 80, ProtoTCP)
	psvc.PersistTimeout = 60
	for p := uint16(1); p <= 63; p++ {
		g := flow("198.51.100.1", p, "192.0.2.1", 80, ProtoTCP)
		tb.Connect(svc, &g, TCPSyn, 0, sched, &c)
	}
	g := flow("203.0.113.1", 1, "192.0.2.1", 80, ProtoTCP)
	if r := tb.Connect(psvc, &g, TCPSyn, 0, sched, &c); r != Full || tb.Len() != 64 {
		t.Fatalf("template took the last slot; child: %s len %d", r, tb.Len())
	}
	if tm := templates(tb, 0); len(tm) != 1 || tm[0].Controls != 0 {
		t.Fatalf("template reference leaked: %+v", tm)
	}
}

// A SYN flood (many distinct new flows) must not grow memory past the bound.
func TestSynFloodBoundedMemory(t *testing.T) {
	const max = 1 << 12
	tb := newTable(t, Config{MaxConns: max, Shards: 16})
	a, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	sched := &fixedSched{d: a.Dest}
	var c Conn
	flood := func(base int) (created, full int) {
		for i := 0; i < 50000; i++ {
			n := base + i
			f := flow("198.51.100.1", uint16(n), "192.0.2.1", 80, ProtoTCP)
			f.Src[13], f.Src[14] = byte(n>>16), byte(n>>24)
			switch tb.Connect(svc, &f, TCPSyn, 0, sched, &c) {
			case Created:
				created++
			case Full:
				full++
			}
		}
		return
	}
	created, full := flood(0)
	if tb.Len() > tb.Cap() || created+full != 50000 || full == 0 {
		t.Fatalf("len %d cap %d created %d full %d", tb.Len(), tb.Cap(), created, full)
	}
	runtime.GC()
	var m1, m2 runtime.MemStats
	runtime.ReadMemStats(&m1)
	flood(1 << 20)
	runtime.GC()
	runtime.ReadMemStats(&m2)
	if grow := int64(m2.HeapAlloc) - int64(m1.HeapAlloc); grow > 64<<10 {
		t.Fatalf("a second flood on a full table grew the heap by %d bytes", grow)
	}
	for i := range tb.shards {
		if n := tb.shards[i].allocated.Load(); n > tb.perShard {
			t.Fatalf("shard %d allocated %d entries, bound %d", i, n, tb.perShard)
		}
	}
}

func TestOnePacket(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64})
	a, _ := addServer(t, tb, "10.1.0.1:53", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 53, ProtoUDP)
	svc.OnePacket = true
	f := flow("198.51.100.1", 1, "192.0.2.1", 53, ProtoUDP)
	var c Conn
	if r := tb.Connect(svc, &f, 0, 0, &fixedSched{d: a.Dest}, &c); r != Created {
		t.Fatal(r)
	}
	if tb.Len() != 0 || c.Flags&FlagOnePacket == 0 || c.DPort != 53 || c.Valid() || counts(a) != [3]int32{0, 0, 0} {
		t.Fatalf("ops: len %d conn %+v counters %v", tb.Len(), c, counts(a))
	}
}

func TestOutboundAndListing(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64})
	a, _ := addServer(t, tb, "10.1.0.1:8080", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	f := flow("198.51.100.1", 40000, "192.0.2.1", 80, ProtoTCP)
	var c Conn
	tb.Connect(svc, &f, TCPSyn, 5*sec, &fixedSched{d: a.Dest}, &c)
	r := flow("10.1.0.1", 8080, "198.51.100.1", 40000, ProtoTCP)
	var o Conn
	if v := tb.Out(&r, TCPSyn|TCPAck, 5*sec, &o); v != Hit {
		t.Fatalf("reply: %s", v)
	}
	if o.VAddr != f.Dst || o.VPort != 80 || o.State != StateSynRecv {
		t.Fatalf("reply conn %+v", o)
	}
	// Wrong port or wrong server: miss.
	r2 := flow("10.1.0.1", 8081, "198.51.100.1", 40000, ProtoTCP)
	if v := tb.Out(&r2, TCPAck, 5*sec, &o); v != Miss {
		t.Fatalf("reply from another port: %s", v)
	}
	if !tb.LookupIn(&f, &o) || !tb.LookupOut(&r, &o) {
		t.Fatal("lookups failed")
	}
	tb.In(&f, TCPAck, 5*sec, &c)
	var ci ConnInfo
	tb.Range(5*sec, func(x *ConnInfo) bool { ci = *x; return true })
	got := string(ci.AppendListLine(nil))
	want := "TCP 15:00  ESTABLISHED 198.51.100.1:40000 192.0.2.1:80       10.1.0.1:8080\n"
	if got != want {
		t.Fatalf("listing\n got %q\nwant %q", got, want)
	}
	if !strings.HasPrefix(ListHeader, "IPVS connection entries\n") {
		t.Fatal(ListHeader)
	}
}

func TestFlushDestAndUnregister(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 256})
	a, ida := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	b, _ := addServer(t, tb, "10.1.0.2:80", MethodMasq, 0, 0)
	psvc := svcOf("192.0.2.1", 80, ProtoTCP)
	psvc.PersistTimeout = 300
	var c Conn
	for p := uint16(1); p <= 5; p++ {
		f := flow("198.51.100.1", p, "192.0.2.1", 80, ProtoTCP)
		tb.Connect(psvc, &f, TCPSyn, 0, &fixedSched{d: a.Dest}, &c)
		g := flow("198.51.100.2", p, "192.0.2.1", 80, ProtoTCP)
		tb.Connect(psvc, &g, TCPSyn, 0, &fixedSched{d: b.Dest}, &c)
	}
	if err := tb.UnregisterDest(ida); !errors.Is(err, ErrDestInUse) {
		t.Fatalf("unregister in use: %v", err)
	}
	if n := tb.FlushDest(ida); n != 6 {
		t.Fatalf("FlushDest freed %d, want 5 connections + 1 template", n)
	}
	if counts(a) != [3]int32{0, 0, 0} || counts(b) != [3]int32{5, 0, 1} {
		t.Fatalf("counters a %v b %v", counts(a), counts(b))
	}
	if err := tb.UnregisterDest(ida); err != nil {
		t.Fatal(err)
	}
	if tb.Dest(ida) != nil || tb.DestID(a.Dest) != NoDest {
		t.Fatal("still registered")
	}
	if n := tb.Flush(); n != 6 || tb.Len() != 0 {
		t.Fatalf("Flush freed %d", n)
	}
}

func TestStatsCountTemplates(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64})
	a, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoUDP)
	svc.PersistTimeout = 10
	var c Conn
	for i := byte(1); i <= 3; i++ {
		f := flow("198.51.100.1", 1, "192.0.2.1", 80, ProtoUDP)
		f.Src[15] = i
		tb.Connect(svc, &f, 0, 0, &fixedSched{d: a.Dest}, &c)
	}
	if st := tb.Stats(); st.Conns != 6 || st.Templates != 3 || st.Created != 6 {
		t.Fatalf("stats %+v", st)
	}
	tb.Sweep(400 * sec) // connections at 300 s, templates then (re-armed) at 360 s
	tb.Sweep(500 * sec)
	if st := tb.Stats(); st.Conns != 0 || st.Templates != 0 || st.Expired != 6 {
		t.Fatalf("stats after expiry %+v", st)
	}
}

func TestIPv6AndMixedFamilies(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64})
	nat6, _ := addServer(t, tb, "[2001:db8:1::10]:8080", MethodMasq, 0, 0)
	tun6, _ := addServer(t, tb, "[2001:db8:1::20]:80", MethodTunnel, 0, 0)
	svc := svcOf("2001:db8::80", 80, ProtoTCP)
	f := flow("2001:db8:2::1", 40000, "2001:db8::80", 80, ProtoTCP)
	var c Conn
	if r := tb.Connect(svc, &f, TCPSyn, 0, &fixedSched{d: nat6.Dest}, &c); r != Created {
		t.Fatal(r)
	}
	r := reply(&c)
	if v := tb.Out(&r, TCPSyn|TCPAck, 0, &c); v != Hit || !c.IPv6 || c.DPort != 8080 {
		t.Fatalf("IPv6 NAT reply: %s %+v", v, c)
	}
	// The same addresses as IPv4-mapped IPv4 are another flow.
	g := f
	g.IPv6 = false
	if tb.LookupIn(&g, &c) {
		t.Fatal("an IPv4 flow matched an IPv6 connection")
	}
	// IPv4 service tunnelled to an IPv6 real server (allowed with -i).
	svc4 := svcOf("192.0.2.1", 80, ProtoTCP)
	h := flow("198.51.100.1", 1, "192.0.2.1", 80, ProtoTCP)
	if r := tb.Connect(svc4, &h, TCPSyn, 0, &fixedSched{d: tun6.Dest}, &c); r != Created {
		t.Fatal(r)
	}
	if c.IPv6 || !c.DIPv6 || c.Method != MethodTunnel || c.Flags&FlagNoOutput == 0 {
		t.Fatalf("tunnel conn %+v", c)
	}
	var ci ConnInfo
	tb.Range(0, func(x *ConnInfo) bool {
		if !x.IPv6 {
			ci = *x
		}
		return true
	})
	if got := string(ci.AppendListLine(nil)); !strings.Contains(got, "198.51.100.1:1") || !strings.Contains(got, "[2001:db8:1::20]:80") {
		t.Fatalf("listing %q", got)
	}
}

func TestNewConfig(t *testing.T) {
	for _, bad := range []Config{{Shards: 3}, {MaxConns: -1}, {MaxConns: 1 << 31}, {Shards: 1 << 17}} {
		if _, err := New(bad); !errors.Is(err, ErrRange) {
			t.Errorf("New(%+v) = %v, want ErrRange", bad, err)
		}
	}
	tb := newTable(t, Config{MaxConns: 100, Shards: 8})
	if tb.Cap() != 104 || tb.Shards() != 8 {
		t.Errorf("cap %d shards %d, want 104 (100 rounded up to 8 shards) and 8", tb.Cap(), tb.Shards())
	}
	tb = newTable(t, Config{MaxConns: 10})
	if tb.Shards() > 10 || tb.Cap() < 10 {
		t.Errorf("default shards %d for 10 conns, cap %d", tb.Shards(), tb.Cap())
	}
	if _, err := tb.RegisterDest(nil, MethodMasq); !errors.Is(err, ErrNoDest) {
		t.Errorf("RegisterDest(nil) = %v", err)
	}
	a, id := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	if id2, err := tb.register(a.Dest, a, MethodRoute); err != nil || id2 != id {
		t.Errorf("re-register: %d %v, want the same id", id2, err)
	}
	if err := tb.SetDestMethod(id, 9); !errors.Is(err, ErrRange) {
		t.Errorf("method 9: %v", err)
	}
	small := newTable(t, Config{MaxConns: 10, MaxDests: 1})
	addServer(t, small, "10.1.0.1:80", MethodMasq, 0, 0)
	d := scheduler.NewDest(netip.MustParseAddrPort("10.1.0.2:80"), 1, 0, 0)
	if _, err := small.RegisterDest(d, MethodMasq); !errors.Is(err, ErrTooMany) {
		t.Errorf("beyond MaxDests: %v", err)
	}
}
