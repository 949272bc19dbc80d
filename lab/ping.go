package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Ping sends one ICMP echo request from the host to addr and waits for the
// reply until ctx ends. It needs no ping binary.
func (l *Lab) Ping(ctx context.Context, host string, addr netip.Addr) error {
	network, listen := "ip4:icmp", "0.0.0.0"
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	proto := 1
	if addr.Is6() {
		network, listen, typ, reply, proto = "ip6:ipv6-icmp", "::", ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	var c *icmp.PacketConn
	if err := l.Do(host, func() error {
		var err error
		c, err = icmp.ListenPacket(network, listen)
		return err
	}); err != nil {
		return fmt.Errorf("ping %s from %s: %w", addr, host, err)
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("ulvslab")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: addr.AsSlice()}); err != nil {
		return fmt.Errorf("ping %s from %s: %w", addr, host, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Second)
	}
	c.SetReadDeadline(deadline)
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("ping %s from %s: no reply: %w", addr, host, err)
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == 1 {
			if fa, ok := from.(*net.IPAddr); ok {
				if got, _ := netip.AddrFromSlice(fa.IP); got.Unmap() == addr {
					return nil
				}
			}
		}
	}
}
