package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// Mode is a forwarding method, which decides the lab's topology.
type Mode string

// The forwarding methods.
const (
	NAT Mode = "nat"
	DR  Mode = "dr"
	TUN Mode = "tun"
)

// Role is what a lab host is for.
type Role string

// Host roles.
const (
	RoleClient     Role = "client"
	RoleDirector   Role = "director"
	RoleRealServer Role = "realserver"
	RoleSwitch     Role = "switch"
)

// Limits on a lab's size, set by the addressing plan.
const (
	MaxServers = 40
	MaxClients = 20
)

// Errors.
var (
	ErrBadSpec  = errors.New("lab: bad spec")
	ErrExists   = errors.New("lab: already exists")
	ErrNotFound = errors.New("lab: not found")
	ErrNoHost   = errors.New("lab: no such host")
	ErrLeftover = errors.New("lab: processes left in lab namespaces")
)

// Spec describes a lab to build. The zero value of every field but Mode
// means its default.
type Spec struct {
	// Name prefixes every namespace ("NAME-client1"). Letters, digits and
	// '-', at most 16 characters; generated ("ul" + 6 hex digits) if empty.
	Name string
	// Mode is nat, dr or tun.
	Mode Mode
	// Servers is the number of real servers, 1..40 (default 3).
	Servers int
	// Clients is the number of client hosts, 1..20 (default 1).
	Clients int
	// Directors is 1 or 2 (default 1). With 2, the NAT gateway address
	// and the VIP belong to neither: failover takes them over.
	Directors int
	// IPv6 adds IPv6 addresses, routes and a second VIP.
	IPv6 bool
	// HTTPPort, UDPEchoPort and UDPNamePort are the built-in server's ports
	// on every real server (defaults 80, 7 and 7001).
	HTTPPort, UDPEchoPort, UDPNamePort int
	// NoServers skips starting the built-in servers.
	NoServers bool
	// NoRealServerSetup skips the DR VIP set-up and the TUN decapsulator on
	// the real servers (for tests of ulvs-realserver itself).
	NoRealServerSetup bool
	// StateDir holds lab-NAME.json and the processes' logs (default /run/ulvs).
	StateDir string
	// Helper is the command that runs the lab's helper roles ("serve" and
	// "realserver-tun", see RunHelper), default this executable re-executed
	// with ULVS_LAB_HELPER set.
	Helper []string
}

// Net is one L2 segment, a bridge in the switch namespace.
type Net struct {
	Name    string       `json:"name"`   // "public" or "private"
	Bridge  string       `json:"bridge"` // bridge name in the switch namespace
	Subnet4 netip.Prefix `json:"subnet4"`
	Subnet6 netip.Prefix `json:"subnet6,omitzero"`
}

// Iface is a host's interface: one end of a veth pair whose other end is a
// port of Net's bridge.
type Iface struct {
	Name   string       `json:"name"`  // inside the host's namespace: eth0, eth1
	Net    string       `json:"net"`   // "public" or "private"
	Port   string       `json:"port"`  // the veth end on the bridge, in the switch namespace
	MAC    string       `json:"mac"`   // fixed: 02:1a followed by the IPv4 address bytes
	Addr4  netip.Prefix `json:"addr4"` // address/prefix length
	Addr6  netip.Prefix `json:"addr6,omitzero"`
	Router bool         `json:"router"` // the director's private side, the real servers' gateway
}

// HardwareAddr returns MAC parsed.
func (i Iface) HardwareAddr() net.HardwareAddr {
	hw, _ := net.ParseMAC(i.MAC)
	return hw
}

// Host is one network namespace of the lab.
type Host struct {
	Name     string     `json:"name"` // client1, dir1, rs1
	Role     Role       `json:"role"`
	Netns    string     `json:"netns"` // namespace name: LABNAME-HOST
	Ifaces   []Iface    `json:"ifaces"`
	Gateway4 netip.Addr `json:"gateway4,omitzero"` // default route, if any
	Gateway6 netip.Addr `json:"gateway6,omitzero"`
}

// Iface returns the host's interface on the named net.
func (h *Host) Iface(net string) (Iface, bool) {
	for _, i := range h.Ifaces {
		if i.Net == net {
			return i, true
		}
	}
	return Iface{}, false
}

// Addr4 returns the host's first IPv4 address.
func (h *Host) Addr4() netip.Addr { return h.Ifaces[0].Addr4.Addr() }

// Addr6 returns the host's first IPv6 address (zero without IPv6).
func (h *Host) Addr6() netip.Addr { return h.Ifaces[0].Addr6.Addr() }

