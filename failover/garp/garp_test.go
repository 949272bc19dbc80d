package garp

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var mac = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42}

func TestARP(t *testing.T) {
	vip := netip.MustParseAddr("10.0.0.100")
	f := AppendARP(nil, mac, vip)
	if len(f) != 60 {
		t.Fatalf("len %d", len(f))
	}
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.DstMAC, broadcast) || !bytes.Equal(eth.SrcMAC, mac) {
		t.Fatalf("ethernet %v -> %v", eth.SrcMAC, eth.DstMAC)
	}
	arp, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !ok {
		t.Fatal("no ARP layer")
	}
	if arp.Operation != layers.ARPRequest || !bytes.Equal(arp.SourceHwAddress, mac) ||
		!bytes.Equal(arp.SourceProtAddress, vip.AsSlice()) || !bytes.Equal(arp.DstProtAddress, vip.AsSlice()) ||
		!bytes.Equal(arp.DstHwAddress, make([]byte, 6)) {
		t.Fatalf("arp %+v", arp)
	}
}

func TestNA(t *testing.T) {
	vip := netip.MustParseAddr("2001:db8::100")
	ll := netip.MustParseAddr("fe80::42")
	f := AppendNA(nil, mac, ll, vip)
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatal(el.Error())
	}
	ip6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if ip6.HopLimit != 255 || !ip6.DstIP.Equal(allNodes.AsSlice()) || !ip6.SrcIP.Equal(ll.AsSlice()) {
		t.Fatalf("ipv6 %+v", ip6)
	}
	na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if !ok {
		t.Fatal("no NA layer")
	}
	if !na.TargetAddress.Equal(vip.AsSlice()) || !na.Override() || na.Solicited() || na.Router() {
		t.Fatalf("na %+v", na)
	}
	if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, mac) {
		t.Fatalf("options %+v", na.Options)
	}
	// Independent checksum: let gopacket recompute it over the same layers.
	icmp := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	got := icmp.Checksum
	if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, icmp, gopacket.Payload(icmp.Payload)); err != nil {
		t.Fatal(err)
	}
	want := uint16(buf.Bytes()[2])<<8 | uint16(buf.Bytes()[3])
	if got != want {
		t.Fatalf("checksum %04x, gopacket computes %04x", got, want)
	}
}

type rec struct {
	n   int
	err error
}

func (r *rec) WriteFrame([]byte) error { r.n++; return r.err }

func TestBurst(t *testing.T) {
	frames, err := Frames(mac, netip.Addr{}, []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")})
	if err != nil || len(frames) != 2 {
		t.Fatal(err)
	}
	if frames[1][14+8] != 0x20 || frames[1][14+9] != 0x01 { // NA source falls back to the VIP
		t.Fatalf("NA source %x", frames[1][22:38])
	}
	w := &rec{}
	if err := Burst(context.Background(), w, frames, 5, 0); err != nil || w.n != 10 {
		t.Fatalf("n=%d err=%v", w.n, err)
	}
	w = &rec{err: ErrBadMAC}
	if err := Burst(context.Background(), w, frames, 3, 0); err == nil || w.n != 6 {
		t.Fatalf("errors must not stop the burst: n=%d err=%v", w.n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w = &rec{}
	if err := Burst(ctx, w, frames, 5, time.Hour); err != context.Canceled || w.n != 2 {
		t.Fatalf("cancel: n=%d err=%v", w.n, err)
	}
	if _, err := Frames(net.HardwareAddr{1, 2}, netip.Addr{}, nil); err != ErrBadMAC {
		t.Fatal("short MAC accepted")
	}
}
