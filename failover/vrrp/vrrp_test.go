package vrrp

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

var (
	src4 = netip.MustParseAddr("10.0.0.2")
	src6 = netip.MustParseAddr("fe80::1")
)

// Expected bytes written by hand from RFC 5798 §5.2; the checksums were
// computed separately (RFC 1071 sum over the pseudo-header and message,
// with Python's struct module).
func TestEncodeGolden(t *testing.T) {
	a := Advert{VRID: 57, Priority: 150, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}
	got := a.Append(nil, src4, Group4)
	want, _ := hex.DecodeString("31399601" + "0064" + "436c" + "0a000064")
	if !bytes.Equal(got, want) {
		t.Fatalf("v4:\n got %x\nwant %x", got, want)
	}
	a6 := Advert{VRID: 57, Priority: 150, Interval: 100, Addrs: []netip.Addr{
		netip.MustParseAddr("2001:db8::100"), netip.MustParseAddr("2001:db8::101")}}
	got = a6.Append(nil, src6, Group6)
	want, _ = hex.DecodeString("31399602" + "0064" + "dcbd" +
		"20010db8000000000000000000000100" + "20010db8000000000000000000000101")
	if !bytes.Equal(got, want) {
		t.Fatalf("v6:\n got %x\nwant %x", got, want)
	}
}

