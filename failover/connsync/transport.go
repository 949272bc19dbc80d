package connsync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Defaults of the kernel sync daemon.
var (
	DefaultGroup = netip.MustParseAddr("224.0.0.81")
)

// DefaultPort is the sync daemon's UDP port.
const DefaultPort = 8848

// ErrNoInterface is returned when the sync interface is missing or has no
// IPv4 address.
var ErrNoInterface = errors.New("connsync: sync interface missing or without an IPv4 address")

// TransportConfig says where sync messages go.
type TransportConfig struct {
	Interface string     // sync_interface (required)
	Group     netip.Addr // multicast group; DefaultGroup when invalid and Peer is invalid
	Peer      netip.Addr // unicast destination; when valid, used instead of the group
	Port      int        // DefaultPort when 0
	TTL       int        // multicast TTL, 1 when 0
}

func (c *TransportConfig) defaults() {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if !c.Group.IsValid() {
		c.Group = DefaultGroup
	}
	if c.TTL == 0 {
		c.TTL = 1
	}
}

// InterfaceAddr4 returns the first IPv4 address of the named interface.
func InterfaceAddr4(name string) (*net.Interface, netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("%w: %q: %v", ErrNoInterface, name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("%w: %q: %v", ErrNoInterface, name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
				return ifi, ip.Unmap(), nil
			}
		}
	}
	return nil, netip.Addr{}, fmt.Errorf("%w: %q", ErrNoInterface, name)
}

// UDPWriter is the master's transport: a UDP socket bound to the sync
// interface's address and connected to the group (or the peer).
type UDPWriter struct {
	c *net.UDPConn
}

var _ Writer = (*UDPWriter)(nil)

// DialSender opens the master's socket: multicast with the interface as
// IP_MULTICAST_IF, TTL 1 and loopback off (as make_send_sock), or unicast.
func DialSender(cfg TransportConfig) (*UDPWriter, error) {
	cfg.defaults()
	ifi, src, err := InterfaceAddr4(cfg.Interface)
	if err != nil {
		return nil, err
	}
	dst := cfg.Group
	if cfg.Peer.IsValid() {
		dst = cfg.Peer
	}
	d := net.Dialer{
		LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = bindToDevice(fd, ifi.Name)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	c, err := d.Dial("udp4", netip.AddrPortFrom(dst, uint16(cfg.Port)).String())
	if err != nil {
		return nil, fmt.Errorf("connsync: dial %v on %s: %w", dst, cfg.Interface, err)
	}
	uc := c.(*net.UDPConn)
	if dst.IsMulticast() {
		pc := ipv4.NewPacketConn(uc)
		if err := pc.SetMulticastInterface(ifi); err != nil {
			uc.Close()
			return nil, fmt.Errorf("connsync: multicast interface %s: %w", cfg.Interface, err)
		}
		if err := pc.SetMulticastTTL(cfg.TTL); err != nil {
			uc.Close()
			return nil, fmt.Errorf("connsync: multicast TTL: %w", err)
		}
		if err := pc.SetMulticastLoopback(false); err != nil {
			uc.Close()
			return nil, fmt.Errorf("connsync: multicast loopback: %w", err)
		}
	}
	return &UDPWriter{c: uc}, nil
}

// WriteSync sends one message.
func (w *UDPWriter) WriteSync(msg []byte) error {
	_, err := w.c.Write(msg)
	return err
}

// LocalAddr is the socket's address.
func (w *UDPWriter) LocalAddr() netip.AddrPort { return w.c.LocalAddr().(*net.UDPAddr).AddrPort() }

// Close closes the socket.
func (w *UDPWriter) Close() error { return w.c.Close() }

// Receiver is the backup's transport: a UDP socket on the sync port, joined
// to the group on the sync interface.
type Receiver struct {
	c   *net.UDPConn
	buf []byte
}

// receiveBuffer is the receive socket buffer of a sync receiver.
const receiveBuffer = 4 << 20

// ListenReceiver opens the backup's socket.
func ListenReceiver(cfg TransportConfig) (*Receiver, error) {
	cfg.defaults()
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrNoInterface, cfg.Interface, err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil {
				serr = bindToDevice(fd, ifi.Name)
			}
			// Sync arrives in bursts (a bulk copy, or many connections
			// changing state at once): give the socket room for them, past
			// rmem_max when we may (root), else as much as rmem_max allows.
			if serr == nil && unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", cfg.Port))
	if err != nil {
		return nil, fmt.Errorf("connsync: listen on %s port %d: %w", cfg.Interface, cfg.Port, err)
	}
	uc := pc.(*net.UDPConn)
	if !cfg.Peer.IsValid() {
		p := ipv4.NewPacketConn(uc)
		if err := p.JoinGroup(ifi, &net.UDPAddr{IP: cfg.Group.AsSlice()}); err != nil {
			uc.Close()
			return nil, fmt.Errorf("connsync: join %v on %s: %w", cfg.Group, cfg.Interface, err)
		}
	}
	// The backup accepts messages up to 65535 bytes (it clamps the MTU to
	// 1500..65535).
	return &Receiver{c: uc, buf: make([]byte, 65536)}, nil
}

// Run reads messages until ctx ends or the socket fails, decoding each
// with d into sink; stats (if not nil) is called with every Result.
func (r *Receiver) Run(ctx context.Context, d *Decoder, sink Sink, stats func(from netip.AddrPort, res *Result)) error {
	stop := context.AfterFunc(ctx, func() { r.c.Close() })
	defer stop()
	for {
		n, from, err := r.c.ReadFromUDPAddrPort(r.buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		res := d.Decode(r.buf[:n], sink)
		if stats != nil {
			stats(from, &res)
		}
	}
}

// LocalAddr is the socket's address.
func (r *Receiver) LocalAddr() netip.AddrPort { return r.c.LocalAddr().(*net.UDPAddr).AddrPort() }

// Close closes the socket.
func (r *Receiver) Close() error { return r.c.Close() }
