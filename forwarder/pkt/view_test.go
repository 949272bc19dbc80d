package pkt

import (
	"testing"

	"github.com/google/gopacket/layers"
)

// TestViews reads the same packets through the header views and through
// gopacket.
func TestViews(t *testing.T) {
	f := spec{tos: 0xb8, df: true, ipOptions: true, tcpFlags: TCPSyn | TCPAck, tcpOptions: true}.frame(t)
	buf, off := withHeadroom(f)
	p := mustParse(t, buf, off, true)
	pk := gpCheck(t, buf[off:p.End], layers.LayerTypeEthernet)
	eth := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
	e := p.Ethernet(buf)
	if string(e.Dst()) != string(eth.DstMAC) || string(e.Src()) != string(eth.SrcMAC) || e.EtherType() != uint16(eth.EthernetType) {
		t.Errorf("ethernet view")
	}
	h := p.IPv4(buf)
	if h.HeaderLen() != int(ip.IHL)*4 || h.TOS() != ip.TOS || h.TotalLen() != int(ip.Length) || h.ID() != ip.Id ||
		!h.DF() || h.MF() || h.FragOffset() != 0 || h.TTL() != ip.TTL || h.Protocol() != uint8(ip.Protocol) ||
		h.Checksum() != ip.Checksum || string(h.Src()) != string(ip.SrcIP.To4()) || string(h.Dst()) != string(ip.DstIP.To4()) ||
		!h.ChecksumValid() || h.ComputeChecksum() != ip.Checksum || len(h.Payload()) != len(ip.Payload) {
		t.Errorf("ipv4 view")
	}
	tv := TCP(p.L4(buf))
	if tv.SrcPort() != uint16(tcp.SrcPort) || tv.DstPort() != uint16(tcp.DstPort) || tv.Seq() != tcp.Seq || tv.Ack() != tcp.Ack ||
		tv.DataOffset() != int(tcp.DataOffset)*4 || tv.Flags() != TCPSyn|TCPAck || tv.Checksum() != tcp.Checksum {
		t.Errorf("tcp view")
	}
	f6 := spec{v6: true, proto: ProtoUDP, tos: 0x2e}.frame(t)
	buf, off = withHeadroom(f6)
	p = mustParse(t, buf, off, true)
	pk = gpCheck(t, buf[off:p.End], layers.LayerTypeEthernet)
	ip6 := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	udp := pk.Layer(layers.LayerTypeUDP).(*layers.UDP)
	h6 := p.IPv6(buf)
	if h6.TrafficClass() != ip6.TrafficClass || h6.PayloadLen() != int(ip6.Length) || h6.NextHeader() != uint8(ip6.NextHeader) ||
		h6.HopLimit() != ip6.HopLimit || string(h6.Src()) != string(ip6.SrcIP) || string(h6.Dst()) != string(ip6.DstIP) {
		t.Errorf("ipv6 view")
	}
	u := UDP(p.L4(buf))
	if u.SrcPort() != uint16(udp.SrcPort) || u.DstPort() != uint16(udp.DstPort) || u.Length() != int(udp.Length) || u.Checksum() != udp.Checksum {
		t.Errorf("udp view")
	}
	var sv Ethernet = make([]byte, 14)
	sv.SetMACs(macRS, macDirA)
	if [6]byte(sv.Dst()) != macRS || [6]byte(sv.Src()) != macDirA {
		t.Errorf("SetMACs")
	}
	buf, off = withHeadroom(arpRequest(t, 3))
	p = mustParse(t, buf, off, true)
	a := ARP(buf[p.L3Off:p.End])
	if a.Op() != 1 || string(a.SenderHW()) != string(macClient) || string(a.SenderIP()) != string(client4.AsSlice()) ||
		string(a.TargetIP()) != string(vip4.AsSlice()) || len(a.TargetHW()) != 6 || p.Ethernet(buf).EtherType() != EtherTypeARP {
		t.Errorf("arp view")
	}
	q := spec{src: vip4, dst: client4}.ipPacket(t)
	buf, off = withHeadroom(ethernetFrame(t, icmpError(t, client4, vip4, 3, 4, 1400, q), false, 0))
	p = mustParse(t, buf, off, true)
	ic := ICMP(p.L4(buf))
	if ic.Type() != 3 || ic.Code() != 4 || ic.Info() != 1400 || p.ICMPInfo != 1400 || len(ic.Body()) != len(q) || ic.Checksum() == 0 {
		t.Errorf("icmp view")
	}
}
