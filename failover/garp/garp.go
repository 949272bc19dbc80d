// Package garp builds gratuitous ARP announcements (IPv4) and unsolicited
// neighbour advertisements (IPv6) for virtual addresses, and sends them in
// bursts on an AF_PACKET socket, so that switches and hosts learn the new
// owner of a VIP at once when a director takes over.
package garp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/packet"
)

// Frame sizes.
const (
	ARPFrameLen = 60 // 14 + 28, padded to the Ethernet minimum
	NAFrameLen  = 14 + 40 + 32
)

// Defaults of a burst.
const (
	DefaultCount  = 5
	DefaultPeriod = time.Second
)

var (
	broadcast   = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	allNodes    = netip.MustParseAddr("ff02::1")
)

// ErrBadMAC is returned for a hardware address that is not 6 bytes.
var ErrBadMAC = errors.New("garp: need a 6-byte Ethernet address")

// AppendARP appends a gratuitous ARP (an ARP request whose sender and
// target protocol addresses are both vip, RFC 5227 "ARP announcement"),
// broadcast from mac, padded to 60 bytes.
func AppendARP(b []byte, mac net.HardwareAddr, vip netip.Addr) []byte {
	off := len(b)
	b = append(b, make([]byte, ARPFrameLen)...)
	f := b[off:]
	copy(f[0:6], broadcast)
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:14], 0x0806)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:2], 1)      // Ethernet
	binary.BigEndian.PutUint16(a[2:4], 0x0800) // IPv4
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], 1) // request
	ip := vip.Unmap().As4()
	copy(a[8:14], mac)
	copy(a[14:18], ip[:])
	// target hardware address stays zero
	copy(a[24:28], ip[:])
	return b
}

// AppendNA appends an unsolicited neighbour advertisement for vip (RFC 4861
// §7.2.6): from src (the interface's link-local address, or the VIP) to
// ff02::1 with hop limit 255, Override set, Solicited clear, and the target
// link-layer address option carrying mac.
func AppendNA(b []byte, mac net.HardwareAddr, src, vip netip.Addr) []byte {
	off := len(b)
	b = append(b, make([]byte, NAFrameLen)...)
	f := b[off:]
	copy(f[0:6], allNodesMAC)
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:14], 0x86dd)
	ip := f[14:54]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], 32)
	ip[6] = 58 // ICMPv6
	ip[7] = 255
	s, d := src.As16(), allNodes.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	m := f[54:]
	m[0] = 136 // neighbour advertisement
	m[4] = 0x20
	t := vip.As16()
	copy(m[8:24], t[:])
	m[24], m[25] = 2, 1 // target link-layer address, 8 bytes
	copy(m[26:32], mac)
	binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(s, d, m))
	return b
}

func icmp6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	for i := 0; i < 16; i += 2 {
		sum += uint32(src[i])<<8 | uint32(src[i+1])
		sum += uint32(dst[i])<<8 | uint32(dst[i+1])
	}
	sum += uint32(len(msg)) + 58
	for i := 0; i+1 < len(msg); i += 2 {
		sum += uint32(msg[i])<<8 | uint32(msg[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Frames returns one announcement per VIP: gratuitous ARP for IPv4, an
// unsolicited NA for IPv6 (from linkLocal when valid, else from the VIP).
func Frames(mac net.HardwareAddr, linkLocal netip.Addr, vips []netip.Addr) ([][]byte, error) {
	if len(mac) != 6 {
		return nil, ErrBadMAC
	}
	out := make([][]byte, 0, len(vips))
	for _, v := range vips {
		if v.Unmap().Is4() {
			out = append(out, AppendARP(nil, mac, v))
		} else {
			src := linkLocal
			if !src.IsValid() {
				src = v
			}
			out = append(out, AppendNA(nil, mac, src, v))
		}
	}
	return out, nil
}

// FrameWriter sends one Ethernet frame.
type FrameWriter interface {
	WriteFrame(f []byte) error
}

// Burst sends every frame count times, spread evenly over period (the first
// round at once), and returns the first error after trying every write, or
// ctx's error if it ends first. count <= 0 means DefaultCount.
func Burst(ctx context.Context, w FrameWriter, frames [][]byte, count int, period time.Duration) error {
	if count <= 0 {
		count = DefaultCount
	}
	var gap time.Duration
	if count > 1 {
		gap = period / time.Duration(count-1)
	}
	var first error
	var t *time.Timer
	for i := 0; i < count; i++ {
		if i > 0 && gap > 0 {
			if t == nil {
				t = time.NewTimer(gap)
				defer t.Stop()
			} else {
				t.Reset(gap)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
		for _, f := range frames {
			if err := w.WriteFrame(f); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// Announcer sends announcement bursts on one interface.
type Announcer struct {
	ifi       *net.Interface
	conn      *packet.Conn
	linkLocal netip.Addr
}

// NewAnnouncer opens a raw AF_PACKET socket on the named interface (it
// receives nothing: protocol 0).
func NewAnnouncer(ifname string) (*Announcer, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("garp: interface %q: %w", ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("garp: interface %q: %w", ifname, ErrBadMAC)
	}
	c, err := packet.Listen(ifi, packet.Raw, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("garp: AF_PACKET socket on %q: %w", ifname, err)
	}
	a := &Announcer{ifi: ifi, conn: c}
	if addrs, err := ifi.Addrs(); err == nil {
		for _, x := range addrs {
			if n, ok := x.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
					a.linkLocal = ip
					break
				}
			}
		}
	}
	return a, nil
}

// WriteFrame sends one frame to its Ethernet destination.
func (a *Announcer) WriteFrame(f []byte) error {
	_, err := a.conn.WriteTo(f, &packet.Addr{HardwareAddr: net.HardwareAddr(f[0:6])})
	if err != nil {
		return fmt.Errorf("garp: send on %s: %w", a.ifi.Name, err)
	}
	return nil
}

// Announce sends a burst for vips: count rounds over period.
func (a *Announcer) Announce(ctx context.Context, vips []netip.Addr, count int, period time.Duration) error {
	frames, err := Frames(a.ifi.HardwareAddr, a.linkLocal, vips)
	if err != nil {
		return err
	}
	return Burst(ctx, a, frames, count, period)
}

// Interface is the interface name.
func (a *Announcer) Interface() string { return a.ifi.Name }

// Close closes the socket.
func (a *Announcer) Close() error { return a.conn.Close() }
