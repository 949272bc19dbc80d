package connsync

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"
)

type collect struct{ got []Conn }

func (s *collect) SyncConn(c *Conn) { s.got = append(s.got, *c) }

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.Join(strings.Fields(s), "")
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var v4conn = Conn{
	Protocol: ProtoTCP,
	Flags:    FlagDRoute | FlagNoOutput | FlagHashed, // HASHED must not be sent
	State:    TCPEstablished,
	CPort:    40000, VPort: 80, DPort: 8080,
	Fwmark:  7,
	Timeout: 900,
	CAddr:   netip.MustParseAddr("192.0.2.10"),
	VAddr:   netip.MustParseAddr("198.51.100.1"),
	DAddr:   netip.MustParseAddr("10.0.1.5"),
}

// golden4 is the v1 message holding v4conn, written by hand from the
// IPVS-SPEC §8 tables.
const golden4 = `
00 05 002c 01 01 0000          # reserved, syncid 5, size 44, nr_conns 1, version 1, spare
00 06 0024                     # type IPv4, TCP, ver_size = version 0 | 36
00000083                       # flags DROUTE|NOOUTPUT (HASHED stripped)
0001                           # state ES
9c40 0050 1f90                 # cport 40000, vport 80, dport 8080
00000007 00000384              # fwmark 7, timeout 900
c000020a c6336401 0a000105     # caddr vaddr daddr
`

var v6conn = Conn{
	Protocol: ProtoUDP,
	IPv6:     true,
	Flags:    FlagMasq | FlagInactive,
	State:    0,
	CPort:    5353, VPort: 53, DPort: 53,
	Timeout: 300,
	CAddr:   netip.MustParseAddr("2001:db8::10"),
	VAddr:   netip.MustParseAddr("2001:db8:1::1"),
	DAddr:   netip.MustParseAddr("fd00::5"),
	HasSeq:  true,
	InSeq:   Seq{1, 2, 3},
	OutSeq:  Seq{4, 5, 6},
}

// golden6 holds v6conn (with SEQ_DATA: 72+26 = 98 bytes, unpadded because it
// is the last entry) followed by v4conn, which must start 2 bytes of padding
// later, at offset 8+100.
const golden6 = `
00 00 00a8 02 01 0000          # size 8+98+2+36 = 144 = 0x90? see test
01 11 0062                     # IPv6, UDP, 98
00000100 0000                  # INACTIVE, state 0
14e9 0035 0035                 # ports
00000000 0000012c              # fwmark 0, timeout 300
20010db8000000000000000000000010
20010db8000100000000000000000001
fd000000000000000000000000000005
01 18 00000001 00000002 00000003 00000004 00000005 00000006
0000                           # padding before the next entry
00 06 0024 00000083 0001 9c40 0050 1f90 00000007 00000384 c000020a c6336401 0a000105
`

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		b.WriteString(l)
		b.WriteByte(' ')
	}
	return b.String()
}

func TestGoldenIPv4(t *testing.T) {
	want := unhex(t, stripComments(golden4))
	e := NewEncoder(5, 0)
	c := v4conn
	if !e.Add(&c) {
		t.Fatal("Add refused")
	}
	if !bytes.Equal(e.Bytes(), want) {
		t.Fatalf("encode:\n got %x\nwant %x", e.Bytes(), want)
	}
	var d Decoder
	var s collect
	r := d.Decode(want, &s)
	if r.Reason != OK || r.Version != 1 || r.Conns != 1 {
		t.Fatalf("decode result %+v", r)
	}
	exp := v4conn
	exp.Flags = (exp.Flags &^ FlagHashed) | FlagSync
	if s.got[0] != exp {
		t.Fatalf("decoded %+v\nwant    %+v", s.got[0], exp)
	}
}

func TestGoldenIPv6WithSeqAndPadding(t *testing.T) {
	want := unhex(t, stripComments(golden6))
	// Fix the size byte written in the golden text: 8 + 98 + 2 + 36 = 144.
	if len(want) != 144 {
		t.Fatalf("golden length %d", len(want))
	}
	want[2], want[3] = 0, 144
	e := NewEncoder(0, 0)
	a, b := v6conn, v4conn
	if !e.Add(&a) || !e.Add(&b) {
		t.Fatal("Add refused")
	}
	if !bytes.Equal(e.Bytes(), want) {
		t.Fatalf("encode:\n got %x\nwant %x", e.Bytes(), want)
	}
	var d Decoder
	var s collect
	r := d.Decode(want, &s)
	if r.Reason != OK || r.Conns != 2 {
		t.Fatalf("decode %+v", r)
	}
	exp := v6conn
	exp.Flags |= FlagSync
	if s.got[0] != exp {
		t.Fatalf("decoded %+v\nwant    %+v", s.got[0], exp)
	}
}

