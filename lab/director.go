package lab

import (
	"fmt"
	"net/netip"
	"strings"
)

// DirectorOptions shape the ulvsd configuration DirectorConfig writes.
type DirectorOptions struct {
	Scheduler string // default "rr"
	Workers   int    // default 1
	// ControlSocket is where ulvsd listens (required: labs run side by side).
	ControlSocket string
	// UDP adds a UDP virtual service on the built-in UDP echo port.
	UDP bool
	// Director is the director host (default "dir1").
	Director string
	// Extra is appended to the [director] table verbatim.
	Extra string
}

// DirectorConfig returns a ulvsd TOML configuration for the lab: one TCP
// virtual service on the VIP's HTTP port (and its IPv6 twin when the lab has
// IPv6) with every real server, in the lab's forwarding method.
func (l *Lab) DirectorConfig(o DirectorOptions) string {
	p := &l.Plan
	if o.Scheduler == "" {
		o.Scheduler = "rr"
	}
	if o.Workers == 0 {
		o.Workers = 1
	}
	if o.Director == "" {
		o.Director = "dir1"
	}
	dir, _ := p.Host(o.Director)
	var b strings.Builder
	b.WriteString("[director]\n")
	for _, ifc := range dir.Ifaces {
		switch ifc.Net {
		case "public":
			fmt.Fprintf(&b, "public_interface = %q\n", ifc.Name)
		case "private":
			fmt.Fprintf(&b, "private_interface = %q\n", ifc.Name)
		}
	}
	fmt.Fprintf(&b, "workers = %d\ncontrol_socket = %q\n", o.Workers, o.ControlSocket)
	b.WriteString(o.Extra)
	method := string(p.Mode)
	vips := []netip.Addr{p.VIP4}
	if p.VIP6.IsValid() {
		vips = append(vips, p.VIP6)
	}
	type svc struct {
		proto string
		port  int
	}
	svcs := []svc{{"tcp", p.HTTPPort}}
	if o.UDP {
		svcs = append(svcs, svc{"udp", p.UDPEchoPort})
	}
	for _, vip := range vips {
		for _, s := range svcs {
			fmt.Fprintf(&b, "\n[[virtual_server]]\nprotocol = %q\naddress = %q\nscheduler = %q\n",
				s.proto, netip.AddrPortFrom(vip, uint16(s.port)).String(), o.Scheduler)
			for _, h := range p.RealServers() {
				a := h.Addr4()
				if vip.Is6() {
					a = h.Addr6()
				}
				fmt.Fprintf(&b, "\n  [[virtual_server.real_server]]\n  address = %q\n  method = %q\n",
					netip.AddrPortFrom(a, uint16(s.port)).String(), method)
			}
		}
	}
	return b.String()
}
