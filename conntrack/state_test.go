package conntrack

import (
	"errors"
	"strings"
	"testing"
)

// specTCPTable is IPVS-SPEC.md §4 copied verbatim; the test parses it, so
// every cell is checked against the spec's text, not against state.go.
const specTCPTable = `
| dir/ev | NO | ES | SS | SR | FW | TW | CL | CW | LA | LI | SA |
|---|---|---|---|---|---|---|---|---|---|---|---|
| IN syn | SR | ES | ES | SR | SR | SR | SR | SR | SR | SR | SR |
| IN fin | CL | CW | SS | TW | TW | TW | CL | CW | LA | LI | TW |
| IN ack | ES | ES | SS | ES | FW | TW | CL | CW | CL | LI | ES |
| IN rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | SR |
| OUT syn | SS | ES | SS | SR | SS | SS | SS | SS | SS | LI | SR |
| OUT fin | TW | FW | SS | TW | FW | TW | CL | TW | LA | LI | TW |
| OUT ack | ES | ES | SS | ES | FW | TW | CL | CW | LA | ES | ES |
| OUT rst | CL | CL | SS | CL | CL | TW | CL | CL | CL | CL | CL |
| INONLY syn | SR | ES | ES | SR | SR | SR | SR | SR | SR | SR | SR |
| INONLY fin | CL | FW | SS | TW | FW | TW | CL | CW | LA | LI | TW |
| INONLY ack | ES | ES | SS | ES | FW | TW | CL | CW | CL | LI | ES |
| INONLY rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | CL |
`

// specTimeouts is the §4 default timeout table.
var specTimeouts = map[string]int{
	"NONE": 2, "ESTABLISHED": 900, "SYN_SENT": 120, "SYN_RECV": 60, "FIN_WAIT": 120,
	"TIME_WAIT": 120, "CLOSE": 10, "CLOSE_WAIT": 60, "LAST_ACK": 30, "LISTEN": 120, "SYNACK": 120,
}

var abbrev = map[string]string{
	"NO": "NONE", "ES": "ESTABLISHED", "SS": "SYN_SENT", "SR": "SYN_RECV", "FW": "FIN_WAIT",
	"TW": "TIME_WAIT", "CL": "CLOSE", "CW": "CLOSE_WAIT", "LA": "LAST_ACK", "LI": "LISTEN", "SA": "SYNACK",
}

// specActive is §3: active means ES, SYN_SENT, SYN_RECV or SYNACK.
var specActive = map[string]bool{"ESTABLISHED": true, "SYN_SENT": true, "SYN_RECV": true, "SYNACK": true}

var evFlags = map[string]uint8{"syn": TCPSyn, "fin": TCPFin, "ack": TCPAck, "rst": TCPRst}

func stateByName(t *testing.T, name string) State {
	for s := State(0); s < numTCPStates; s++ {
		if s.Name(ProtoTCP) == name {
			return s
		}
	}
	t.Fatalf("no state %q", name)
	return 0
}

type cell struct {
	dir, ev, from, to string
}

func parseSpecTable(t *testing.T) []cell {
	var cols []string
	var cells []cell
	for _, line := range strings.Split(strings.TrimSpace(specTCPTable), "\n") {
		f := strings.Split(strings.Trim(line, "|"), "|")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		switch {
		case f[0] == "dir/ev":
			cols = f[1:]
		case strings.HasPrefix(f[0], "---"):
		default:
			de := strings.Fields(f[0])
			for i, to := range f[1:] {
				cells = append(cells, cell{de[0], de[1], abbrev[cols[i]], abbrev[to]})
			}
		}
	}
	if len(cells) != 12*11 {
		t.Fatalf("parsed %d cells, want 132", len(cells))
	}
	return cells
}

func TestNextTCPStateMatchesSpec(t *testing.T) {
	for _, c := range parseSpecTable(t) {
		got := NextTCPState(stateByName(t, c.from), evFlags[c.ev], c.dir == "OUT", c.dir == "INONLY")
		if got.Name(ProtoTCP) != c.to {
			t.Errorf("%s %s from %s: got %s, want %s", c.dir, c.ev, c.from, got.Name(ProtoTCP), c.to)
		}
	}
	// Event order RST, SYN, FIN, ACK: the first flag set wins.
	if got := NextTCPState(StateEstablished, TCPSyn|TCPRst|TCPFin|TCPAck, false, false); got != StateClose {
		t.Errorf("RST+SYN+FIN+ACK on ES = %s, want CLOSE (rst wins)", got.Name(ProtoTCP))
	}
	if got := NextTCPState(StateEstablished, TCPSyn|TCPFin|TCPAck, false, false); got != StateEstablished {
		t.Errorf("SYN+FIN+ACK on ES = %s, want ESTABLISHED (syn wins)", got.Name(ProtoTCP))
	}
	if got := NextTCPState(StateEstablished, TCPFin|TCPAck, false, false); got != StateCloseWait {
		t.Errorf("FIN+ACK on ES = %s, want CLOSE_WAIT (fin wins over ack)", got.Name(ProtoTCP))
	}
	if got := NextTCPState(StateEstablished, 0x08 /* PSH only */, false, false); got != StateClose {
		t.Errorf("no flag on ES = %s, want CLOSE", got.Name(ProtoTCP))
	}
}

