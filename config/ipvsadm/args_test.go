package ipvsadm

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/config"
)

func argv(s string) []string { return append([]string{"ipvsadm"}, strings.Fields(s)...) }

// Every message below is copied from ipvsadm 1.31's ipvsadm.c (fail(),
// generic_opt_check, tunnel_opt_check, tryhelp_exit, the popt error
// print) or libipvs's ipvs_strerror, except the "ulvsadm: ..." lines,
// which are ulvs's refusals of what it cannot do.
const svc = "-t 10.0.0.1:80"

var badCommandCases = []struct {
	args string
	msg  string
	code int
}{
	// Usage and popt errors (exit -1 = 255).
	{"-n", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255},
	{"--bogus", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255},
	{"-t 10.0.0.1:80 -A", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255},
	{"--start-daemon", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", 255},
	{"-L --bogus", "--bogus: unknown option", 255},
	{"-Lq", "-Lq: unknown option", 255},
	{"-A -t", "-t: missing argument", 255},
	{"-L --numeric=1", "--numeric=1: option does not take an argument", 255},
	{"-L --socket", "--socket: missing argument", 255},
	// Second commands are unknown to ipvsadm's option loop.
	{"-L -A", "invalid option `-A'", 2},
	{"-A " + svc + " -h", "invalid option `-h'", 2},
	// The command/option matrix.
	{"-A", "You need to supply the 'service-address' option for the 'add-service' command", 2},
	{"-a " + svc, "You need to supply the 'real-server' option for the 'add-server' command", 2},
	{"-d " + svc, "You need to supply the 'real-server' option for the 'delete-server' command", 2},
	{"-A " + svc + " -w 3", "Illegal 'weight' option with the 'add-service' command", 2},
	{"-E " + svc + " -r 10.0.1.1", "Illegal 'real-server' option with the 'edit-service' command", 2},
	{"-D " + svc + " -s rr", "Illegal 'scheduler' option with the 'delete-service' command", 2},
	{"-d " + svc + " -r 10.0.1.1 -m", "Illegal 'forwarding-method' option with the 'delete-server' command", 2},
	{"-C -n", "Illegal 'numeric' option with the 'flush' command", 2},
	{"-S -c", "Illegal 'connection' option with the 'save' command", 2},
	{"-L -s rr", "Illegal 'scheduler' option with the 'list' command", 2},
	{"-Z -n", "Illegal 'numeric' option with the 'zero' command", 2},
	{"-L -c " + svc, "The option 'service-address' conflicts with the 'connection' option in the 'list' command", 2},
	{"-L --timeout --daemon", "The option 'daemon' conflicts with the 'timeout' option in the 'list' command", 2},
	{"-L -c --stats", "options conflicts in the list command", 2},
	{"-L --timeout --persistent-conn", "options conflicts in the list command", 2},
	{"-A " + svc + " -t 10.0.0.2:80", "multiple 'service-address' options specified", 2},
	{"-a " + svc + " -r 10.0.1.1 -m -g", "multiple 'forwarding-method' options specified", 2},
	{"-L -n -n", "multiple 'numeric' options specified", 2},
	{"-S --json", "Illegal 'json' option with the 'save' command", 2},
	{"--reload -n", "Illegal 'numeric' option with the 'reload' command", 2},
	// Values.
	{"-A -t 300.1.1.1:80", "illegal virtual server address[:port] specified", 2},
	{"-A -t 10.0.0.1:99999", "illegal virtual server address[:port] specified", 2},
	{"-A -t 80", "illegal virtual server address[:port] specified", 2},
	{"-A -t [2001:db8::1]", "illegal virtual server address[:port] specified", 2},
	{"-A -t 10.0.0.1:http", "illegal virtual server address[:port] specified", 2}, // no resolver
	{"-a " + svc + " -r bogus:80", "illegal real server address[:port] specified", 2},
	{"-a " + svc + " -r [2001:db8::9] -i", "illegal real server address[:port] specified", 2}, // brackets need a port
	{"-A -t 10.0.0.1", "Zero port specified for non-persistent service", 2},
	{"-E -t 10.0.0.1:0 -s rr", "Zero port specified for non-persistent service", 2},
	{"-A " + svc + " -o", "One-Packet Scheduling is only for UDP virtual services", 2},
	{"-A " + svc + " -p 0", "invalid timeout value `0' specified", 2},
	{"-A " + svc + " -p 2678401", "invalid timeout value `2678401' specified", 2},
	{"-A " + svc + " -p1h", "invalid timeout value `1h' specified", 2},
	{"-A " + svc + " -p 60 -M 300.0.0.0", "illegal virtual server persistent mask specified", 2},
	{"-A -t [2001:db8::1]:80 -p -M 129", "illegal ipv6 netmask specified", 2},
	{"-A -t [2001:db8::1]:80 -p -M x", "illegal ipv6 netmask specified", 2},
	{"-A " + svc + " -s rr -b sh-port", "incompatible scheduler flag `sh-port'", 2},
	{"-A " + svc + " -b mh-port", "incompatible scheduler flag `mh-port'", 2}, // default wlc
	{"-A " + svc + " -s sh -b sh-port,fast", "invalid scheduler flag `fast'", 2},
	{"-a " + svc + " -r 10.0.1.1 -w -3", "illegal weight specified", 2},
	{"-a " + svc + " -r 10.0.1.1 -w 65536", "illegal weight specified", 2},
	{"-a " + svc + " -r 10.0.1.1 -w 1.5", "illegal weight specified", 2},
	{"-a " + svc + " -r 10.0.1.1 -x abc", "illegal u_threshold specified", 2},
	{"-a " + svc + " -r 10.0.1.1 -y -1", "illegal l_threshold specified", 2},
	{"-a " + svc + " -r 10.0.1.1 -y 2147483648", "illegal l_threshold specified", 2},
	{"-a " + svc + " -r [2001:db8::2]:80 -m", "Different address family is allowed only for tunneling servers", 2},
	{"-a " + svc + " -r [2001:db8::2]:80", "Different address family is allowed only for tunneling servers", 2},
	{"-a " + svc + " -r 10.0.1.1 -m --tun-type ipip", "Tunnel options conflict with forward method", 2},
	{"-a " + svc + " -r 10.0.1.1 -i --tun-port 5000", "Illegal 'tun-port' option with the 'ipip' tunnel type", 2},
	{"-a " + svc + " -r 10.0.1.1 -i --tun-csum", "Illegal 'tun-csum' option with the 'ipip' tunnel type", 2},
	{"-a " + svc + " -r 10.0.1.1 -i --tun-type gue", "You need to supply the 'tun-port' option for the 'gue' tunnel type", 2},
	{"-a " + svc + " -r 10.0.1.1 -i --tun-type gre --tun-nocsum --tun-csum", "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type", 2},
	{"-a " + svc + " -r 10.0.1.1 -i --tun-type gre --tun-remcsum", "Illegal 'tun-remcsum' option with the 'gre' tunnel type", 2},
	{"-a " + svc + " -r 10.0.1.1 -i --tun-type vxlan", "illegal tunnel type specified", 2},
	{"-a " + svc + " -r 10.0.1.1 -i --tun-type gue --tun-port 0", "illegal tunnel port specified", 2},
	{"--set 1 2", "--set option requires 3 timeout values", 2},
	{"--set 1 2 x", "invalid timeout value `x' specified", 2},
	{"--set 1 2 2678401", "invalid timeout value `2678401' specified", 2},
	{"--set 1 2 3 4", "unexpected argument 4", 2},
	{"-C foo", "unexpected argument foo", 2},
	{"--start-daemon foo", "illegal start-daemon parameter specified", 2},
	{"--stop-daemon foo", "illegal start_daemon specified", 2},
	{"--start-daemon master --syncid 256", "illegal syncid specified", 2},
	{"--start-daemon master --mcast-group 10.0.0.1", "invalid IPv4 mcast-group `10.0.0.1'", 2},
	{"--start-daemon master --mcast-group 2001:db8::1", "invalid IPv6 mcast-group `2001:db8::1'", 2},
	{"--start-daemon master --mcast-port 0", "illegal mcast-port specified", 2},
	{"--start-daemon master --mcast-ttl 256", "illegal mcast-ttl specified", 2},
	{"--start-daemon master --sync-maxlen 65508", "illegal sync-maxlen specified", 2},
	{"-A -6 " + svc, "-6 used before -f\n", 2},
	{"-A -f 0", "invalid fwmark value `0' specified", 2},
	{"-A -f 4294967296", "invalid fwmark value `4294967296' specified", 2},
	// Kernel answers (libipvs's ipvs_strerror), exit -1 = 255.
	{"-A " + svc + " -s fastest", "Scheduler or persistence engine not found", 255},
	{"-E " + svc + " -s fastest", "Scheduler or persistence engine not found", 255},
	// What ulvs cannot do.
	{"-A -f 1", "ulvsadm: firewall-mark services (-f) are not supported by ulvs in userspace", 2},
	{"-A -f 1 -6 -s rr", "ulvsadm: firewall-mark services (-f) are not supported by ulvs in userspace", 2},
	{"-A --sctp-service 10.0.0.1:80", "ulvsadm: SCTP services (--sctp-service) are not supported by ulvs in userspace", 2},
	{"-A " + svc + " -p --pe sip", "ulvsadm: persistence engines (--pe) are not supported by ulvs in userspace", 2},
	{"-a " + svc + " -r 10.0.1.1 -i --tun-type gue --tun-port 6080", "ulvsadm: GUE and GRE tunnels (--tun-type gue) are not supported by ulvs in userspace", 2},
	{"-a " + svc + " -r 10.0.1.1 -i --tun-type gre", "ulvsadm: GUE and GRE tunnels (--tun-type gre) are not supported by ulvs in userspace", 2},
	{"-A " + svc + " -p 60 -M 255.0.255.0", "ulvsadm: non-contiguous netmasks (255.0.255.0) are not supported by ulvs in userspace", 2},
}

func TestBadCommands(t *testing.T) {
	for _, tc := range badCommandCases {
		t.Run(tc.args, func(t *testing.T) {
			cmd, err := Parse(argv(tc.args))
			if cmd != nil {
				t.Errorf("command returned with the error: %+v", cmd)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("not an *Error: %v", err)
			}
			if e.Msg != tc.msg || e.Code != tc.code || ExitCode(err) != tc.code {
				t.Fatalf("got %q (exit %d), want %q (exit %d)", e.Msg, e.Code, tc.msg, tc.code)
			}
			if strings.HasPrefix(tc.msg, "ulvsadm:") != errors.Is(err, config.ErrUnsupported) {
				t.Errorf("ErrUnsupported mismatch")
			}
		})
	}
}

func v4(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

var (
	vs               func(p config.Protocol, a, sched string, persist time.Duration, mask int, flags []string, ops bool) config.VirtualServer
	rs               func(a string, m config.Method, w int, u, l uint32) config.RealServer
	defRS            config.RealServer
	goodCommandCases []struct {
		args string
		want Command
	}
)

func init() {
	vs = func(p config.Protocol, a, sched string, persist time.Duration, mask int, flags []string, ops bool) config.VirtualServer {
		return config.VirtualServer{Protocol: p, Address: v4(a), Scheduler: sched, Persistence: persist, Netmask: mask, SchedFlags: flags, OnePacket: ops}
	}
	rs = func(a string, m config.Method, w int, u, l uint32) config.RealServer {
		return config.RealServer{Address: v4(a), Method: m, Weight: w, UpperThreshold: u, LowerThreshold: l}
	}
	defRS = config.RealServer{Method: config.DR, Weight: 1}
	goodCommandCases = []struct {
		args string
		want Command
	}{
		{"", Command{Kind: CmdList, Server: config.RealServer{}}},
		{"--socket /tmp/u.sock", Command{Kind: CmdList, Socket: "/tmp/u.sock"}},
		{"--json", Command{Kind: CmdList, JSON: true, Options: OptJSON}},
		{"-Ln", Command{Kind: CmdList, Options: OptNumeric, Format: FmtNumeric, Server: defRS}},
		{"-l -n --stats --exact --socket=/s", Command{Kind: CmdList, Options: OptNumeric | OptStats | OptExact, Format: FmtNumeric | FmtStats | FmtExact, Socket: "/s", Server: defRS}},
		{"-L --json --rate --sort", Command{Kind: CmdList, Options: OptJSON | OptRate, Format: FmtRate, JSON: true, Server: defRS}},
		{"-L -n -c --persistent-conn", Command{Kind: CmdList, Options: OptNumeric | OptConnection | OptPersistentConn, Format: FmtNumeric | FmtPersistentConn, Server: defRS}},
		{"-L -t 10.0.0.1:80 --nosort", Command{Kind: CmdList, Options: OptService | OptNoSort, Format: FmtNoSort,
			Service: config.VirtualServer{Protocol: config.TCP, Address: v4("10.0.0.1:80"), Netmask: 32}, Server: defRS}},
		{"-A -t 10.0.0.1:80", Command{Kind: CmdAdd, Options: OptService, Service: vs(config.TCP, "10.0.0.1:80", "wlc", 0, 32, nil, false), Server: defRS}},
		{"-At 10.1:80 -s rr -p", Command{Kind: CmdAdd, Options: OptService | OptScheduler | OptPersistent,
			Service: vs(config.TCP, "10.0.0.1:80", "rr", 360*time.Second, 32, nil, false), Server: defRS}},
		{"--add-service --tcp-service=10.0.0.1:80 --scheduler sed --persistent=100 --netmask 255.255.255.0", Command{Kind: CmdAdd,
			Options: OptService | OptScheduler | OptPersistent | OptNetmask, Service: vs(config.TCP, "10.0.0.1:80", "sed", 100*time.Second, 24, nil, false), Server: defRS}},
		{"-A -t 10.0.0.1:80 --persistent -s nq", Command{Kind: CmdAdd, Options: OptService | OptScheduler | OptPersistent,
			Service: vs(config.TCP, "10.0.0.1:80", "nq", 360*time.Second, 32, nil, false), Server: defRS}},
		{"-A -t 10.0.0.1:0 -p 60 -M 255.255.0.0", Command{Kind: CmdAdd, Options: OptService | OptPersistent | OptNetmask,
			Service: vs(config.TCP, "10.0.0.1:0", "wlc", 60*time.Second, 16, nil, false), Server: defRS}},
		// -M without -p has no effect (ipvsadm does not save it).
		{"-A -t 10.0.0.1:80 -M 255.255.0.0", Command{Kind: CmdAdd, Options: OptService | OptNetmask,
			Service: vs(config.TCP, "10.0.0.1:80", "wlc", 0, 32, nil, false), Server: defRS}},
		{"-A -u [2001:db8::1]:53 -s sh -b sh-port,sh-fallback -o -p 30 -M 48", Command{Kind: CmdAdd,
			Options: OptService | OptScheduler | OptSchedFlags | OptOnePacket | OptPersistent | OptNetmask,
			Service: vs(config.UDP, "[2001:db8::1]:53", "sh", 30*time.Second, 48, []string{"sh-fallback", "sh-port"}, true), Server: defRS}},
		{"-A -t 10.0.0.1:80 -s wrr -b flag-2,,flag-1", Command{Kind: CmdAdd, Options: OptService | OptScheduler | OptSchedFlags,
			Service: vs(config.TCP, "10.0.0.1:80", "wrr", 0, 32, []string{"flag-1", "flag-2"}, false), Server: defRS}},
		{"-E -t 10.0.0.1:80", Command{Kind: CmdEdit, Options: OptService, Service: vs(config.TCP, "10.0.0.1:80", "wlc", 0, 32, nil, false), Server: defRS}},
		{"-D -u 10.0.0.1:53", Command{Kind: CmdDel, Options: OptService, Service: config.VirtualServer{Protocol: config.UDP, Address: v4("10.0.0.1:53"), Netmask: 32}, Server: defRS}},
		// dr (the default) forces the service port.
		{"-a -t 10.0.0.1:80 -r 10.0.1.1:8080", Command{Kind: CmdAddDest, Options: OptService | OptServer,
			Service: config.VirtualServer{Protocol: config.TCP, Address: v4("10.0.0.1:80"), Netmask: 32}, Server: rs("10.0.1.1:80", config.DR, 1, 0, 0)}},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 0 -x 100 -y 50", Command{Kind: CmdAddDest,
			Options: OptService | OptServer | OptForward | OptWeight | OptUThreshold | OptLThreshold,
			Service: config.VirtualServer{Protocol: config.TCP, Address: v4("10.0.0.1:80"), Netmask: 32}, Server: rs("10.0.1.1:8080", config.NAT, 0, 100, 50)}},
		{"-a -t 10.0.0.1:80 -r 10.0.1.1 -m", Command{Kind: CmdAddDest, Options: OptService | OptServer | OptForward,
			Service: config.VirtualServer{Protocol: config.TCP, Address: v4("10.0.0.1:80"), Netmask: 32}, Server: rs("10.0.1.1:80", config.NAT, 1, 0, 0)}},
		// ipvsadm copies the service port as it is when -r is read: -r
		// before -t gives port 0 for nat.
		{"-a -r 10.0.1.1 -t 10.0.0.1:80 -m", Command{Kind: CmdAddDest, Options: OptService | OptServer | OptForward,
			Service: config.VirtualServer{Protocol: config.TCP, Address: v4("10.0.0.1:80"), Netmask: 32}, Server: rs("10.0.1.1:0", config.NAT, 1, 0, 0)}},
		{"-e -t 10.0.0.1:80 -r 2001:db8::9 -i --tun-type ipip", Command{Kind: CmdEditDest, Options: OptService | OptServer | OptForward | OptTunType,
			Service: config.VirtualServer{Protocol: config.TCP, Address: v4("10.0.0.1:80"), Netmask: 32}, Server: rs("[2001:db8::9]:80", config.TUN, 1, 0, 0)}},
		{"-d -t 10.0.0.1:80 -r 10.0.1.1:80", Command{Kind: CmdDelDest, Options: OptService | OptServer,
			Service: config.VirtualServer{Protocol: config.TCP, Address: v4("10.0.0.1:80"), Netmask: 32}, Server: rs("10.0.1.1:80", config.DR, 1, 0, 0)}},
		{"--set 900 0 300", Command{Kind: CmdTimeout, Timeouts: [3]int{900, 0, 300}, Server: defRS}},
		{"-Z", Command{Kind: CmdZero, Server: defRS}},
		{"-C", Command{Kind: CmdFlush, Server: defRS}},
		{"-S -n", Command{Kind: CmdSave, Options: OptNumeric, Format: FmtNumeric, Server: defRS}},
		{"-R", Command{Kind: CmdRestore, Server: defRS}},
		{"--start-daemon master", Command{Kind: CmdStartDaemon, Daemon: Daemon{State: "master", McastInterface: "eth0"}, Server: defRS}},
		{"--start-daemon backup --mcast-interface eth1 --syncid 5 --mcast-group 224.0.0.82 --mcast-port 9000 --mcast-ttl 2 --sync-maxlen 1400",
			Command{Kind: CmdStartDaemon, Options: OptMcast | OptSyncID | OptMcastGroup | OptMcastPort | OptMcastTTL | OptSyncMaxlen,
				Daemon: Daemon{State: "backup", McastInterface: "eth1", SyncID: 5, McastGroup: netip.MustParseAddr("224.0.0.82"), McastPort: 9000, McastTTL: 2, SyncMaxlen: 1400}, Server: defRS}},
		{"--stop-daemon master --syncid 1", Command{Kind: CmdStopDaemon, Options: OptSyncID, Daemon: Daemon{State: "master", SyncID: 1}, Server: defRS}},
		{"--reload --socket /x", Command{Kind: CmdReload, Socket: "/x", Server: defRS}},
		{"--write-config /etc/ulvs/live.toml", Command{Kind: CmdWriteConfig, File: "/etc/ulvs/live.toml", Server: defRS}},
		{"-h -A", Command{Kind: CmdHelp}},
		{"-v", Command{Kind: CmdVersion}},
	}
}

