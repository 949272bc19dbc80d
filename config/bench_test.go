package config

import (
	"fmt"
	"net/netip"
	"testing"
)

// bigConfig has n services with 4 real servers each.
func bigConfig(n int) *Config {
	c := New()
	c.Director.PublicInterface = "eth0"
	for i := 0; i < n; i++ {
		vs := VirtualServer{Protocol: TCP, Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), 80),
			Scheduler: "wlc", Netmask: 32}
		for j := 0; j < 4; j++ {
			vs.RealServers = append(vs.RealServers, RealServer{Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 100 + byte(j), byte(i >> 8), byte(i)}), 80),
				Method: NAT, Weight: 1 + j})
		}
		c.VirtualServers = append(c.VirtualServers, vs)
	}
	return c
}

func BenchmarkParse(b *testing.B) {
	for _, n := range []int{10, 1000} {
		data := Marshal(bigConfig(n))
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Parse(data, "bench.toml"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDiff(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		old := bigConfig(n)
		nw := bigConfig(n)
		nw.VirtualServers[n/2].RealServers[1].Weight = 9
		nw.VirtualServers = nw.VirtualServers[1:]
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			for b.Loop() {
				if ch := Diff(old, nw); len(ch.Ops) != 2 {
					b.Fatal(len(ch.Ops))
				}
			}
		})
	}
}

func BenchmarkMarshal(b *testing.B) {
	c := bigConfig(1000)
	for b.Loop() {
		Marshal(c)
	}
}
