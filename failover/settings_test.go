package failover

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

const issueExample = `
[failover]
virtual_router_id = 57
priority = 150                        # the higher is active
interval = "100ms"                    # heartbeat (VRRP advertisement) interval
interfaces = ["eth0", "eth1"]         # heartbeat on public and private networks
peers = ["10.0.0.3", "10.0.1.3"]      # the peer's address on each network
preempt = true
preempt_delay = "5s"
secret = "shared secret"              # authenticates stand-down and sync
nat_router = ["10.0.1.254/24"]        # floating gateway addresses of NAT real servers
sync = true                           # connection sync to the backup
sync_interface = "eth1"
sync_id = 0
`

func TestSettingsIssueExample(t *testing.T) {
	var f struct {
		Failover Settings `toml:"failover"`
	}
	if _, err := toml.Decode(issueExample, &f); err != nil {
		t.Fatal(err)
	}
	r, err := f.Failover.Resolve([]netip.Addr{netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Node
	if c.VRID != 57 || c.Priority != 150 || c.Interval != 100*time.Millisecond || !c.Preempt ||
		c.PreemptDelay != 5*time.Second || string(c.Secret) != "shared secret" || !c.RequireSync ||
		len(c.Networks) != 2 || c.Networks[1].Interface != "eth1" || c.Networks[1].Peer != netip.MustParseAddr("10.0.1.3") {
		t.Fatalf("%+v", c)
	}
	if r.SyncPeer != netip.MustParseAddr("10.0.1.3") || r.SyncInterface != "eth1" || len(r.NATRouter) != 1 ||
		r.NATRouter[0] != netip.MustParsePrefix("10.0.1.254/24") {
		t.Fatalf("%+v", r)
	}
}

func TestSettingsErrorsNameTheKey(t *testing.T) {
	base := func() Settings {
		return Settings{VirtualRouterID: 1, Priority: 100, Interfaces: []string{"eth0"}, Peers: []string{"10.0.0.2"}, Secret: "long enough secret"}
	}
	cases := []struct {
		mod func(*Settings)
		key string
	}{
		{func(s *Settings) { s.VirtualRouterID = 0 }, "virtual_router_id"},
		{func(s *Settings) { s.Priority = 256 }, "priority"},
		{func(s *Settings) { s.Interval = Duration(5 * time.Millisecond) }, "interval"},
		{func(s *Settings) { s.Interval = Duration(105 * time.Millisecond) }, "interval"},
		{func(s *Settings) { s.Interfaces = nil }, "interfaces"},
		{func(s *Settings) { s.Peers = nil }, "peers"},
		{func(s *Settings) { s.Peers = []string{"10.0.0.x"} }, "peers"},
		{func(s *Settings) { s.Secret = "" }, "secret"},
		{func(s *Settings) { s.Secret = "short" }, "secret"},
		{func(s *Settings) { s.NATRouter = []string{"10.0.1.254"} }, "nat_router"},
		{func(s *Settings) { s.SyncID = 300 }, "sync_id"},
		{func(s *Settings) { s.Sync = true; s.SyncInterface = "eth9" }, "sync_interface"},
		{func(s *Settings) { s.SyncGroup = "10.0.0.1" }, "sync_group"},
		{func(s *Settings) { s.SyncMaxLen = 50 }, "sync_maxlen"},
		{func(s *Settings) { s.GARPCount = -1 }, "garp_count"},
		{func(s *Settings) { s.Local = []string{"10.0.0.1", "10.0.0.2"} }, "local_addresses"},
		{func(s *Settings) { s.Local = []string{"fe80::1"} }, "local_addresses"},
	}
	for _, tc := range cases {
		s := base()
		tc.mod(&s)
		_, err := s.Resolve(nil)
		if !errors.Is(err, ErrSettings) || !strings.Contains(err.Error(), "failover."+tc.key) {
			t.Errorf("%s: %v", tc.key, err)
		}
	}
	s := base()
	r, err := s.Resolve(nil)
	if err != nil || r.Node.Interval != time.Second || !r.Node.Preempt || r.SyncInterface != "eth0" {
		t.Fatalf("defaults: %+v %v", r, err)
	}
}
