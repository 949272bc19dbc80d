// Package config is ulvs's configuration model: the director settings, the
// IPVS timeouts and connection-table knobs, and the table of virtual services
// with their real servers.
//
// The same model is filled from three places and must mean the same thing in
// each: the TOML file that ulvsd reads at start and on SIGHUP ([Load],
// [Parse]), the live table that `ulvsadm --write-config` writes back
// ([Marshal]), and ipvsadm rules (package config/ipvsadm). Every value in a
// Config returned by this package has been validated as ipvsadm and kernel
// IPVS would validate it (see [Config.Validate]) and normalised (defaults
// filled in, scheduler flags in canonical order), so that two Configs that
// mean the same table compare equal with [Equal] and [Diff] finds nothing to
// do between them.
//
// A file is accepted whole or refused whole: on any error Parse returns a nil
// Config and an error that names the file, the line, the key (with array
// indexes, as in virtual_server[0].real_server[1].weight) and what is wrong.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ulvs/ulvs/failover"
	"github.com/ulvs/ulvs/healthcheck"
)

// Protocol is a virtual service's transport protocol, with IANA numbers.
type Protocol uint8

// The protocols ulvs forwards. SCTP (132) is recognised only to be refused
// with a clear message.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

// String returns "tcp", "udp" or "sctp".
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// ParseProtocol parses "tcp" or "udp". "sctp" returns ErrUnsupported.
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	case "sctp":
		return 0, fmt.Errorf("%w: SCTP services are not supported by ulvs in userspace", ErrUnsupported)
	}
	return 0, fmt.Errorf("%w: protocol %q (want tcp or udp)", ErrInvalid, s)
}

// Method is a real server's forwarding method.
type Method uint8

// Forwarding methods. The zero value is DR, ipvsadm's default (-g).
const (
	DR  Method = iota // direct routing ("gatewaying", ipvsadm -g, listed as Route)
	NAT               // masquerading (ipvsadm -m, listed as Masq)
	TUN               // IP-in-IP tunnelling (ipvsadm -i, listed as Tunnel)
)

// String returns "dr", "nat" or "tun".
func (m Method) String() string {
	switch m {
	case DR:
		return "dr"
	case NAT:
		return "nat"
	case TUN:
		return "tun"
	}
	return fmt.Sprintf("method-%d", uint8(m))
}

// ParseMethod parses "nat", "dr" or "tun".
func ParseMethod(s string) (Method, error) {
	switch s {
	case "dr":
		return DR, nil
	case "nat":
		return NAT, nil
	case "tun":
		return TUN, nil
	}
	return 0, fmt.Errorf("%w: method %q (want nat, dr or tun)", ErrInvalid, s)
}

// Engine is the packet I/O engine of the director.
type Engine string

// Engines.
const (
	EngineAFPacket Engine = "afpacket"
	EngineTUN      Engine = "tun"
)

// Sentinel errors. Every error this package returns wraps one of them.
var (
	// ErrInvalid: a value is malformed or out of range.
	ErrInvalid = errors.New("invalid")
	// ErrUnknownKey: the file has a table or key this version does not know.
	ErrUnknownKey = errors.New("unknown key")
	// ErrDuplicate: a virtual service or real server appears twice.
	ErrDuplicate = errors.New("duplicate")
	// ErrUnsupported: valid for kernel IPVS but not possible in ulvs
	// (firewall marks, SCTP, persistence engines, GUE/GRE tunnels).
	ErrUnsupported = errors.New("not supported")
	// ErrSyntax: the file is not valid TOML.
	ErrSyntax = errors.New("syntax error")
)

// Limits and defaults, with the values of ipvsadm 1.31 and kernel IPVS.
const (
	// MaxTimeout is ipvsadm's MAX_TIMEOUT: 31 days, the largest persistence
	// timeout and --set value.
	MaxTimeout = 31 * 24 * time.Hour
	// DefaultPersistence is what `ipvsadm -p` without a value sets
	// (IPVS_SVC_PERSISTENT_TIMEOUT in ipvsadm's source; its man page says 300).
	DefaultPersistence = 360 * time.Second
	// DefaultScheduler is ipvsadm's DEF_SCHED.
	DefaultScheduler = "wlc"
	// MaxWeight is the largest real-server weight ipvsadm accepts.
	MaxWeight = 65535
	// MaxThreshold is the largest connection threshold ipvsadm accepts
	// (INT_MAX; its man page says 65535).
	MaxThreshold = 1<<31 - 1
)

// Default IPVS timeouts (IPVS-SPEC §4).
const (
	DefaultTCPTimeout    = 900 * time.Second
	DefaultTCPFinTimeout = 120 * time.Second
	DefaultUDPTimeout    = 300 * time.Second
)

