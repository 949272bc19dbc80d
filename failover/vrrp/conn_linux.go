//go:build linux

package vrrp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Conn sends and receives VRRPv3 adverts of one address family on one
// interface over a raw IP socket (protocol 112) bound to that interface.
// Send and Recv may be called concurrently with each other (one sender, one
// receiver).
type Conn struct {
	ifi    *net.Interface
	v6     bool
	src    netip.Addr
	dsts   []netip.Addr
	filter Filter
	pc     net.PacketConn
	p4     *ipv4.PacketConn
	p6     *ipv6.PacketConn
	wbuf   []byte
	rbuf   []byte
}

// Listen opens the raw socket for cfg: bound to the interface, joined to
// the VRRP group on it, multicast loopback off, TTL / hop limit 255 for
// multicast and unicast.
func Listen(cfg Config) (*Conn, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("vrrp: interface %q: %w", cfg.Interface, err)
	}
	src := cfg.Src
	if !src.IsValid() {
		if src, err = pickSrc(ifi, cfg.IPv6); err != nil {
			return nil, err
		}
	}
	c := &Conn{ifi: ifi, v6: cfg.IPv6, src: src, wbuf: make([]byte, 0, HeaderLen+16*MaxAddrs), rbuf: make([]byte, 65536)}
	c.filter = Filter{VRID: cfg.VRID, Peers: cfg.Peers, Own: []netip.Addr{src}}
	if cfg.Unicast && len(cfg.Peers) > 0 {
		c.dsts = cfg.Peers
	} else if cfg.IPv6 {
		c.dsts = []netip.Addr{Group6}
	} else {
		c.dsts = []netip.Addr{Group4}
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name)
		}); err != nil {
			return err
		}
		return serr
	}}
	network, laddr := "ip4:112", "0.0.0.0"
	if cfg.IPv6 {
		network, laddr = "ip6:112", "::"
	}
	pc, err := lc.ListenPacket(context.Background(), network, laddr)
	if err != nil {
		return nil, fmt.Errorf("vrrp: raw socket on %s: %w", cfg.Interface, err)
	}
	c.pc = pc
	fail := func(what string, err error) (*Conn, error) {
		pc.Close()
		return nil, fmt.Errorf("vrrp: %s on %s: %w", what, cfg.Interface, err)
	}
	if cfg.IPv6 {
		p := ipv6.NewPacketConn(pc)
		c.p6 = p
		if err := p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
			return fail("control messages", err)
		}
		if err := p.SetMulticastInterface(ifi); err != nil {
			return fail("multicast interface", err)
		}
		if err := p.SetMulticastHopLimit(255); err != nil {
			return fail("multicast hop limit", err)
		}
		if err := p.SetHopLimit(255); err != nil {
			return fail("hop limit", err)
		}
		if err := p.SetMulticastLoopback(false); err != nil {
			return fail("multicast loopback", err)
		}
		if err := p.JoinGroup(ifi, &net.IPAddr{IP: Group6.AsSlice()}); err != nil {
			return fail("join ff02::12", err)
		}
	} else {
		p := ipv4.NewPacketConn(pc)
		c.p4 = p
		if err := p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
			return fail("control messages", err)
		}
		if err := p.SetMulticastInterface(ifi); err != nil {
			return fail("multicast interface", err)
		}
		if err := p.SetMulticastTTL(255); err != nil {
			return fail("multicast TTL", err)
		}
		if err := p.SetTTL(255); err != nil {
			return fail("TTL", err)
		}
		if err := p.SetMulticastLoopback(false); err != nil {
			return fail("multicast loopback", err)
		}
		if err := p.JoinGroup(ifi, &net.IPAddr{IP: Group4.AsSlice()}); err != nil {
			return fail("join 224.0.0.18", err)
		}
	}
	return c, nil
}

func pickSrc(ifi *net.Interface, v6 bool) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if !v6 && ip.Is4() {
			return ip, nil
		}
		if v6 && ip.Is6() && ip.IsLinkLocalUnicast() {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %s", ErrNoAddress, ifi.Name)
}

// Src is the source address of our adverts.
func (c *Conn) Src() netip.Addr { return c.src }

// Interface is the interface name.
func (c *Conn) Interface() string { return c.ifi.Name }

// Send sends a to the group (or to every unicast peer). The first error is
// returned after trying every destination.
func (c *Conn) Send(a *Advert) error {
	var first error
	for _, dst := range c.dsts {
		c.wbuf = a.Append(c.wbuf[:0], c.src, dst)
		var err error
		if c.v6 {
			cm := &ipv6.ControlMessage{IfIndex: c.ifi.Index, Src: c.src.AsSlice(), HopLimit: 255}
			_, err = c.p6.WriteTo(c.wbuf, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: zoneOf(dst, c.ifi)})
		} else {
			cm := &ipv4.ControlMessage{IfIndex: c.ifi.Index, Src: c.src.AsSlice()}
			_, err = c.p4.WriteTo(c.wbuf, cm, &net.IPAddr{IP: dst.AsSlice()})
		}
		if err != nil && first == nil {
			first = fmt.Errorf("vrrp: send to %v on %s: %w", dst, c.ifi.Name, err)
		}
	}
	return first
}

func zoneOf(dst netip.Addr, ifi *net.Interface) string {
	if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() || dst.IsInterfaceLocalMulticast() {
		return ifi.Name
	}
	return ""
}

// Recv blocks for the next packet and decodes it into a. A packet that is
// not an acceptable advert returns its drop reason with a nil error; err is
// set only when the socket fails or is closed.
func (c *Conn) Recv(a *Advert) (from netip.Addr, r Reason, err error) {
	var (
		n   int
		src net.Addr
		ttl int
		dst netip.Addr
	)
	if c.v6 {
		var cm *ipv6.ControlMessage
		n, cm, src, err = c.p6.ReadFrom(c.rbuf)
		if err != nil {
			return netip.Addr{}, OK, err
		}
		if cm != nil {
			ttl = cm.HopLimit
			dst, _ = netip.AddrFromSlice(cm.Dst)
		}
	} else {
		var cm *ipv4.ControlMessage
		n, cm, src, err = c.p4.ReadFrom(c.rbuf)
		if err != nil {
			return netip.Addr{}, OK, err
		}
		if cm != nil {
			ttl = cm.TTL
			dst, _ = netip.AddrFromSlice(cm.Dst)
		}
	}
	ia, ok := src.(*net.IPAddr)
	if !ok {
		return netip.Addr{}, DropShort, nil
	}
	from, _ = netip.AddrFromSlice(ia.IP)
	from = from.Unmap()
	dst = dst.Unmap()
	if r = Parse(c.rbuf[:n], from, dst, a); r != OK {
		return from, r, nil
	}
	return from, c.filter.Check(from, ttl, a), nil
}

// Close closes the socket (and unblocks Recv).
func (c *Conn) Close() error { return c.pc.Close() }