func TestRoundTripFull(t *testing.T) {
	e := NewEncoder(9, DefaultMaxLen)
	var in []Conn
	for i := 0; ; i++ {
		c := v4conn
		c.CPort = uint16(i)
		c.Flags &^= FlagHashed
		if i%3 == 0 {
			c = v6conn
			c.CPort = uint16(i)
		}
		if !e.Add(&c) {
			break
		}
		in = append(in, c)
	}
	if e.Len() > DefaultMaxLen {
		t.Fatalf("message %d bytes > maxlen", e.Len())
	}
	if len(in) < 20 {
		t.Fatalf("only %d entries fit", len(in))
	}
	d := Decoder{SyncID: 9}
	var s collect
	r := d.Decode(e.Bytes(), &s)
	if r.Reason != OK || r.Conns != len(in) {
		t.Fatalf("decode %+v, want %d conns", r, len(in))
	}
	for i := range in {
		in[i].Flags |= FlagSync
		if s.got[i] != in[i] {
			t.Fatalf("entry %d: %+v != %+v", i, s.got[i], in[i])
		}
	}
	// The 255-entry limit holds even with a large maxlen.
	e = NewEncoder(0, 65535)
	c := v4conn
	n := 0
	for e.Add(&c) {
		n++
	}
	if n != MaxConns {
		t.Fatalf("%d entries in one message, want 255", n)
	}
}

func TestSyncIDFilter(t *testing.T) {
	e := NewEncoder(5, 0)
	c := v4conn
	e.Add(&c)
	var s collect
	if r := (&Decoder{SyncID: 6}).Decode(e.Bytes(), &s); r.Reason != MsgSyncID || len(s.got) != 0 {
		t.Fatalf("syncid 6 accepted message of 5: %+v", r)
	}
	if r := (&Decoder{SyncID: 0}).Decode(e.Bytes(), &s); r.Reason != OK || len(s.got) != 1 {
		t.Fatalf("syncid 0 must accept all: %+v", r)
	}
}

func msgWith(t *testing.T, conns ...Conn) []byte {
	e := NewEncoder(0, 0)
	for i := range conns {
		if !e.Add(&conns[i]) {
			t.Fatal("add")
		}
	}
	return append([]byte(nil), e.Bytes()...)
}

func TestMalformed(t *testing.T) {
	good := msgWith(t, v4conn, v4conn)
	cases := []struct {
		name   string
		mangle func([]byte) []byte
		reason Reason
		conns  int
		ver    uint8
		any    bool // only the version is checked
	}{
		{"short", func(b []byte) []byte { return b[:3] }, MsgShort, 0, 0, false},
		{"size mismatch", func(b []byte) []byte { return b[:len(b)-1] }, MsgSizeMismatch, 0, 0, false},
		{"size field too big", func(b []byte) []byte { b[3]++; return b }, MsgSizeMismatch, 0, 0, false},
		{"nr_conns beyond data", func(b []byte) []byte { b[4] = 3; return b }, MsgTruncated, 2, 1, false},
		{"entry version", func(b []byte) []byte { b[8+36+2] |= 0x10; return b }, MsgEntryVersion, 1, 1, false},
		{"entry size past end", func(b []byte) []byte { b[8+36+3] = 40; return b }, MsgTruncated, 1, 1, false},
		{"entry size too small", func(b []byte) []byte { b[8+3] = 8; return b }, MsgTruncated, 0, 1, false},
		{"bad type", func(b []byte) []byte { b[8] = 2; return b }, MsgBadType, 0, 1, false},
		{"bad protocol", func(b []byte) []byte { b[9] = 99; return b }, OK, 1, 1, false},
		{"bad state", func(b []byte) []byte { b[8+9] = 42; return b }, OK, 1, 1, false},
		// reserved != 0 or spare != 0 -> the v0 path reads it differently
		{"reserved set -> v0", func(b []byte) []byte { b[0] = 1; return b }, 0, 0, 0, true},
		{"spare set -> v0", func(b []byte) []byte { b[7] = 1; return b }, 0, 0, 0, true},
		{"version 2 -> v0", func(b []byte) []byte { b[5] = 2; return b }, 0, 0, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mangle(append([]byte(nil), good...))
			var s collect
			r := (&Decoder{}).Decode(b, &s)
			if r.Version != tc.ver {
				t.Fatalf("version %d, want %d (%+v)", r.Version, tc.ver, r)
			}
			if !tc.any {
				if r.Reason != tc.reason || r.Conns != tc.conns {
					t.Fatalf("got %v/%d conns, want %v/%d", r.Reason, r.Conns, tc.reason, tc.conns)
				}
			}
		})
	}
}

