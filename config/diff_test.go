package config

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func baseConfig() *Config {
	c := New()
	c.Director.PublicInterface = "eth0"
	c.VirtualServers = []VirtualServer{
		{Protocol: TCP, Address: netip.MustParseAddrPort("10.0.0.1:80"), Scheduler: "wlc", Netmask: 32,
			RealServers: []RealServer{
				{Address: netip.MustParseAddrPort("10.0.1.1:80"), Method: NAT, Weight: 1},
				{Address: netip.MustParseAddrPort("10.0.1.2:80"), Method: NAT, Weight: 1},
			}},
		{Protocol: UDP, Address: netip.MustParseAddrPort("10.0.0.1:53"), Scheduler: "rr", Netmask: 32,
			RealServers: []RealServer{{Address: netip.MustParseAddrPort("10.0.1.1:53"), Method: DR, Weight: 1}}},
	}
	return c
}

func opStrings(ch Changes) []string {
	var s []string
	for _, o := range ch.Ops {
		s = append(s, o.String())
	}
	return s
}

func TestDiff(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(c *Config)
		want    []string
		restart []string
	}{
		{"nothing", func(c *Config) {}, nil, nil},
		{"order only", func(c *Config) {
			c.VirtualServers[0], c.VirtualServers[1] = c.VirtualServers[1], c.VirtualServers[0]
			rs := c.VirtualServers[1].RealServers
			rs[0], rs[1] = rs[1], rs[0]
		}, nil, nil},
		{"weight", func(c *Config) { c.VirtualServers[0].RealServers[1].Weight = 5 },
			[]string{"edit-server tcp 10.0.0.1:80 10.0.1.2:80 nat weight 5 thresholds 0/0"}, nil},
		{"scheduler is an edit, not a re-create", func(c *Config) { c.VirtualServers[0].Scheduler = "rr" },
			[]string{"edit-service tcp 10.0.0.1:80 rr"}, nil},
		{"persistence", func(c *Config) {
			c.VirtualServers[0].Persistence = 300 * time.Second
			c.VirtualServers[0].Netmask = 24
		}, []string{"edit-service tcp 10.0.0.1:80 wlc persistent 300s mask 255.255.255.0"}, nil},
		{"add and remove servers", func(c *Config) {
			vs := &c.VirtualServers[0]
			vs.RealServers = append(vs.RealServers[1:], RealServer{Address: netip.MustParseAddrPort("10.0.1.3:80"), Method: NAT, Weight: 2})
		}, []string{
			"delete-server tcp 10.0.0.1:80 10.0.1.1:80",
			"add-server tcp 10.0.0.1:80 10.0.1.3:80 nat weight 2 thresholds 0/0",
		}, nil},
		{"services", func(c *Config) {
			c.VirtualServers = c.VirtualServers[:1]
			c.VirtualServers = append(c.VirtualServers, VirtualServer{Protocol: TCP, Address: netip.MustParseAddrPort("[2001:db8::1]:443"),
				Scheduler: "mh", Netmask: 128, SchedFlags: []string{"mh-port"},
				RealServers: []RealServer{{Address: netip.MustParseAddrPort("[2001:db8::2]:443"), Method: DR, Weight: 1}}})
		}, []string{
			"delete-service udp 10.0.0.1:53",
			"add-service tcp [2001:db8::1]:443 mh (mh-port)",
			"add-server tcp [2001:db8::1]:443 [2001:db8::2]:443 dr weight 1 thresholds 0/0",
		}, nil},
		{"port change is delete+add", func(c *Config) { c.VirtualServers[1].Address = netip.MustParseAddrPort("10.0.0.1:5353") },
			[]string{"delete-service udp 10.0.0.1:53", "add-service udp 10.0.0.1:5353 rr",
				"add-server udp 10.0.0.1:5353 10.0.1.1:53 dr weight 1 thresholds 0/0"}, nil},
		{"timeouts and knobs", func(c *Config) {
			c.Timeouts.UDP = time.Minute
			c.Conntrack.ExpireNodestConn = true
		}, []string{"set-timeouts tcp 900s tcpfin 120s udp 60s",
			"set-conntrack {ExpireNodestConn:true ExpireQuiescentTemplate:false ConnReuseMode:1 SloppyTCP:false}"}, nil},
		{"director needs restart", func(c *Config) {
			c.Director.Workers = 2
			c.Director.PublicInterface = "eth9"
		}, nil, []string{"director.public_interface", "director.workers"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := baseConfig()
			n := baseConfig()
			tc.edit(n)
			ch := Diff(old, n)
			if got := opStrings(ch); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ops:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if !reflect.DeepEqual(ch.Restart, tc.restart) {
				t.Fatalf("restart %v want %v", ch.Restart, tc.restart)
			}
			applied, err := Apply(old, ch.Ops)
			if err != nil {
				t.Fatal(err)
			}
			applied.Director = n.Director
			if !Equal(applied, n) {
				t.Fatalf("Apply(Diff) != new:\n%+v\n%+v", applied, n)
			}
			if ch.Empty() != (len(tc.want) == 0 && len(tc.restart) == 0) {
				t.Fatal("Empty wrong")
			}
		})
	}
}