// Plan is the addressing plan of a lab: everything a test, a daemon config
// or a person needs to know, as data.
type Plan struct {
	Name   string `json:"name"`
	Mode   Mode   `json:"mode"`
	Switch string `json:"switch"` // namespace holding the bridges
	Nets   []Net  `json:"nets"`
	Hosts  []Host `json:"hosts"`
	// VIP4 and VIP6 are the virtual addresses. No kernel anywhere in the
	// lab holds them, except the real servers in DR and TUN modes (on a
	// non-ARPing device).
	VIP4 netip.Addr `json:"vip4"`
	VIP6 netip.Addr `json:"vip6,omitzero"`
	// Gateway4/6 is the real servers' default gateway in NAT mode (the
	// director's private address, or, with two directors, an address no
	// one holds until failover takes it).
	Gateway4    netip.Addr `json:"gateway4,omitzero"`
	Gateway6    netip.Addr `json:"gateway6,omitzero"`
	HTTPPort    int        `json:"http_port"`
	UDPEchoPort int        `json:"udp_echo_port"`
	UDPNamePort int        `json:"udp_name_port"`
}

// Host returns the named host.
func (p *Plan) Host(name string) (*Host, bool) {
	for i := range p.Hosts {
		if p.Hosts[i].Name == name {
			return &p.Hosts[i], true
		}
	}
	return nil, false
}

// ByRole returns the hosts with the given role, in order.
func (p *Plan) ByRole(r Role) []*Host {
	var hs []*Host
	for i := range p.Hosts {
		if p.Hosts[i].Role == r {
			hs = append(hs, &p.Hosts[i])
		}
	}
	return hs
}

// Clients, Directors and RealServers return the hosts of each role.
func (p *Plan) Clients() []*Host     { return p.ByRole(RoleClient) }
func (p *Plan) Directors() []*Host   { return p.ByRole(RoleDirector) }
func (p *Plan) RealServers() []*Host { return p.ByRole(RoleRealServer) }

