package conntrack

import (
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/ulvs/ulvs/scheduler"
)

const sec = int64(1e9)

// testServer wraps a real Dest (its counters are the real ones) and lets a
// test decide availability and weight, which only scheduler.Pool could set.
type testServer struct {
	*scheduler.Dest
	unavailable atomic.Bool
	weight      atomic.Int32
	binds       atomic.Int32
}

func (s *testServer) Available() bool { return !s.unavailable.Load() }
func (s *testServer) Weight() int32   { return s.weight.Load() }
func (s *testServer) Bind(template, active bool) {
	s.binds.Add(1)
	s.Dest.Bind(template, active)
}

// fixedSched always picks d and counts its calls.
type fixedSched struct {
	d     *scheduler.Dest
	calls int
}

func (f *fixedSched) Schedule(*scheduler.Flow, int64) *scheduler.Dest {
	f.calls++
	return f.d
}

// rrSched cycles through ds, skipping servers marked unavailable.
type rrSched struct {
	ds    []*testServer
	i     int
	calls int
}

func (r *rrSched) Schedule(*scheduler.Flow, int64) *scheduler.Dest {
	r.calls++
	for n := 0; n < len(r.ds); n++ {
		s := r.ds[r.i%len(r.ds)]
		r.i++
		if s.Available() && s.Weight() > 0 {
			return s.Dest
		}
	}
	return nil
}

func newTable(t testing.TB, cfg Config) *Table {
	t.Helper()
	tb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func addServer(t testing.TB, tb *Table, ap string, m Method, upper, lower uint32) (*testServer, DestID) {
	t.Helper()
	d := scheduler.NewDest(netip.MustParseAddrPort(ap), 1, upper, lower)
	s := &testServer{Dest: d}
	s.weight.Store(1)
	id, err := tb.register(d, s, m)
	if err != nil {
		t.Fatal(err)
	}
	return s, id
}

func flow(src string, sport uint16, dst string, dport uint16, proto uint8) scheduler.Flow {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	return scheduler.Flow{Src: s.As16(), Dst: d.As16(), SrcPort: sport, DstPort: dport, Proto: proto, IPv6: s.Is6()}
}

// reply is the NAT reply of a connection: from the real server to the client.
func reply(c *Conn) scheduler.Flow {
	return scheduler.Flow{Src: c.DAddr, Dst: c.CAddr, SrcPort: c.DPort, DstPort: c.CPort, Proto: c.Proto, IPv6: c.IPv6}
}

func svcOf(addr string, port uint16, proto uint8) *Service {
	a := netip.MustParseAddr(addr)
	return &Service{Proto: proto, Addr: a.As16(), Port: port, IPv6: a.Is6()}
}

// info returns the listing entry of c (or fails).
func info(t testing.TB, tb *Table, c *Conn, now int64) ConnInfo {
	t.Helper()
	var out ConnInfo
	found := false
	tb.Range(now, func(ci *ConnInfo) bool {
		if ci.ref == c.ref && ci.gen == c.gen {
			out, found = *ci, true
			return false
		}
		return true
	})
	if !found {
		t.Fatalf("connection %v:%d not in table", c.CAddr, c.CPort)
	}
	return out
}

// templates returns the live templates.
func templates(tb *Table, now int64) []ConnInfo {
	var out []ConnInfo
	tb.Range(now, func(ci *ConnInfo) bool {
		if ci.Flags&FlagTemplate != 0 {
			out = append(out, *ci)
		}
		return true
	})
	return out
}

// forceState puts a connection in state st, moving the server counters as a
// transition would (test set-up for the state table cells).
func forceState(t testing.TB, tb *Table, c *Conn, st State) {
	t.Helper()
	si, li := tb.split(c.ref - 1)
	s := &tb.shards[si]
	e := tb.at(s, li)
	for {
		old := e.ctl.Load()
		nc := ctlSetState(old, st)
		if st.active() {
			nc &^= ctlInactive
		} else {
			nc |= ctlInactive
		}
		if e.ctl.CompareAndSwap(old, nc) {
			if (old^nc)&ctlInactive != 0 {
				tb.dests.get(c.Dest).srv.SetActive(nc&ctlInactive == 0)
			}
			return
		}
	}
}

func counts(s *testServer) [3]int32 {
	return [3]int32{s.ActiveConns(), s.InactiveConns(), s.PersistentConns()}
}

// udpConn returns a table with one masq server for the UDP service
// 192.0.2.1:53 and a connection to it, created at time 0.
func udpConn(t testing.TB) (*Table, *testServer, scheduler.Flow, Conn) {
	t.Helper()
	tb := newTable(t, Config{MaxConns: 64})
	srv, _ := addServer(t, tb, "10.1.0.1:53", MethodMasq, 0, 0)
	f := flow("198.51.100.7", 5353, "192.0.2.1", 53, ProtoUDP)
	var c Conn
	if r := tb.Connect(svcOf("192.0.2.1", 53, ProtoUDP), &f, 0, 0, &fixedSched{d: srv.Dest}, &c); r != Created {
		t.Fatal(r)
	}
	return tb, srv, f, c
}
