package pkt

import (
	"bytes"
	"testing"
)

// Every fuzz target takes a frame and whether it starts with Ethernet (an
// AF_PACKET frame) or with IP (a TUN frame). The harness first makes the
// input's checksums valid (fixChecksums, the test-side oracle), so that
// mutations reach past the checksum checks, then holds every rewrite to:
// never panic; on a Drop, leave the packet unchanged; on success, the
// output parses and every checksum in it verifies by full recomputation.

// prepare copies frame behind Headroom, fixes its checksums and parses it.
func prepare(frame []byte, l2 bool) ([]byte, int, *Packet, bool) {
	buf, off := withHeadroom(frame)
	fixChecksums(buf[off:], l2)
	p := new(Packet)
	var d Drop
	if l2 {
		d = ParseEthernet(buf, off, p)
	} else {
		d = ParseIP(buf, off, p)
	}
	return buf, off, p, d == DropNone
}

// checkInvariants holds a successful parse to its documented shape.
func checkInvariants(t *testing.T, buf []byte, off int, p *Packet) {
	t.Helper()
	if p.L2Off >= 0 && p.L2Off != off || p.L2Off < 0 && p.L3Off != off {
		t.Fatalf("frame start %d/%d, want %d", p.L2Off, p.L3Off, off)
	}
	if p.Version == 0 {
		if p.EtherType != EtherTypeARP || p.End != p.L3Off+ARPLen || p.End > len(buf) {
			t.Fatalf("non-IP parse %+v", p)
		}
		return
	}
	if !(p.Start() <= p.L3Off && p.L3Off < p.L4Off && p.L4Off <= p.PayloadOff && p.PayloadOff <= p.End && p.End <= len(buf)) {
		t.Fatalf("offsets out of order: %+v (len %d)", p, len(buf))
	}
	if p.Version == 4 && Fold(Sum(buf[p.L3Off:p.L4Off], 0)) != 0xffff {
		t.Fatal("accepted a bad IPv4 header checksum")
	}
	if p.Flags&FlagICMPError != 0 {
		e := p.Inner
		if !(p.L4Off+ICMPLen == e.L3Off && e.L3Off < e.L4Off && e.L4Off <= e.End && e.End <= p.End) {
			t.Fatalf("quoted offsets out of order: %+v", p)
		}
		if p.Flags&FlagInnerPorts != 0 && e.End-e.L4Off < 8 {
			t.Fatal("quoted ports claimed with fewer than 8 bytes")
		}
	}
	if p.Flags&FlagSLLA != 0 && (p.SLLAOff < p.L4Off || p.SLLAOff+6 > p.End) {
		t.Fatalf("SLLA offset %d outside the message", p.SLLAOff)
	}
}

func addSeeds(f *testing.F, target string) {
	for _, s := range fuzzSeeds(f) {
		if s.targets == "" || containsWord(s.targets, target) {
			f.Add(s.frame, s.l2)
		}
	}
}

func FuzzParse(f *testing.F) {
	addSeeds(f, "parse")
	f.Fuzz(func(t *testing.T, frame []byte, l2 bool) {
		// Raw first: any bytes, no fixing.
		buf, off := withHeadroom(frame)
		var p Packet
		var d Drop
		if l2 {
			d = ParseEthernet(buf, off, &p)
		} else {
			d = ParseIP(buf, off, &p)
		}
		if d >= NumDrops {
			t.Fatalf("drop %d out of range", d)
		}
		if d == DropNone {
			checkInvariants(t, buf, off, &p)
		}
		buf, off, pp, ok := prepare(frame, l2)
		if ok {
			checkInvariants(t, buf, off, pp)
		}
	})
}

// rewriteHarness runs rw on a prepared packet and checks the result.
func rewriteHarness(t *testing.T, frame []byte, l2 bool, rw func(buf []byte, p *Packet) (start, end int, d Drop)) {
	buf, off, p, ok := prepare(frame, l2)
	if !ok {
		return
	}
	orig := append([]byte(nil), buf...)
	start, end, d := rw(buf, p)
	if d != DropNone {
		if !bytes.Equal(buf, orig) {
			t.Fatalf("%v: refused packet was modified", d)
		}
		return
	}
	if _, err := verifyFrame(buf[:end], start, l2); err != nil {
		t.Fatalf("output: %v\ninput:  %x\noutput: %x", err, orig[off:], buf[start:end])
	}
}

