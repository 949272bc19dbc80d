package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const failoverBase = `[director]
public_interface = "eth0"

[[virtual_server]]
protocol = "tcp"
address = "10.0.0.100:80"

  [[virtual_server.real_server]]
  address = "10.0.1.11:80"
  method = "nat"

[failover]
virtual_router_id = 57
priority = 150
interval = "100ms"
interfaces = ["eth0", "eth1"]
peers = ["10.0.0.3", "10.0.1.3"]
secret = "shared secret"
nat_router = ["10.0.1.254/24"]
sync = true
`

func TestFailoverTable(t *testing.T) {
	c, err := Parse([]byte(failoverBase), "ulvsd.toml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.ResolveFailover()
	if err != nil || res == nil {
		t.Fatalf("ResolveFailover: %v %v", res, err)
	}
	if res.Node.VRID != 57 || res.Node.Priority != 150 || res.Node.Interval != 100*time.Millisecond || !res.Node.Preempt {
		t.Fatalf("node %+v", res.Node)
	}
	if len(res.Node.VIPs) != 1 || res.Node.VIPs[0] != netip.MustParseAddr("10.0.0.100") {
		t.Fatalf("VIPs %v", res.Node.VIPs)
	}
	if !res.Sync || res.SyncInterface != "eth1" || res.SyncPeer != netip.MustParseAddr("10.0.1.3") || len(res.NATRouter) != 1 {
		t.Fatalf("sync/nat %+v", res)
	}
	// Without the table: nil.
	c2, err := Parse([]byte(failoverBase[:strings.Index(failoverBase, "[failover]")]), "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c2.ResolveFailover(); r != nil || err != nil {
		t.Fatalf("no [failover]: %v %v", r, err)
	}
}

func TestFailoverErrorsNameLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		replace, with, want string
	}{
		{"priority = 150", "priority = 300", "ulvsd.toml:14: failover.priority: must be 1..255 (got 300)"},
		{`peers = ["10.0.0.3", "10.0.1.3"]`, `peers = ["10.0.0.3"]`, "ulvsd.toml:17: failover.peers: need one peer address per interface"},
		{`secret = "shared secret"`, `secret = "short"`, "ulvsd.toml:18: failover.secret: is too short"},
		{`interval = "100ms"`, `interval = "105ms"`, "ulvsd.toml:15: failover.interval: must be a multiple of 10ms"},
		{"sync = true", "sync = true\nsync_interface = \"eth9\"", "ulvsd.toml:21: failover.sync_interface:"},
		{"sync = true", "sync = true\nbogus = 1", "ulvsd.toml:21: failover.bogus: unknown key"},
	} {
		src := strings.Replace(failoverBase, tc.replace, tc.with, 1)
		_, err := Parse([]byte(src), "ulvsd.toml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.with, err, tc.want)
		}
		var fe *FieldError
		if err != nil && (!errors.As(err, &fe) || !errors.Is(err, fe.Err)) {
			t.Errorf("%s: not a FieldError: %v", tc.with, err)
		}
	}
}

func TestFailoverMarshalAndDiff(t *testing.T) {
	c, err := Parse([]byte(failoverBase), "ulvsd.toml")
	if err != nil {
		t.Fatal(err)
	}
	out := Marshal(c)
	c2, err := Parse(out, "written.toml")
	if err != nil {
		t.Fatalf("re-parse of Marshal: %v\n%s", err, out)
	}
	r1, _ := c.ResolveFailover()
	r2, err := c2.ResolveFailover()
	if err != nil || r2 == nil || r2.Node.Priority != r1.Node.Priority || r2.Node.Interval != r1.Node.Interval || string(r2.Node.Secret) != string(r1.Node.Secret) || len(r2.NATRouter) != 1 {
		t.Fatalf("[failover] lost in Marshal: %v\n%s", err, out)
	}
	if ch := Diff(c, c2); len(ch.Restart) != 0 {
		t.Fatalf("no change reported as %v", ch.Restart)
	}
	c3, _ := Parse([]byte(strings.Replace(failoverBase, "priority = 150", "priority = 151", 1)), "x.toml")
	if ch := Diff(c, c3); len(ch.Restart) != 1 || ch.Restart[0] != "failover" {
		t.Fatalf("priority change: restart %v", ch.Restart)
	}
	if ch := Diff(nil, c); len(ch.Restart) != 0 {
		t.Fatalf("first apply reports restart %v", ch.Restart)
	}
}
