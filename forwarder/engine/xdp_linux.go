package engine

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	ebpfasm "github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// The XDP fast lane. One XDP program per interface sends the common case of
// ulvs's traffic, IPv4 without options and unfragmented, to a VIP's TCP, UDP
// or SCTP service or from a real server, to the AF_XDP socket of the queue
// it arrived on (bpf_redirect_map on an XSKMAP); everything else passes to
// the kernel, where the AF_PACKET rings and their classic filter see it as
// before. The program's match is a subset of the classic filter's, so the
// traffic ulvs receives is the same with and without XDP; only the way in
// differs. A frame whose queue has no socket falls back to XDP_PASS.
//
// Filter map keys: IPv4 address, port (network order), protocol, kind.
// kind 0: a VIP's (address, protocol, port), port 0 for a service on every
// port; kind 1: a real server's address (port and protocol 0); kind 2: one
// of the director's own addresses. Traffic from a real server to the
// director itself (health-check replies, the operator's ssh) is not the
// NAT return path: it passes to the kernel, whose sockets wait for it.
type xdpKey [8]byte

const (
	xdpKindVIP   = 0
	xdpKindRS    = 1
	xdpKindLocal = 2
	xdpMaxKeys   = 1 << 16
)

type xdpLane struct {
	filter *ebpf.Map
	xsks   [numIfaces]*ebpf.Map
	progs  [numIfaces]*ebpf.Program
	links  [numIfaces]link.Link
	keys   map[xdpKey]bool
}

// xdpKeys returns the filter map keys of spec (IPv4 only: IPv6 stays on the
// AF_PACKET path).
func xdpKeys(spec *FilterSpec) map[xdpKey]bool {
	keys := map[xdpKey]bool{}
	if spec == nil {
		return keys
	}
	for _, v := range spec.VIPs {
		a := v.Addr.Unmap()
		if !a.Is4() {
			continue
		}
		b := a.As4()
		protos := []uint8{v.Protocol}
		port := v.Port
		if v.Protocol == 0 {
			protos, port = []uint8{6, 17, 132}, 0
		}
		for _, p := range protos {
			if p != 6 && p != 17 && p != 132 {
				continue // other protocols to a VIP go the AF_PACKET way
			}
			keys[xdpKey{b[0], b[1], b[2], b[3], byte(port >> 8), byte(port), p, xdpKindVIP}] = true
		}
	}
	addrKeys := func(addrs []netip.Addr, kind byte) {
		for _, a := range addrs {
			if a = a.Unmap(); a.Is4() {
				b := a.As4()
				keys[xdpKey{b[0], b[1], b[2], b[3], 0, 0, 0, kind}] = true
			}
		}
	}
	addrKeys(spec.RealServers, xdpKindRS)
	addrKeys(spec.DirectorAddrs, xdpKindLocal)
	return keys
}

