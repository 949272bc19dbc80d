package ipvsadm

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ulvs/ulvs/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name string, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, visible(got), visible(string(want)))
	}
}

// visible marks trailing spaces with '·' so diffs show them.
func visible(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		t := strings.TrimRight(l, " ")
		lines[i] = t + strings.Repeat("·", len(l)-len(t))
	}
	return strings.Join(lines, "\n")
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// specExample is IPVS-SPEC §7's example table without its fwmark service
// (ulvs refuses those; see TestSpecExampleFwmarkRefused). Services are
// given out of order, to exercise sorting.
func specExample() *Snapshot {
	return &Snapshot{ConnTableSize: 4096, Services: []Service{
		{Protocol: config.UDP, Address: ap("10.0.0.1:53"), Scheduler: "rr", Netmask: 32,
			Servers: []Server{{Address: ap("192.168.1.2:53"), Method: config.DR, Weight: 1, InactConns: 4}}},
		{Protocol: config.TCP, Address: ap("10.0.0.1:80"), Scheduler: "wlc", Persistence: 360, Netmask: 24,
			Servers: []Server{
				{Address: ap("192.168.1.3:80"), Method: config.NAT, Weight: 3, ActiveConns: 2, InactConns: 7},
				{Address: ap("192.168.1.2:80"), Method: config.NAT, Weight: 1},
			}},
	}}
}

// The spec's example, written out here by hand (not generated).
func TestSpecExample(t *testing.T) {
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  10.0.0.1:80 wlc persistent 360 mask 255.255.255.0\n" +
		"  -> 192.168.1.2:80               Masq    1      0          0         \n" +
		"  -> 192.168.1.3:80               Masq    3      2          7         \n" +
		"UDP  10.0.0.1:53 rr\n" +
		"  -> 192.168.1.2:53               Route   1      0          4         \n"
	var b bytes.Buffer
	if err := (&Printer{}).List(&b, specExample(), FmtNumeric); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", visible(b.String()), visible(want))
	}
	wantSave := "-A -t 10.0.0.1:80 -s wlc -p 360 -M 255.255.255.0\n" +
		"-a -t 10.0.0.1:80 -r 192.168.1.2:80 -m -w 1\n" +
		"-a -t 10.0.0.1:80 -r 192.168.1.3:80 -m -w 3\n" +
		"-A -u 10.0.0.1:53 -s rr\n" +
		"-a -u 10.0.0.1:53 -r 192.168.1.2:53 -g -w 1\n"
	b.Reset()
	if err := (&Printer{}).Save(&b, specExample(), FmtNumeric); err != nil {
		t.Fatal(err)
	}
	if b.String() != wantSave {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), wantSave)
	}
}

func TestSpecExampleFwmarkRefused(t *testing.T) {
	for _, line := range []string{"-A -f 1 -s sh -b sh-fallback,sh-port", "-a -f 1 -r 192.168.1.9:0 -i -w 1 --tun-type ipip"} {
		_, err := Parse(append([]string{"ipvsadm"}, strings.Fields(line)...))
		if err == nil || err.Error() != "ulvsadm: firewall-mark services (-f) are not supported by ulvs in userspace" || ExitCode(err) != 2 {
			t.Errorf("%s: %v", line, err)
		}
	}
}

