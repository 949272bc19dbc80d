package engine

import (
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"
)

// VIP is one address (and optionally protocol and port) of a virtual
// service, as the kernel filter sees it.
type VIP struct {
	Addr     netip.Addr
	Protocol uint8  // IP protocol number (6 tcp, 17 udp, 132 sctp); 0 = any protocol
	Port     uint16 // destination port; 0 = any port (needs Protocol != 0 to matter)
}

// FilterSpec says which frames the kernel copies into the rings. Everything
// else is left to the kernel alone and never costs a copy to userspace.
//
// A frame is accepted when it is:
//   - ARP, if ARP is set (every ARP frame: requests for VIPs and replies to
//     the director's own resolutions);
//   - IPv4/IPv6 to a VIP address with a matching protocol and destination
//     port. ICMP/ICMPv6 to a VIP address and non-first fragments to it are
//     always accepted, so that the data path can answer, relate or count
//     and drop them;
//   - IPv4/IPv6 from one of RealServers (the NAT return path);
//   - an ICMP/ICMPv6 error addressed to one of DirectorAddrs (for example
//     "fragmentation needed" for a TUN-encapsulated packet);
//   - if NDP is set, an IPv6 neighbour solicitation whose target is a VIP,
//     and every neighbour advertisement.
//
// The filter assumes untagged Ethernet frames (VLAN tags are stripped into
// metadata by the kernel) and IPv6 packets without extension headers before
// the transport header (a fragment header to a VIP is accepted, others are
// not matched on ports).
type FilterSpec struct {
	VIPs          []VIP
	RealServers   []netip.Addr
	DirectorAddrs []netip.Addr
	ARP           bool
	NDP           bool
}

// acceptLen is what the filter returns to accept a frame: a snap length
// larger than any frame the ring can hold.
const acceptLen = 0x40000

const maxBPFInsns = 4096 // BPF_MAXINSNS

// Ethernet-frame offsets the filter reads.
const (
	offEtherType = 12
	offIPv4Frag  = 14 + 6
	offIPv4Proto = 14 + 9
	offIPv4Src   = 14 + 12
	offIPv4Dst   = 14 + 16
	offIPv6Next  = 14 + 6
	offIPv6Src   = 14 + 8
	offIPv6Dst   = 14 + 24
	offIPv6L4    = 14 + 40
	offNSTarget  = offIPv6L4 + 8
)

// asm is a tiny label assembler. Conditional jumps in the programs we build
// only ever skip a few instructions; long jumps go through "ja", whose offset
// is 32 bits, so no program hits the 8-bit conditional-jump limit.
type asm struct {
	items []asmItem
	n     int
}

type asmItem struct {
	ins   bpf.Instruction
	label string // defines a label here (ins is nil)
	ja    string // a Jump to this label
}

func (a *asm) emit(ins ...bpf.Instruction) {
	for _, i := range ins {
		a.items = append(a.items, asmItem{ins: i})
		a.n++
	}
}
func (a *asm) label(l string) { a.items = append(a.items, asmItem{label: l}) }
func (a *asm) jump(l string) {
	a.items = append(a.items, asmItem{ja: l})
	a.n++
}
func (a *asm) accept() { a.emit(bpf.RetConstant{Val: acceptLen}) }
func (a *asm) reject() { a.emit(bpf.RetConstant{Val: 0}) }

// ifEq emits "if A == k then <the next instruction> else skip it".
func (a *asm) ifEq(k uint32) {
	a.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: k, SkipTrue: 0, SkipFalse: 1})
}

// ifAddr16 emits a comparison of the 16 bytes at off with addr; the single
// instruction emitted next runs only when they are equal.
func (a *asm) ifAddr16(off uint32, addr [16]byte) {
	for w := 0; w < 4; w++ {
		k := uint32(addr[4*w])<<24 | uint32(addr[4*w+1])<<16 | uint32(addr[4*w+2])<<8 | uint32(addr[4*w+3])
		a.emit(bpf.LoadAbsolute{Off: off + uint32(4*w), Size: 4},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: k, SkipFalse: uint8(2*(3-w) + 1)})
	}
}

func (a *asm) resolve() ([]bpf.Instruction, error) {
	pos := map[string]int{}
	p := 0
	for _, it := range a.items {
		if it.label != "" {
			pos[it.label] = p
			continue
		}
		p++
	}
	out := make([]bpf.Instruction, 0, p)
	for _, it := range a.items {
		switch {
		case it.label != "":
		case it.ja != "":
			t, ok := pos[it.ja]
			if !ok {
				return nil, fmt.Errorf("engine: filter assembler: undefined label %q", it.ja)
			}
			if t <= len(out) {
				return nil, fmt.Errorf("engine: filter assembler: backward jump to %q", it.ja)
			}
			out = append(out, bpf.Jump{Skip: uint32(t - len(out) - 1)})
		default:
			out = append(out, it.ins)
		}
	}
	return out, nil
}