// xdpProgram returns the fast lane's instructions for the given maps.
func xdpProgram(filterFD, xsksFD int) ebpfasm.Instructions {
	const (
		xdpPass   = 2
		etherIPv4 = 0x0008 // 0x0800 as a little-endian load of the frame's bytes
		fragMask  = 0xff3f // MF and fragment offset (network order 0x3fff), little-endian
	)
	// lookup looks the key at r10-8 up and jumps to onHit when it is there.
	lookup := func(onHit string) ebpfasm.Instructions {
		return ebpfasm.Instructions{
			ebpfasm.LoadMapPtr(ebpfasm.R1, filterFD),
			ebpfasm.Mov.Reg(ebpfasm.R2, ebpfasm.R10),
			ebpfasm.Add.Imm(ebpfasm.R2, -8),
			ebpfasm.FnMapLookupElem.Call(),
			ebpfasm.JNE.Imm(ebpfasm.R0, 0, onHit),
		}
	}
	var p ebpfasm.Instructions
	p = append(p,
		ebpfasm.Mov.Reg(ebpfasm.R6, ebpfasm.R1),
		ebpfasm.LoadMem(ebpfasm.R7, ebpfasm.R6, 0, ebpfasm.Word), // data
		ebpfasm.LoadMem(ebpfasm.R8, ebpfasm.R6, 4, ebpfasm.Word), // data_end
		ebpfasm.Mov.Reg(ebpfasm.R1, ebpfasm.R7),
		ebpfasm.Add.Imm(ebpfasm.R1, 14+20+4),
		ebpfasm.JGT.Reg(ebpfasm.R1, ebpfasm.R8, "pass"),
		ebpfasm.LoadMem(ebpfasm.R1, ebpfasm.R7, 12, ebpfasm.Half),
		ebpfasm.JNE.Imm(ebpfasm.R1, etherIPv4, "pass"),
		ebpfasm.LoadMem(ebpfasm.R1, ebpfasm.R7, 14, ebpfasm.Byte),
		ebpfasm.JNE.Imm(ebpfasm.R1, 0x45, "pass"), // IPv4 without options
		ebpfasm.LoadMem(ebpfasm.R1, ebpfasm.R7, 14+6, ebpfasm.Half),
		ebpfasm.And.Imm(ebpfasm.R1, fragMask),
		ebpfasm.JNE.Imm(ebpfasm.R1, 0, "pass"), // fragments go the AF_PACKET way
		ebpfasm.LoadMem(ebpfasm.R9, ebpfasm.R7, 14+9, ebpfasm.Byte),
		ebpfasm.JEq.Imm(ebpfasm.R9, 6, "vip"),
		ebpfasm.JEq.Imm(ebpfasm.R9, 17, "vip"),
		ebpfasm.JEq.Imm(ebpfasm.R9, 132, "vip"),
		ebpfasm.Ja.Label("rs"),
		// (daddr, dport, proto, VIP), then (daddr, 0, proto, VIP).
		ebpfasm.LoadMem(ebpfasm.R1, ebpfasm.R7, 14+16, ebpfasm.Word).WithSymbol("vip"),
		ebpfasm.StoreMem(ebpfasm.R10, -8, ebpfasm.R1, ebpfasm.Word),
		ebpfasm.LoadMem(ebpfasm.R1, ebpfasm.R7, 14+20+2, ebpfasm.Half),
		ebpfasm.StoreMem(ebpfasm.R10, -4, ebpfasm.R1, ebpfasm.Half),
		ebpfasm.StoreMem(ebpfasm.R10, -2, ebpfasm.R9, ebpfasm.Byte),
		ebpfasm.StoreImm(ebpfasm.R10, -1, xdpKindVIP, ebpfasm.Byte),
	)
	p = append(p, lookup("redirect")...)
	p = append(p, ebpfasm.StoreImm(ebpfasm.R10, -4, 0, ebpfasm.Half))
	p = append(p, lookup("redirect")...)
	// (daddr, 0, 0, local): to the director itself, pass.
	p = append(p,
		ebpfasm.LoadMem(ebpfasm.R1, ebpfasm.R7, 14+16, ebpfasm.Word).WithSymbol("rs"),
		ebpfasm.StoreMem(ebpfasm.R10, -8, ebpfasm.R1, ebpfasm.Word),
		ebpfasm.StoreImm(ebpfasm.R10, -4, xdpKindLocal<<24, ebpfasm.Word),
	)
	p = append(p, lookup("pass")...)
	// (saddr, 0, 0, RS): the NAT return path.
	p = append(p,
		ebpfasm.LoadMem(ebpfasm.R1, ebpfasm.R7, 14+12, ebpfasm.Word),
		ebpfasm.StoreMem(ebpfasm.R10, -8, ebpfasm.R1, ebpfasm.Word),
		ebpfasm.StoreImm(ebpfasm.R10, -4, xdpKindRS<<24, ebpfasm.Word),
	)
	p = append(p, lookup("redirect")...)
	p = append(p,
		ebpfasm.Mov.Imm(ebpfasm.R0, xdpPass).WithSymbol("pass"),
		ebpfasm.Return(),
		ebpfasm.LoadMem(ebpfasm.R2, ebpfasm.R6, 16, ebpfasm.Word).WithSymbol("redirect"), // rx_queue_index
		ebpfasm.LoadMapPtr(ebpfasm.R1, xsksFD),
		ebpfasm.Mov.Imm(ebpfasm.R3, xdpPass), // no socket on this queue: pass
		ebpfasm.FnRedirectMap.Call(),
		ebpfasm.Return(),
	)
	return p
}

