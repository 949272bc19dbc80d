package failover

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ulvs/ulvs/failover/connsync"
)

// Duration is a time.Duration written as a Go duration string in TOML
// ("100ms", "5s").
type Duration time.Duration

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Settings is the [failover] section of the ulvsd configuration. The names
// of issue 7 are fixed; the rest are ulvs additions with defaults.
type Settings struct {
	VirtualRouterID int      `toml:"virtual_router_id"` // 1..255, same on both directors (and keepalived)
	Priority        int      `toml:"priority"`          // 1..255; the higher is active
	Interval        Duration `toml:"interval"`          // advert interval, default 1s
	Interfaces      []string `toml:"interfaces"`        // heartbeat interfaces (public and private)
	Peers           []string `toml:"peers"`             // peer's address on each interface, same order
	Preempt         *bool    `toml:"preempt"`           // default true
	PreemptDelay    Duration `toml:"preempt_delay"`     // default 0
	Secret          string   `toml:"secret"`            // authenticates stand-down and sync
	NATRouter       []string `toml:"nat_router"`        // floating gateway addresses ("10.0.1.254/24")
	Sync            bool     `toml:"sync"`              // connection sync to the backup
	SyncInterface   string   `toml:"sync_interface"`    // default: the last heartbeat interface
	SyncID          int      `toml:"sync_id"`           // 0..255; 0 accepts every sync ID

	// ulvs additions.
	Local        []string `toml:"local_addresses"` // our address on each interface (default: its first IPv4 / IPv6 link-local)
	Unicast      bool     `toml:"unicast"`         // adverts unicast to peers instead of 224.0.0.18 / ff02::12
	ControlPort  int      `toml:"control_port"`    // UDP port of stand-down / sync request (8849)
	SyncPort     int      `toml:"sync_port"`       // 8848
	SyncGroup    string   `toml:"sync_group"`      // 224.0.0.81
	SyncUnicast  bool     `toml:"sync_unicast"`    // send sync to the peer's address on sync_interface instead of the group
	SyncMaxLen   int      `toml:"sync_maxlen"`     // message limit, default 1472
	GARPCount    int      `toml:"garp_count"`      // announcements per VIP per interface at takeover (5)
	GARPDuration Duration `toml:"garp_duration"`   // spread over this long (1s)
}

// ErrSettings is wrapped by every Settings validation error.
var ErrSettings = errors.New("invalid [failover] setting")

func settingErr(key, format string, a ...any) error {
	return fmt.Errorf("%w: failover.%s: %s", ErrSettings, key, fmt.Sprintf(format, a...))
}

// Resolved is a validated Settings in the types the packages use.
type Resolved struct {
	Node          Config
	NATRouter     []netip.Prefix
	Sync          bool
	SyncInterface string
	SyncID        uint8
	SyncPeer      netip.Addr // the peer on the sync interface
	Transport     connsync.TransportConfig
	SyncMaxLen    int
}

