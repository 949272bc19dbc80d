package pkt

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

type fuzzSeed struct {
	name    string
	frame   []byte
	l2      bool
	targets string // which fuzz targets want it ("" = all)
}

// fuzzSeeds are the seed inputs of every fuzz target: well-formed packets
// of each kind and the malformed shapes the parser must drop.
func fuzzSeeds(t testing.TB) []fuzzSeed {
	var ss []fuzzSeed
	add := func(name string, frame []byte, l2 bool, targets string) {
		ss = append(ss, fuzzSeed{name, frame, l2, targets})
	}
	cut := func(b []byte, n int) []byte { return append([]byte(nil), b[:n]...) }
	mod := func(b []byte, i int, v byte) []byte { b = append([]byte(nil), b...); b[i] = v; return b }
	for _, v6 := range []bool{false, true} {
		fam := map[bool]string{false: "4", true: "6"}[v6]
		cl, vip, rs := client4, vip4, rs4
		if v6 {
			cl, vip, rs = client6, vip6, rs6
		}
		for _, s := range variants(v6) {
			for _, proto := range []uint8{ProtoTCP, ProtoUDP} {
				s := s
				s.proto = proto
				add(s.name(), s.frame(t), !s.noL2, "")
				r := s
				r.src, r.dst, r.sport, r.dport = rs, cl, 8080, 40000
				add("reply-"+s.name(), r.frame(t), !s.noL2, "nat")
			}
		}
		add("udp"+fam+"-zerosum", spec{v6: v6, proto: ProtoUDP, udpZeroSum: true}.frame(t), true, "")
		add("tcp"+fam+"-ttl1", spec{v6: v6, ttl: 1}.frame(t), true, "")
		add("tcp"+fam+"-syn-opts", spec{v6: v6, tcpFlags: TCPSyn, tcpOptions: true}.frame(t), true, "")
		add("tcp"+fam+"-big-df", spec{v6: v6, df: true, payload: make([]byte, 1400)}.frame(t), true, "tun icmperr")
		add("echo"+fam, spec{v6: v6, proto: map[bool]uint8{false: ProtoICMP, true: ProtoICMPv6}[v6]}.frame(t), true, "")
		tcp := spec{v6: v6}.frame(t)
		add("tcp"+fam+"-cut-l4", cut(tcp, len(tcp)-30), true, "parse")
		add("tcp"+fam+"-cut-l3", cut(tcp, 14+10), true, "parse")
		// ICMP errors quoting: 8 bytes of TCP, whole UDP, UDP without
		// checksum, 4 bytes (too short), a fragment.
		typ := map[bool]uint8{false: 3, true: 1}[v6]
		for _, q := range []struct {
			name string
			s    spec
			cut  int // bytes of L4 kept; -1 whole
		}{
			{"tcp-8", spec{v6: v6, src: vip, dst: cl, sport: 80, dport: 40000}, 8},
			{"tcp-ext-18", spec{v6: v6, ext: v6, ipOptions: !v6, src: vip, dst: cl, sport: 80, dport: 40000}, 18},
			{"udp-whole", spec{v6: v6, proto: ProtoUDP, src: vip, dst: cl, sport: 80, dport: 40000}, -1},
			{"udp-zerosum", spec{v6: v6, proto: ProtoUDP, udpZeroSum: true, src: vip, dst: cl, sport: 80, dport: 40000}, -1},
			{"tcp-4", spec{v6: v6, src: vip, dst: cl, sport: 80, dport: 40000}, 4},
			{"out-tcp-whole", spec{v6: v6, src: cl, dst: rs, sport: 40000, dport: 8080}, -1},
		} {
			b := q.s.ipPacket(t)
			var qp Packet
			if d := ParseIP(b, 0, &qp); d != DropNone {
				t.Fatalf("seed quote %s: %v", q.name, d)
			}
			if q.cut >= 0 {
				b = b[:qp.L4Off+q.cut]
			}
			src, dst := cl, vip
			if q.name[:3] == "out" {
				src, dst = rs, cl
			}
			ip := icmpError(t, src, dst, typ, 3, 0, b)
			add("icmp"+fam+"-"+q.name, ethernetFrame(t, ip, v6, 0), true, "icmp parse icmperr tun dr")
			add("icmp"+fam+"-"+q.name+"-noL2", ip, false, "icmp parse")
		}
		if !v6 {
			fr := spec{fragOffset: 8, src: vip, dst: cl}.ipPacket(t)
			add("icmp4-quoting-fragment", ethernetFrame(t, icmpError(t, cl, vip, 3, 3, 0, fr[:28]), false, 0), true, "icmp parse")
			add("icmp4-frag-needed", ethernetFrame(t, icmpError(t, cl, vip, 3, 4, 1400, spec{src: vip, dst: cl}.ipPacket(t)), false, 0), true, "icmp parse")
			add("icmp4-time-exceeded", ethernetFrame(t, icmpError(t, cl, vip, 11, 0, 0, spec{src: vip, dst: cl}.ipPacket(t)[:28]), false, 0), true, "icmp parse")
		} else {
			add("icmp6-ptb", ethernetFrame(t, icmpError(t, cl, vip, 2, 0, 1280, spec{v6: true, src: vip, dst: cl}.ipPacket(t)), true, 0), true, "icmp parse")
		}
	}
	// Errors about the director's own tunnel packets.
	for _, c := range []struct{ outer6, inner6 bool }{{false, false}, {true, true}, {false, true}} {
		sp := spec{v6: c.inner6, df: true, payload: make([]byte, 600)}
		buf, off := withHeadroom(sp.frame(t))
		p := mustParse(t, buf, off, true)
		tun := &Tunnel{Src: a16(dir4), Dst: a16(rs4), MTU: 1500, PMTUDisc: true}
		router, typ, code := netip.MustParseAddr("10.9.9.9"), uint8(3), uint8(4)
		if c.outer6 {
			tun.Src, tun.Dst = a16(dir6), a16(rs6)
			router, typ, code = netip.MustParseAddr("fd00::99"), 2, 0
		}
		start, end, d := Encap(buf, p, tun, 9)
		if d != DropNone {
			t.Fatal(d)
		}
		tp := buf[start+14 : end]
		tp = tp[:min(len(tp), 300)]
		add(fmt.Sprintf("tunnel-error-outer6-%v-inner6-%v", c.outer6, c.inner6),
			ethernetFrame(t, icmpError(t, router, netip.AddrFrom16(tun.Src).Unmap(), typ, code, 1400, tp), c.outer6, 0), true, "icmp icmperr parse")
	}
	// Malformed IPv4.
	tcp4 := spec{}.frame(t)
	add("ipv4-bad-ihl", mod(tcp4, 14, 0x44), true, "parse nat")
	add("ipv4-ihl-15", mod(tcp4, 14, 0x4f), true, "parse nat")
	add("ipv4-bad-totlen", mod(tcp4, 17, 0xff), true, "parse")
	add("ipv4-bad-checksum", mod(tcp4, 14+11, 0), true, "parse")
	add("ipv4-fragment-mf", spec{fragMF: true}.frame(t), true, "parse")
	add("ipv4-fragment-off", spec{fragOffset: 1480}.frame(t), true, "parse")
	add("udp4-bad-len", mod(spec{proto: ProtoUDP}.frame(t), 14+20+5, 200), true, "parse nat")
	add("tcp4-bad-doff", mod(tcp4, 14+20+12, 0xf0), true, "parse nat")
	add("empty", nil, true, "parse")
	add("vlan-only", []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0}, true, "parse")
	// IPv6 extension-header chains: all kinds, the atomic fragment, a
	// real fragment, a chain over the limit, a cut header.
	chain := []byte{
		ProtoRouting, 0, 1, 4, 0, 0, 0, 0, // hop-by-hop -> routing
		ProtoFragment, 0, 0, 0, 0, 0, 0, 0, // routing (type 0, 0 left) -> fragment
		ProtoAH, 0, 0, 0, 0, 0, 0, 1, // atomic fragment -> AH
		ProtoDstOpts, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, // AH (12 bytes) -> dst opts
		ProtoUDP, 0, 1, 4, 0, 0, 0, 0, // dst opts -> UDP
	}
	udp := []byte{0x9c, 0x40, 0, 80, 0, 12, 0, 0, 'h', 'e', 'y', '!'}
	v6c := func(first uint8, ch []byte) []byte {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocol(first), SrcIP: client6.AsSlice(), DstIP: vip6.AsSlice()}
		return ethernetFrame(t, serialize(t, ip6, gopacket.Payload(ch)), true, 0)
	}
	add("ipv6-ext-all", v6c(ProtoHopByHop, append(append([]byte(nil), chain...), udp...)), true, "")
	add("ipv6-fragment", v6c(ProtoFragment, append([]byte{ProtoUDP, 0, 0x05, 0x69, 0, 0, 0, 1}, udp...)), true, "parse")
	var long []byte
	for i := 0; i < 9; i++ {
		long = append(long, ProtoDstOpts, 0, 1, 4, 0, 0, 0, 0)
	}
	add("ipv6-ext-limit", v6c(ProtoDstOpts, long), true, "parse")
	add("ipv6-ext-cut", v6c(ProtoDstOpts, []byte{ProtoUDP, 2, 1, 4}), true, "parse")
	add("ipv6-jumbo", v6c(ProtoHopByHop, nil), true, "parse")
	// Neighbour discovery.
	add("arp-request", arpRequest(t, 0), true, "neigh parse")
	add("arp-request-vlan", arpRequest(t, 9), true, "neigh parse")
	add("ns-slla", nsFrame(t, client6, vip6, true, 255), true, "neigh parse")
	add("ns-no-slla", nsFrame(t, client6, vip6, false, 255), true, "neigh parse")
	add("ns-bad-hop", nsFrame(t, client6, vip6, true, 64), true, "neigh parse")
	return ss
}