// TestTCPStateCellsThroughTable drives every cell of the spec table through
// real connections: state, timeout and the server's counters.
func TestTCPStateCellsThroughTable(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 4096})
	if err := tb.SetSettings(Settings{ConnReuseMode: 0}); err != nil { // let SYN hit TW/CL cells
		t.Fatal(err)
	}
	natSrv, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	drSrv, _ := addServer(t, tb, "10.1.0.2:80", MethodRoute, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	now := 1000 * sec
	port := uint16(1000)
	for _, cl := range parseSpecTable(t) {
		port++
		srv := natSrv
		if cl.dir == "INONLY" {
			srv = drSrv
		}
		before := counts(srv)
		f := flow("198.51.100.7", port, "192.0.2.1", 80, ProtoTCP)
		var c Conn
		if r := tb.Connect(svc, &f, TCPSyn, now, &fixedSched{d: srv.Dest}, &c); r != Created {
			t.Fatalf("Connect = %s", r)
		}
		if cl.dir == "INONLY" && c.Flags&FlagNoOutput == 0 {
			t.Fatalf("DR connection without NOOUTPUT")
		}
		if cl.dir != "INONLY" && c.Flags&FlagNoOutput != 0 {
			t.Fatalf("NAT connection with NOOUTPUT")
		}
		forceState(t, tb, &c, stateByName(t, cl.from))
		var got Conn
		var v Verdict
		if cl.dir == "OUT" {
			r := reply(&c)
			v = tb.Out(&r, evFlags[cl.ev], now, &got)
		} else {
			v = tb.In(&f, evFlags[cl.ev], now, &got)
		}
		if v != Hit {
			t.Fatalf("%s %s from %s: verdict %s", cl.dir, cl.ev, cl.from, v)
		}
		name := got.State.Name(ProtoTCP)
		if name != cl.to {
			t.Errorf("%s %s from %s: state %s, want %s", cl.dir, cl.ev, cl.from, name, cl.to)
		}
		ci := info(t, tb, &got, now)
		if want := int64(specTimeouts[cl.to]) * sec; ci.Expires != want {
			t.Errorf("%s %s from %s: expires in %d s, want %d", cl.dir, cl.ev, cl.from, ci.Expires/sec, want/sec)
		}
		delta := counts(srv)
		delta[0] -= before[0]
		delta[1] -= before[1]
		wantA, wantI := int32(0), int32(1)
		if specActive[cl.to] {
			wantA, wantI = 1, 0
		}
		if delta[0] != wantA || delta[1] != wantI {
			t.Errorf("%s %s from %s -> %s: active/inactive +%d/+%d, want +%d/+%d", cl.dir, cl.ev, cl.from, cl.to, delta[0], delta[1], wantA, wantI)
		}
		if (got.Flags&FlagInactive != 0) == specActive[cl.to] {
			t.Errorf("%s: INACTIVE flag %v in state %s", cl.dir, got.Flags&FlagInactive != 0, cl.to)
		}
	}
}

func TestOutputClearsNoOutput(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64})
	srv, _ := addServer(t, tb, "10.1.0.2:80", MethodRoute, 0, 0)
	svc := svcOf("192.0.2.1", 80, ProtoTCP)
	f := flow("198.51.100.7", 5000, "192.0.2.1", 80, ProtoTCP)
	var c Conn
	tb.Connect(svc, &f, TCPSyn, 0, &fixedSched{d: srv.Dest}, &c)
	if c.Flags&FlagNoOutput == 0 || c.State != StateSynRecv {
		t.Fatalf("after SYN: flags %#x state %s", c.Flags, c.State.Name(ProtoTCP))
	}
	// INPUT-ONLY: FIN on ES goes to FIN_WAIT (IN would give CLOSE_WAIT).
	tb.In(&f, TCPAck, 0, &c)
	// DR: the packet from the VIP back to the client matches by vaddr:vport.
	r := f
	r.Src, r.Dst, r.SrcPort, r.DstPort = f.Dst, f.Src, f.DstPort, f.SrcPort
	if v := tb.Out(&r, TCPAck, 0, &c); v != Hit {
		t.Fatalf("Out on DR connection: %s", v)
	}
	if c.Flags&FlagNoOutput != 0 {
		t.Fatalf("NOOUTPUT still set after an output packet")
	}
	tb.In(&f, TCPFin, 0, &c)
	if c.State != StateCloseWait {
		t.Fatalf("IN fin on ES after output = %s, want CLOSE_WAIT (IN table)", c.State.Name(ProtoTCP))
	}
}