// entryWithOption builds a message with one IPv4 entry carrying the given
// raw option bytes, then a plain entry.
func entryWithOption(t *testing.T, opt []byte) []byte {
	e := AppendEntry(nil, &v4conn)
	e = append(e, opt...)
	e[2], e[3] = byte(len(e)>>8), byte(len(e))
	for len(e)&3 != 0 {
		e = append(e, 0)
	}
	e = AppendEntry(e, &v4conn)
	m := append([]byte{0, 0, 0, 0, 2, 1, 0, 0}, e...)
	m[2], m[3] = byte(len(m)>>8), byte(len(m))
	return m
}

func TestOptions(t *testing.T) {
	cases := []struct {
		name      string
		opt       []byte
		reason    Reason
		conns     int
		entryDrop Reason
	}{
		{"unknown optional skipped", []byte{0x40 | 9, 2, 0xaa, 0xbb}, OK, 2, OK},
		{"unknown mandatory drops entry only", []byte{9, 2, 0xaa, 0xbb}, OK, 1, EntryMandatoryOpt},
		{"pe name drops entry", []byte{OptPEName, 3, 's', 'i', 'p'}, OK, 1, EntryPE},
		{"pe name too long", append([]byte{OptPEName, 17}, make([]byte, 17)...), MsgBadOption, 0, OK},
		{"pe data ok + name", append([]byte{OptPEData, 4, 1, 2, 3, 4, OptPEName, 3}, "sip"...), OK, 1, EntryPE},
		{"zero length option", []byte{OptPEData, 0}, MsgBadOption, 0, OK},
		{"option past entry", []byte{OptPEData, 9, 1}, MsgBadOption, 0, OK},
		{"seq wrong length", append([]byte{OptSeqData, 23}, make([]byte, 23)...), MsgBadOption, 0, OK},
		{"seq twice", append(append([]byte{OptSeqData, 24}, make([]byte, 24)...), append([]byte{OptSeqData, 24}, make([]byte, 24)...)...), MsgBadOption, 0, OK},
		{"lone option type byte", []byte{OptSeqData}, MsgBadOption, 0, OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := entryWithOption(t, tc.opt)
			var s collect
			r := (&Decoder{}).Decode(m, &s)
			if r.Reason != tc.reason || r.Conns != tc.conns {
				t.Fatalf("got %v/%d, want %v/%d", r.Reason, r.Conns, tc.reason, tc.conns)
			}
			if tc.entryDrop != OK && r.Entries[tc.entryDrop] != 1 {
				t.Fatalf("entry drop %v not counted: %+v", tc.entryDrop, r.Entries)
			}
		})
	}
}

func TestDecodeV0(t *testing.T) {
	// Built by hand from the v0 layout: header nr_conns 2, syncid 0, size;
	// an entry without and an entry with sequence data (IN_SEQ flag).
	m := unhex(t, stripComments(`
02 00 0064
00 06 1f90 0050 0050 0a000001 0a000002 0a000003 0003 0001
00 06 1f91 0050 0050 0a000001 0a000002 0a000003 0400 0004
00000001 00000002 00000003 00000004 00000005 00000006
`))
	if len(m) != 4+24+24+24 {
		t.Fatalf("len %d", len(m))
	}
	m[3] = byte(len(m))
	var s collect
	r := (&Decoder{}).Decode(m, &s)
	if r.Version != 0 || r.Reason != OK || r.Conns != 2 {
		t.Fatalf("%+v", r)
	}
	c := s.got[0]
	if c.CPort != 8080 || c.VPort != 80 || c.CAddr != netip.MustParseAddr("10.0.0.1") || c.DAddr != netip.MustParseAddr("10.0.0.3") ||
		c.Flags != FlagDRoute|FlagSync || c.State != TCPEstablished || c.Timeout != 0 {
		t.Fatalf("entry 0: %+v", c)
	}
	c = s.got[1]
	if !c.HasSeq || c.InSeq != (Seq{1, 2, 3}) || c.OutSeq != (Seq{4, 5, 6}) || c.State != TCPFinWait {
		t.Fatalf("entry 1: %+v", c)
	}
	// Truncated sequence data.
	m2 := append([]byte(nil), m[:len(m)-4]...)
	m2[3] = byte(len(m2))
	if r := (&Decoder{}).Decode(m2, &s); r.Reason != MsgTruncated || r.Conns != 1 {
		t.Fatalf("truncated v0: %+v", r)
	}
}

