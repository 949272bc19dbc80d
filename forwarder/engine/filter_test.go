package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

var (
	vip4  = netip.MustParseAddr("10.0.0.100")
	vip4b = netip.MustParseAddr("10.0.0.101")
	vip6  = netip.MustParseAddr("2001:db8::100")
	rs4   = netip.MustParseAddr("10.0.1.11")
	rs6   = netip.MustParseAddr("2001:db8:1::11")
	dir4  = netip.MustParseAddr("10.0.0.2")
	dir6  = netip.MustParseAddr("2001:db8::2")
	cli4  = netip.MustParseAddr("192.0.2.7")
	cli6  = netip.MustParseAddr("2001:db8:9::7")
)

func testSpec() FilterSpec {
	return FilterSpec{
		VIPs: []VIP{
			{Addr: vip4, Protocol: 6, Port: 80},
			{Addr: vip4, Protocol: 6, Port: 443},
			{Addr: vip4, Protocol: 17, Port: 53},
			{Addr: vip4b}, // every protocol
			{Addr: vip6, Protocol: 6, Port: 80},
		},
		RealServers:   []netip.Addr{rs4, rs6},
		DirectorAddrs: []netip.Addr{dir4, dir6},
		ARP:           true,
		NDP:           true,
	}
}

func TestFilterCompileMatches(t *testing.T) {
	spec := testSpec()
	prog, err := spec.Compile()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("program rejected by the BPF VM: %v", err)
	}
	tcp := func(l4 []byte) []byte { return l4 }
	cases := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"arp", arpFrame(), true},
		{"tcp vip:80", ether(0x0800, ipv4(cli4, vip4, 6, 0, false, tcp(ports(40000, 80, 20)))), true},
		{"tcp vip:443", ether(0x0800, ipv4(cli4, vip4, 6, 0, false, ports(40000, 443, 20))), true},
		{"tcp vip:80 with ip options", ether(0x0800, ipv4(cli4, vip4, 6, 0, true, ports(40000, 80, 20))), true},
		{"tcp vip:22 not a service", ether(0x0800, ipv4(cli4, vip4, 6, 0, false, ports(40000, 22, 20))), false},
		{"udp vip:53", ether(0x0800, ipv4(cli4, vip4, 17, 0, false, ports(40000, 53, 20))), true},
		{"udp vip:80 wrong protocol", ether(0x0800, ipv4(cli4, vip4, 17, 0, false, ports(40000, 80, 20))), false},
		{"icmp to vip", ether(0x0800, ipv4(cli4, vip4, 1, 0, false, icmpMsg(8))), true},
		{"non-first fragment to vip", ether(0x0800, ipv4(cli4, vip4, 6, 100, false, ports(1, 2, 20))), true},
		{"any protocol vip", ether(0x0800, ipv4(cli4, vip4b, 47, 0, false, ports(1, 2, 20))), true},
		{"other destination", ether(0x0800, ipv4(cli4, netip.MustParseAddr("10.0.0.99"), 6, 0, false, ports(40000, 80, 20))), false},
		{"return path from real server", ether(0x0800, ipv4(rs4, cli4, 6, 0, false, ports(80, 40000, 20))), true},
		{"icmp error to director", ether(0x0800, ipv4(cli4, dir4, 1, 0, false, icmpMsg(3))), true},
		{"icmp echo to director", ether(0x0800, ipv4(cli4, dir4, 1, 0, false, icmpMsg(8))), false},
		{"tcp to director", ether(0x0800, ipv4(cli4, dir4, 6, 0, false, ports(40000, 22, 20))), false},
		{"ipv6 tcp vip:80", ether(0x86dd, ipv6(cli6, vip6, 6, ports(40000, 80, 20))), true},
		{"ipv6 tcp vip:81", ether(0x86dd, ipv6(cli6, vip6, 6, ports(40000, 81, 20))), false},
		{"ipv6 icmp to vip", ether(0x86dd, ipv6(cli6, vip6, 58, icmpMsg(128))), true},
		{"ipv6 fragment to vip", ether(0x86dd, ipv6(cli6, vip6, 44, ports(0, 0, 20))), true},
		{"ipv6 return path", ether(0x86dd, ipv6(rs6, cli6, 6, ports(80, 40000, 20))), true},
		{"ipv6 other", ether(0x86dd, ipv6(cli6, netip.MustParseAddr("2001:db8::99"), 6, ports(40000, 80, 20))), false},
		{"ns for vip", ns6("fe80::1", vip6), true},
		{"ns for other", ns6("fe80::1", netip.MustParseAddr("2001:db8::99")), false},
		{"na", ether(0x86dd, ipv6(cli6, dir6, 58, icmpMsg(136))), true},
		{"icmpv6 error to director", ether(0x86dd, ipv6(cli6, dir6, 58, icmpMsg(2))), true},
		{"icmpv6 echo to director", ether(0x86dd, ipv6(cli6, dir6, 58, icmpMsg(128))), false},
		{"other ethertype", ether(0x88cc, make([]byte, 46)), false},
		{"truncated ipv4", ether(0x0800, []byte{0x45, 0}), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := vm.Run(c.frame)
			if err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != c.want {
				t.Fatalf("accepted=%v (ret %d), want %v", got, n, c.want)
			}
		})
	}
}