// Schedulers lists the 14 IPVS scheduler names ulvs implements.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}

// ValidScheduler reports whether name is one of Schedulers.
func ValidScheduler(name string) bool { return slices.Contains(Schedulers, name) }

// Config is the whole configuration of one director.
type Config struct {
	Director       Director
	Timeouts       Timeouts
	Conntrack      Conntrack
	VirtualServers []VirtualServer
	Web            Web                // the HTTPS monitor (config/web.go)
	Failover       *failover.Settings // [failover]; nil when absent (config/failover.go)
}

// Director holds the settings that need a restart of ulvsd to change
// (a reload reports them in Changes.Restart and leaves them as they are).
type Director struct {
	PublicInterface  string // where clients' traffic to the VIPs arrives; required
	PrivateInterface string // towards NAT real servers; "" = one-armed, use PublicInterface
	Engine           Engine // afpacket (default) or tun
	Workers          int    // packet workers; 0 = one per CPU
	ControlSocket    string // unix socket of the control API
	MaxConnections   int    // hard bound on connection-table entries
	LogLevel         string // zerolog level: trace debug info warn error
	ConnTableBits    int    // log2 of connection-table buckets, shown as "size=" by ulvsadm -L
	// HealthMaxInFlight bounds the health-check probes running at once;
	// 0 = healthcheck's default (256).
	HealthMaxInFlight int
	// RxRing is the AF_PACKET receive ring: RxRingV3 (default; frames
	// handed over in blocks, at most 1 ms late at low rates) or RxRingV2
	// (one slot per frame, no added latency, more CPU per frame).
	RxRing RxRing
	// XDP adds the AF_PACKET engine's XDP fast lane: XDPOff (default),
	// XDPNative or XDPGeneric (see forwarder/engine).
	XDP XDPMode
}

// XDPMode is the AF_PACKET engine's XDP fast lane setting.
type XDPMode string

// XDP modes.
const (
	XDPOff     XDPMode = "off"
	XDPNative  XDPMode = "native"
	XDPGeneric XDPMode = "generic"
)

// RxRing is the kind of AF_PACKET receive ring.
type RxRing string

// Receive rings.
const (
	RxRingV3 RxRing = "v3"
	RxRingV2 RxRing = "v2"
)

// Default director settings.
const (
	DefaultControlSocket  = "/run/ulvs/ulvsd.sock"
	DefaultMaxConnections = 1 << 20
	DefaultLogLevel       = "info"
	DefaultConnTableBits  = 12
	MaxWorkers            = 1024
)

// LogLevels are the accepted values of director.log_level.
var LogLevels = []string{"trace", "debug", "info", "warn", "error"}

// Timeouts are the three IPVS timeouts that ipvsadm --set changes: the TCP
// ESTABLISHED timeout, the TCP FIN_WAIT timeout and the UDP timeout. The
// other TCP state timeouts keep the kernel's defaults.
type Timeouts struct {
	TCP    time.Duration
	TCPFin time.Duration
	UDP    time.Duration
}

// DefaultTimeouts returns 900s, 120s, 300s.
func DefaultTimeouts() Timeouts {
	return Timeouts{TCP: DefaultTCPTimeout, TCPFin: DefaultTCPFinTimeout, UDP: DefaultUDPTimeout}
}

// Conntrack holds the IPVS connection-table behaviours that the kernel
// exposes as sysctls (net.ipv4.vs.*), with the kernel's defaults.
type Conntrack struct {
	// ExpireNodestConn: traffic for a deleted real server expires its
	// connection (and a SYN is rescheduled) instead of being dropped.
	ExpireNodestConn bool
	// ExpireQuiescentTemplate: a persistence template whose real server has
	// weight 0 is not reused.
	ExpireQuiescentTemplate bool
	// ConnReuseMode: 0 disables; any non-zero value (1 is the default) lets
	// a SYN expire and reschedule a connection in TIME_WAIT/CLOSE; the bit
	// value 2 adds FIN_WAIT connections without output (DR/TUN).
	ConnReuseMode int
	// SloppyTCP: any non-RST segment may create a connection, not only SYN.
	SloppyTCP bool
}

// DefaultConntrack returns the kernel's defaults.
func DefaultConntrack() Conntrack { return Conntrack{ConnReuseMode: 1} }

