package forwarder

import (
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Iface is one of the director's interfaces as the data path needs it.
type Iface struct {
	Name  string
	Index int
	MAC   [6]byte
	MTU   int
	// Addrs are the interface's own (kernel) addresses. The VIPs are never
	// among them: ulvs owns the VIPs in userspace.
	Addrs []netip.Prefix

	// Precomputed by prepare for the packet path: the source addresses
	// Src would return.
	src4, src6 [16]byte
	has4, has6 bool
}

func (i *Iface) prepare() {
	if a, ok := i.Src(false); ok {
		i.src4, i.has4 = a.As16(), true
	}
	if a, ok := i.Src(true); ok {
		i.src6, i.has6 = a.As16(), true
	}
}

// Src returns the interface's first address of the family of dst, used as
// the source of ARP requests and of TUN outer headers.
func (i *Iface) Src(v6 bool) (netip.Addr, bool) {
	for _, p := range i.Addrs {
		a := p.Addr()
		if a.Is4() != v6 && !a.IsLinkLocalUnicast() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// route is one entry of the next-hop table.
type route struct {
	prefix  netip.Prefix // in 16-byte form: IPv4 prefixes have 96 added to their length
	hi, lo  uint64       // the prefix's address, as two big-endian words
	mhi     uint64       // the prefix's mask, likewise
	mlo     uint64
	iface   int      // index into the director's interface list
	gateway [16]byte // zero for a connected prefix
	hasGW   bool
	v6      bool // the family of the route; ::/0 must not match IPv4
}

// RouteTable chooses the outgoing interface and next hop for a destination.
// It is immutable once built; the director swaps in a new one when the
// kernel's routes change. Lookups scan a short list, longest prefix first,
// which is cheaper than a trie for the handful of routes a director has.
type RouteTable struct {
	routes []route
}

// Lookup returns the interface index (into the director's interface list)
// and the next-hop address for dst.
func (rt *RouteTable) Lookup(dst *[16]byte) (iface int, nextHop [16]byte, ok bool) {
	v6 := !is4(dst)
	hi, lo := splitAddr(dst)
	for i := range rt.routes {
		r := &rt.routes[i]
		if r.v6 == v6 && hi&r.mhi == r.hi && lo&r.mlo == r.lo {
			if r.hasGW {
				return r.iface, r.gateway, true
			}
			return r.iface, *dst, true
		}
	}
	return 0, nextHop, false
}

// is4 reports whether a is an IPv4 address in 16-byte (IPv4-mapped) form.
func is4(a *[16]byte) bool {
	return a[10] == 0xff && a[11] == 0xff &&
		a[0]|a[1]|a[2]|a[3]|a[4]|a[5]|a[6]|a[7]|a[8]|a[9] == 0
}

// maskWords returns the two big-endian words of a /bits mask of 128 bits.
func maskWords(bits int) (hi, lo uint64) {
	switch {
	case bits <= 0:
		return 0, 0
	case bits < 64:
		return ^uint64(0) << (64 - bits), 0
	case bits == 64:
		return ^uint64(0), 0
	case bits < 128:
		return ^uint64(0), ^uint64(0) << (128 - bits)
	}
	return ^uint64(0), ^uint64(0)
}

// to16 returns p with its address in 16-byte form, IPv4 lengths shifted by 96.
func to16(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4() {
		return netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), p.Bits()+96)
	}
	return p
}

// buildRouteTable orders the routes longest prefix first; among equal lengths
// the earlier interface (the public one) wins.
func buildRouteTable(rs []route) *RouteTable {
	for i := range rs {
		r := &rs[i]
		a := r.prefix.Addr().As16()
		r.hi, r.lo = splitAddr(&a)
		bits := r.prefix.Bits()
		r.mhi, r.mlo = maskWords(bits)
		r.hi &= r.mhi
		r.lo &= r.mlo
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].prefix.Bits() > rs[j].prefix.Bits() })
	return &RouteTable{routes: rs}
}

// LoadIfaces reads the named interfaces from the kernel.
func LoadIfaces(names []string) ([]Iface, error) {
	out := make([]Iface, 0, len(names))
	for _, n := range names {
		link, err := netlink.LinkByName(n)
		if err != nil {
			return nil, fmt.Errorf("interface %q: %w", n, err)
		}
		a := link.Attrs()
		ifc := Iface{Name: n, Index: a.Index, MTU: a.MTU}
		if len(a.HardwareAddr) == 6 {
			copy(ifc.MAC[:], a.HardwareAddr)
		}
		addrs, err := netlink.AddrList(link, unix.AF_UNSPEC)
		if err != nil {
			return nil, fmt.Errorf("interface %q addresses: %w", n, err)
		}
		for _, ad := range addrs {
			if p, ok := prefixFromIPNet(ad.IPNet); ok {
				ifc.Addrs = append(ifc.Addrs, p)
			}
		}
		out = append(out, ifc)
	}
	return out, nil
}

func prefixFromIPNet(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// LoadRoutes builds the next-hop table from the kernel's main routing table,
// keeping only routes out of the director's interfaces.
func LoadRoutes(ifaces []Iface) (*RouteTable, error) {
	byIndex := make(map[int]int, len(ifaces))
	for i, ifc := range ifaces {
		byIndex[ifc.Index] = i
	}
	var rs []route
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		list, err := netlink.RouteList(nil, fam)
		if err != nil {
			return nil, fmt.Errorf("reading routes: %w", err)
		}
		for _, r := range list {
			idx, ok := byIndex[r.LinkIndex]
			if !ok {
				continue
			}
			var p netip.Prefix
			if r.Dst == nil {
				if fam == unix.AF_INET {
					p = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
				} else {
					p = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
				}
			} else if p, ok = prefixFromIPNet(r.Dst); !ok {
				continue
			}
			rt := route{prefix: to16(p.Masked()), iface: idx, v6: fam == unix.AF_INET6}
			if gw, ok := netip.AddrFromSlice(r.Gw); ok && r.Gw != nil {
				rt.gateway, rt.hasGW = gw.Unmap().As16(), true
			}
			rs = append(rs, rt)
		}
	}
	return buildRouteTable(rs), nil
}