func TestSetTimeouts(t *testing.T) {
	tb := newTable(t, Config{MaxConns: 64})
	if a, b, c := tb.Timeouts(); a != 900 || b != 120 || c != 300 {
		t.Fatalf("defaults %d %d %d, want 900 120 300", a, b, c)
	}
	if err := tb.SetTimeouts(100, 0, 50); err != nil {
		t.Fatal(err)
	}
	if a, b, c := tb.Timeouts(); a != 100 || b != 120 || c != 50 {
		t.Fatalf("after --set 100 0 50: %d %d %d", a, b, c)
	}
	for _, bad := range [][3]int{{-1, 0, 0}, {0, -5, 0}, {0, 0, MaxTimeout + 1}} {
		err := tb.SetTimeouts(bad[0], bad[1], bad[2])
		if !errors.Is(err, ErrRange) {
			t.Errorf("SetTimeouts%v = %v, want ErrRange", bad, err)
		}
	}
	if a, b, c := tb.Timeouts(); a != 100 || b != 120 || c != 50 {
		t.Fatalf("a rejected --set changed values: %d %d %d", a, b, c)
	}
	if err := tb.SetTimeouts(MaxTimeout, MaxTimeout, MaxTimeout); err != nil {
		t.Fatalf("31 days rejected: %v", err)
	}
	// An established connection picks up the new value at its next packet.
	tb.SetTimeouts(42, 0, 0)
	srv, _ := addServer(t, tb, "10.1.0.1:80", MethodMasq, 0, 0)
	f := flow("198.51.100.7", 5000, "192.0.2.1", 80, ProtoTCP)
	var c Conn
	tb.Connect(svcOf("192.0.2.1", 80, ProtoTCP), &f, TCPSyn, 0, &fixedSched{d: srv.Dest}, &c)
	tb.In(&f, TCPAck, 0, &c)
	if ci := info(t, tb, &c, 0); ci.Expires != 42*sec {
		t.Fatalf("ES expires in %d s, want 42", ci.Expires/sec)
	}
	tb.SetTimeouts(77, 0, 0)
	tb.In(&f, TCPAck, 10*sec, &c)
	if ci := info(t, tb, &c, 10*sec); ci.Expires != 77*sec {
		t.Fatalf("after --set 77: expires in %d s, want 77", ci.Expires/sec)
	}
}

func TestUDPAlwaysInactiveAndRefreshed(t *testing.T) {
	tb, srv, f, c := udpConn(t)
	if c.State.Name(ProtoUDP) != "UDP" || c.Flags&FlagInactive == 0 {
		t.Fatalf("UDP conn state %s flags %#x", c.State.Name(ProtoUDP), c.Flags)
	}
	if got := counts(srv); got != [3]int32{0, 1, 0} {
		t.Fatalf("counters %v, want 0 active 1 inactive", got)
	}
	for i := int64(1); i <= 5; i++ {
		tb.In(&f, 0, i*100*sec, &c)
		r := reply(&c)
		tb.Out(&r, 0, i*100*sec, &c)
		if ci := info(t, tb, &c, i*100*sec); ci.Expires != 300*sec {
			t.Fatalf("packet %d: expires in %d s, want 300 (refreshed)", i, ci.Expires/sec)
		}
	}
	if got := counts(srv); got != [3]int32{0, 1, 0} {
		t.Fatalf("after traffic: counters %v, want 0/1/0 (UDP is always inactive)", got)
	}
	if c.InPkts != 6 {
		t.Fatalf("in_pkts %d, want 6 (inbound packets only)", c.InPkts)
	}
	// Expiry: nothing at 799 s, gone after 800 s (+ at most one wheel slot).
	if n := tb.Sweep(799 * sec); n != 0 || tb.Len() != 1 {
		t.Fatalf("swept %d before expiry", n)
	}
	if n := tb.Sweep(801 * sec); n != 1 || tb.Len() != 0 {
		t.Fatalf("Sweep after expiry freed %d, len %d", n, tb.Len())
	}
	if got := counts(srv); got != [3]int32{0, 0, 0} {
		t.Fatalf("after expiry: counters %v", got)
	}
}