// VirtualServer is one virtual service: a VIP, port and protocol with its
// scheduler and real servers.
type VirtualServer struct {
	Protocol Protocol
	// Address is the VIP and port. Port 0 means every port and requires
	// persistence, as in ipvsadm.
	Address   netip.AddrPort
	Scheduler string
	// Persistence is the template timeout: 0 (no persistence) or 1s..31 days,
	// whole seconds.
	Persistence time.Duration
	// Netmask is the persistence granularity as a prefix length: 0..32 for
	// an IPv4 VIP (ipvsadm -M 255.255.255.0 is 24), 1..128 for IPv6. It is
	// normalised to 32/128 when Persistence is 0, because it has no effect
	// then and ipvsadm does not save it.
	Netmask int
	// SchedFlags are scheduler flags in canonical form: sh-fallback,sh-port
	// for sh, mh-fallback,mh-port for mh, flag-1..flag-3 otherwise (accepted
	// for any scheduler, as ipvsadm does; only sh and mh use them).
	SchedFlags []string
	// OnePacket (UDP only): schedule every datagram on its own, keep no
	// connection entry (ipvsadm -o).
	OnePacket   bool
	RealServers []RealServer
	// HealthCheck is the check of each real server (nil: none, every real
	// server is up). Stored normalised.
	HealthCheck *healthcheck.Config
	// SorryServer takes the service's new connections only while none of
	// its real servers is up (invalid: none). SorryMethod is its
	// forwarding method (default dr).
	SorryServer netip.AddrPort
	SorryMethod Method
}

// Key identifies a virtual service: ⟨protocol, address, port⟩.
type Key struct {
	Protocol Protocol
	Address  netip.AddrPort
}

// String renders the key as ipvsadm names a service: "tcp 10.0.0.1:80".
func (k Key) String() string { return k.Protocol.String() + " " + k.Address.String() }

// Key returns the virtual service's key.
func (vs *VirtualServer) Key() Key { return Key{vs.Protocol, vs.Address} }

// DefaultNetmask returns the /32 or /128 mask (one template per client).
func DefaultNetmask(addr netip.Addr) int {
	if addr.Is4() {
		return 32
	}
	return 128
}

// NetmaskString renders the netmask as ipvsadm does: dotted quad for IPv4,
// prefix length for IPv6.
func (vs *VirtualServer) NetmaskString() string {
	if vs.Address.Addr().Is4() {
		return MaskString(vs.Netmask)
	}
	return fmt.Sprint(vs.Netmask)
}

// MaskString renders an IPv4 prefix length as a dotted mask.
func MaskString(bits int) string {
	var m uint32
	if bits > 0 {
		m = ^uint32(0) << (32 - bits)
	}
	return fmt.Sprintf("%d.%d.%d.%d", m>>24, m>>16&0xff, m>>8&0xff, m&0xff)
}

// ParseNetmask parses a netmask for a VIP of addr's family: a contiguous
// dotted IPv4 mask ("255.255.255.0") or prefix length ("/24" or "24") for
// IPv4, a prefix length 1..128 for IPv6.
func ParseNetmask(addr netip.Addr, s string) (int, error) {
	t := strings.TrimPrefix(s, "/")
	if addr.Is4() {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			b := a.As4()
			m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			bits := 0
			for bits < 32 && m&(1<<(31-bits)) != 0 {
				bits++
			}
			if bits < 32 && m<<bits != 0 {
				return 0, fmt.Errorf("%w: netmask %s is not contiguous (ulvs supports prefix masks only)", ErrInvalid, s)
			}
			return bits, nil
		}
		n, ok := atoiStrict(t)
		if !ok || n < 0 || n > 32 {
			return 0, fmt.Errorf("%w: netmask %q (want a dotted IPv4 mask or a prefix length 0..32)", ErrInvalid, s)
		}
		return n, nil
	}
	n, ok := atoiStrict(t)
	if !ok || n < 1 || n > 128 {
		return 0, fmt.Errorf("%w: netmask %q (want an IPv6 prefix length 1..128)", ErrInvalid, s)
	}
	return n, nil
}

