package engine

import (
	"encoding/binary"
	"net/netip"
)

// Test frame builders. Checksums are left zero: the engine and the filter
// never look at them.

var (
	testSrcMAC = [6]byte{0x02, 0, 0, 0, 0, 1}
	testDstMAC = [6]byte{0x02, 0, 0, 0, 0, 2}
)

func ether(typ uint16, payload []byte) []byte {
	f := make([]byte, 14+len(payload))
	copy(f[0:6], testDstMAC[:])
	copy(f[6:12], testSrcMAC[:])
	binary.BigEndian.PutUint16(f[12:14], typ)
	copy(f[14:], payload)
	return f
}

// ipv4 builds an IPv4 packet with a 20-byte header (or 24 with an option
// when opt is set) carrying l4.
func ipv4(src, dst netip.Addr, proto uint8, fragOff uint16, opt bool, l4 []byte) []byte {
	hl := 20
	if opt {
		hl = 24
	}
	p := make([]byte, hl+len(l4))
	p[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(p[2:4], uint16(len(p)))
	binary.BigEndian.PutUint16(p[6:8], fragOff)
	p[8] = 64
	p[9] = proto
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	if opt {
		p[20] = 1 // NOP options
		p[21], p[22], p[23] = 1, 1, 0
	}
	copy(p[hl:], l4)
	return p
}

func ipv6(src, dst netip.Addr, next uint8, l4 []byte) []byte {
	p := make([]byte, 40+len(l4))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(len(l4)))
	p[6] = next
	p[7] = 64
	s, d := src.As16(), dst.As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	copy(p[40:], l4)
	return p
}

func ports(sport, dport uint16, n int) []byte {
	b := make([]byte, 8+n)
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint16(b[4:6], uint16(8+n))
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

func icmpMsg(typ uint8) []byte { return []byte{typ, 0, 0, 0, 0, 0, 0, 0} }

func udp4(src, dst string, sport, dport uint16) []byte {
	return ether(0x0800, ipv4(netip.MustParseAddr(src), netip.MustParseAddr(dst), 17, 0, false, ports(sport, dport, 18)))
}

func arpFrame() []byte { return ether(0x0806, make([]byte, 28)) }

func ns6(src string, target netip.Addr) []byte {
	body := make([]byte, 24)
	body[0] = 135
	t := target.As16()
	copy(body[8:], t[:])
	return ether(0x86dd, ipv6(netip.MustParseAddr(src), netip.MustParseAddr("ff02::1:ff00:1"), 58, body))
}