// independentChecksum sums the pseudo-header and message laid out in one
// buffer, the textbook way.
func independentChecksum(src, dst netip.Addr, msg []byte) uint16 {
	var ph []byte
	if src.Is4() {
		ph = append(ph, src.AsSlice()...)
		ph = append(ph, dst.AsSlice()...)
		ph = append(ph, 0, Protocol, byte(len(msg)>>8), byte(len(msg)))
	} else {
		ph = append(ph, src.AsSlice()...)
		ph = append(ph, dst.AsSlice()...)
		ph = append(ph, 0, 0, byte(len(msg)>>8), byte(len(msg)), 0, 0, 0, Protocol)
	}
	b := append(ph, msg...)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	var s uint64
	for i := 0; i < len(b); i += 2 {
		s += uint64(b[i])<<8 | uint64(b[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		src, dst netip.Addr
		addrs    []string
	}{
		{src4, Group4, []string{"10.0.0.100"}},
		{src4, netip.MustParseAddr("10.0.0.3"), []string{"10.0.0.100", "10.0.1.254", "192.0.2.1"}},
		{src4, Group4, nil},
		{src6, Group6, []string{"2001:db8::1"}},
		{netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::3"), []string{"2001:db8::1", "2001:db8::5"}},
	}
	for i, tc := range cases {
		in := Advert{VRID: uint8(i + 1), Priority: uint8(100 + i), Interval: uint16(10 * (i + 1))}
		for _, s := range tc.addrs {
			in.Addrs = append(in.Addrs, netip.MustParseAddr(s))
		}
		b := in.Append(nil, tc.src, tc.dst)
		// The checksum field agrees with the independent computation.
		z := append([]byte(nil), b...)
		z[6], z[7] = 0, 0
		if want := independentChecksum(tc.src, tc.dst, z); uint16(b[6])<<8|uint16(b[7]) != want {
			t.Fatalf("case %d: checksum %x want %x", i, b[6:8], want)
		}
		var out Advert
		if r := Parse(b, tc.src, tc.dst, &out); r != OK {
			t.Fatalf("case %d: %v", i, r)
		}
		if out.VRID != in.VRID || out.Priority != in.Priority || out.Interval != in.Interval || len(out.Addrs) != len(in.Addrs) {
			t.Fatalf("case %d: %+v != %+v", i, out, in)
		}
		for j := range in.Addrs {
			if out.Addrs[j] != in.Addrs[j] {
				t.Fatalf("case %d addr %d", i, j)
			}
		}
		// Wrong destination in the pseudo-header -> checksum failure.
		if r := Parse(b, tc.src, netip.MustParseAddr("224.0.0.19"), &out); tc.src.Is4() && r != DropChecksum {
			t.Fatalf("case %d: wrong pseudo-header accepted: %v", i, r)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	a := Advert{VRID: 57, Priority: 150, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}
	good := a.Append(nil, src4, Group4)
	cases := []struct {
		name string
		m    func([]byte) []byte
		want Reason
	}{
		{"short", func(b []byte) []byte { return b[:7] }, DropShort},
		{"v2", func(b []byte) []byte { b[0] = 0x21; return b }, DropVersion},
		{"type 2", func(b []byte) []byte { b[0] = 0x32; return b }, DropType},
		{"count too big", func(b []byte) []byte { b[3] = 2; return b }, DropLength},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, DropLength},
		{"flipped bit", func(b []byte) []byte { b[9] ^= 1; return b }, DropChecksum},
		{"priority changed", func(b []byte) []byte { b[2] = 255; return b }, DropChecksum},
	}
	for _, tc := range cases {
		var out Advert
		if r := Parse(tc.m(append([]byte(nil), good...)), src4, Group4, &out); r != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, r, tc.want)
		}
	}
}

func TestFilter(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.3")
	f := Filter{VRID: 57, Peers: []netip.Addr{peer}, Own: []netip.Addr{src4}}
	a := &Advert{VRID: 57}
	if r := f.Check(peer, 255, a); r != OK {
		t.Fatal(r)
	}
	if r := f.Check(peer, 254, a); r != DropTTL {
		t.Fatal("TTL 254 accepted")
	}
	if r := f.Check(netip.MustParseAddr("10.0.0.9"), 255, a); r != DropNotPeer {
		t.Fatal("stranger accepted")
	}
	if r := f.Check(src4, 255, a); r != DropOwn {
		t.Fatal("own accepted")
	}
	if r := f.Check(peer, 255, &Advert{VRID: 58}); r != DropVRID {
		t.Fatal("other VRID accepted")
	}
	open := Filter{VRID: 57}
	if r := open.Check(netip.MustParseAddr("10.0.0.9"), 255, a); r != OK {
		t.Fatal("no peer list must accept any source")
	}
}

func TestParseNoAlloc(t *testing.T) {
	a := Advert{VRID: 57, Priority: 150, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("10.0.0.101")}}
	b := a.Append(nil, src4, Group4)
	out := Advert{Addrs: make([]netip.Addr, 0, 8)}
	if n := testing.AllocsPerRun(1000, func() { Parse(b, src4, Group4, &out) }); n != 0 {
		t.Fatalf("Parse allocates %.1f", n)
	}
}

func FuzzParse(f *testing.F) {
	a := Advert{VRID: 57, Priority: 150, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100")}}
	f.Add(a.Append(nil, src4, Group4), false)
	a6 := Advert{VRID: 1, Priority: 100, Interval: 5, Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}
	f.Add(a6.Append(nil, src6, Group6), true)
	f.Add([]byte{0x31, 0, 0, 0, 0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		src, dst := src4, Group4
		if v6 {
			src, dst = src6, Group6
		}
		var out Advert
		if Parse(b, src, dst, &out) != OK {
			return
		}
		// Accepted -> re-encodes to the same bytes (reserved bits aside).
		again := out.Append(nil, src, dst)
		want := append([]byte(nil), b...)
		want[4] &= 0x0f
		if want[4] != b[4] {
			// reserved bits were set: checksum differs, compare the rest
			if !bytes.Equal(again[8:], want[8:]) || !bytes.Equal(again[:4], want[:4]) {
				t.Fatalf("re-encode differs: %x vs %x", again, b)
			}
			return
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encode differs: %x vs %x", again, b)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	a := Advert{VRID: 57, Priority: 150, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("10.0.0.101")}}
	msg := a.Append(nil, src4, Group4)
	out := Advert{Addrs: make([]netip.Addr, 0, 8)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Parse(msg, src4, Group4, &out)
	}
}
