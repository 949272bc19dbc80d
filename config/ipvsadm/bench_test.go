package ipvsadm

import (
	"io"
	"net/netip"
	"testing"

	"github.com/ulvs/ulvs/config"
)

func bigSnapshot(n int) *Snapshot {
	s := &Snapshot{}
	for i := 0; i < n; i++ {
		svc := Service{Protocol: config.TCP, Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(200 - i%150), byte(i >> 8), byte(i), 1}), 80), Scheduler: "wlc", Netmask: 32}
		for j := 0; j < 4; j++ {
			svc.Servers = append(svc.Servers, Server{Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(j), byte(i >> 8), byte(i)}), 80), Method: config.NAT, Weight: 1})
		}
		s.Services = append(s.Services, svc)
	}
	return s
}

// BenchmarkList prints `-L -n` for 1000 services with 4 servers each.
func BenchmarkList(b *testing.B) {
	s := bigSnapshot(1000)
	p := &Printer{}
	for b.Loop() {
		if err := p.List(io.Discard, s, FmtNumeric); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseArgs(b *testing.B) {
	args := argv("-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3 -x 100 -y 50")
	for b.Loop() {
		if _, err := Parse(args); err != nil {
			b.Fatal(err)
		}
	}
}
