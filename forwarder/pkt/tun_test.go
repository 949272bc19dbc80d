package pkt

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/gopacket/layers"
)

func TestEncap(t *testing.T) {
	tunnels := map[string]*Tunnel{
		"outer4": {Src: a16(dir4), Dst: a16(rs4), MTU: 1500, PMTUDisc: true},
		"outer6": {Src: a16(dir6), Dst: a16(rs6), MTU: 1500, PMTUDisc: true},
	}
	for tname, tun := range tunnels {
		for _, v6 := range []bool{false, true} {
			for _, s := range variants(v6) {
				for _, tos := range []uint8{0, 0xb9, 0x03} { // none, DSCP EF + ECT(1), CE
					for _, df := range []bool{false, true} {
						s := s
						s.tos, s.df, s.proto = tos, df, ProtoUDP
						if df {
							s.proto = ProtoTCP
						}
						t.Run(fmt.Sprintf("%s-%s-tos%#x-df%v", tname, s.name(), tos, df), func(t *testing.T) {
							testEncap(t, tun, s)
						})
					}
				}
			}
		}
	}
}

func testEncap(t *testing.T, tun *Tunnel, s spec) {
	orig := s.frame(t)
	buf, off := withHeadroom(orig)
	p := mustParse(t, buf, off, !s.noL2)
	l3 := p.L3Off
	inner := append([]byte(nil), buf[p.L3Off:p.End]...)
	const id = 0xbeef
	start, end, d := Encap(buf, p, tun, id)
	if d != DropNone {
		t.Fatal(d)
	}
	outer4 := IsV4(&tun.Dst)
	olen := 20
	if !outer4 {
		olen = 40
	}
	l2len := 0
	if !s.noL2 {
		l2len = 14
		if s.vlan != 0 {
			l2len = 18
		}
	}
	if start != l3-olen-l2len || end != p.End || p.L3Off != l3 {
		t.Fatalf("frame [%d,%d), want [%d,%d); inner moved to %d", start, end, l3-olen-l2len, p.End, p.L3Off)
	}
	frame := buf[start:end]
	first := layers.LayerTypeEthernet
	if s.noL2 {
		first = layers.LayerTypeIPv4
		if !outer4 {
			first = layers.LayerTypeIPv6
		}
	}
	pk := gpCheck(t, frame, first)
	if _, err := verifyFrame(buf[:end], start, !s.noL2); err != nil {
		t.Fatal(err)
	}
	// Link header: moved, ethertype set for the outer family, VLAN kept.
	if !s.noL2 {
		if !bytes.Equal(frame[:12], orig[:12]) {
			t.Errorf("MACs not carried over")
		}
		eth := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if s.vlan != 0 {
			q, ok := pk.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
			if !ok || int(q.VLANIdentifier) != s.vlan {
				t.Errorf("VLAN tag lost")
			}
		} else if (eth.EthernetType == layers.EthernetTypeIPv4) != outer4 {
			t.Errorf("ethertype %v", eth.EthernetType)
		}
	}
	wantTOS := s.tos
	if wantTOS&3 == 3 {
		wantTOS = wantTOS&^3 | 2
	}
	wantNH := layers.IPProtocolIPv4
	if s.v6 {
		wantNH = layers.IPProtocolIPv6
	}
	// Outer header.
	var ipLayers []interface{}
	for _, l := range pk.Layers() {
		switch l.(type) {
		case *layers.IPv4, *layers.IPv6:
			ipLayers = append(ipLayers, l)
		}
	}
	if len(ipLayers) != 2 {
		t.Fatalf("%d IP layers decoded, want 2", len(ipLayers))
	}
	if outer4 {
		o, ok := ipLayers[0].(*layers.IPv4)
		if !ok {
			t.Fatalf("outer is not IPv4")
		}
		wantDF := s.df || s.v6
		if o.IHL != 5 || o.Protocol != wantNH || o.TOS != wantTOS || o.Id != 0xbeef ||
			(o.Flags&layers.IPv4DontFragment != 0) != wantDF || o.TTL != 63 ||
			!o.SrcIP.Equal(dir4.AsSlice()) || !o.DstIP.Equal(rs4.AsSlice()) || int(o.Length) != len(inner)+20 {
			t.Errorf("outer IPv4 %+v", o)
		}
	} else {
		o, ok := ipLayers[0].(*layers.IPv6)
		if !ok {
			t.Fatalf("outer is not IPv6")
		}
		if o.NextHeader != wantNH || o.TrafficClass != wantTOS || o.FlowLabel != 0 || o.HopLimit != 63 ||
			!o.SrcIP.Equal(dir6.AsSlice()) || !o.DstIP.Equal(rs6.AsSlice()) || int(o.Length) != len(inner) {
			t.Errorf("outer IPv6 %+v", o)
		}
	}
	// Inner: TTL decremented, the rest unchanged (checksums verified above).
	gotInner := buf[l3:end]
	if s.v6 {
		if gotInner[7] != 63 {
			t.Errorf("inner hop limit %d", gotInner[7])
		}
		inner[7] = 63
	} else {
		if gotInner[8] != 63 {
			t.Errorf("inner TTL %d", gotInner[8])
		}
		inner[8] = 63
		inner[10], inner[11] = gotInner[10], gotInner[11]
	}
	if !bytes.Equal(gotInner, inner) {
		t.Errorf("inner packet changed beyond its TTL")
	}
}

