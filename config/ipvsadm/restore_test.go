package ipvsadm

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/config"
)

func TestReadRules(t *testing.T) {
	in := "ipvsadm -A -t 10.0.0.1:80 -s rr\n" +
		"\n" +
		"   \t \r\n" +
		"# saved by ipvsadm-save\n" +
		"  #indented comment -A -t 1.1.1.1:80\n" +
		"-a\t-t 10.0.0.1:80  -r 10.0.1.1:80 -m -w 2\r\n" +
		"-a -t 10.0.0.1:80 ipvsadm -r 10.0.1.2:80 -m\n" +
		"-C" // no final newline
	rules, err := ReadRules(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Line: 1, Args: []string{"-A", "-t", "10.0.0.1:80", "-s", "rr"}},
		{Line: 6, Args: []string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.1.1:80", "-m", "-w", "2"}},
		{Line: 7, Args: []string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.1.2:80", "-m"}},
		{Line: 8, Args: []string{"-C"}},
	}
	if !reflect.DeepEqual(rules, want) {
		t.Fatalf("got %+v\nwant %+v", rules, want)
	}
}

func TestRestoreErrors(t *testing.T) {
	p := &Parser{}
	base := config.New()
	base.Director.PublicInterface = "eth0"
	cases := []struct {
		in, msg string
		code    int
	}{
		{"-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1 -w 70000\n", "line 2: illegal weight specified", 2},
		{"-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n", "line 2: Service already exists", 255},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1\n", "line 1: Service not defined", 255},
		{"-A -t 10.0.0.1:80\n\n-e -t 10.0.0.1:80 -r 10.0.1.1\n", "line 3: No such destination", 255},
		{"-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1\n-a -t 10.0.0.1:80 -r 10.0.1.1\n", "line 3: Destination already exists", 255},
		{"-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1 -x 5 -y 10\n", "line 2: Numerical result out of range", 255},
		{"-D -t 10.0.0.1:80\n", "line 1: No such service", 255},
		{"-E -u 10.0.0.1:53\n", "line 1: No such service", 255},
		{"-Z -t 10.0.0.1:80\n", "line 1: No such service", 255},
		{"-R\n", "line 1: Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255},
		{"-A -t 10.0.0.1:80 # web\n", "line 1: unexpected argument #", 2},
		{"-A -f 1 -s rr\n", "line 1: ulvsadm: firewall-mark services (-f) are not supported by ulvs in userspace", 2},
		{"--start-daemon master\n", "line 1: ulvsadm: the 'start-daemon' command is not allowed in -R input", 2},
	}
	for _, tc := range cases {
		t.Run(tc.msg, func(t *testing.T) {
			c, err := p.Restore(base, strings.NewReader(tc.in))
			if c != nil {
				t.Errorf("table returned: %+v", c)
			}
			if err == nil || err.Error() != tc.msg || ExitCode(err) != tc.code {
				t.Fatalf("got %v (exit %d), want %q (exit %d)", err, ExitCode(err), tc.msg, tc.code)
			}
			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatal("not a *RuleError")
			}
		})
	}
	if base.VirtualServers != nil {
		t.Fatal("base modified")
	}
}

func TestRestoreSemantics(t *testing.T) {
	in := `-A -t 10.0.0.1:80 -s rr -p 60 -M 255.255.255.0
-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 3 -x 100 -y 10
-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m
-E -t 10.0.0.1:80 -s sh -b sh-port
-e -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 0
-A -u 10.0.0.1:53
-D -u 10.0.0.1:53
-L -n
--set 600 0 30
-Z
`
	c, err := (&Parser{}).Restore(nil, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := config.New()
	want.Timeouts = config.Timeouts{TCP: 600 * time.Second, TCPFin: config.DefaultTCPFinTimeout, UDP: 30 * time.Second}
	want.VirtualServers = []config.VirtualServer{{Protocol: config.TCP, Address: ap("10.0.0.1:80"), Scheduler: "sh",
		SchedFlags: []string{"sh-port"}, Netmask: 32, // -E without -p: persistence cleared (full replacement)
		RealServers: []config.RealServer{
			{Address: ap("10.0.1.1:80"), Method: config.NAT, Weight: 3, UpperThreshold: 100, LowerThreshold: 10},
			{Address: ap("10.0.1.2:80"), Method: config.NAT, Weight: 0},
		}}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", c, want)
	}
	// -C empties the table.
	c2, err := (&Parser{}).Restore(c, strings.NewReader("-C\n"))
	if err != nil || len(c2.VirtualServers) != 0 || len(c.VirtualServers) != 1 {
		t.Fatalf("%v %+v", err, c2)
	}
}

// TOML -> model -> `-S -n` -> `-R` -> model -> TOML gives the same file.
// Thresholds are dropped because ipvsadm -S does not save them.
func TestRoundTripTOMLSaveRestore(t *testing.T) {
	for _, path := range []string{"../testdata/example.toml", "../testdata/full.toml"} {
		t.Run(path, func(t *testing.T) {
			c, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.VirtualServers {
				for j := range c.VirtualServers[i].RealServers {
					c.VirtualServers[i].RealServers[j].UpperThreshold = 0
					c.VirtualServers[i].RealServers[j].LowerThreshold = 0
				}
			}
			var rules bytes.Buffer
			if err := (&Printer{}).Save(&rules, FromConfig(c), FmtNumeric); err != nil {
				t.Fatal(err)
			}
			base := c.Clone()
			base.VirtualServers = nil
			back, err := (&Parser{}).Restore(base, bytes.NewReader(rules.Bytes()))
			if err != nil {
				t.Fatalf("%v\n%s", err, rules.String())
			}
			if !config.Equal(back, c) {
				t.Fatalf("differs:\n%+v\n%+v\nrules:\n%s", back, c, rules.String())
			}
			// Same TOML once both are in the same (sorted) order.
			sorted := func(cfg *config.Config) []byte {
				s := FromConfig(cfg)
				s.Services = SortedServices(s.Services)
				out := cfg.Clone()
				out.VirtualServers = nil
				for _, svc := range s.Services {
					svc.Servers = SortedServers(svc.Servers)
					out.VirtualServers = append(out.VirtualServers, svc.VirtualServer())
				}
				return config.Marshal(out)
			}
			if a, b := sorted(back), sorted(c); !bytes.Equal(a, b) {
				t.Fatalf("TOML differs:\n%s\n%s", a, b)
			}
			// And -S of the restored table is byte-identical.
			var again bytes.Buffer
			(&Printer{}).Save(&again, FromConfig(back), FmtNumeric)
			if again.String() != rules.String() {
				t.Fatalf("-S differs:\n%s\n%s", again.String(), rules.String())
			}
		})
	}
}

// What real ipvsadm -S writes without -n (names) restores with a resolver.
func TestRestoreNames(t *testing.T) {
	in := "-A -t 10.0.0.1:http -s wlc\n-a -t 10.0.0.1:http -r web.example:http -m -w 1\n"
	c, err := (&Parser{Resolver: fakeResolver{}}).Restore(nil, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.VirtualServers[0].Address != ap("10.0.0.1:80") || c.VirtualServers[0].RealServers[0].Address != ap("10.0.1.5:80") {
		t.Fatalf("%+v", c.VirtualServers)
	}
}

func TestApplyNonTable(t *testing.T) {
	cmd, _ := Parse(argv("-L"))
	if err := Apply(config.New(), cmd); err == nil {
		t.Fatal("list applied")
	}
}

func TestApplyToIsAtomic(t *testing.T) {
	cur := config.New()
	cur.Director.PublicInterface = "eth0"
	add, _ := Parse(argv("-A -t 10.0.0.1:80 -s rr"))
	n1, err := add.ApplyTo(cur)
	if err != nil || len(n1.VirtualServers) != 1 || len(cur.VirtualServers) != 0 {
		t.Fatalf("%v %+v", err, n1)
	}
	rs, _ := Parse(argv("-a -t 10.0.0.1:80 -r 10.0.1.1 -m -w 2"))
	n2, err := rs.ApplyTo(n1)
	if err != nil {
		t.Fatal(err)
	}
	ch := config.Diff(n1, n2)
	if len(ch.Ops) != 1 || ch.Ops[0].Kind != config.OpAddServer || ch.Ops[0].Server.Weight != 2 {
		t.Fatalf("%+v", ch.Ops)
	}
	again, err := add.ApplyTo(n2)
	if again != nil || err == nil || err.Error() != "Service already exists" || ExitCode(err) != 255 {
		t.Fatalf("%v %v", again, err)
	}
	if len(n2.VirtualServers[0].RealServers) != 1 {
		t.Fatal("n2 modified")
	}
	s := FromConfig(n2)
	if s.Find(config.Key{Protocol: config.TCP, Address: ap("10.0.0.1:80")}) == nil || s.Find(config.Key{Protocol: config.UDP, Address: ap("10.0.0.1:80")}) != nil {
		t.Fatal("Find")
	}
}