func TestShouldSync(t *testing.T) {
	cases := []struct {
		proto      uint8
		state, old uint16
		pkts       uint32
		tmpl       bool
		want       bool
	}{
		{ProtoTCP, TCPEstablished, TCPEstablished, 3, false, true},
		{ProtoTCP, TCPEstablished, TCPEstablished, 53, false, true},
		{ProtoTCP, TCPEstablished, TCPEstablished, 4, false, false},
		{ProtoTCP, TCPEstablished, TCPSynRecv, 1, false, false}, // entering ES is not immediate
		{ProtoTCP, TCPSynRecv, TCPSynRecv, 3, false, false},     // not in a synced state
		{ProtoTCP, TCPFinWait, TCPEstablished, 17, false, true}, // entering FW: at once
		{ProtoTCP, TCPFinWait, TCPFinWait, 17, false, false},
		{ProtoTCP, TCPTimeWait, TCPFinWait, 1, false, true},
		{ProtoTCP, TCPCloseWait, TCPEstablished, 1, false, true},
		{ProtoTCP, TCPClose, TCPSynRecv, 1, false, true},
		{ProtoTCP, TCPLastAck, TCPCloseWait, 3, false, false},
		{ProtoUDP, 0, 0, 3, false, true},
		{ProtoUDP, 0, 0, 103, false, true},
		{ProtoUDP, 0, 0, 50, false, false},
		{ProtoTCP, 0, 0, 3, true, false},
	}
	for i, tc := range cases {
		c := Conn{Protocol: tc.proto, State: tc.state, OldState: tc.old, InPkts: tc.pkts}
		if tc.tmpl {
			c.Flags = FlagTemplate
		}
		if got := ShouldSync(&c, DefaultThreshold, DefaultPeriod); got != tc.want {
			t.Errorf("case %d %+v: got %v", i, tc, got)
		}
	}
}

type fakeWriter struct {
	msgs [][]byte
	fail bool
}

func (w *fakeWriter) WriteSync(b []byte) error {
	if w.fail {
		return errTest
	}
	w.msgs = append(w.msgs, append([]byte(nil), b...))
	return nil
}

type testErr struct{}

func (testErr) Error() string { return "test" }

var errTest error = testErr{}

func TestSenderFlushRules(t *testing.T) {
	now := time.Unix(1000, 0)
	w := &fakeWriter{}
	s := NewSender(w, 3, 0, func() time.Time { return now })
	c := v4conn
	// Fill exactly one message: (1472-8)/36 = 40 entries.
	for i := 0; i < 40; i++ {
		c.CPort = uint16(i)
		s.Enqueue(&c)
	}
	if len(w.msgs) != 0 {
		t.Fatalf("flushed early: %d", len(w.msgs))
	}
	c.CPort = 40
	s.Enqueue(&c) // does not fit: the full message goes out
	if len(w.msgs) != 1 || len(w.msgs[0]) != 8+40*36 {
		t.Fatalf("full flush: %d msgs", len(w.msgs))
	}
	// The remaining entry leaves 2 s after its first use, not before.
	s.Tick(now.Add(1999 * time.Millisecond))
	if len(w.msgs) != 1 {
		t.Fatal("flushed before 2 s")
	}
	s.Tick(now.Add(2 * time.Second))
	if len(w.msgs) != 2 {
		t.Fatal("not flushed after 2 s")
	}
	var sc collect
	r := (&Decoder{SyncID: 3}).Decode(w.msgs[1], &sc)
	if r.Conns != 1 || sc.got[0].CPort != 40 {
		t.Fatalf("second message %+v", r)
	}
	// Template after child.
	tm := v4conn
	tm.Flags = FlagTemplate
	tm.CPort = 0
	s.EnqueueWithTemplate(&c, &tm)
	s.Flush()
	sc.got = nil
	(&Decoder{}).Decode(w.msgs[2], &sc)
	if len(sc.got) != 2 || sc.got[1].Flags&FlagTemplate == 0 {
		t.Fatalf("template not sent after its child: %+v", sc.got)
	}
	st := s.Stats()
	if st.Messages != 3 || st.Entries != 43 || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
	w.fail = true
	s.Enqueue(&c)
	s.Flush()
	if s.Stats().Errors != 1 {
		t.Fatal("write error not counted")
	}
}