type vipGroup struct {
	addr   netip.Addr
	protos []protoGroup // nil with anyProto
	any    bool
}

type protoGroup struct {
	proto uint8
	ports []uint16
	any   bool
}

func groupVIPs(vips []VIP, want6 bool) []vipGroup {
	var gs []vipGroup
	idx := map[netip.Addr]int{}
	for _, v := range vips {
		a := v.Addr.Unmap()
		if a.Is6() != want6 {
			continue
		}
		i, ok := idx[a]
		if !ok {
			i = len(gs)
			idx[a] = i
			gs = append(gs, vipGroup{addr: a})
		}
		g := &gs[i]
		if v.Protocol == 0 {
			g.any = true
			continue
		}
		j := -1
		for k := range g.protos {
			if g.protos[k].proto == v.Protocol {
				j = k
			}
		}
		if j < 0 {
			j = len(g.protos)
			g.protos = append(g.protos, protoGroup{proto: v.Protocol})
		}
		pg := &g.protos[j]
		if v.Port == 0 {
			pg.any = true
		} else if !containsPort(pg.ports, v.Port) {
			pg.ports = append(pg.ports, v.Port)
		}
	}
	return gs
}

func containsPort(ps []uint16, p uint16) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func split(addrs []netip.Addr) (v4, v6 []netip.Addr) {
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || seen[a] {
			continue
		}
		seen[a] = true
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	return v4, v6
}

func be32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Validate reports the first invalid entry of s.
func (s *FilterSpec) Validate() error {
	for i, v := range s.VIPs {
		if !v.Addr.IsValid() {
			return fmt.Errorf("%w: filter VIPs[%d]: address not set", ErrBadConfig, i)
		}
		if v.Port != 0 && v.Protocol == 0 {
			return fmt.Errorf("%w: filter VIPs[%d] (%v): port %d needs a protocol", ErrBadConfig, i, v.Addr, v.Port)
		}
	}
	for i, a := range s.RealServers {
		if !a.IsValid() {
			return fmt.Errorf("%w: filter RealServers[%d]: address not set", ErrBadConfig, i)
		}
	}
	for i, a := range s.DirectorAddrs {
		if !a.IsValid() {
			return fmt.Errorf("%w: filter DirectorAddrs[%d]: address not set", ErrBadConfig, i)
		}
	}
	return nil
}

