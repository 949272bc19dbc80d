package pkt

import (
	"net"
	"testing"

	"github.com/google/gopacket/layers"
)

func arpRequest(t testing.TB, vlan int) []byte {
	eth := &layers.Ethernet{SrcMAC: macClient, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: 1, SourceHwAddress: macClient, SourceProtAddress: client4.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: vip4.AsSlice()}
	if vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		return serialize(t, eth, &layers.Dot1Q{VLANIdentifier: uint16(vlan), Type: layers.EthernetTypeARP}, arp)
	}
	return serialize(t, eth, arp)
}

func TestARPReply(t *testing.T) {
	for _, vlan := range []int{0, 12} {
		buf, off := withHeadroom(arpRequest(t, vlan))
		p := mustParse(t, buf, off, true)
		out := make([]byte, 64)
		n, d := ARPReply(out, buf, p, macDirA)
		if d != DropNone {
			t.Fatal(d)
		}
		if n < 60 {
			t.Errorf("reply of %d bytes, not padded to 60", n)
		}
		pk := gpCheck(t, out[:n], layers.LayerTypeEthernet)
		eth := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		arp, ok := pk.Layer(layers.LayerTypeARP).(*layers.ARP)
		if !ok {
			t.Fatal("no ARP layer")
		}
		if arp.Operation != 2 || [6]byte(arp.SourceHwAddress) != macDirA || !net.IP(arp.SourceProtAddress).Equal(vip4.AsSlice()) ||
			!net.IP(arp.DstProtAddress).Equal(client4.AsSlice()) || net.HardwareAddr(arp.DstHwAddress).String() != macClient.String() {
			t.Errorf("reply %+v", arp)
		}
		if eth.DstMAC.String() != macClient.String() || [6]byte(eth.SrcMAC) != macDirA {
			t.Errorf("ethernet %v -> %v", eth.SrcMAC, eth.DstMAC)
		}
		if q, ok := pk.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); (vlan != 0) != ok || ok && int(q.VLANIdentifier) != vlan {
			t.Errorf("vlan: %v", ok)
		}
		// our parser reads it back as a reply
		var rp Packet
		if d := ParseEthernet(out[:n], 0, &rp); d != DropNone || rp.ARPOp != 2 || rp.Src != a16(vip4) {
			t.Errorf("reparse: %v %+v", d, rp)
		}
		// a reply is not answered
		if _, d := ARPReply(out, out[:n], &rp, macDirA); d != DropNotARPRequest {
			t.Errorf("answering a reply: %v", d)
		}
	}
}

func TestGratuitousARP(t *testing.T) {
	out := make([]byte, 64)
	n, d := GratuitousARP(out, macDirA, a16(vip4), 7)
	if d != DropNone {
		t.Fatal(d)
	}
	pk := gpCheck(t, out[:n], layers.LayerTypeEthernet)
	eth := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	arp := pk.Layer(layers.LayerTypeARP).(*layers.ARP)
	if eth.DstMAC.String() != "ff:ff:ff:ff:ff:ff" || arp.Operation != 1 ||
		!net.IP(arp.SourceProtAddress).Equal(vip4.AsSlice()) || !net.IP(arp.DstProtAddress).Equal(vip4.AsSlice()) ||
		[6]byte(arp.SourceHwAddress) != macDirA {
		t.Errorf("gratuitous ARP %+v", arp)
	}
	if q, ok := pk.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); !ok || q.VLANIdentifier != 7 {
		t.Error("vlan tag missing")
	}
	if _, d := GratuitousARP(out, macDirA, a16(vip6), NoVLAN); d != DropFamilyMismatch {
		t.Errorf("v6: %v", d)
	}
	if _, d := GratuitousARP(out[:50], macDirA, a16(vip4), NoVLAN); d != DropBufferTooSmall {
		t.Errorf("small buffer: %v", d)
	}
}

func checkNA(t *testing.T, frame []byte, wantDstIP string, wantDstMAC string, solicited bool) {
	t.Helper()
	pk := gpCheck(t, frame, layers.LayerTypeEthernet)
	eth := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip6 := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	na, ok := pk.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if !ok {
		t.Fatal("no NA layer")
	}
	if ip6.HopLimit != 255 || !ip6.SrcIP.Equal(vip6.AsSlice()) || ip6.DstIP.String() != wantDstIP {
		t.Errorf("ipv6 %v -> %v hop %d", ip6.SrcIP, ip6.DstIP, ip6.HopLimit)
	}
	if eth.DstMAC.String() != wantDstMAC || [6]byte(eth.SrcMAC) != macDirA {
		t.Errorf("ethernet -> %v", eth.DstMAC)
	}
	if !na.TargetAddress.Equal(vip6.AsSlice()) || na.Solicited() != solicited || !na.Override() || na.Router() {
		t.Errorf("NA target %v flags %#x", na.TargetAddress, na.Flags)
	}
	if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || [6]byte(na.Options[0].Data) != macDirA {
		t.Errorf("options %+v", na.Options)
	}
	var p Packet
	if d := ParseEthernet(frame, 0, &p); d != DropNone || p.ICMPType != 136 {
		t.Errorf("reparse: %v type %d", d, p.ICMPType)
	}
}

func TestNeighborAdvert(t *testing.T) {
	out := make([]byte, 128)
	// With a source link-layer option: unicast to it.
	buf, off := withHeadroom(nsFrame(t, client6, vip6, true, 255))
	p := mustParse(t, buf, off, true)
	n, d := NeighborAdvert(out, buf, p, macDirA)
	if d != DropNone {
		t.Fatal(d)
	}
	checkNA(t, out[:n], client6.String(), macClient.String(), true)
	// Without: unicast to the frame's source MAC.
	buf, off = withHeadroom(nsFrame(t, client6, vip6, false, 255))
	p = mustParse(t, buf, off, true)
	n, _ = NeighborAdvert(out, buf, p, macDirA)
	checkNA(t, out[:n], client6.String(), macClient.String(), true)
	// Duplicate address detection from ::: to all-nodes, not solicited.
	ip6 := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: make(net.IP, 16), DstIP: net.ParseIP("ff02::1:ff00:1")}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)}
	_ = ic.SetNetworkLayerForChecksum(ip6)
	dad := serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv6},
		ip6, ic, &layers.ICMPv6NeighborSolicitation{TargetAddress: vip6.AsSlice()})
	buf, off = withHeadroom(dad)
	p = mustParse(t, buf, off, true)
	n, _ = NeighborAdvert(out, buf, p, macDirA)
	checkNA(t, out[:n], "ff02::1", "33:33:00:00:00:01", false)
	// Not an NS.
	buf, off = withHeadroom(spec{v6: true}.frame(t))
	p = mustParse(t, buf, off, true)
	if _, d := NeighborAdvert(out, buf, p, macDirA); d != DropNotNS {
		t.Errorf("tcp: %v", d)
	}
}

func TestUnsolicitedNA(t *testing.T) {
	out := make([]byte, 128)
	n, d := UnsolicitedNA(out, macDirA, a16(vip6), NoVLAN)
	if d != DropNone {
		t.Fatal(d)
	}
	checkNA(t, out[:n], "ff02::1", "33:33:00:00:00:01", false)
	if _, d := UnsolicitedNA(out, macDirA, a16(vip4), NoVLAN); d != DropFamilyMismatch {
		t.Errorf("v4: %v", d)
	}
}