// rich is a table with every feature the formats show: IPv4 and IPv6,
// both protocols, flags, persistence with masks, ops, all methods, large
// counters, long names, and an order that needs sorting.
func rich() *Snapshot {
	return &Snapshot{ConnTableSize: 65536, Services: []Service{
		{Protocol: config.TCP, Address: ap("[2001:db8::100]:443"), Scheduler: "mh", SchedFlags: []string{"mh-fallback", "mh-port"},
			Persistence: 1800, Netmask: 64, Stats: Stats{Conns: 123456789, InPkts: 987654321, OutPkts: 12345678901, InBytes: 123456789012345, OutBytes: 1234567890123456},
			Rate: Rate{CPS: 12, InPPS: 3400, OutPPS: 3300, InBPS: 250000000, OutBPS: 2500000000},
			Servers: []Server{
				{Address: ap("[2001:db8:1::12]:443"), Method: config.DR, Weight: 100, UpperThreshold: 500, LowerThreshold: 400, ActiveConns: 1234, InactConns: 99, PersistConns: 5},
				{Address: ap("[2001:db8:1::11]:8443"), Method: config.NAT, Weight: 0, ActiveConns: 1, PersistConns: 1,
					Stats: Stats{Conns: 100000000, InPkts: 99999999}, Rate: Rate{CPS: 123456789, InBPS: 99999999}},
			}},
		{Protocol: config.UDP, Address: ap("10.0.0.1:53"), Scheduler: "sh", SchedFlags: []string{"sh-port"}, OnePacket: true, Netmask: 32,
			Stats:   Stats{Conns: 5, InPkts: 5, OutPkts: 5, InBytes: 400, OutBytes: 800},
			Servers: []Server{{Address: ap("10.0.1.1:53"), Method: config.DR, Weight: 1}}},
		{Protocol: config.TCP, Address: ap("200.0.0.1:80"), Scheduler: "wrr", Netmask: 32,
			Servers: []Server{
				{Address: ap("10.0.1.2:80"), Method: config.TUN, Weight: 2},
				{Address: ap("200.0.1.2:80"), Method: config.TUN, Weight: 2},
				{Address: ap("10.0.1.1:80"), Method: config.TUN, Weight: 65535, UpperThreshold: 2147483647},
			}},
		{Protocol: config.TCP, Address: ap("10.0.0.1:80"), Scheduler: "wlc", Persistence: 360, Netmask: 16,
			Servers: []Server{{Address: ap("10.0.1.1:8080"), Method: config.NAT, Weight: 1, ActiveConns: 3, InactConns: 17}}},
		{Protocol: config.TCP, Address: ap("10.0.0.1:0"), Scheduler: "lblcr", Persistence: 2678400, Netmask: 32,
			Servers: []Server{{Address: ap("[2001:db8:1::99]:0"), Method: config.TUN, Weight: 1}}},
	}}
}

func TestGoldenFormats(t *testing.T) {
	p := &Printer{}
	for _, tc := range []struct {
		name string
		f    Format
	}{
		{"list", FmtNumeric},
		{"stats", FmtNumeric | FmtStats},
		{"stats-exact", FmtNumeric | FmtStats | FmtExact},
		{"rate", FmtNumeric | FmtRate},
		{"rate-exact", FmtNumeric | FmtRate | FmtExact},
		{"thresholds", FmtNumeric | FmtThresholds},
		{"persistent-conn", FmtNumeric | FmtPersistentConn},
		{"tun-info", FmtNumeric | FmtTunInfo},
		{"nosort", FmtNumeric | FmtNoSort},
		{"save", FmtNumeric | FmtRule},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := p.List(&b, rich(), tc.f); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.String())
		})
	}
	t.Run("service", func(t *testing.T) {
		var b bytes.Buffer
		svc := rich().Services[2]
		if err := p.Service(&b, &svc, FmtNumeric); err != nil {
			t.Fatal(err)
		}
		golden(t, "service", b.String())
	})
}

