package config

import (
	"errors"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return c
}

func TestLoadExample(t *testing.T) {
	c := mustLoad(t, "testdata/example.toml")
	want := &Config{
		Director: Director{PublicInterface: "eth0", PrivateInterface: "eth1", Engine: EngineAFPacket,
			ControlSocket: "/run/ulvs/ulvsd.sock", MaxConnections: DefaultMaxConnections, LogLevel: "info", ConnTableBits: 12, RxRing: RxRingV3, XDP: XDPOff},
		Timeouts:  Timeouts{TCP: 900 * time.Second, TCPFin: 120 * time.Second, UDP: 300 * time.Second},
		Conntrack: Conntrack{ConnReuseMode: 1},
		VirtualServers: []VirtualServer{
			{Protocol: TCP, Address: netip.MustParseAddrPort("10.0.0.100:80"), Scheduler: "wlc", Netmask: 32,
				RealServers: []RealServer{
					{Address: netip.MustParseAddrPort("10.0.1.11:80"), Method: NAT, Weight: 1},
					{Address: netip.MustParseAddrPort("10.0.1.12:8080"), Method: NAT, Weight: 3},
				}},
			{Protocol: UDP, Address: netip.MustParseAddrPort("[2001:db8::100]:53"), Scheduler: "sh",
				Persistence: 360 * time.Second, Netmask: 64, SchedFlags: []string{"sh-fallback", "sh-port"}, OnePacket: true,
				RealServers: []RealServer{
					{Address: netip.MustParseAddrPort("[2001:db8:1::11]:53"), Method: DR, Weight: 1},
				}},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", c, want)
	}
}

func TestMinimalFileDefaults(t *testing.T) {
	c, err := Parse([]byte("[director]\npublic_interface = \"eth0\"\n"), "min.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := New()
	want.Director.PublicInterface = "eth0"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v want %+v", c, want)
	}
	if len(c.VirtualServers) != 0 {
		t.Fatal("a config with no virtual servers must be valid and empty")
	}
}

func TestDurationsAndDefaults(t *testing.T) {
	src := `
[director]
public_interface = "eth0"
[timeouts]
tcp = 600
tcpfin = "1m"
[[virtual_server]]
protocol = "udp"
address = "10.0.0.1:0"
persistence = 3600
netmask = "255.255.0.0"
  [[virtual_server.real_server]]
  address = "10.0.1.1"
  method = "tun"
  [[virtual_server.real_server]]
  address = "10.0.1.2:5353"
  method = "nat"
  weight = 0
  upper_threshold = 100
  lower_threshold = 50
`
	c, err := Parse([]byte(src), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeouts != (Timeouts{TCP: 600 * time.Second, TCPFin: time.Minute, UDP: DefaultUDPTimeout}) {
		t.Errorf("timeouts %+v", c.Timeouts)
	}
	vs := c.VirtualServers[0]
	if vs.Scheduler != "wlc" || vs.Persistence != time.Hour || vs.Netmask != 16 {
		t.Errorf("vs %+v", vs)
	}
	// No port on a tun server: the service port (0 here).
	if rs := vs.RealServers[0]; rs.Address != netip.MustParseAddrPort("10.0.1.1:0") || rs.Weight != 1 || rs.Method != TUN {
		t.Errorf("rs0 %+v", rs)
	}
	if rs := vs.RealServers[1]; rs.Weight != 0 || rs.UpperThreshold != 100 || rs.LowerThreshold != 50 {
		t.Errorf("rs1 %+v", rs)
	}
}

// Each bad file gives exactly these messages (file:line: key: what), and
// a nil config.
func TestBadFiles(t *testing.T) {
	head := "[director]\npublic_interface = \"eth0\"\n"
	vs := head + "[[virtual_server]]\nprotocol = \"tcp\"\naddress = \"10.0.0.1:80\"\n"               // lines 3-5
	rs := vs + "  [[virtual_server.real_server]]\n  address = \"10.0.1.1:80\"\n  method = \"nat\"\n" // lines 6-8
	cases := []struct {
		name, src string
		want      []string
		sentinel  error
	}{
		{"syntax", "[director\n", []string{"bad.toml:1: TOML: "}, ErrSyntax},
		{"table not array", head + "[[virtual_server]]\nprotocol = \"tcp\"\naddress = \"10.0.0.1:80\"\n[virtual_server.real_server]\naddress = \"10.0.1.1\"\n",
			[]string{"bad.toml:6: virtual_server.real_server: incompatible types: TOML value has type map[string]any; destination has type slice"}, ErrSyntax},
		{"unknown key", head + "foo = 1\n", []string{`bad.toml:3: director.foo: unknown key "foo"`}, ErrUnknownKey},
		{"unknown table", head + "[gui]\nport = 1\n[nosuch]\n", []string{`bad.toml:3: gui: unknown table "gui"`, `bad.toml:5: nosuch: unknown table "nosuch"`}, ErrUnknownKey},
		{"unknown rs key", rs + "  health_chek = \"tcp\"\n", []string{`bad.toml:9: virtual_server[0].real_server[0].health_chek: unknown key "health_chek"`}, ErrUnknownKey},
		{"rs health_check not a table", rs + "  health_check = \"tcp\"\n", []string{`bad.toml:9: virtual_server[0].real_server[0].health_check: want a table, not a string`}, ErrInvalid},
		{"weight", rs + "  weight = -3\n", []string{"bad.toml:9: virtual_server[0].real_server[0].weight: -3 out of range 0..65535"}, ErrInvalid},
		{"second rs weight", rs + "  [[virtual_server.real_server]]\n  address = \"10.0.1.2:80\"\n  method = \"nat\"\n  weight = 70000\n",
			[]string{"bad.toml:12: virtual_server[0].real_server[1].weight: 70000 out of range 0..65535"}, ErrInvalid},
		{"weight type", rs + "  weight = \"3\"\n", []string{"bad.toml:9: virtual_server[0].real_server[0].weight: want an integer, not a string"}, ErrInvalid},
		{"no public interface", "[director]\nengine = \"tun\"\n", []string{"bad.toml:1: director.public_interface: missing (the interface where clients' traffic arrives)"}, ErrInvalid},
		{"engine", head + "engine = \"xdp\"\n", []string{`bad.toml:3: director.engine: "xdp" (want afpacket or tun)`}, ErrInvalid},
		{"rx_ring", head + "rx_ring = \"v1\"\n", []string{`bad.toml:3: director.rx_ring: "v1" (want v3 or v2)`}, ErrInvalid},
		{"xdp", head + "xdp = \"zerocopy\"\n", []string{`bad.toml:3: director.xdp: "zerocopy" (want off, native or generic)`}, ErrInvalid},
		{"workers", head + "workers = -1\n", []string{"bad.toml:3: director.workers: -1 out of range 0..1024"}, ErrInvalid},
		{"socket", head + "control_socket = \"ulvs.sock\"\n", []string{`bad.toml:3: director.control_socket: "ulvs.sock" must be an absolute path`}, ErrInvalid},
		{"log level", head + "log_level = \"loud\"\n", []string{`bad.toml:3: director.log_level: "loud" (want one of trace, debug, info, warn, error)`}, ErrInvalid},
		{"ifname", head + "private_interface = \"a-very-long-interface\"\n", []string{`bad.toml:3: director.private_interface: "a-very-long-interface" is not a valid interface name (at most 15 characters, no '/', ':' or spaces)`}, ErrInvalid},
		{"timeout range", head + "[timeouts]\ntcp = \"0s\"\nudp = \"32d\"\n", []string{"bad.toml:4: timeouts.tcp: 0s out of range 1s..2678400s (31 days)", `bad.toml:5: timeouts.udp: "32d" is not a duration (write "900s", "15m" or an integer number of seconds)`}, ErrInvalid},
		{"timeout fraction", head + "[timeouts]\ntcpfin = \"1.5s\"\n", []string{"bad.toml:4: timeouts.tcpfin: 1.5s is not a whole number of seconds"}, ErrInvalid},
		{"reuse mode", head + "[conntrack]\nconn_reuse_mode = 7\n", []string{"bad.toml:4: conntrack.conn_reuse_mode: 7 out of range 0..3"}, ErrInvalid},
		{"sctp", head + "[[virtual_server]]\nprotocol = \"sctp\"\naddress = \"10.0.0.1:80\"\n", []string{"bad.toml:4: virtual_server[0].protocol: SCTP services are not supported by ulvs in userspace"}, ErrUnsupported},
		{"protocol", head + "[[virtual_server]]\nprotocol = \"icmp\"\naddress = \"10.0.0.1:80\"\n", []string{`bad.toml:4: virtual_server[0].protocol: protocol "icmp" (want tcp or udp)`}, ErrInvalid},
		{"missing protocol", head + "[[virtual_server]]\naddress = \"10.0.0.1:80\"\n", []string{"bad.toml:3: virtual_server[0].protocol: missing (tcp or udp)"}, ErrInvalid},
		{"vip no port", head + "[[virtual_server]]\nprotocol = \"tcp\"\naddress = \"10.0.0.1\"\n", []string{`bad.toml:5: virtual_server[0].address: "10.0.0.1" has no port (write address:port, [IPv6]:port; port 0 = all ports with persistence)`}, ErrInvalid},
		{"vip v6 no brackets", head + "[[virtual_server]]\nprotocol = \"tcp\"\naddress = \"2001:db8::1:80\"\n", []string{`bad.toml:5: virtual_server[0].address: "2001:db8::1:80" has no port (write address:port, [IPv6]:port; port 0 = all ports with persistence)`}, ErrInvalid},
		{"vip multicast", head + "[[virtual_server]]\nprotocol = \"tcp\"\naddress = \"224.0.0.1:80\"\n", []string{"bad.toml:5: virtual_server[0].address: 224.0.0.1 is not a unicast address"}, ErrInvalid},
		{"scheduler", vs + "scheduler = \"fastest\"\n", []string{`bad.toml:6: virtual_server[0].scheduler: unknown scheduler "fastest" (want one of rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)`}, ErrInvalid},
		{"sched flag", vs + "scheduler = \"rr\"\nsched_flags = [\"sh-port\"]\n", []string{`bad.toml:7: virtual_server[0].sched_flags: scheduler flag "sh-port" needs scheduler sh, not rr`}, ErrInvalid},
		{"sched flag unknown", vs + "sched_flags = [\"fast\"]\n", []string{`bad.toml:6: virtual_server[0].sched_flags: unknown scheduler flag "fast" (want sh-fallback, sh-port, mh-fallback, mh-port or flag-1..3)`}, ErrInvalid},
		{"persistence range", vs + "persistence = \"32d\"\n", []string{`bad.toml:6: virtual_server[0].persistence: "32d" is not a duration (write "900s", "15m" or an integer number of seconds)`}, ErrInvalid},
		{"persistence max", vs + "persistence = 2678401\n", []string{"bad.toml:6: virtual_server[0].persistence: 2678401s out of range: 0 (off) or 1s..2678400s (31 days)"}, ErrInvalid},
		{"netmask v4", vs + "persistence = 60\nnetmask = \"255.0.255.0\"\n", []string{"bad.toml:7: virtual_server[0].netmask: netmask 255.0.255.0 is not contiguous (ulvs supports prefix masks only)"}, ErrInvalid},
		{"netmask no persistence", vs + "netmask = \"255.255.255.0\"\n", []string{"bad.toml:6: virtual_server[0].netmask: 255.255.255.0 has no effect without persistence"}, ErrInvalid},
		{"netmask v6", head + "[[virtual_server]]\nprotocol = \"tcp\"\naddress = \"[2001:db8::1]:80\"\npersistence = 60\nnetmask = 0\n", []string{`bad.toml:7: virtual_server[0].netmask: netmask "0" (want an IPv6 prefix length 1..128)`}, ErrInvalid},
		{"port 0", head + "[[virtual_server]]\nprotocol = \"tcp\"\naddress = \"10.0.0.1:0\"\n", []string{"bad.toml:5: virtual_server[0].address: port 0 (all ports) needs persistence (ipvsadm: Zero port specified for non-persistent service)"}, ErrInvalid},
		{"ops tcp", vs + "one_packet = true\n", []string{"bad.toml:6: virtual_server[0].one_packet: one-packet scheduling is only for UDP virtual services"}, ErrInvalid},
		{"dup vs", vs + "[[virtual_server]]\nprotocol = \"tcp\"\naddress = \"10.0.0.1:80\"\n", []string{"bad.toml:8: virtual_server[1].address: tcp 10.0.0.1:80 is already virtual_server[0]"}, ErrDuplicate},
		{"dup rs", rs + "  [[virtual_server.real_server]]\n  address = \"10.0.1.1:80\"\n  method = \"nat\"\n", []string{"bad.toml:10: virtual_server[0].real_server[1].address: 10.0.1.1:80 is already virtual_server[0].real_server[0]"}, ErrDuplicate},
		{"method", vs + "  [[virtual_server.real_server]]\n  address = \"10.0.1.1\"\n  method = \"fullnat\"\n", []string{`bad.toml:8: virtual_server[0].real_server[0].method: method "fullnat" (want nat, dr or tun)`}, ErrInvalid},
		{"dr port", vs + "  [[virtual_server.real_server]]\n  address = \"10.0.1.1:8080\"\n  method = \"dr\"\n", []string{"bad.toml:7: virtual_server[0].real_server[0].address: port 8080 differs from the service port 80: method dr cannot change ports (write the address without a port)"}, ErrInvalid},
		{"family", vs + "  [[virtual_server.real_server]]\n  address = \"[2001:db8::2]:80\"\n  method = \"nat\"\n", []string{"bad.toml:7: virtual_server[0].real_server[0].address: 2001:db8::2 is not of the virtual server's address family (allowed only for method tun)"}, ErrInvalid},
		{"thresholds", rs + "  upper_threshold = 10\n  lower_threshold = 20\n", []string{"bad.toml:10: virtual_server[0].real_server[0].lower_threshold: 20 is above upper_threshold 10 (IPVS requires lower <= upper)"}, ErrInvalid},
		{"lower without upper", rs + "  lower_threshold = 5\n", []string{"bad.toml:9: virtual_server[0].real_server[0].lower_threshold: 5 is above upper_threshold 0 (IPVS requires lower <= upper)"}, ErrInvalid},
		{"threshold range", rs + "  upper_threshold = 2147483648\n", []string{"bad.toml:9: virtual_server[0].real_server[0].upper_threshold: 2147483648 out of range"}, ErrInvalid},
		{"rs address", rs + "  [[virtual_server.real_server]]\n  address = \"server-1\"\n", []string{`bad.toml:10: virtual_server[0].real_server[1].address: "server-1" is not an address`}, ErrInvalid},
		{"second vs index", vs + "[[virtual_server]]\nprotocol = \"udp\"\naddress = \"10.0.0.1:53\"\n  [[virtual_server.real_server]]\n  address = \"10.0.1.1\"\n  [[virtual_server.real_server]]\n  address = \"10.0.1.2\"\n  wieght = 2\n",
			[]string{`bad.toml:13: virtual_server[1].real_server[1].wieght: unknown key "wieght"`}, ErrUnknownKey},
		{"several", head + "workers = -2\n[[virtual_server]]\nprotocol = \"tcp\"\naddress = \"10.0.0.1:80\"\nscheduler = \"x\"\n",
			[]string{"bad.toml:3: director.workers: -2 out of range 0..1024", `bad.toml:7: virtual_server[0].scheduler: unknown scheduler "x" (want one of rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)`}, ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.src), "bad.toml")
			if c != nil {
				t.Errorf("config not nil: %+v", c)
			}
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tc.want) {
				t.Fatalf("got %d errors:\n%s\nwant:\n%s", len(got), err, strings.Join(tc.want, "\n"))
			}
			for i := range got {
				if tc.name == "syntax" {
					if !strings.HasPrefix(got[i], tc.want[i]) {
						t.Errorf("got %q, want prefix %q", got[i], tc.want[i])
					}
				} else if got[i] != tc.want[i] {
					t.Errorf("error %d:\n got %q\nwant %q", i, got[i], tc.want[i])
				}
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("errors.Is(%v) false", tc.sentinel)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != "bad.toml" {
				t.Errorf("not a *FieldError with the file name: %#v", err)
			}
		})
	}
}