func addrFor(p *Packet, v4, v6 [16]byte) [16]byte {
	if p.Version == 6 {
		return v6
	}
	return v4
}

func FuzzNATIn(f *testing.F) {
	addSeeds(f, "nat")
	f.Fuzz(func(t *testing.T, frame []byte, l2 bool) {
		rewriteHarness(t, frame, l2, func(buf []byte, p *Packet) (int, int, Drop) {
			rs := addrFor(p, a16(rs4), a16(rs6))
			d := NATIn(buf, p, rs, 8080)
			if d == DropNone {
				var q Packet
				if ParseIP(buf[:p.End], p.L3Off, &q) != DropNone || q.Dst != rs || q.DstPort != 8080 {
					t.Fatalf("NATIn output has dst %v:%d", q.Dst, q.DstPort)
				}
			}
			return p.Start(), p.End, d
		})
	})
}

func FuzzNATOut(f *testing.F) {
	addSeeds(f, "nat")
	f.Fuzz(func(t *testing.T, frame []byte, l2 bool) {
		rewriteHarness(t, frame, l2, func(buf []byte, p *Packet) (int, int, Drop) {
			vip := addrFor(p, a16(vip4), a16(vip6))
			d := NATOut(buf, p, vip, 80)
			if d == DropNone {
				var q Packet
				if ParseIP(buf[:p.End], p.L3Off, &q) != DropNone || q.Src != vip || q.SrcPort != 80 {
					t.Fatalf("NATOut output has src %v:%d", q.Src, q.SrcPort)
				}
			}
			return p.Start(), p.End, d
		})
	})
}

func FuzzDR(f *testing.F) {
	addSeeds(f, "dr")
	f.Fuzz(func(t *testing.T, frame []byte, l2 bool) {
		rewriteHarness(t, frame, l2, func(buf []byte, p *Packet) (int, int, Drop) {
			return p.Start(), p.End, DR(buf, p, macRS, macDirA)
		})
	})
}

func FuzzEncap(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		if s.targets == "" || containsWord(s.targets, "tun") {
			f.Add(s.frame, s.l2, uint16(1500), false, true)
			f.Add(s.frame, s.l2, uint16(1300), true, true)
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte, l2 bool, mtu uint16, outer6, pmtu bool) {
		tun := &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: int(mtu), PMTUDisc: pmtu}
		if outer6 {
			tun.Src, tun.Dst = a16(dir6), a16(rs6)
		}
		rewriteHarness(t, frame, l2, func(buf []byte, p *Packet) (int, int, Drop) {
			start, end, d := Encap(buf, p, tun, 0x4242)
			if d == DropNone {
				if end-start-(p.L3Off-p.Start()) > int(mtu) {
					t.Fatalf("encapsulated packet exceeds MTU %d", mtu)
				}
				// The inner packet, untouched in place, still parses.
				var q Packet
				if d := ParseIP(buf[:end], p.L3Off, &q); d != DropNone {
					t.Fatalf("inner packet no longer parses: %v", d)
				}
				if err := verifyIP(buf[:end], p.L3Off, 0); err != nil {
					t.Fatalf("inner packet: %v", err)
				}
			}
			if d == DropTooBig {
				out := make([]byte, 1500)
				src := addrFor(p, a16(dir4), a16(dir6))
				if n, d := BuildTooBig(out, buf, p, src, tun.InnerMTU()); d == DropNone {
					if _, err := verifyFrame(out[:n], 0, false); err != nil {
						t.Fatalf("too-big answer: %v", err)
					}
				}
			}
			return start, end, d
		})
	})
}

func FuzzICMPNATIn(f *testing.F) {
	addSeeds(f, "icmp")
	f.Fuzz(func(t *testing.T, frame []byte, l2 bool) {
		rewriteHarness(t, frame, l2, func(buf []byte, p *Packet) (int, int, Drop) {
			rs := addrFor(p, a16(rs4), a16(rs6))
			d := ICMPNATIn(buf, p, rs, 8080)
			if d == DropNone {
				var q Packet
				if ParseIP(buf[:p.End], p.L3Off, &q) != DropNone || q.Dst != rs || q.Inner.Src != rs || q.Inner.SrcPort != 8080 {
					t.Fatalf("ICMPNATIn output: %+v", q)
				}
			}
			return p.Start(), p.End, d
		})
	})
}