// openXDPLane creates the filter map and, per interface, an XSKMAP of
// queues entries and the program, and attaches it in mode (XDPNative or
// XDPGeneric) through a BPF link, which the kernel detaches by itself when
// the process exits.
func openXDPLane(ifis [numIfaces]*net.Interface, mode string, queues int) (_ *xdpLane, err error) {
	l := &xdpLane{keys: map[xdpKey]bool{}}
	defer func() {
		if err != nil {
			l.close() // whatever was created before the failure
		}
	}()
	l.filter, err = ebpf.NewMap(&ebpf.MapSpec{Name: "ulvs_filter", Type: ebpf.Hash, KeySize: 8, ValueSize: 1, MaxEntries: xdpMaxKeys})
	if err != nil {
		return nil, fmt.Errorf("afpacket: xdp: filter map: %w", err)
	}
	flags := link.XDPDriverMode
	if mode == XDPGeneric {
		flags = link.XDPGenericMode
	}
	for i, ifi := range ifis {
		if ifi == nil {
			continue
		}
		l.xsks[i], err = ebpf.NewMap(&ebpf.MapSpec{Name: "ulvs_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)})
		if err != nil {
			return nil, fmt.Errorf("afpacket: xdp: socket map for %s: %w", ifi.Name, err)
		}
		l.progs[i], err = ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "ulvs_fastlane", Type: ebpf.XDP, License: "MIT",
			Instructions: xdpProgram(l.filter.FD(), l.xsks[i].FD()),
		})
		if err != nil {
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				return nil, fmt.Errorf("afpacket: xdp: program refused by the verifier: %+v", ve)
			}
			return nil, fmt.Errorf("afpacket: xdp: load program: %w", err)
		}
		l.links[i], err = link.AttachXDP(link.XDPOptions{Program: l.progs[i], Interface: ifi.Index, Flags: flags})
		if err != nil {
			hint := ""
			if mode == XDPNative {
				hint = " (a driver without native XDP needs xdp = \"generic\")"
			}
			return nil, fmt.Errorf("afpacket: xdp: attach in %s mode to %s: %w; is another XDP program attached (ip link show %[2]s)?%s", mode, ifi.Name, err, hint)
		}
	}
	return l, nil
}

// register points queue's entry of iface's socket map at fd.
func (l *xdpLane) register(iface Iface, queue, fd int) error {
	if err := l.xsks[iface].Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("afpacket: xdp: socket map entry %d of %s: %w", queue, iface, err)
	}
	return nil
}

// setFilter makes the filter map hold exactly the keys of spec: new keys
// first, then stale ones removed, so a service present in both the old
// and the new spec never leaves the fast lane.
func (l *xdpLane) setFilter(spec *FilterSpec) error {
	keys := xdpKeys(spec)
	if len(keys) > xdpMaxKeys {
		return fmt.Errorf("%w: xdp: %d filter entries, at most %d", ErrBadConfig, len(keys), xdpMaxKeys)
	}
	one := uint8(1)
	for k := range keys {
		if !l.keys[k] {
			if err := l.filter.Put(k, one); err != nil {
				return fmt.Errorf("afpacket: xdp: filter map: add %s: %w", k, err)
			}
			l.keys[k] = true
		}
	}
	for k := range l.keys {
		if !keys[k] {
			if err := l.filter.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("afpacket: xdp: filter map: remove %s: %w", k, err)
			}
			delete(l.keys, k)
		}
	}
	return nil
}

func (k xdpKey) String() string {
	a := netip.AddrFrom4([4]byte{k[0], k[1], k[2], k[3]})
	switch k[7] {
	case xdpKindRS:
		return "real server " + a.String()
	case xdpKindLocal:
		return "director address " + a.String()
	}
	return fmt.Sprintf("VIP %s proto %d port %d", a, k[6], int(k[4])<<8|int(k[5]))
}

func (l *xdpLane) close() {
	for i := range l.links {
		if l.links[i] != nil {
			l.links[i].Close()
			l.links[i] = nil
		}
		if l.progs[i] != nil {
			l.progs[i].Close()
			l.progs[i] = nil
		}
		if l.xsks[i] != nil {
			l.xsks[i].Close()
			l.xsks[i] = nil
		}
	}
	if l.filter != nil {
		l.filter.Close()
		l.filter = nil
	}
}