func TestInlineTablesPositions(t *testing.T) {
	src := `[director]
public_interface = "eth0"
[[virtual_server]]
protocol = "tcp"
address = "10.0.0.1:80"
real_server = [
  { address = "10.0.1.1", method = "nat" },
  { address = "10.0.1.2", method = "nat", weight = -1 },
]
`
	_, err := Parse([]byte(src), "i.toml")
	want := "i.toml:8: virtual_server[0].real_server[1].weight: -1 out of range 0..65535"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, f := range []string{"testdata/example.toml", "testdata/full.toml"} {
		c := mustLoad(t, f)
		out := Marshal(c)
		c2, err := Parse(out, "marshal.toml")
		if err != nil {
			t.Fatalf("%s: Parse(Marshal): %v\n%s", f, err, out)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("%s: round trip differs:\n%+v\n%+v", f, c, c2)
		}
		if out2 := Marshal(c2); string(out2) != string(out) {
			t.Fatalf("%s: Marshal not stable", f)
		}
	}
}

func TestMarshalGolden(t *testing.T) {
	c := mustLoad(t, "testdata/example.toml")
	want, err := os.ReadFile("testdata/example.marshal.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got := Marshal(c); string(got) != string(want) {
		t.Fatalf("Marshal:\n%s\nwant:\n%s", got, want)
	}
}

