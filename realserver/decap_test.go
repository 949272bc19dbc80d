package realserver

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

var (
	vip4 = netip.MustParseAddr("10.0.0.100")
	vip6 = netip.MustParseAddr("fd00:10::100")
)

// ipv4Packet builds an IPv4 header (IHL 5) with the given protocol and
// destination, followed by payload; the length field is right.
func ipv4Packet(proto byte, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8] = 64
	b[9] = proto
	copy(b[12:16], []byte{10, 0, 0, 11})
	d := dst.As4()
	copy(b[16:20], d[:])
	copy(b[20:], payload)
	return b
}

func ipv6Packet(next byte, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, 40+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = next
	b[7] = 64
	d := dst.As16()
	copy(b[24:40], d[:])
	copy(b[40:], payload)
	return b
}

func TestDecapIPv4(t *testing.T) {
	vips := NewVIPSet(vip4, vip6)
	inner4 := ipv4Packet(17, vip4, []byte("12345678hello"))
	inner6 := ipv6Packet(17, vip6, []byte("12345678hello"))
	good4 := ipv4Packet(ProtoIPIP, netip.MustParseAddr("10.0.0.51"), inner4)
	good6 := ipv4Packet(ProtoIPv6, netip.MustParseAddr("10.0.0.51"), inner6)
	mod := func(b []byte, f func([]byte) []byte) []byte {
		c := append([]byte(nil), b...)
		return f(c)
	}
	tests := []struct {
		name string
		pkt  []byte
		want Reason
		out  []byte
	}{
		{"v4 in v4", good4, Injected, inner4},
		{"v6 in v4", good6, Injected, inner6},
		{"trailing bytes trimmed", append(mod(good4, func(b []byte) []byte { return b }), 0, 0, 0), Injected, inner4},
		{"empty", nil, DropShort, nil},
		{"19 bytes", good4[:19], DropShort, nil},
		{"version 6 outer", mod(good4, func(b []byte) []byte { b[0] = 0x65; return b }), DropVersion, nil},
		{"IHL 4", mod(good4, func(b []byte) []byte { b[0] = 0x44; return b }), DropHeaderLen, nil},
		{"IHL beyond packet", mod(good4[:24], func(b []byte) []byte { b[0] = 0x4f; return b }), DropHeaderLen, nil},
		{"total length beyond packet", mod(good4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], uint16(len(b)+1)); return b }), DropTotalLen, nil},
		{"total length below header", mod(good4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 19); return b }), DropTotalLen, nil},
		{"more fragments", mod(good4, func(b []byte) []byte { b[6] = 0x20; return b }), DropFragment, nil},
		{"fragment offset", mod(good4, func(b []byte) []byte { b[7] = 1; return b }), DropFragment, nil},
		{"GRE", mod(good4, func(b []byte) []byte { b[9] = 47; return b }), DropProtocol, nil},
		{"inner short", ipv4Packet(ProtoIPIP, vip4, inner4[:19]), DropInnerShort, nil},
		{"inner v6 in proto 4", ipv4Packet(ProtoIPIP, vip4, inner6), DropInnerVersion, nil},
		{"inner v4 in proto 41", ipv4Packet(ProtoIPv6, vip4, append(inner4, make([]byte, 20)...)), DropInnerVersion, nil},
		{"inner v6 short", ipv4Packet(ProtoIPv6, vip4, inner6[:39]), DropInnerShort, nil},
		{"inner length beyond", ipv4Packet(ProtoIPIP, vip4, mod(inner4, func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 999); return b })), DropInnerLen, nil},
		{"inner IHL 3", ipv4Packet(ProtoIPIP, vip4, mod(inner4, func(b []byte) []byte { b[0] = 0x43; return b })), DropInnerLen, nil},
		{"inner v6 payload length beyond", ipv4Packet(ProtoIPv6, vip4, mod(inner6, func(b []byte) []byte { b[5]++; return b })), DropInnerLen, nil},
		{"inner v4 not a VIP", ipv4Packet(ProtoIPIP, vip4, ipv4Packet(17, netip.MustParseAddr("10.0.0.101"), nil)), DropNotVIP, nil},
		{"inner v6 not a VIP", ipv4Packet(ProtoIPv6, vip4, ipv6Packet(17, netip.MustParseAddr("fd00:10::101"), nil)), DropNotVIP, nil},
		{"inner v6 is the v4 VIP mapped", ipv4Packet(ProtoIPv6, vip4, ipv6Packet(17, netip.AddrFrom16(vip4.As16()), nil)), DropNotVIP, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, r := DecapIPv4(tt.pkt, vips)
			if r != tt.want {
				t.Fatalf("reason %v, want %v", r, tt.want)
			}
			if tt.out != nil && string(out) != string(tt.out) {
				t.Fatalf("inner %x, want %x", out, tt.out)
			}
			if r != Injected && out != nil {
				t.Fatalf("dropped packet returned data")
			}
		})
	}
}