func TestDiffFromNil(t *testing.T) {
	n := baseConfig()
	ch := Diff(nil, n)
	if len(ch.Ops) != 5 || ch.Ops[0].Kind != OpAddService || ch.Ops[1].Kind != OpAddServer {
		t.Fatalf("%v", opStrings(ch))
	}
}

func TestApplyErrors(t *testing.T) {
	c := baseConfig()
	k := c.VirtualServers[0].Key()
	missing := Key{TCP, netip.MustParseAddrPort("10.9.9.9:80")}
	for _, tc := range []struct {
		op   Op
		want error
	}{
		{Op{Kind: OpAddService, Key: k, Service: c.VirtualServers[0]}, ErrServiceExists},
		{Op{Kind: OpEditService, Key: missing}, ErrNoService},
		{Op{Kind: OpDeleteService, Key: missing}, ErrNoService},
		{Op{Kind: OpAddServer, Key: missing}, ErrNoServiceDef},
		{Op{Kind: OpAddServer, Key: k, Server: c.VirtualServers[0].RealServers[0]}, ErrDestExists},
		{Op{Kind: OpEditServer, Key: k, Server: RealServer{Address: netip.MustParseAddrPort("10.0.1.9:80")}}, ErrNoDest},
		{Op{Kind: OpDeleteServer, Key: k, Server: RealServer{Address: netip.MustParseAddrPort("10.0.1.9:80")}}, ErrNoDest},
	} {
		got, err := Apply(c, []Op{tc.op})
		if got != nil || !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, %v; want %v", tc.op, got, err, tc.want)
		}
	}
	if !Equal(c, baseConfig()) {
		t.Fatal("Apply changed its input")
	}
}

// Property: for random pairs of tables, applying Diff(a, b) to a gives b,
// and Diff(b, b) is empty.
func TestDiffRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gen := func() *Config {
		c := New()
		c.Director.PublicInterface = "eth0"
		for i := 0; i < r.IntN(5); i++ {
			vs := VirtualServer{Protocol: []Protocol{TCP, UDP}[r.IntN(2)],
				Address:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(3))}), uint16(80+r.IntN(2))),
				Scheduler: []string{"rr", "wlc", "sh"}[r.IntN(3)], Netmask: 32}
			if c.Find(vs.Key()) >= 0 {
				continue
			}
			for j := 0; j < r.IntN(5); j++ {
				rs := RealServer{Address: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(r.IntN(4))}), vs.Address.Port()),
					Method: Method(r.IntN(3)), Weight: r.IntN(3)}
				if vs.Find(rs.Address) < 0 {
					vs.RealServers = append(vs.RealServers, rs)
				}
			}
			c.VirtualServers = append(c.VirtualServers, vs)
		}
		return c
	}
	for i := 0; i < 500; i++ {
		a, b := gen(), gen()
		ch := Diff(a, b)
		got, err := Apply(a, ch.Ops)
		if err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		if !Equal(got, b) {
			t.Fatalf("iteration %d: Apply(a, Diff(a,b)) != b", i)
		}
		if d := Diff(b, b); !d.Empty() {
			t.Fatalf("Diff(b,b) = %v", opStrings(d))
		}
		// Minimal: no service present in both is deleted.
		for _, o := range ch.Ops {
			if o.Kind == OpDeleteService && b.Find(o.Key) >= 0 {
				t.Fatalf("kept service %s deleted", o.Key)
			}
		}
	}
}