type nopWriter struct{ n int }

func (w *nopWriter) WriteSync(b []byte) error { w.n += len(b); return nil }

func TestSenderNoAlloc(t *testing.T) {
	now := time.Unix(1, 0)
	s := NewSender(&nopWriter{}, 0, 0, func() time.Time { return now })
	c := v6conn
	allocs := testing.AllocsPerRun(2000, func() {
		c.CPort++
		if ShouldSync(&c, 3, 50) || true {
			s.Enqueue(&c)
		}
		s.Tick(now)
	})
	if allocs != 0 {
		t.Fatalf("Enqueue allocates %.1f per call", allocs)
	}
	var d Decoder
	msg := msgWith(t, v4conn, v6conn, v4conn)
	sink := &countSink{}
	allocs = testing.AllocsPerRun(1000, func() { d.Decode(msg, sink) })
	if allocs != 0 {
		t.Fatalf("Decode allocates %.1f per message", allocs)
	}
}

type countSink struct{ n int }

func (s *countSink) SyncConn(*Conn) { s.n++ }

type sliceSource []Conn

func (s sliceSource) RangeConns(fn func(*Conn) bool) {
	for i := range s {
		if !fn(&s[i]) {
			return
		}
	}
}

func TestSendBulk(t *testing.T) {
	var src sliceSource
	for i := 0; i < 1000; i++ {
		c := v4conn
		c.Flags &^= FlagHashed
		if i%2 == 1 {
			c = v6conn
		}
		c.CPort = uint16(i)
		src = append(src, c)
	}
	w := &fakeWriter{}
	n, err := SendBulk(src, w, 1, 0)
	if err != nil || n != 1000 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	var sc collect
	for _, m := range w.msgs {
		if len(m) > DefaultMaxLen {
			t.Fatalf("message %d > maxlen", len(m))
		}
		if r := (&Decoder{}).Decode(m, &sc); r.Reason != OK {
			t.Fatal(r.Reason)
		}
	}
	if len(sc.got) != 1000 {
		t.Fatalf("decoded %d", len(sc.got))
	}
	for i := range sc.got {
		if sc.got[i].CPort != uint16(i) {
			t.Fatalf("order/content at %d", i)
		}
	}
	w.fail = true
	if _, err := SendBulk(src, w, 1, 0); err == nil {
		t.Fatal("write error not returned")
	}
}

func BenchmarkSenderEnqueue(b *testing.B) {
	s := NewSender(&nopWriter{}, 0, 0, nil)
	c := v4conn
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.CPort = uint16(i)
		s.Enqueue(&c)
	}
}

func BenchmarkDecode(b *testing.B) {
	e := NewEncoder(0, 0)
	c := v4conn
	for e.Add(&c) {
	}
	msg := e.Bytes()
	var d Decoder
	sink := &countSink{}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for i := 0; i < b.N; i++ {
		d.Decode(msg, sink)
	}
}

func TestPacedWriter(t *testing.T) {
	w := &fakeWriter{}
	p := &PacedWriter{W: w, Every: 2, Pause: time.Microsecond}
	for i := 0; i < 5; i++ {
		if err := p.WriteSync([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(w.msgs) != 5 {
		t.Fatalf("%d messages", len(w.msgs))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p = &PacedWriter{W: w, Every: 1, Pause: time.Hour, Ctx: ctx}
	if err := p.WriteSync([]byte{1}); err != context.Canceled {
		t.Fatalf("cancelled pause: %v", err)
	}
	w.fail = true
	if err := (&PacedWriter{W: w}).WriteSync([]byte{1}); err == nil {
		t.Fatal("write error lost")
	}
}