func TestCheckInnerFromIPv6Socket(t *testing.T) {
	vips := NewVIPSet(vip4, vip6)
	in := ipv6Packet(6, vip6, make([]byte, 20))
	if out, r := CheckInner(in, ProtoIPv6, vips); r != Injected || len(out) != len(in) {
		t.Fatalf("v6 in v6: %v len %d", r, len(out))
	}
	if _, r := CheckInner(in, 17, vips); r != DropProtocol {
		t.Fatalf("proto 17: %v, want DropProtocol", r)
	}
}

func FuzzDecapIPv4(f *testing.F) {
	f.Add(ipv4Packet(ProtoIPIP, vip4, ipv4Packet(6, vip4, make([]byte, 20))))
	f.Add(ipv4Packet(ProtoIPv6, vip4, ipv6Packet(17, vip6, make([]byte, 8))))
	f.Add([]byte{0x4f, 0, 0, 0})
	vips := NewVIPSet(vip4, vip6)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		out, r := DecapIPv4(pkt, vips)
		if r >= NumReasons {
			t.Fatalf("reason %d out of range", r)
		}
		if r != Injected {
			return
		}
		// The inner packet lies inside pkt and is addressed to a VIP.
		ihl := int(pkt[0]&0xf) * 4
		if len(out) == 0 || ihl+len(out) > len(pkt) || &out[0] != &pkt[ihl] {
			t.Fatalf("inner packet does not start right after the outer header")
		}
		var dst netip.Addr
		if out[0]>>4 == 4 {
			dst = netip.AddrFrom4([4]byte(out[16:20]))
		} else {
			dst = netip.AddrFrom16([16]byte(out[24:40]))
		}
		if dst != vip4 && dst != vip6 {
			t.Fatalf("injected a packet for %s", dst)
		}
	})
}

type countWriter struct{ n int }

func (w *countWriter) Write(b []byte) (int, error) { w.n++; return len(b), nil }

type failWriter struct{}

func (failWriter) Write(b []byte) (int, error) { return 0, errors.New("refused") }

func TestHandleCountsAndDoesNotAllocate(t *testing.T) {
	tn := &Tunnel{vips: NewVIPSet(vip4, vip6), log: zerolog.Nop()}
	good := ipv4Packet(ProtoIPIP, netip.MustParseAddr("10.0.0.51"), ipv4Packet(17, vip4, make([]byte, 12)))
	bad := ipv4Packet(ProtoIPIP, netip.MustParseAddr("10.0.0.51"), ipv4Packet(17, netip.MustParseAddr("10.9.9.9"), make([]byte, 12)))
	inner6 := ipv6Packet(17, vip6, make([]byte, 12))
	w := &countWriter{}
	if r := tn.handle(good, unix.AF_INET, ProtoIPIP, w); r != Injected || w.n != 1 {
		t.Fatalf("good: %v, %d writes", r, w.n)
	}
	if r := tn.handle(bad, unix.AF_INET, ProtoIPIP, w); r != DropNotVIP || w.n != 1 {
		t.Fatalf("bad: %v, %d writes", r, w.n)
	}
	if r := tn.handle(inner6, unix.AF_INET6, ProtoIPv6, w); r != Injected || w.n != 2 {
		t.Fatalf("v6 socket: %v, %d writes", r, w.n)
	}
	if r := tn.handle(good, unix.AF_INET, ProtoIPIP, failWriter{}); r != DropWrite {
		t.Fatalf("refused write: %v", r)
	}
	s := tn.Stats()
	if s.Get(Injected) != 2 || s.Get(DropNotVIP) != 1 || s.Get(DropWrite) != 1 {
		t.Fatalf("stats %v", s)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		tn.handle(good, unix.AF_INET, ProtoIPIP, w)
		tn.handle(bad, unix.AF_INET, ProtoIPIP, w)
		tn.handle(inner6, unix.AF_INET6, ProtoIPv6, w)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
}

func TestVIPChecks(t *testing.T) {
	for _, v := range [][]netip.Addr{nil, {netip.Addr{}}, {netip.MustParseAddr("0.0.0.0")}, {netip.MustParseAddr("127.0.0.1")}, {netip.MustParseAddr("224.0.0.1")}} {
		if err := checkVIPs(v); !errors.Is(err, ErrNoVIP) && !errors.Is(err, ErrBadVIP) {
			t.Errorf("checkVIPs(%v) = %v", v, err)
		}
	}
	if err := checkVIPs([]netip.Addr{vip4, vip6}); err != nil {
		t.Error(err)
	}
}

func BenchmarkDecapIPv4(b *testing.B) {
	vips := NewVIPSet(vip4, vip6)
	pkt := ipv4Packet(ProtoIPIP, netip.MustParseAddr("10.0.0.51"), ipv4Packet(6, vip4, make([]byte, 20)))
	b.ReportAllocs()
	for b.Loop() {
		if _, r := DecapIPv4(pkt, vips); r != Injected {
			b.Fatal(r)
		}
	}
}