// Resolve validates s and returns the node configuration for the given
// VIPs (from the virtual services). Every error names the key.
func (s *Settings) Resolve(vips []netip.Addr) (*Resolved, error) {
	var r Resolved
	c := &r.Node
	if s.VirtualRouterID < 1 || s.VirtualRouterID > 255 {
		return nil, settingErr("virtual_router_id", "must be 1..255 (got %d)", s.VirtualRouterID)
	}
	c.VRID = uint8(s.VirtualRouterID)
	if s.Priority < 1 || s.Priority > 255 {
		return nil, settingErr("priority", "must be 1..255 (got %d)", s.Priority)
	}
	c.Priority = uint8(s.Priority)
	c.Interval = time.Duration(s.Interval)
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Interval < 10*time.Millisecond || c.Interval > 40950*time.Millisecond || c.Interval%(10*time.Millisecond) != 0 {
		return nil, settingErr("interval", "must be a multiple of 10ms between 10ms and 40.95s (got %v)", c.Interval)
	}
	if len(s.Interfaces) == 0 {
		return nil, settingErr("interfaces", "at least one heartbeat interface is required")
	}
	if len(s.Peers) != len(s.Interfaces) {
		return nil, settingErr("peers", "need one peer address per interface (%d interfaces, %d peers)", len(s.Interfaces), len(s.Peers))
	}
	for i, ifn := range s.Interfaces {
		p, err := netip.ParseAddr(s.Peers[i])
		if err != nil {
			return nil, settingErr("peers", "entry %d %q: %v", i, s.Peers[i], err)
		}
		c.Networks = append(c.Networks, Network{Interface: ifn, Peer: p.Unmap()})
	}
	if len(s.Local) != 0 && len(s.Local) != len(s.Interfaces) {
		return nil, settingErr("local_addresses", "need one address per interface (%d interfaces, %d addresses)", len(s.Interfaces), len(s.Local))
	}
	for i, l := range s.Local {
		a, err := netip.ParseAddr(l)
		if err != nil {
			return nil, settingErr("local_addresses", "entry %d %q: %v", i, l, err)
		}
		a = a.Unmap()
		if a.Is4() != c.Networks[i].Peer.Is4() {
			return nil, settingErr("local_addresses", "entry %d %v is not of the same family as peer %v", i, a, c.Networks[i].Peer)
		}
		c.Networks[i].Local = a
	}
	c.Preempt = s.Preempt == nil || *s.Preempt
	c.PreemptDelay = time.Duration(s.PreemptDelay)
	if c.PreemptDelay < 0 {
		return nil, settingErr("preempt_delay", "must not be negative")
	}
	if s.Secret == "" {
		return nil, settingErr("secret", "is required: it authenticates stand-down and sync requests")
	}
	if len(s.Secret) < 8 {
		return nil, settingErr("secret", "is too short (%d bytes; use at least 16 random bytes)", len(s.Secret))
	}
	c.Secret = []byte(s.Secret)
	c.VIPs = vips
	c.Unicast = s.Unicast
	c.ControlPort = s.ControlPort
	if c.ControlPort < 0 || c.ControlPort > 65535 {
		return nil, settingErr("control_port", "must be 1..65535")
	}
	c.Announce = true
	c.GARPCount = s.GARPCount
	c.GARPPeriod = time.Duration(s.GARPDuration)
	if s.GARPCount < 0 || s.GARPCount > 100 {
		return nil, settingErr("garp_count", "must be 0..100 (0 = default 5)")
	}
	for i, n := range s.NATRouter {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return nil, settingErr("nat_router", "entry %d %q: want ADDRESS/PREFIXLEN: %v", i, n, err)
		}
		r.NATRouter = append(r.NATRouter, p)
	}
	r.Sync = s.Sync
	c.RequireSync = s.Sync
	if s.SyncID < 0 || s.SyncID > 255 {
		return nil, settingErr("sync_id", "must be 0..255 (got %d)", s.SyncID)
	}
	r.SyncID = uint8(s.SyncID)
	r.SyncInterface = s.SyncInterface
	if r.SyncInterface == "" {
		r.SyncInterface = s.Interfaces[len(s.Interfaces)-1]
	}
	found := false
	for _, n := range c.Networks {
		if n.Interface == r.SyncInterface {
			r.SyncPeer, found = n.Peer, true
		}
	}
	c.SyncInterface = r.SyncInterface
	if s.Sync && !found {
		return nil, settingErr("sync_interface", "%q is not one of the heartbeat interfaces", r.SyncInterface)
	}
	r.Transport = connsync.TransportConfig{Interface: r.SyncInterface, Port: s.SyncPort}
	if s.SyncGroup != "" {
		g, err := netip.ParseAddr(s.SyncGroup)
		if err != nil || !g.Is4() || !g.IsMulticast() {
			return nil, settingErr("sync_group", "%q is not an IPv4 multicast address", s.SyncGroup)
		}
		r.Transport.Group = g
	}
	if s.SyncUnicast {
		r.Transport.Peer = r.SyncPeer
	}
	r.SyncMaxLen = s.SyncMaxLen
	if r.SyncMaxLen != 0 && (r.SyncMaxLen < connsync.HeaderLen+connsync.EntryLen6+26 || r.SyncMaxLen > 65507) {
		return nil, settingErr("sync_maxlen", "must be between 106 and 65507 (got %d)", r.SyncMaxLen)
	}
	return &r, nil
}