func atoiStrict(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// Scheduler flag bits, with IPVS's values (IP_VS_SVC_F_SCHED1..3).
const (
	SchedFlag1 uint32 = 0x08
	SchedFlag2 uint32 = 0x10
	SchedFlag3 uint32 = 0x20
)

// ParseSchedFlags turns flag names into IPVS flag bits, checking them
// against the scheduler as ipvsadm's parse_sched_flags does. On error it
// returns the offending name and ipvsadm's reason ("invalid" or
// "incompatible").
func ParseSchedFlags(sched string, names []string) (uint32, string, error) {
	var bits uint32
	for _, f := range names {
		switch f {
		case "flag-1":
			bits |= SchedFlag1
		case "flag-2":
			bits |= SchedFlag2
		case "flag-3":
			bits |= SchedFlag3
		case "sh-fallback", "sh-port", "mh-fallback", "mh-port":
			if sched != f[:2] {
				return 0, f, fmt.Errorf("%w: scheduler flag %q needs scheduler %s, not %s", ErrInvalid, f, f[:2], sched)
			}
			if strings.HasSuffix(f, "fallback") {
				bits |= SchedFlag1
			} else {
				bits |= SchedFlag2
			}
		default:
			return 0, f, fmt.Errorf("%w: unknown scheduler flag %q (want sh-fallback, sh-port, mh-fallback, mh-port or flag-1..3)", ErrInvalid, f)
		}
	}
	return bits, "", nil
}

// SchedFlagNames renders flag bits as ipvsadm's print_sched_flags does.
func SchedFlagNames(sched string, bits uint32) []string {
	var out []string
	switch sched {
	case "sh", "mh":
		if bits&SchedFlag1 != 0 {
			out = append(out, sched+"-fallback")
		}
		if bits&SchedFlag2 != 0 {
			out = append(out, sched+"-port")
		}
	default:
		if bits&SchedFlag1 != 0 {
			out = append(out, "flag-1")
		}
		if bits&SchedFlag2 != 0 {
			out = append(out, "flag-2")
		}
		if bits&SchedFlag3 != 0 {
			out = append(out, "flag-3")
		}
	}
	return out
}

// SchedFlagBits returns the IPVS bits of vs.SchedFlags (0 if invalid).
func (vs *VirtualServer) SchedFlagBits() uint32 {
	b, _, _ := ParseSchedFlags(vs.Scheduler, vs.SchedFlags)
	return b
}

// RealServer is one real server of a virtual service.
type RealServer struct {
	// Address is the real server's address and port. For dr and tun the port
	// always equals the service port (ipvsadm forces it); see the package
	// README for how the TOML file treats a different port.
	Address        netip.AddrPort
	Method         Method
	Weight         int    // 0..65535; 0 quiesces the server
	UpperThreshold uint32 // 0 = none; else no new connections at active+inactive >= this
	LowerThreshold uint32 // 0 = none; must be <= UpperThreshold when both set
	// HealthCheck overrides the virtual server's check for this real
	// server (nil: the virtual server's). Stored normalised.
	HealthCheck *healthcheck.Config
}

// New returns a Config with every default filled in and no virtual
// servers; PublicInterface must still be set.
func New() *Config {
	return &Config{
		Director: Director{
			Engine:         EngineAFPacket,
			RxRing:         RxRingV3,
			XDP:            XDPOff,
			ControlSocket:  DefaultControlSocket,
			MaxConnections: DefaultMaxConnections,
			LogLevel:       DefaultLogLevel,
			ConnTableBits:  DefaultConnTableBits,
		},
		Timeouts:  DefaultTimeouts(),
		Conntrack: DefaultConntrack(),
	}
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	n := *c
	n.Web = c.Web.Clone()
	n.VirtualServers = make([]VirtualServer, len(c.VirtualServers))
	for i, vs := range c.VirtualServers {
		n.VirtualServers[i] = vs.Clone()
	}
	if c.VirtualServers == nil {
		n.VirtualServers = nil
	}
	return &n
}

// Clone returns a deep copy of vs.
func (vs VirtualServer) Clone() VirtualServer {
	vs.SchedFlags = slices.Clone(vs.SchedFlags)
	vs.RealServers = slices.Clone(vs.RealServers)
	for i := range vs.RealServers {
		vs.RealServers[i].HealthCheck = CloneHealth(vs.RealServers[i].HealthCheck)
	}
	vs.HealthCheck = CloneHealth(vs.HealthCheck)
	return vs
}

// Find returns the index of the virtual service with key k, or -1.
func (c *Config) Find(k Key) int {
	for i := range c.VirtualServers {
		if c.VirtualServers[i].Key() == k {
			return i
		}
	}
	return -1
}

// Find returns the index of the real server at addr, or -1.
func (vs *VirtualServer) Find(addr netip.AddrPort) int {
	for i := range vs.RealServers {
		if vs.RealServers[i].Address == addr {
			return i
		}
	}
	return -1
}

// Equal reports whether a and b describe the same configuration. Virtual
// services and real servers compare as sets (order does not matter); nil
// and empty slices are equal.
func Equal(a, b *Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Director != b.Director || a.Timeouts != b.Timeouts || a.Conntrack != b.Conntrack {
		return false
	}
	d := Diff(a, b)
	if len(d.Ops) != 0 {
		return false
	}
	for i := range b.VirtualServers {
		j := a.Find(b.VirtualServers[i].Key())
		if j < 0 || !sameHealth(&a.VirtualServers[j], &b.VirtualServers[i]) {
			return false
		}
	}
	return true
}

// MarshalText renders the protocol as "tcp" or "udp".
func (p Protocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses "tcp" or "udp".
func (p *Protocol) UnmarshalText(b []byte) error {
	v, err := ParseProtocol(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalText renders the method as "nat", "dr" or "tun".
func (m Method) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses "nat", "dr" or "tun".
func (m *Method) UnmarshalText(b []byte) error {
	v, err := ParseMethod(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