func TestFilterOptionsOff(t *testing.T) {
	spec := FilterSpec{VIPs: []VIP{{Addr: vip4, Protocol: 6, Port: 80}}}
	prog, err := spec.Compile()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]byte{arpFrame(), ns6("fe80::1", vip6), ether(0x0800, ipv4(rs4, cli4, 6, 0, false, ports(80, 1, 20)))} {
		if n, _ := vm.Run(f); n != 0 {
			t.Errorf("frame accepted with ARP/NDP/real servers off: % x", f[:16])
		}
	}
	empty := FilterSpec{}
	prog, err = empty.Compile()
	if err != nil {
		t.Fatal(err)
	}
	vm, _ = bpf.NewVM(prog)
	if n, _ := vm.Run(udp4("1.2.3.4", "10.0.0.100", 1, 80)); n != 0 {
		t.Error("empty spec accepted a frame")
	}
}

func TestFilterManyAddresses(t *testing.T) {
	// Enough VIPs that the per-VIP blocks lie more than 255 instructions
	// away from their comparisons: the long jumps must still land.
	var spec FilterSpec
	for i := 0; i < 200; i++ {
		spec.VIPs = append(spec.VIPs, VIP{Addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Protocol: 17, Port: uint16(1000 + i)})
	}
	prog, err := spec.Compile()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 100, 199} {
		dst := fmt.Sprintf("10.1.%d.%d", i>>8, i&0xff)
		if n, _ := vm.Run(udp4("1.2.3.4", dst, 5, uint16(1000+i))); n == 0 {
			t.Errorf("VIP %d not accepted", i)
		}
		if n, _ := vm.Run(udp4("1.2.3.4", dst, 5, uint16(999+i))); n != 0 {
			t.Errorf("VIP %d accepted on the wrong port", i)
		}
	}
	if _, err := spec.Assemble(); err != nil {
		t.Fatal(err)
	}

	var huge FilterSpec
	for i := 0; i < 3000; i++ {
		huge.RealServers = append(huge.RealServers, netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}))
	}
	if _, err := huge.Compile(); !errors.Is(err, ErrFilterTooLarge) {
		t.Fatalf("3000 real servers: err %v, want ErrFilterTooLarge", err)
	}
}

func TestFilterValidate(t *testing.T) {
	bad := FilterSpec{VIPs: []VIP{{Addr: vip4, Port: 80}}}
	if _, err := bad.Compile(); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("port without protocol: err %v, want ErrBadConfig", err)
	}
	bad = FilterSpec{RealServers: []netip.Addr{{}}}
	if _, err := bad.Compile(); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("zero real server: err %v", err)
	}
}

// FuzzFilterCompile builds specs from fuzz input: Compile must not panic,
// every program it returns must load, and a UDP frame to each VIP:port must
// pass while the same frame to an unlisted port (when the VIP has ports)
// must not.
func FuzzFilterCompile(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1, 17, 0, 53, 1, 10, 0, 1, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var spec FilterSpec
		for len(data) >= 7 && len(spec.VIPs) < 64 {
			a := netip.AddrFrom4([4]byte(data[0:4]))
			proto := []uint8{0, 6, 17}[int(data[4])%3]
			port := uint16(data[5])<<8 | uint16(data[6])
			if proto == 0 {
				port = 0
			}
			spec.VIPs = append(spec.VIPs, VIP{Addr: a, Protocol: proto, Port: port})
			data = data[7:]
		}
		for len(data) >= 4 {
			spec.RealServers = append(spec.RealServers, netip.AddrFrom4([4]byte(data[0:4])))
			data = data[4:]
		}
		spec.ARP = len(data)%2 == 1
		prog, err := spec.Compile()
		if err != nil {
			if errors.Is(err, ErrFilterTooLarge) {
				return
			}
			t.Fatal(err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatalf("program does not load: %v", err)
		}
		for _, v := range spec.VIPs {
			if v.Protocol != 17 || v.Port == 0 {
				continue
			}
			fr := ether(0x0800, ipv4(netip.MustParseAddr("198.51.100.1"), v.Addr, 17, 0, false, ports(1, v.Port, 4)))
			if n, _ := vm.Run(fr); n == 0 {
				t.Fatalf("UDP to %v:%d rejected", v.Addr, v.Port)
			}
		}
	})
}