var fuzzTargets = map[string]string{
	"FuzzParse": "parse", "FuzzNATIn": "nat", "FuzzNATOut": "nat", "FuzzDR": "dr",
	"FuzzEncap": "tun", "FuzzICMPNATIn": "icmp", "FuzzICMPNATOut": "icmp",
	"FuzzICMPError": "icmperr", "FuzzNeighbor": "neigh",
}

// TestWriteFuzzCorpus regenerates testdata/fuzz from fuzzSeeds when
// ULVS_WRITE_CORPUS=1 (go test -run TestWriteFuzzCorpus). Otherwise it
// checks that every committed seed file is still in the generated set,
// so that the corpus and the generator cannot drift apart silently.
func TestWriteFuzzCorpus(t *testing.T) {
	write := os.Getenv("ULVS_WRITE_CORPUS") == "1"
	for target, tag := range fuzzTargets {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range fuzzSeeds(t) {
			if s.targets != "" && !containsWord(s.targets, tag) {
				continue
			}
			var vals []string
			vals = append(vals, "[]byte("+strconv.Quote(string(s.frame))+")", fmt.Sprintf("bool(%v)", s.l2))
			files := map[string][]string{"seed-" + s.name: vals}
			if target == "FuzzEncap" {
				files = map[string][]string{
					"seed-" + s.name + "-mtu1500-outer4": append(vals[:2:2], "uint16(1500)", "bool(false)", "bool(true)"),
					"seed-" + s.name + "-mtu1300-outer6": append(vals[:2:2], "uint16(1300)", "bool(true)", "bool(true)"),
				}
			}
			for name, vs := range files {
				content := "go test fuzz v1\n"
				for _, v := range vs {
					content += v + "\n"
				}
				path := filepath.Join(dir, name)
				if write {
					if err := os.MkdirAll(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Errorf("seed %s missing (run with ULVS_WRITE_CORPUS=1): %v", path, err)
				} else if string(got) != content {
					t.Errorf("seed %s differs from the generator", path)
				}
			}
		}
	}
}

func containsWord(list, w string) bool {
	for _, f := range splitFields(list) {
		if f == w {
			return true
		}
	}
	return false
}

func splitFields(s string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	return out
}