// Hand-checked lines of the formats, independent of the golden files.
func TestFormatLines(t *testing.T) {
	var b bytes.Buffer
	p := &Printer{}
	p.List(&b, rich(), FmtNumeric|FmtStats)
	out := b.String()
	for _, want := range []string{
		"Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n",
		// 123456789 >= 10^8 -> K; 987654321 -> K; 12345678901 -> M; 123456789012345 -> T (>= 10^14).
		"TCP  [2001:db8::100]:443           123456K  987654K   12345M     123T    1234T\n",
		// %-28s pads the 21-character name with 7 spaces; %8lluK adds 2 more.
		"  -> [2001:db8:1::11]:8443" + strings.Repeat(" ", 7) + "  100000K 99999999        0        0        0\n",
		"UDP  10.0.0.1:53                         5        5        5      400      800\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stats output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	p.List(&b, rich(), FmtNumeric|FmtRate)
	// Real-server CPS/InPPS/OutPPS are plain %8llu, never scaled.
	if want := "  -> [2001:db8:1::11]:8443" + strings.Repeat(" ", 7) + " 123456789        0        0 99999999        0\n"; !strings.Contains(b.String(), want) {
		t.Errorf("rate output lacks %q:\n%s", want, b.String())
	}
	b.Reset()
	p.List(&b, rich(), FmtNumeric|FmtStats|FmtExact)
	// %-33s pads the 24-character name with 9 spaces; --exact widens each
	// column to its digits plus one.
	if want := "TCP  [2001:db8::100]:443" + strings.Repeat(" ", 9) + " 123456789 987654321 12345678901 123456789012345 1234567890123456\n"; !strings.Contains(b.String(), want) {
		t.Errorf("exact output lacks %q:\n%s", want, b.String())
	}
}

func TestSortOrder(t *testing.T) {
	got := SortedServices(rich().Services)
	var keys []string
	for _, s := range got {
		keys = append(keys, s.Protocol.String()+" "+s.Address.String())
	}
	// IPv4 before IPv6; TCP before UDP; 10.0.0.1 after 200.0.0.1 (the
	// difference wraps negative as a signed 32-bit int); port order.
	want := []string{"tcp 200.0.0.1:80", "tcp 10.0.0.1:0", "tcp 10.0.0.1:80", "udp 10.0.0.1:53", "tcp [2001:db8::100]:443"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("got %v want %v", keys, want)
	}
	ds := SortedServers(rich().Services[2].Servers)
	var addrs []string
	for _, d := range ds {
		addrs = append(addrs, d.Address.String())
	}
	if want := []string{"200.0.1.2:80", "10.0.1.1:80", "10.0.1.2:80"}; !reflect.DeepEqual(addrs, want) {
		t.Fatalf("servers %v want %v", addrs, want)
	}
	// Transitive cases agree with a plain sort; unsorted input unchanged.
	in := rich().Services
	SortedServices(in)
	if !reflect.DeepEqual(in, rich().Services) {
		t.Fatal("SortedServices changed its input")
	}
}

// With three addresses whose wrapped comparison is not transitive
// (0.0.0.0-ish, 100.x, 200.x), the order is glibc merge sort's.
func TestSortNonTransitive(t *testing.T) {
	mk := func(a ...string) []Server {
		var s []Server
		for _, x := range a {
			s = append(s, Server{Address: ap(x + ":80")})
		}
		return s
	}
	// cmp(1.0.0.1, 100.0.0.1) < 0, cmp(100.0.0.1, 200.0.0.1) < 0, but
	// cmp(1.0.0.1, 200.0.0.1) > 0 (the difference exceeds 2^31).
	got := SortedServers(mk("200.0.0.1", "100.0.0.1", "1.0.0.1"))
	// glibc msort: split [200] | [100, 1]; sort right: [1?]: cmp(100,1) > 0
	// -> [1, 100]; merge [200] with [1, 100]: cmp(200,1) < 0 -> 200 first,
	// then 1, 100.
	want := []string{"200.0.0.1:80", "1.0.0.1:80", "100.0.0.1:80"}
	var addrs []string
	for _, d := range got {
		addrs = append(addrs, d.Address.String())
	}
	if !reflect.DeepEqual(addrs, want) {
		t.Fatalf("got %v want %v", addrs, want)
	}
}

func TestOtherListings(t *testing.T) {
	p := &Printer{}
	var b bytes.Buffer
	p.Timeout(&b, TimeoutsSeconds{900, 120, 300})
	if b.String() != "Timeout (tcp tcpfin udp): 900 120 300\n" {
		t.Errorf("timeout: %q", b.String())
	}
	b.Reset()
	p.Daemon(&b, []DaemonState{
		{State: "master", McastInterface: "eth0", SyncID: 0, SyncMaxlen: 1472, McastGroup: netip.MustParseAddr("224.0.0.81"), McastPort: 8848, McastTTL: 1},
		{State: "backup", McastInterface: "eth1", SyncID: 7},
		{State: "none"},
	})
	want := "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
		"backup sync daemon (mcast=eth1, syncid=7)\n"
	if b.String() != want {
		t.Errorf("daemon:\n%s", b.String())
	}
	conns := []Conn{
		{Protocol: config.TCP, Client: ap("192.168.0.10:51234"), Virtual: ap("10.0.0.1:80"), Dest: ap("10.0.1.1:8080"), State: "ESTABLISHED", Expires: 899},
		{Protocol: config.UDP, Client: ap("192.168.0.11:5353"), Virtual: ap("10.0.0.1:53"), Dest: ap("10.0.1.1:53"), State: "UDP", Expires: 5},
		{Protocol: config.TCP, Client: ap("[2001:db8:9::1]:40000"), Virtual: ap("[2001:db8::100]:443"), Dest: ap("[2001:db8:1::12]:443"), State: "SYN_RECV", Expires: 59},
		{Protocol: config.TCP, Client: ap("192.168.0.10:0"), Virtual: ap("10.0.0.1:80"), Dest: ap("10.0.1.1:8080"), State: "NONE", Expires: 6000},
	}
	b.Reset()
	p.Conns(&b, conns, FmtNumeric)
	golden(t, "conns", b.String())
	b.Reset()
	p.Conns(&b, conns, FmtNumeric|FmtPersistentConn)
	golden(t, "conns-pc", b.String())
	if !strings.Contains(b.String(), "TCP 14:59  ESTABLISHED 192.168.0.10:51234 10.0.0.1:80        10.0.1.1:8080\n") {
		t.Errorf("conn row format:\n%s", b.String())
	}
}

type fakeResolver struct{}

func (fakeResolver) LookupHost(name string) (netip.Addr, error) {
	if name == "web.example" {
		return netip.MustParseAddr("10.0.1.5"), nil
	}
	return netip.Addr{}, ErrNotFound
}
func (fakeResolver) LookupPort(p config.Protocol, name string) (uint16, error) {
	if name == "http" && p == config.TCP {
		return 80, nil
	}
	if name == "domain" {
		return 53, nil
	}
	return 0, ErrNotFound
}
func (fakeResolver) HostName(a netip.Addr) string {
	switch a.String() {
	case "10.0.0.1":
		return "vip.example.com"
	case "10.0.1.1":
		return "a-very-long-real-server-name.datacenter.example.com"
	case "2001:db8::100":
		return "vip6.example.com"
	}
	return ""
}
func (fakeResolver) PortName(p config.Protocol, port uint16) string {
	switch {
	case port == 80 && p == config.TCP:
		return "http"
	case port == 53:
		return "domain"
	case port == 443:
		return "https"
	}
	return ""
}

// Without -n, names come from the resolver and IPv4 names are cut at
// ipvsadm's widths (33 for the service, 28 for servers).
func TestNames(t *testing.T) {
	var b bytes.Buffer
	p := &Printer{Resolver: fakeResolver{}}
	p.List(&b, rich(), 0)
	golden(t, "list-names", b.String())
	if !strings.Contains(b.String(), "  -> a-very-long-real-server-name Tunnel  65535  0          0         \n") {
		t.Errorf("server name not cut at 28:\n%s", b.String())
	}
	b.Reset()
	p.Save(&b, rich(), 0)
	golden(t, "save-names", b.String())
	// The default printer prints numbers even without -n.
	var n1, n2 bytes.Buffer
	(&Printer{}).List(&n1, rich(), 0)
	(&Printer{}).List(&n2, rich(), FmtNumeric)
	if n1.String() != n2.String() {
		t.Error("NoResolver output differs from -n")
	}
}

func TestJSON(t *testing.T) {
	s := specExample()
	b, err := s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "json", string(b))
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, s) {
		t.Fatalf("JSON round trip:\n%+v\n%+v", back, *s)
	}
}

func TestSnapshotToConfig(t *testing.T) {
	for _, path := range []string{"../testdata/example.toml", "../testdata/full.toml"} {
		c, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		back := FromConfig(c).ToConfig(c)
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("%s:\n%+v\n%+v", path, back, c)
		}
		// And the TOML written from a live snapshot parses to the same table.
		again, err := config.Parse(config.Marshal(back), "live.toml")
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("%s: %v", path, err)
		}
	}
}