func TestMarshalQuotes(t *testing.T) {
	c := New()
	c.Director.PublicInterface = "eth0"
	c.Director.ControlSocket = "/run/ulvs \"x\"\\y\t.sock"
	c2, err := Parse(Marshal(c), "q.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c2.Director.ControlSocket != c.Director.ControlSocket {
		t.Fatalf("got %q", c2.Director.ControlSocket)
	}
}

func TestValidateProgrammatic(t *testing.T) {
	c := New()
	c.VirtualServers = []VirtualServer{{Protocol: TCP, Address: netip.MustParseAddrPort("10.0.0.1:80"), Scheduler: "rr", Netmask: 32,
		RealServers: []RealServer{{Address: netip.MustParseAddrPort("10.0.1.1:80"), Weight: 70000}}}}
	err := c.Validate()
	if err == nil || err.Error() != "virtual_server[0].real_server[0].weight: 70000 out of range 0..65535" {
		t.Fatalf("got %v", err)
	}
	c.VirtualServers[0].RealServers[0].Weight = 1
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseNetmask(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		a    netip.Addr
		s    string
		want int
		ok   bool
	}{
		{v4, "255.255.255.255", 32, true}, {v4, "255.255.255.0", 24, true}, {v4, "0.0.0.0", 0, true},
		{v4, "255.255.128.0", 17, true}, {v4, "/24", 24, true}, {v4, "24", 24, true}, {v4, "33", 0, false},
		{v4, "255.0.255.0", 0, false}, {v6, "64", 64, true}, {v6, "128", 128, true}, {v6, "0", 0, false},
		{v6, "129", 0, false}, {v6, "ffff::", 0, false},
	} {
		n, err := ParseNetmask(tc.a, tc.s)
		if (err == nil) != tc.ok || (tc.ok && n != tc.want) {
			t.Errorf("ParseNetmask(%s, %q) = %d, %v", tc.a, tc.s, n, err)
		}
		if tc.ok && tc.a.Is4() {
			if back, _ := ParseNetmask(tc.a, MaskString(n)); back != n {
				t.Errorf("MaskString(%d) = %s does not parse back", n, MaskString(n))
			}
		}
	}
}