func TestEncapPMTUDiscOff(t *testing.T) {
	tun := &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: 1500}
	buf, off := withHeadroom(spec{df: true}.frame(t))
	p := mustParse(t, buf, off, true)
	start, _, d := Encap(buf, p, tun, 1)
	if d != DropNone {
		t.Fatal(d)
	}
	if buf[start+14+6]&0x40 != 0 {
		t.Errorf("outer DF set with pmtu_disc off")
	}
}

// TestEncapTooBig: a DF (or IPv6) packet that does not fit the tunnel is
// refused untouched, and BuildTooBig answers with the tunnel MTU.
func TestEncapTooBig(t *testing.T) {
	big := make([]byte, 1460)
	cases := []struct {
		name string
		s    spec
		tun  *Tunnel
		want Drop
	}{
		{"v4-df", spec{df: true, payload: big}, &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: 1500, PMTUDisc: true}, DropTooBig},
		{"v4-df-outer6", spec{df: true, payload: big}, &Tunnel{Src: a16(dir6), Dst: a16(rs6), MTU: 1500, PMTUDisc: true}, DropTooBig},
		{"v4-nodf", spec{payload: big}, &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: 1500, PMTUDisc: true}, DropNeedsFragmentation},
		{"v4-df-pmtudisc-off", spec{df: true, payload: big}, &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: 1500}, DropNeedsFragmentation},
		{"v6", spec{v6: true, payload: big[:1440]}, &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: 1500, PMTUDisc: true}, DropTooBig},
		{"v6-outer6", spec{v6: true, payload: big[:1440]}, &Tunnel{Src: a16(dir6), Dst: a16(rs6), MTU: 1500, PMTUDisc: true}, DropTooBig},
		{"v4-bad-mtu", spec{}, &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: 87, PMTUDisc: true}, DropBadTunnelMTU},
		{"v6-bad-mtu", spec{v6: true}, &Tunnel{Src: a16(dir6), Dst: a16(rs6), MTU: 1319}, DropBadTunnelMTU},
		{"family", spec{}, &Tunnel{Src: a16(dir6), Dst: a16(rs4), MTU: 1500}, DropFamilyMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.s
			s.proto = ProtoTCP
			buf, off := withHeadroom(s.frame(t))
			p := mustParse(t, buf, off, true)
			orig := append([]byte(nil), buf...)
			_, _, d := Encap(buf, p, c.tun, 1)
			if d != c.want {
				t.Fatalf("got %v, want %v", d, c.want)
			}
			if !bytes.Equal(buf, orig) {
				t.Fatal("refused packet modified")
			}
			if d != DropTooBig {
				return
			}
			out := make([]byte, 1500)
			src := a16(dir4)
			if s.v6 {
				src = a16(dir6)
			}
			n, d := BuildTooBig(out, buf, p, src, c.tun.InnerMTU())
			if d != DropNone {
				t.Fatal(d)
			}
			pk := gpCheck(t, out[:n], firstLayer(false, s.v6))
			checkICMPError(t, pk, s.v6, 3, 2, uint32(c.tun.InnerMTU()), buf[p.L3Off:p.End])
			if !s.v6 {
				if ic := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ic.TypeCode.Code() != 4 {
					t.Errorf("code %d, want 4 (fragmentation needed)", ic.TypeCode.Code())
				}
			}
		})
	}
}

func TestEncapICMPErrorTooBig(t *testing.T) {
	q := spec{src: vip4, dst: client4, sport: 80, dport: 40000, payload: make([]byte, 1440)}.ipPacket(t)
	ip := icmpError(t, client4, vip4, 3, 3, 0, q)
	buf, off := withHeadroom(ethernetFrame(t, ip, false, 0))
	p := mustParse(t, buf, off, true)
	_, _, d := Encap(buf, p, &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: 1500, PMTUDisc: true}, 1)
	if d != DropTooBigICMP {
		t.Fatalf("got %v", d)
	}
}

func TestEncapHeadroom(t *testing.T) {
	f := spec{v6: true}.frame(t)
	tun := &Tunnel{Src: a16(dir6), Dst: a16(rs6), MTU: 1500}
	for _, room := range []int{0, 53, 54} {
		buf := make([]byte, room+len(f))
		copy(buf[room:], f)
		p := mustParse(t, buf, room, true)
		_, _, d := Encap(buf, p, tun, 1)
		want := DropNoHeadroom
		if room >= 40 {
			want = DropNone // the Ethernet header may overlap the old one's bytes
		}
		if d != want {
			t.Errorf("headroom %d: %v, want %v", room, d, want)
		}
	}
}