// Compile builds the classic BPF program for s (see FilterSpec). It runs on
// Ethernet frames. The program is a linear list of comparisons, so its cost
// grows with the number of VIP addresses and real servers; Compile returns
// ErrFilterTooLarge beyond the kernel's 4096 instructions: each IPv4 real
// server costs 2 instructions, an IPv6 one 9, a VIP:port about 16.
func (s *FilterSpec) Compile() ([]bpf.Instruction, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	v4vips, v6vips := groupVIPs(s.VIPs, false), groupVIPs(s.VIPs, true)
	rs4, rs6 := split(s.RealServers)
	dir4, dir6 := split(s.DirectorAddrs)

	var a asm
	a.emit(bpf.LoadAbsolute{Off: offEtherType, Size: 2})
	if s.ARP {
		a.ifEq(0x0806)
		a.accept()
	}
	a.ifEq(0x0800)
	a.jump("ip4")
	a.ifEq(0x86dd)
	a.jump("ip6")
	a.reject()

	// IPv4.
	a.label("ip4")
	if len(v4vips) > 0 {
		a.emit(bpf.LoadAbsolute{Off: offIPv4Dst, Size: 4})
		for i, g := range v4vips {
			a.ifEq(be32(g.addr))
			a.jump(fmt.Sprintf("v4vip%d", i))
		}
	}
	if len(rs4) > 0 {
		a.emit(bpf.LoadAbsolute{Off: offIPv4Src, Size: 4})
		for _, r := range rs4 {
			a.ifEq(be32(r))
			a.accept()
		}
	}
	if len(dir4) > 0 {
		a.emit(bpf.LoadAbsolute{Off: offIPv4Dst, Size: 4})
		for _, d := range dir4 {
			a.ifEq(be32(d))
			a.jump("icmp4err")
		}
	}
	a.reject()
	if len(dir4) > 0 {
		a.label("icmp4err")
		a.emit(bpf.LoadAbsolute{Off: offIPv4Proto, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipTrue: 1},
			bpf.RetConstant{Val: 0},
			bpf.LoadAbsolute{Off: offIPv4Frag, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipFalse: 1},
			bpf.RetConstant{Val: 0},
			bpf.LoadMemShift{Off: 14},
			bpf.LoadIndirect{Off: 14, Size: 1})
		for _, typ := range []uint32{3, 4, 11, 12} { // unreachable, source quench, time exceeded, parameter problem
			a.ifEq(typ)
			a.accept()
		}
		a.reject()
	}
	for i, g := range v4vips {
		a.label(fmt.Sprintf("v4vip%d", i))
		if g.any {
			a.accept()
			continue
		}
		a.emit(bpf.LoadAbsolute{Off: offIPv4Proto, Size: 1})
		a.ifEq(1) // ICMP to a VIP: echo, or an error about a connection
		a.accept()
		for j, p := range g.protos {
			a.ifEq(uint32(p.proto))
			a.jump(fmt.Sprintf("v4vip%d.%d", i, j))
		}
		a.reject()
		for j, p := range g.protos {
			a.label(fmt.Sprintf("v4vip%d.%d", i, j))
			if p.any {
				a.accept()
				continue
			}
			a.emit(bpf.LoadAbsolute{Off: offIPv4Frag, Size: 2},
				// A non-first fragment has no ports: accept it, the data path counts and drops it.
				bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipFalse: 1},
				bpf.RetConstant{Val: acceptLen},
				bpf.LoadMemShift{Off: 14},
				bpf.LoadIndirect{Off: 14 + 2, Size: 2})
			for _, port := range p.ports {
				a.ifEq(uint32(port))
				a.accept()
			}
			a.reject()
		}
	}

	// IPv6.
	a.label("ip6")
	for i, g := range v6vips {
		a.ifAddr16(offIPv6Dst, g.addr.As16())
		a.jump(fmt.Sprintf("v6vip%d", i))
	}
	for _, r := range rs6 {
		a.ifAddr16(offIPv6Src, r.As16())
		a.accept()
	}
	// Classic BPF only jumps forward: the NDP block sits between here and
	// the director-address check it falls back to.
	if s.NDP {
		a.emit(bpf.LoadAbsolute{Off: offIPv6Next, Size: 1})
		a.ifEq(58)
		a.jump("ndp")
		a.jump("dir6")
		a.label("ndp")
		a.emit(bpf.LoadAbsolute{Off: offIPv6L4, Size: 1})
		a.ifEq(136) // neighbour advertisement: answers to our own resolutions
		a.accept()
		a.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: 135, SkipTrue: 1})
		a.jump("dir6")
		for _, g := range v6vips {
			a.ifAddr16(offNSTarget, g.addr.As16())
			a.accept()
		}
		a.reject()
	}
	a.label("dir6")
	for _, d := range dir6 {
		a.ifAddr16(offIPv6Dst, d.As16())
		a.jump("icmp6err")
	}
	a.reject()
	if len(dir6) > 0 {
		a.label("icmp6err")
		a.emit(bpf.LoadAbsolute{Off: offIPv6Next, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 58, SkipTrue: 1},
			bpf.RetConstant{Val: 0},
			bpf.LoadAbsolute{Off: offIPv6L4, Size: 1},
			// ICMPv6 error messages are types 0-127.
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 128, SkipTrue: 1},
			bpf.RetConstant{Val: acceptLen},
			bpf.RetConstant{Val: 0})
	}
	for i, g := range v6vips {
		a.label(fmt.Sprintf("v6vip%d", i))
		if g.any {
			a.accept()
			continue
		}
		a.emit(bpf.LoadAbsolute{Off: offIPv6Next, Size: 1})
		a.ifEq(58) // ICMPv6 to a VIP
		a.accept()
		a.ifEq(44) // fragment header: the data path counts and drops it
		a.accept()
		for j, p := range g.protos {
			a.ifEq(uint32(p.proto))
			a.jump(fmt.Sprintf("v6vip%d.%d", i, j))
		}
		a.reject()
		for j, p := range g.protos {
			a.label(fmt.Sprintf("v6vip%d.%d", i, j))
			if p.any {
				a.accept()
				continue
			}
			a.emit(bpf.LoadAbsolute{Off: offIPv6L4 + 2, Size: 2})
			for _, port := range p.ports {
				a.ifEq(uint32(port))
				a.accept()
			}
			a.reject()
		}
	}
	if a.n > maxBPFInsns {
		return nil, fmt.Errorf("%w: %d instructions (limit %d)", ErrFilterTooLarge, a.n, maxBPFInsns)
	}
	return a.resolve()
}

// Assemble compiles s and assembles it into the raw form the kernel takes.
func (s *FilterSpec) Assemble() ([]bpf.RawInstruction, error) {
	prog, err := s.Compile()
	if err != nil {
		return nil, err
	}
	return bpf.Assemble(prog)
}
