package scheduler

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func dest(s string, w int32) *Dest { return NewDest(netip.MustParseAddrPort(s), w, 0, 0) }

func flowFrom(src string) *Flow {
	a := netip.MustParseAddr(src)
	return &Flow{Src: a.As16(), Dst: netip.MustParseAddr("10.99.0.100").As16(), Proto: 6, SrcPort: 40000, DstPort: 80, IPv6: !a.Is4()}
}

func mustPool(t *testing.T, name string, flags Flags, opts Options) *Pool {
	t.Helper()
	p, err := New(name, flags, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// seq schedules n connections (closing each at once) and names the servers.
func seq(p *Pool, n int, names map[*Dest]string) string {
	var out []string
	f := flowFrom("192.168.1.1")
	for range n {
		d := p.Schedule(f, 0)
		if d == nil {
			out = append(out, "-")
			continue
		}
		out = append(out, names[d])
	}
	return strings.Join(out, " ")
}

// IPVS-SPEC §2.1 worked examples. The spec's sequences are the steady
// period, which starts at once when wrr starts with every server present
// (init_service sets cw = mw: here SetScheduler after the adds). Servers
// added one by one to a running wrr service go through dest_changed, which
// keeps the old cw (0 -> mw of the first server, then unchanged or rounded to
// a multiple of di plus 1), so the period follows a short transient; both
// are checked.
func TestWRRSpecExamples(t *testing.T) {
	cases := []struct {
		name      string
		add       []string // in the order added
		w         map[string]int32
		period    string
		transient string // when added one by one to a running wrr pool
	}{
		{"list A,B,C", []string{"C", "B", "A"}, map[string]int32{"A": 4, "B": 3, "C": 2}, "A A B A B C A B C", "A B C"},
		{"added A,B,C", []string{"A", "B", "C"}, map[string]int32{"A": 4, "B": 3, "C": 2}, "A B A C B A C B A", "C B A"},
		{"weights 4,2", []string{"B", "A"}, map[string]int32{"A": 4, "B": 2}, "A A B", "A B"},
	}
	build := func(t *testing.T, sched string, c struct {
		name      string
		add       []string
		w         map[string]int32
		period    string
		transient string
	}) (*Pool, map[*Dest]string) {
		p := mustPool(t, sched, 0, Options{})
		names := map[*Dest]string{}
		for i, n := range c.add {
			d := dest("10.0.0."+string(rune('1'+i))+":80", c.w[n])
			names[d] = n
			if err := p.Add(d); err != nil {
				t.Fatal(err)
			}
		}
		return p, names
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := len(strings.Fields(c.period))
			p, names := build(t, "rr", c)
			if err := p.SetScheduler("wrr", 0); err != nil {
				t.Fatal(err)
			}
			want := c.period + " " + c.period
			if got := seq(p, 2*n, names); got != want {
				t.Errorf("fresh wrr: got  %s\nwant %s", got, want)
			}
			p, names = build(t, "wrr", c)
			want = c.transient + " " + c.period + " " + c.period
			if got := seq(p, len(strings.Fields(want)), names); got != want {
				t.Errorf("added to running wrr: got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestRRCursorRules(t *testing.T) {
	p := mustPool(t, "rr", 0, Options{})
	a, b, c := dest("10.0.0.1:80", 1), dest("10.0.0.2:80", 1), dest("10.0.0.3:80", 1)
	names := map[*Dest]string{a: "A", b: "B", c: "C"}
	p.Add(a, b, c) // list C B A
	if got := seq(p, 4, names); got != "C B A C" {
		t.Fatalf("got %s", got)
	}
	// Deleting the server under the cursor (C) moves the cursor to its
	// predecessor (the head), so the next pick is the new first, B.
	p.Delete(c)
	if got := seq(p, 3, names); got != "B A B" {
		t.Fatalf("after delete: got %s", got)
	}
	// Adding leaves the cursor alone: the cursor is on B, the next is A.
	p.Add(c)
	if got := seq(p, 3, names); got != "A C B" {
		t.Fatalf("after add: got %s", got)
	}
	// Quiesced and overloaded servers are skipped; none left gives nil.
	p.Edit(a, 0, 0, 0)
	if got := seq(p, 3, names); got != "C B C" {
		t.Fatalf("quiesced: got %s", got)
	}
	p.Edit(b, 0, 0, 0)
	p.Edit(c, 0, 0, 0)
	if d := p.Schedule(flowFrom("1.2.3.4"), 0); d != nil {
		t.Fatalf("all quiesced: got %v", d.AddrPort())
	}
}

func TestHash32Vectors(t *testing.T) {
	// IPVS-SPEC §2.3: sh initial buckets, port 0 and port 12345.
	cases := []struct {
		addr string
		port uint16
		want uint32
	}{{"192.168.1.100", 0, 89}, {"10.0.0.1", 0, 39}, {"10.0.0.2", 0, 137}, {"192.168.1.100", 12345, 184}}
	for _, c := range cases {
		a := netip.MustParseAddr(c.addr).As16()
		if got := hash32(uint32(c.port)+fold(&a, false), 8); got != c.want {
			t.Errorf("%s:%d -> %d, want %d", c.addr, c.port, got, c.want)
		}
	}
}

func TestSHBucketFill(t *testing.T) {
	// weights [2,1,0] in list order fill 0 0 1 2 0 0 1 2 ...
	p := mustPool(t, "sh", 0, Options{})
	d0, d1, d2 := dest("10.0.0.1:80", 2), dest("10.0.0.2:80", 1), dest("10.0.0.3:80", 0)
	p.Add(d2, d1, d0)
	tab := p.tab.Load()
	want := []*Dest{d0, d0, d1, d2}
	for i, d := range tab.buckets {
		if d != want[i%4] {
			t.Fatalf("bucket %d = %v, want %v", i, d.AddrPort(), want[i%4].AddrPort())
		}
	}
}

func TestSHLookupAndFlags(t *testing.T) {
	// One server per bucket pattern: dests D0..D3 weight 1, list order.
	mk := func(flags []string) (*Pool, []*Dest) {
		f, err := ParseFlags(flags)
		if err != nil {
			t.Fatal(err)
		}
		p := mustPool(t, "sh", f, Options{})
		ds := []*Dest{dest("10.0.0.1:80", 1), dest("10.0.0.2:80", 1), dest("10.0.0.3:80", 1), dest("10.0.0.4:80", 1)}
		for i := len(ds) - 1; i >= 0; i-- {
			p.Add(ds[i])
		}
		return p, ds
	}
	p, ds := mk(nil)
	f := flowFrom("192.168.1.100")
	// bucket 89 -> 89 % 4 = 1
	if got := p.Schedule(f, 0); got != ds[1] {
		t.Fatalf("sh: got %v, want %v", name0(got), ds[1].AddrPort())
	}
	// sh-port: bucket 184 -> 0
	p, ds = mk([]string{"sh-port"})
	f.SrcPort = 12345
	if got := p.Schedule(f, 0); got != ds[0] {
		t.Fatalf("sh-port: got %v, want %v", name0(got), ds[0].AddrPort())
	}
	f.Proto = 1 // ICMP has no port: bucket 89 again
	if got := p.Schedule(f, 0); got != ds[1] {
		t.Fatalf("sh-port icmp: got %v", name0(got))
	}
	// Unusable server, no fallback: nil. With fallback: buckets (k+2*89)%256,
	// k=0 -> 178 % 4 = 2.
	p, ds = mk(nil)
	f = flowFrom("192.168.1.100")
	p.Edit(ds[1], 0, 0, 0) // sh rebuilds on edit: weight 0 still gets one bucket
	if got := p.Schedule(f, 0); got != nil {
		t.Fatalf("quiesced, no fallback: got %v", name0(got))
	}
	p, ds = mk([]string{"sh-fallback"})
	ds[1].flags.Or(FlagOverload)
	if got := p.Schedule(f, 0); got != ds[2] {
		t.Fatalf("fallback: got %v, want %v", name0(got), ds[2].AddrPort())
	}
}

func TestDH(t *testing.T) {
	p := mustPool(t, "dh", 0, Options{})
	ds := []*Dest{dest("10.0.0.1:80", 1), dest("10.0.0.2:80", 5), dest("10.0.0.3:80", 1)}
	p.Add(ds[2], ds[1], ds[0])                              // list order ds[0], ds[1], ds[2]
	f := &Flow{Dst: netip.MustParseAddr("10.0.0.1").As16()} // hash_32 -> 39; 39 % 3 = 0
	if got := p.Schedule(f, 0); got != ds[0] {
		t.Fatalf("dh: got %v", name0(got))
	}
	f.Dst = netip.MustParseAddr("10.0.0.2").As16() // 137 % 3 = 2
	if got := p.Schedule(f, 0); got != ds[2] {
		t.Fatalf("dh: got %v", name0(got))
	}
	ds[2].flags.Or(FlagOverload)
	if got := p.Schedule(f, 0); got != nil {
		t.Fatalf("dh overloaded: got %v", name0(got))
	}
}

func TestSipHashReferenceVector(t *testing.T) {
	// SipHash-2-4 reference (Aumasson & Bernstein, appendix A): key
	// 00..0f, message 00..0e.
	var k sipKey
	k[0], k[1] = 0x0706050403020100, 0x0f0e0d0c0b0a0908
	msg := make([]byte, 15)
	for i := range msg {
		msg[i] = byte(i)
	}
	if got := sipHash(2, 4, k, msg); got != 0xa129ca6149be45e5 {
		t.Fatalf("SipHash-2-4 = %#x, want 0xa129ca6149be45e5", got)
	}
	if got := sipHash(2, 4, k, nil); got != 0x726fdb47dd0e0e31 {
		t.Fatalf("SipHash-2-4(empty) = %#x", got)
	}
	// The 4-byte SipHash-1-3 fast path equals the generic one.
	for _, v := range []uint32{0, 1, 0x0a000001, 0xdeadbeef} {
		b := []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
		if got, want := hsiphash32(v, &mhKey1), uint32(sipHash(1, 3, mhKey1, b)); got != want {
			t.Fatalf("hsiphash32(%#x) = %#x, generic %#x", v, got, want)
		}
	}
}

func TestMHSpecVectors(t *testing.T) {
	cases := []struct {
		addr         string
		offset, skip uint32
	}{{"10.0.0.1", 3167, 700}, {"10.0.0.2", 1231, 3544}, {"10.0.0.3", 1631, 3453}}
	for _, c := range cases {
		a := foldAddr(netip.MustParseAddr(c.addr))
		off := mhHash(a, 80, &mhKey1, 0) % 4093
		skip := mhHash(a, 80, &mhKey2, 0)%4092 + 1
		if off != c.offset || skip != c.skip {
			t.Errorf("%s:80 offset %d skip %d, want %d %d", c.addr, off, skip, c.offset, c.skip)
		}
	}
	p := mustPool(t, "mh", 0, Options{})
	d1, d2, d3 := dest("10.0.0.1:80", 1), dest("10.0.0.2:80", 1), dest("10.0.0.3:80", 1)
	p.Add(d1, d2, d3)
	count := map[*Dest]int{}
	for _, d := range p.tab.Load().buckets {
		count[d]++
	}
	if count[d3] != 1365 || count[d2] != 1364 || count[d1] != 1364 {
		t.Fatalf("slots .3/.2/.1 = %d/%d/%d, want 1365/1364/1364", count[d3], count[d2], count[d1])
	}
	for _, c := range []struct {
		src  string
		slot uint32
		want *Dest
	}{{"192.168.1.100", 1341, d2}, {"192.168.1.101", 881, d3}} {
		a := foldAddr(netip.MustParseAddr(c.src))
		if s := mhHash(a, 0, &mhKey1, 0) % 4093; s != c.slot {
			t.Errorf("%s: slot %d, want %d", c.src, s, c.slot)
		}
		if got := p.Schedule(flowFrom(c.src), 0); got != c.want {
			t.Errorf("%s -> %v, want %v", c.src, name0(got), c.want.AddrPort())
		}
	}
}

func TestMHLastWeight(t *testing.T) {
	p := mustPool(t, "mh", 0, Options{})
	d1, d2 := dest("10.0.0.1:80", 1), dest("10.0.0.2:80", 0)
	p.Add(d1, d2)
	count := func() map[*Dest]int {
		c := map[*Dest]int{}
		for _, d := range p.tab.Load().buckets {
			c[d]++
		}
		return c
	}
	if c := count(); c[d2] != 0 || c[d1] != 4093 {
		t.Fatalf("weight 0 at add must get no slots: %v", c)
	}
	p.Edit(d2, 3, 0, 0)
	p.Edit(d2, 0, 0, 0) // keeps last_weight 3 and its slots
	if d2.LastWeight() != 3 {
		t.Fatalf("last_weight %d", d2.LastWeight())
	}
	c := count()
	if c[d2] == 0 || c[d2] < 2*c[d1] {
		t.Fatalf("quiesced server must keep its 3:1 slots: %v", c)
	}
	// Lookups landing on it find it unavailable; with mh-fallback they move.
	f, _ := ParseFlags([]string{"mh-fallback"})
	none, fb := 0, 0
	for i := range 200 {
		fl := flowFrom(netip.AddrFrom4([4]byte{172, 16, 0, byte(i)}).String())
		if p.Schedule(fl, 0) == nil {
			none++
		}
	}
	p.SetScheduler("mh", f)
	for i := range 200 {
		fl := flowFrom(netip.AddrFrom4([4]byte{172, 16, 0, byte(i)}).String())
		if d := p.Schedule(fl, 0); d == d1 {
			fb++
		}
	}
	if none == 0 || fb != 200 {
		t.Fatalf("without fallback %d/200 got no server (want > 0); with fallback %d/200 got d1 (want 200)", none, fb)
	}
}

func TestOverloadRules(t *testing.T) {
	p := mustPool(t, "wlc", 0, Options{})
	d := NewDest(netip.MustParseAddrPort("10.0.0.1:80"), 1, 4, 0)
	p.Add(d)
	for range 3 {
		d.Bind(false, false)
	}
	if d.Overloaded() {
		t.Fatal("3 < upper 4: not overloaded")
	}
	d.Bind(false, true)
	if !d.Overloaded() {
		t.Fatal("total 4 >= upper 4: overloaded")
	}
	if p.Schedule(flowFrom("1.1.1.1"), 0) != nil {
		t.Fatal("overloaded server must not be scheduled")
	}
	// Without a lower threshold, clear when 4*total < 3*upper: total 2.
	d.Unbind(false, true) // total 3: 12 < 12 false
	if !d.Overloaded() {
		t.Fatal("total 3: still overloaded")
	}
	d.Unbind(false, false) // total 2: 8 < 12
	if d.Overloaded() {
		t.Fatal("total 2: cleared")
	}
	// Templates do not count.
	d.Bind(true, false)
	d.Bind(true, false)
	d.Bind(false, false) // total 3
	if d.Overloaded() || d.PersistentConns() != 2 {
		t.Fatal("templates must not count towards the threshold")
	}
	// With a lower threshold: clear when total < lower.
	if err := p.Edit(d, 1, 4, 2); err != nil {
		t.Fatal(err)
	}
	d.Bind(false, false) // total 4 -> set
	d.Unbind(false, false)
	if !d.Overloaded() {
		t.Fatal("total 3 >= lower 2: still overloaded")
	}
	d.Unbind(false, false)
	d.Unbind(false, false) // total 1 < 2
	if d.Overloaded() {
		t.Fatal("total 1 < lower 2: cleared")
	}
	// Edit clears OVERLOAD when upper is raised or 0, not when lowered.
	d.Bind(false, false)
	d.Bind(false, false)
	d.Bind(false, false) // total 4
	if !d.Overloaded() {
		t.Fatal("set again")
	}
	p.Edit(d, 1, 3, 0)
	if !d.Overloaded() {
		t.Fatal("lowering upper must not clear")
	}
	p.Edit(d, 1, 5, 0)
	if d.Overloaded() {
		t.Fatal("raising upper clears")
	}
	d.Bind(false, false) // total 5 >= 5
	p.Edit(d, 1, 0, 0)
	if d.Overloaded() {
		t.Fatal("upper 0 clears")
	}
	// No thresholds: any unbind clears.
	d.flags.Or(FlagOverload)
	d.Unbind(false, false)
	if d.Overloaded() {
		t.Fatal("no thresholds: unbind clears")
	}
}

func TestControlErrors(t *testing.T) {
	p := mustPool(t, "rr", 0, Options{})
	d := dest("10.0.0.1:80", 1)
	if err := p.AddWith(d, -1, 0, 0); !errors.Is(err, ErrRange) {
		t.Fatalf("weight -1: %v", err)
	}
	if err := p.AddWith(d, 1, 2, 3); !errors.Is(err, ErrRange) {
		t.Fatalf("lower > upper: %v", err)
	}
	if err := p.Edit(d, 1, 0, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("edit of a server not added: %v", err)
	}
	p.Add(d)
	if err := p.Add(d); !errors.Is(err, ErrExists) {
		t.Fatalf("double add: %v", err)
	}
	q := mustPool(t, "rr", 0, Options{})
	if err := q.Add(d); !errors.Is(err, ErrExists) {
		t.Fatalf("add to a second pool: %v", err)
	}
	if err := p.Edit(d, 1, 2, 3); !errors.Is(err, ErrRange) {
		t.Fatalf("edit lower > upper: %v", err)
	}
	if err := p.Delete(d); err != nil || d.Available() {
		t.Fatalf("delete: %v available=%v", err, d.Available())
	}
	if err := p.Delete(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("double delete: %v", err)
	}
	if _, err := New("foo", 0, Options{}); !errors.Is(err, ErrUnknownScheduler) {
		t.Fatalf("unknown scheduler: %v", err)
	}
	if _, err := New("mh", 0, Options{MHTableIndex: 18}); !errors.Is(err, ErrBadOption) {
		t.Fatalf("mh index 18: %v", err)
	}
	small := mustPool(t, "mh", 0, Options{MHTableIndex: 8})
	for i := range 251 {
		if err := small.Add(dest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 80).String(), 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := small.Add(dest("10.2.0.1:80", 1)); !errors.Is(err, ErrTooManyServers) {
		t.Fatalf("252nd mh server with M=251: %v", err)
	}
}

func TestReviveKeepsCounters(t *testing.T) {
	p := mustPool(t, "lc", 0, Options{})
	a, b := dest("10.0.0.1:80", 1), dest("10.0.0.2:80", 1)
	p.Add(a, b)
	a.Bind(false, true)
	p.Delete(a)
	a.Bind(false, false) // a connection still on the deleted server
	if err := p.Add(a); err != nil {
		t.Fatal(err)
	}
	if a.ActiveConns() != 1 || a.InactiveConns() != 1 || !a.Available() {
		t.Fatalf("revived: active %d inactive %d available %v", a.ActiveConns(), a.InactiveConns(), a.Available())
	}
	if got := p.Schedule(flowFrom("1.1.1.1"), 0); got != b {
		t.Fatalf("lc must pick the idle server, got %v", name0(got))
	}
	if ds := p.Dests(); len(ds) != 2 || ds[0] != a {
		t.Fatal("revived server goes to the head of the list")
	}
}

func TestParseFlags(t *testing.T) {
	f, err := ParseFlags([]string{"sh-port", "sh-fallback"})
	if err != nil || f.Bits() != 0x18 || f.Format("sh") != "sh-fallback,sh-port" {
		t.Fatalf("%v %#x %q", err, f.Bits(), f.Format("sh"))
	}
	if _, err := New("wlc", f, Options{}); !errors.Is(err, ErrIncompatibleFlag) {
		t.Fatalf("sh-port with wlc: %v", err)
	}
	mf, _ := ParseFlags([]string{"mh-port"})
	if _, err := New("sh", mf, Options{}); !errors.Is(err, ErrIncompatibleFlag) {
		t.Fatalf("mh-port with sh: %v", err)
	}
	if _, err := ParseFlags([]string{"sh-port", "mh-port"}); !errors.Is(err, ErrIncompatibleFlag) {
		t.Fatalf("sh and mh flags: %v", err)
	}
	if _, err := ParseFlags([]string{"sh-prot"}); !errors.Is(err, ErrUnknownFlag) {
		t.Fatalf("typo: %v", err)
	}
	g, err := ParseFlags([]string{"flag-1", "flag-3"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New("wlc", g, Options{}); err != nil {
		t.Fatalf("flag-N with any scheduler: %v", err)
	}
	if g.Format("rr") != "flag-1,flag-3" {
		t.Fatal(g.Format("rr"))
	}
	p := mustPool(t, "sh", f, Options{})
	if err := p.SetScheduler("rr", f); !errors.Is(err, ErrIncompatibleFlag) {
		t.Fatalf("SetScheduler rr with sh flags: %v", err)
	}
}