func FuzzICMPNATOut(f *testing.F) {
	addSeeds(f, "icmp")
	f.Fuzz(func(t *testing.T, frame []byte, l2 bool) {
		rewriteHarness(t, frame, l2, func(buf []byte, p *Packet) (int, int, Drop) {
			vip := addrFor(p, a16(vip4), a16(vip6))
			d := ICMPNATOut(buf, p, vip, 80)
			if d == DropNone {
				var q Packet
				if ParseIP(buf[:p.End], p.L3Off, &q) != DropNone || q.Src != vip || q.Inner.Dst != vip || q.Inner.DstPort != 80 {
					t.Fatalf("ICMPNATOut output: %+v", q)
				}
			}
			return p.Start(), p.End, d
		})
	})
}

// FuzzICMPError builds time-exceeded and too-big answers about any parsed
// packet: they must parse, verify and quote the packet's start.
func FuzzICMPError(f *testing.F) {
	addSeeds(f, "icmperr")
	f.Fuzz(func(t *testing.T, frame []byte, l2 bool) {
		buf, _, p, ok := prepare(frame, l2)
		if !ok || p.Version == 0 {
			return
		}
		src := addrFor(p, a16(dir4), a16(dir6))
		out := make([]byte, 1600)
		var q Packet
		if ParseTunnelError(buf, p, &q) == DropNone {
			if !(q.L3Off >= p.Inner.L4Off && q.L3Off < q.L4Off && q.L4Off <= q.End && q.End <= p.End) {
				t.Fatalf("tunnel quote offsets: %+v", q)
			}
			if q.Flags&FlagPorts != 0 && q.End-q.L4Off < 8 {
				t.Fatal("tunnel quote ports claimed with fewer than 8 bytes")
			}
			if n, d := BuildTooBig(out, buf, &q, addrFor(&q, a16(vip4), a16(vip6)), 1280); d == DropNone {
				if _, err := verifyFrame(out[:n], 0, false); err != nil {
					t.Fatalf("answer to a tunnel error: %v", err)
				}
			}
		}
		for i, build := range []func() (int, Drop){
			func() (int, Drop) { return BuildTimeExceeded(out, buf, p, src) },
			func() (int, Drop) { return BuildTooBig(out, buf, p, src, 1280) },
			func() (int, Drop) { return BuildPortUnreachable(out[:90], buf, p, src) },
		} {
			n, d := build()
			if d != DropNone {
				continue
			}
			q, err := verifyFrame(out[:n], 0, false)
			if err != nil {
				t.Fatalf("builder %d: %v", i, err)
			}
			if q.Flags&FlagICMPError == 0 || q.Dst != p.Src {
				t.Fatalf("builder %d: not an error to the source: %+v", i, q)
			}
			if quote := out[q.Inner.L3Off:n]; !bytes.Equal(quote, buf[p.L3Off:p.L3Off+len(quote)]) {
				t.Fatalf("builder %d: quote differs from the packet", i)
			}
		}
	})
}

// FuzzNeighbor answers any parsed ARP request or neighbour solicitation.
func FuzzNeighbor(f *testing.F) {
	addSeeds(f, "neigh")
	f.Fuzz(func(t *testing.T, frame []byte, l2 bool) {
		buf, _, p, ok := prepare(frame, l2)
		if !ok {
			return
		}
		out := make([]byte, 128)
		n, d := ARPReply(out, buf, p, macDirA)
		if d == DropNone {
			var q Packet
			if ParseEthernet(out[:n], 0, &q) != DropNone || q.ARPOp != 2 || q.Src != p.Target || q.Tagged != p.Tagged || q.VLAN != p.VLAN {
				t.Fatalf("ARP reply: %+v", q)
			}
		}
		n, d = NeighborAdvert(out, buf, p, macDirA)
		if d == DropNone {
			q, err := verifyFrame(out[:n], 0, true)
			if err != nil || q.ICMPType != icmp6NA || q.Src != p.Target || q.TTL != 255 {
				t.Fatalf("NA: %v %+v", err, q)
			}
		}
	})
}