// Namespaces lists every namespace of the lab, the switch's first.
func (p *Plan) Namespaces() []string {
	ns := []string{p.Switch}
	for _, h := range p.Hosts {
		ns = append(ns, h.Netns)
	}
	return ns
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,15}$`)

// normalize fills defaults and checks the spec.
func (s Spec) normalize() (Spec, error) {
	if s.Name == "" {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return s, err
		}
		s.Name = "ul" + hex.EncodeToString(b[:])
	}
	if !nameRE.MatchString(s.Name) {
		return s, fmt.Errorf("%w: name %q: want 1-16 letters, digits or '-', starting with a letter or digit", ErrBadSpec, s.Name)
	}
	switch s.Mode {
	case NAT, DR, TUN:
	case "":
		return s, fmt.Errorf("%w: mode is required (nat, dr or tun)", ErrBadSpec)
	default:
		return s, fmt.Errorf("%w: mode %q: want nat, dr or tun", ErrBadSpec, s.Mode)
	}
	if s.Servers == 0 {
		s.Servers = 3
	}
	if s.Clients == 0 {
		s.Clients = 1
	}
	if s.Directors == 0 {
		s.Directors = 1
	}
	if s.Servers < 1 || s.Servers > MaxServers {
		return s, fmt.Errorf("%w: servers %d: want 1..%d", ErrBadSpec, s.Servers, MaxServers)
	}
	if s.Clients < 1 || s.Clients > MaxClients {
		return s, fmt.Errorf("%w: clients %d: want 1..%d", ErrBadSpec, s.Clients, MaxClients)
	}
	if s.Directors < 1 || s.Directors > 2 {
		return s, fmt.Errorf("%w: directors %d: want 1 or 2", ErrBadSpec, s.Directors)
	}
	for _, p := range []*int{&s.HTTPPort, &s.UDPEchoPort, &s.UDPNamePort} {
		if *p < 0 || *p > 65535 {
			return s, fmt.Errorf("%w: port %d out of range", ErrBadSpec, *p)
		}
	}
	if s.HTTPPort == 0 {
		s.HTTPPort = 80
	}
	if s.UDPEchoPort == 0 {
		s.UDPEchoPort = 7
	}
	if s.UDPNamePort == 0 {
		s.UDPNamePort = 7001
	}
	if s.StateDir == "" {
		s.StateDir = "/run/ulvs"
	}
	return s, nil
}

// Addressing: the public net is 10.0.0.0/24 (fd00:10::/64), the private net
// 10.0.1.0/24 (fd00:11::/64). The IPv6 host part repeats the IPv4 last
// octet's decimal digits (10.0.0.21 -> fd00:10::21).
var (
	pub4  = netip.MustParsePrefix("10.0.0.0/24")
	pub6  = netip.MustParsePrefix("fd00:10::/64")
	priv4 = netip.MustParsePrefix("10.0.1.0/24")
	priv6 = netip.MustParsePrefix("fd00:11::/64")
)

func host4(p netip.Prefix, n int) netip.Prefix {
	a := p.Addr().As4()
	a[3] = byte(n)
	return netip.PrefixFrom(netip.AddrFrom4(a), p.Bits())
}

func host6(p netip.Prefix, n int) netip.Prefix {
	base := strings.TrimSuffix(p.Addr().String(), "::")
	return netip.PrefixFrom(netip.MustParseAddr(fmt.Sprintf("%s::%d", base, n)), p.Bits())
}

func macFor(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("02:1a:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// MakePlan computes the addressing plan of a spec without building anything.
func MakePlan(spec Spec) (Plan, error) {
	s, err := spec.normalize()
	if err != nil {
		return Plan{}, err
	}
	p := Plan{
		Name:        s.Name,
		Mode:        s.Mode,
		Switch:      s.Name + "-switch",
		VIP4:        host4(pub4, 100).Addr(),
		HTTPPort:    s.HTTPPort,
		UDPEchoPort: s.UDPEchoPort,
		UDPNamePort: s.UDPNamePort,
	}
	pub := Net{Name: "public", Bridge: "br-public", Subnet4: pub4}
	priv := Net{Name: "private", Bridge: "br-private", Subnet4: priv4}
	if s.IPv6 {
		p.VIP6 = host6(pub6, 100).Addr()
		pub.Subnet6 = pub6
		priv.Subnet6 = priv6
	}
	p.Nets = append(p.Nets, pub)
	if s.Mode == NAT {
		p.Nets = append(p.Nets, priv)
	}

	iface := func(hostName, name string, n Net, p4, p6 netip.Prefix, hostOctet int) Iface {
		i := Iface{Name: name, Net: n.Name, Port: fmt.Sprintf("%s.%s", hostName, strings.TrimPrefix(name, "eth")), Addr4: host4(p4, hostOctet)}
		i.MAC = macFor(i.Addr4.Addr())
		if s.IPv6 {
			i.Addr6 = host6(p6, hostOctet)
		}
		return i
	}
	add := func(name string, role Role, ifs ...Iface) *Host {
		p.Hosts = append(p.Hosts, Host{Name: name, Role: role, Netns: s.Name + "-" + name, Ifaces: ifs})
		return &p.Hosts[len(p.Hosts)-1]
	}

	// Clients: 10.0.0.10+i. Directors: public 10.0.0.1+i; in NAT private
	// 10.0.1.1 (one director) or 10.0.1.1+i (two, the gateway .1 floats).
	// Real servers: NAT 10.0.1.10+i, DR/TUN 10.0.0.50+i.
	for i := 1; i <= s.Clients; i++ {
		add(fmt.Sprintf("client%d", i), RoleClient, iface(fmt.Sprintf("client%d", i), "eth0", pub, pub4, pub6, 10+i))
	}
	if s.Mode == NAT {
		p.Gateway4 = host4(priv4, 1).Addr()
		if s.IPv6 {
			p.Gateway6 = host6(priv6, 1).Addr()
		}
	}
	for i := 1; i <= s.Directors; i++ {
		name := fmt.Sprintf("dir%d", i)
		ifs := []Iface{iface(name, "eth0", pub, pub4, pub6, 1+i)}
		if s.Mode == NAT {
			octet := 1
			if s.Directors > 1 {
				octet = 1 + i
			}
			pi := iface(name, "eth1", priv, priv4, priv6, octet)
			pi.Router = true
			ifs = append(ifs, pi)
		}
		add(name, RoleDirector, ifs...)
	}
	for i := 1; i <= s.Servers; i++ {
		name := fmt.Sprintf("rs%d", i)
		var h *Host
		if s.Mode == NAT {
			h = add(name, RoleRealServer, iface(name, "eth0", priv, priv4, priv6, 10+i))
			h.Gateway4, h.Gateway6 = p.Gateway4, p.Gateway6
		} else {
			add(name, RoleRealServer, iface(name, "eth0", pub, pub4, pub6, 50+i))
		}
	}
	return p, nil
}
