package pkt

import (
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func l4Frame(t *testing.T, v6, udp bool, zeroUDP bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	var net3 gopacket.NetworkLayer
	var ls []gopacket.SerializableLayer
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}
		net3 = ip
		ls = append(ls, eth, ip)
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
		net3 = ip
		ls = append(ls, eth, ip)
	}
	if udp {
		u := &layers.UDP{SrcPort: 4000, DstPort: 53}
		_ = u.SetNetworkLayerForChecksum(net3)
		setProto(net3, layers.IPProtocolUDP)
		ls = append(ls, u)
	} else {
		tc := &layers.TCP{SrcPort: 4000, DstPort: 80, SYN: true, Window: 100}
		_ = tc.SetNetworkLayerForChecksum(net3)
		setProto(net3, layers.IPProtocolTCP)
		ls = append(ls, tc)
	}
	ls = append(ls, gopacket.Payload("some payload bytes"))
	b := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	f := b.Bytes()
	if udp && zeroUDP {
		l4 := 14 + 20
		if v6 {
			l4 = 14 + 40
		}
		f[l4+6], f[l4+7] = 0, 0
	}
	return f
}

func setProto(n gopacket.NetworkLayer, p layers.IPProtocol) {
	switch ip := n.(type) {
	case *layers.IPv4:
		ip.Protocol = p
	case *layers.IPv6:
		ip.NextHeader = p
	}
}

func TestL4ChecksumOK(t *testing.T) {
	for _, c := range []struct {
		name          string
		v6, udp, zero bool
	}{
		{"tcp4", false, false, false}, {"udp4", false, true, false}, {"tcp6", true, false, false},
		{"udp6", true, true, false}, {"udp4 no checksum", false, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := l4Frame(t, c.v6, c.udp, c.zero)
			var p Packet
			if d := ParseEthernet(f, 0, &p); d != DropNone {
				t.Fatalf("parse: %v", d)
			}
			if !L4ChecksumOK(f, &p) {
				t.Fatal("a correct checksum fails")
			}
			f[len(f)-1] ^= 0x5a // corrupt the payload
			if got := L4ChecksumOK(f, &p); got != c.zero {
				t.Fatalf("corrupted payload: ok = %v, want %v", got, c.zero)
			}
			if n := testing.AllocsPerRun(100, func() { L4ChecksumOK(f, &p) }); n != 0 {
				t.Fatalf("allocates %v", n)
			}
		})
	}
}

// TestL4ChecksumNegativeZero: a TCP segment whose checksum computes to
// 0x0000 but carries 0xffff (one's complement -0, as Linux writes when it
// checksums in software: skb_checksum_help's CSUM_MANGLED_0) is valid, and
// NAT's incremental rewrite keeps it valid.
func TestL4ChecksumNegativeZero(t *testing.T) {
	f := l4Frame(t, false, false, false)
	var p Packet
	if d := ParseEthernet(f, 0, &p); d != DropNone {
		t.Fatalf("parse: %v", d)
	}
	// Choose the last payload word so that the checksum computes to 0.
	ck := p.L4Off + 16
	last := len(f) - 2
	found := false
	for x := 0; x < 1<<16 && !found; x++ {
		f[last], f[last+1] = byte(x>>8), byte(x)
		f[ck], f[ck+1] = 0, 0
		if FillL4Checksum(f, &p) == DropNone && f[ck] == 0 && f[ck+1] == 0 {
			found = true
		}
	}
	if !found {
		t.Fatal("no payload word gives a zero checksum")
	}
	f[ck], f[ck+1] = 0xff, 0xff
	if !L4ChecksumOK(f, &p) {
		t.Fatal("a TCP checksum of 0xffff for 0x0000 (-0) fails the check")
	}
	f[last] ^= 0x01
	if L4ChecksumOK(f, &p) {
		t.Fatal("a corrupted segment with checksum 0xffff passes")
	}
}