func TestGoodCommands(t *testing.T) {
	for _, tc := range goodCommandCases {
		t.Run(tc.args, func(t *testing.T) {
			cmd, err := Parse(argv(tc.args))
			if err != nil {
				t.Fatal(err)
			}
			if cmd.Service.Address.IsValid() && !tc.want.Service.Address.IsValid() {
				t.Fatalf("unexpected service %+v", cmd.Service)
			}
			if !reflect.DeepEqual(*cmd, tc.want) {
				t.Fatalf("got\n%+v\nwant\n%+v", *cmd, tc.want)
			}
		})
	}
}

func TestResolverInParse(t *testing.T) {
	p := &Parser{Resolver: fakeResolver{}}
	cmd, err := p.Parse(argv("-a -t 10.0.0.1:http -r web.example -m"))
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Service.Address != netip.MustParseAddrPort("10.0.0.1:80") || cmd.Server.Address != netip.MustParseAddrPort("10.0.1.5:80") {
		t.Fatalf("%+v", cmd)
	}
	if _, err := p.Parse(argv("-A -u 10.0.0.1:http")); err == nil {
		t.Fatal("http/udp resolved")
	}
}

func TestInetAton(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1": "10.0.0.1", "10.1": "10.0.0.1", "10.1.2": "10.1.0.2", "167772161": "10.0.0.1",
		"0x0a.0.0.1": "10.0.0.1", "012.0.0.1": "10.0.0.1", "1.2.3.4 junk": "1.2.3.4",
	} {
		a, ok := inetAton(in)
		if !ok || a.String() != want {
			t.Errorf("inetAton(%q) = %v, %v; want %s", in, a, ok, want)
		}
	}
	for _, in := range []string{"", "256.0.0.1", "1.2.3.4.5", "1..2", "08.0.0.1", "a.b.c.d", "1.16777216"} {
		if a, ok := inetAton(in); ok {
			t.Errorf("inetAton(%q) accepted: %v", in, a)
		}
	}
}

func TestUsageAndVersion(t *testing.T) {
	u := Usage("ulvsadm")
	for _, want := range []string{"ulvsadm -A|E virtual-service", "--write-config FILE", "twos", "Not supported by ulvs"} {
		if !strings.Contains(u, want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	if !strings.Contains(VersionString, "v1.31") {
		t.Error(VersionString)
	}
}

// FuzzParseArgs: the command-line parser never panics and returns exactly
// one of a command or an *Error.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"-A -t 10.0.0.1:80 -s rr -p", "-a -t [::1]:80 -r [::2] -i --tun-type gue --tun-port 1",
		"-Ln --stats", "--set 1 2 3", "-A -f 1 -6", "-L -c -t 1.2.3.4:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cmd, err := Parse(argv(s))
		if (cmd == nil) == (err == nil) {
			t.Fatalf("%q: %v %v", s, cmd, err)
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("%q: not an *Error: %v", s, err)
		}
	})
}
