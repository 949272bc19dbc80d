package conntrack

import (
	"errors"
	"fmt"
	"net/netip"
)

// Protocol numbers the table treats specially.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// TCP header flag bits, as in byte 13 of the TCP header: callers pass that
// byte unchanged.
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPAck uint8 = 0x10
)

// Method is a connection's forwarding method, with IPVS's values
// (IP_VS_CONN_F_FWD_MASK bits of the connection flags).
type Method uint8

const (
	MethodMasq   Method = 0 // NAT (-m)
	MethodLocal  Method = 1
	MethodTunnel Method = 2 // IP-in-IP (-i)
	MethodRoute  Method = 3 // direct routing (-g)
	MethodBypass Method = 4
)

// String returns the word ipvsadm prints in its Forward column.
func (m Method) String() string {
	switch m {
	case MethodMasq:
		return "Masq"
	case MethodLocal:
		return "Local"
	case MethodTunnel:
		return "Tunnel"
	case MethodRoute:
		return "Route"
	case MethodBypass:
		return "Bypass"
	}
	return "Unknown"
}

// Connection flags, with IPVS's IP_VS_CONN_F_* values.
const (
	FlagFwdMask   uint32 = 0x0007
	FlagSync      uint32 = 0x0020
	FlagHashed    uint32 = 0x0040
	FlagNoOutput  uint32 = 0x0080
	FlagInactive  uint32 = 0x0100
	FlagNoCPort   uint32 = 0x0800
	FlagTemplate  uint32 = 0x1000
	FlagOnePacket uint32 = 0x2000
)

// State is a connection's protocol state. TCP uses IPVS's IP_VS_TCP_S_*
// numbering; UDP and other protocols have the single state 0, which lists
// as "UDP".
type State uint8

const (
	StateNone State = iota
	StateEstablished
	StateSynSent
	StateSynRecv
	StateFinWait
	StateTimeWait
	StateClose
	StateCloseWait
	StateLastAck
	StateListen
	StateSynAck
	numTCPStates
)

var tcpStateNames = [numTCPStates]string{
	"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK",
}

// Name returns the state's name as /proc/net/ip_vs_conn shows it for proto.
func (s State) Name(proto uint8) string {
	if proto != ProtoTCP {
		if proto == ProtoUDP || s == 0 {
			return "UDP"
		}
		return "ERR!"
	}
	if s < numTCPStates {
		return tcpStateNames[s]
	}
	return "BUG!"
}

// active reports whether a TCP connection in s counts in ActiveConns
// (IPVS tcp_state_active).
func (s State) active() bool {
	switch s {
	case StateEstablished, StateSynSent, StateSynRecv, StateSynAck:
		return true
	}
	return false
}

// DestID names a real server registered with a Table. 0 (NoDest) names none.
type DestID uint32

// NoDest is the DestID of no real server.
const NoDest DestID = 0

// Verdict is what In and Out decided for a packet of a tracked flow.
type Verdict uint8

const (
	// Hit: the packet belongs to the connection copied into the Conn.
	Hit Verdict = iota
	// Miss: no usable connection; the caller may call Connect (In) or treat
	// the packet as not ours (Out). Connections that conn_reuse_mode or
	// expire_nodest_conn expired also end here.
	Miss
	// DropNoDest: the connection's real server was deleted and
	// expire_nodest_conn is 0, so IPVS silently drops the packet.
	DropNoDest
)

var verdictNames = [...]string{"hit", "miss", "drop-nodest"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "verdict?"
}

// Result is what Connect did with the first packet of a flow. Every result
// but Created and Existing is a drop reason that names a counter.
type Result uint8

const (
	// Created: a new connection (and maybe a persistence template) was made.
	Created Result = iota
	// Existing: another worker created the connection first; the packet was
	// applied to it.
	Existing
	// NoServer: the scheduler found no real server (IPVS ip_vs_leave).
	NoServer
	// Full: the table is at its bound; nothing was changed.
	Full
	// NotNew: the packet cannot start a connection (TCP without SYN, or with
	// RST).
	NotNew
	// WrongPort: a non-persistent, non-fwmark service only schedules packets
	// to its own port.
	WrongPort
	// UnknownDest: the scheduler returned a real server that was never
	// registered with RegisterDest (a wiring bug, counted rather than
	// panicking).
	UnknownDest
)