func TestSchedFlags(t *testing.T) {
	for _, tc := range []struct {
		sched string
		in    []string
		bits  uint32
		names []string
	}{
		{"sh", []string{"sh-port", "sh-fallback"}, 0x18, []string{"sh-fallback", "sh-port"}},
		{"sh", []string{"flag-2"}, 0x10, []string{"sh-port"}},
		{"mh", []string{"mh-port"}, 0x10, []string{"mh-port"}},
		{"wlc", []string{"flag-3", "flag-1"}, 0x28, []string{"flag-1", "flag-3"}},
		{"rr", nil, 0, nil},
	} {
		b, _, err := ParseSchedFlags(tc.sched, tc.in)
		if err != nil || b != tc.bits || !reflect.DeepEqual(SchedFlagNames(tc.sched, b), tc.names) {
			t.Errorf("%s %v: bits %#x names %v err %v", tc.sched, tc.in, b, SchedFlagNames(tc.sched, b), err)
		}
	}
	if _, name, err := ParseSchedFlags("mh", []string{"sh-port"}); err == nil || name != "sh-port" {
		t.Errorf("sh-port with mh accepted")
	}
}

// Engine settings of [director] parse, and a change needs a restart.
func TestDirectorEngineSettings(t *testing.T) {
	for _, c := range []struct {
		line, key string
		got       func(*Director) string
		want      string
	}{
		{"rx_ring = \"v2\"", "director.rx_ring", func(d *Director) string { return string(d.RxRing) }, "v2"},
		{"xdp = \"native\"", "director.xdp", func(d *Director) string { return string(d.XDP) }, "native"},
	} {
		c2, err := Parse([]byte("[director]\npublic_interface = \"eth0\"\n"+c.line+"\n"), "d.toml")
		if err != nil {
			t.Fatal(err)
		}
		if g := c.got(&c2.Director); g != c.want {
			t.Errorf("%s: got %q, want %q", c.line, g, c.want)
		}
		old := New()
		old.Director.PublicInterface = "eth0"
		if ch := Diff(old, c2); !slices.Contains(ch.Restart, c.key) {
			t.Errorf("a changed %s must need a restart: %+v", c.key, ch.Restart)
		}
	}
	_, err := Parse([]byte("[director]\npublic_interface = \"tun0\"\nengine = \"tun\"\nxdp = \"generic\"\n"), "tunxdp.toml")
	if err == nil || !strings.Contains(err.Error(), "tunxdp.toml:4: director.xdp") || !strings.Contains(err.Error(), "TUN engine") {
		t.Fatalf("xdp with the TUN engine: %v, want an error at tunxdp.toml:4", err)
	}
}