var resultNames = [...]string{"created", "existing", "no-server", "table-full", "not-new", "wrong-port", "unknown-dest"}

func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return "result?"
}

// Errors returned by configuration calls.
var (
	ErrRange     = errors.New("conntrack: value out of range")
	ErrDestInUse = errors.New("conntrack: real server still has connections")
	ErrNoDest    = errors.New("conntrack: no such real server")
	ErrTooMany   = errors.New("conntrack: too many real servers")
)

// Service describes the virtual service a new connection is scheduled for.
// The caller owns it (typically one per service in its snapshot) and passes
// a pointer to Connect; Connect never retains it.
type Service struct {
	// Proto, Addr, Port and IPv6 name the service (ignored for fwmark
	// services except IPv6).
	Proto uint8
	Addr  [16]byte // netip.Addr.As16 form
	Port  uint16
	IPv6  bool
	// FWMark is non-zero for an fwmark service.
	FWMark uint32
	// PersistTimeout is ipvsadm's -p in seconds; 0 means not persistent.
	PersistTimeout uint32
	// OnePacket is ipvsadm's -o (one-packet scheduling, UDP only).
	OnePacket bool

	mask    [16]byte // -M, applied to the client address; set by SetNetmask/SetPrefix
	maskSet bool
}

// SetNetmask sets the persistence granularity of an IPv4 service (-M
// a.b.c.d). Any IPv4 mask is accepted, as the kernel applies it with AND.
func (s *Service) SetNetmask(m netip.Addr) error {
	if !m.Is4() {
		return fmt.Errorf("conntrack: persistence netmask %s: %w (want an IPv4 mask)", m, ErrRange)
	}
	var k [16]byte
	for i := 0; i < 12; i++ {
		k[i] = 0xff
	}
	a := m.As4()
	copy(k[12:], a[:])
	s.mask, s.maskSet = k, true
	return nil
}

// SetPrefix sets the persistence granularity as a prefix length: 0..32 for
// IPv4 services, 0..128 for IPv6 (-M for IPv6 takes a prefix length).
func (s *Service) SetPrefix(bits int) error {
	max := 32
	if s.IPv6 {
		max = 128
	}
	if bits < 0 || bits > max {
		return fmt.Errorf("conntrack: persistence prefix /%d: %w (0..%d)", bits, ErrRange, max)
	}
	var k [16]byte
	if !s.IPv6 {
		for i := 0; i < 12; i++ {
			k[i] = 0xff
		}
		bits += 96
	}
	for i := 0; i < bits; i++ {
		k[i/8] |= 0x80 >> (i % 8)
	}
	s.mask, s.maskSet = k, true
	return nil
}

// Netmask returns the persistence mask in 16-byte form (all ones when unset).
func (s *Service) Netmask() [16]byte {
	if !s.maskSet {
		var k [16]byte
		for i := range k {
			k[i] = 0xff
		}
		return k
	}
	return s.mask
}

// Conn is a copy of one connection, filled by In, Out, Connect and the
// lookups. It is a value the caller owns (one per worker), so filling it
// allocates nothing; it stays valid as a description even after the
// connection expires.
type Conn struct {
	ref uint32 // global slab index + 1; 0 for none (one-packet connections)
	gen uint16

	Dest         DestID
	Method       Method
	Flags        uint32 // IPVS connection flags (method bits included)
	State        State
	Proto        uint8
	IPv6         bool // client side (CAddr, VAddr)
	DIPv6        bool // real-server address family (may differ with tunnels)
	CAddr, VAddr [16]byte
	DAddr        [16]byte
	CPort, VPort uint16
	DPort        uint16
	FWMark       uint32
	InPkts       uint32
	Control      bool // controlled by a persistence template
}

// Valid reports whether c names a table entry (one-packet connections do not).
func (c *Conn) Valid() bool { return c.ref != 0 }
