//go:build linux

package failover

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/failover/connsync"
)

// Root tests: real raw sockets between network namespaces created here,
// with unique names, always deleted. They skip without root and fail
// instead under CI=true.

func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("needs root (network namespaces, raw sockets) and CI=true")
		}
		t.Skip("needs root: network namespaces and raw sockets")
	}
	for _, tool := range append([]string{"ip", "nsenter"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			if ci {
				t.Fatalf("%s not installed (CI=true)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

var chrtOK = sync.OnceValue(func() bool {
	return exec.Command("chrt", "-r", "10", "true").Run() == nil
})

func haveChrt() bool { return chrtOK() }

func suffix() string {
	b := make([]byte, 3)
	crand.Read(b)
	return hex.EncodeToString(b)
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newNS(t *testing.T, name string) string {
	t.Helper()
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// link joins nsA/ifA (addrA) and nsB/ifB (addrB) with a veth pair.
func link(t *testing.T, nsA, ifA, addrA, nsB, ifB, addrB string) {
	t.Helper()
	sh(t, "ip", "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	sh(t, "ip", "-n", nsA, "addr", "add", addrA, "dev", ifA)
	sh(t, "ip", "-n", nsB, "addr", "add", addrB, "dev", ifB)
	sh(t, "ip", "-n", nsA, "link", "set", ifA, "up")
	sh(t, "ip", "-n", nsB, "link", "set", ifB, "up")
	waitUp(t, nsA, ifA)
	waitUp(t, nsB, ifB)
}

// waitUp waits for carrier: packets sent before it are dropped.
func waitUp(t *testing.T, ns, ifname string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(sh(t, "ip", "-n", ns, "-o", "link", "show", ifname), "state UP") {
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s never came up", ifname, ns)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proc is a process started in a namespace, with its output as lines.
type proc struct {
	name  string
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []line
	done  chan struct{}
}

type line struct {
	at   time.Time
	text string
}

func startIn(t *testing.T, name, ns string, rt bool, env []string, args ...string) *proc {
	t.Helper()
	full := append([]string{"--net=/run/netns/" + ns, "--"}, args...)
	if rt {
		// Heartbeat daemons run with real-time priority in production
		// (keepalived: vrrp_rt_priority) so that a loaded machine does not
		// delay adverts past the master-down interval; so do the test's.
		// chrt execs: the PID stays the program's.
		full = append([]string{"--net=/run/netns/" + ns, "--", "chrt", "-r", "10"}, args...)
	}
	cmd := exec.Command("nsenter", full...) // nsenter execs: the PID is the program's
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, line{time.Now(), s.Text()})
			p.mu.Unlock()
		}
	}()
	go func() { cmd.Wait(); pw.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() || os.Getenv("ULVS_TEST_DUMP") != "" {
			p.mu.Lock()
			for _, l := range p.lines {
				t.Logf("%s| %s", name, l.text)
			}
			p.mu.Unlock()
		}
	})
	return p
}

// kill sends SIGKILL to the process group we created (the process and any
// child it forked, e.g. keepalived's VRRP child) and waits.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func (p *proc) term(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not exit on SIGTERM", p.name)
	}
}

// waitLine waits until a line after `since` contains s; returns its time.
func (p *proc) waitLine(t *testing.T, s string, since time.Time, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, l := range p.lines {
			if !l.at.Before(since) && strings.Contains(l.text, s) {
				p.mu.Unlock()
				return l.at
			}
		}
		p.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: no line containing %q within %v", p.name, s, timeout)
	return time.Time{}
}

func (p *proc) count(s string, since time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if !l.at.Before(since) && strings.Contains(l.text, s) {
			n++
		}
	}
	return n
}

// lastRole returns the last ROLE line's word.
func (p *proc) lastRole() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.lines) - 1; i >= 0; i-- {
		if r, ok := strings.CutPrefix(p.lines[i].text, "ROLE "); ok {
			return strings.Fields(r)[0]
		}
	}
	return ""
}

type helperConfig struct {
	VRID       uint8    `json:"vrid"`
	Priority   uint8    `json:"priority"`
	IntervalMS int      `json:"interval_ms"`
	Interfaces []string `json:"interfaces"`
	Peers      []string `json:"peers"`
	VIPs       []string `json:"vips"`
	Preempt    bool     `json:"preempt"`
	DelayMS    int      `json:"delay_ms"`
	Unicast    bool     `json:"unicast"`
	Secret     string   `json:"secret"`
	// Connection sync: the node requires a bulk copy before failback, serves
	// a fake table of Table entries after BulkDelayMS, and counts what it
	// receives on the sync interface (the last heartbeat interface).
	Sync        bool `json:"sync"`
	Table       int  `json:"table"`
	BulkDelayMS int  `json:"bulk_delay_ms"`
}

type printDirector struct{ synced *atomic.Int64 }

func (d printDirector) BecomeActive(r string) {
	fmt.Printf("SYNCCOUNT %d\n", d.synced.Load())
	fmt.Printf("ROLE active %s\n", r)
}
func (printDirector) BecomeBackup(r string) { fmt.Printf("ROLE backup %s\n", r) }

type countingSink struct{ n *atomic.Int64 }

func (s countingSink) SyncConn(*connsync.Conn) { s.n.Add(1) }

type fakeTable int

func (n fakeTable) RangeConns(fn func(*connsync.Conn) bool) {
	c := connsync.Conn{Protocol: connsync.ProtoTCP, State: connsync.TCPEstablished, VPort: 80, DPort: 80, Timeout: 900,
		CAddr: netip.MustParseAddr("192.0.2.1"), VAddr: netip.MustParseAddr("10.0.0.100"), DAddr: netip.MustParseAddr("10.0.1.10")}
	for i := 0; i < int(n); i++ {
		c.CPort = uint16(1024 + i)
		if !fn(&c) {
			return
		}
	}
}

// TestHelperNode is not a test: it is the body of the director processes
// the namespace tests start (re-executing this test binary). Without the
// environment variable it returns at once.
func TestHelperNode(t *testing.T) {
	js := os.Getenv("ULVS_FAILOVER_HELPER")
	if js == "" {
		return
	}
	var hc helperConfig
	if err := json.Unmarshal([]byte(js), &hc); err != nil {
		fmt.Println("FATAL", err)
		os.Exit(2)
	}
	cfg := Config{VRID: hc.VRID, Priority: hc.Priority, Interval: time.Duration(hc.IntervalMS) * time.Millisecond,
		Preempt: hc.Preempt, PreemptDelay: time.Duration(hc.DelayMS) * time.Millisecond, Unicast: hc.Unicast,
		Secret: []byte(hc.Secret), Announce: true, GARPCount: 5, GARPPeriod: time.Second}
	for i, ifn := range hc.Interfaces {
		cfg.Networks = append(cfg.Networks, Network{Interface: ifn, Peer: netip.MustParseAddr(hc.Peers[i])})
	}
	for _, v := range hc.VIPs {
		cfg.VIPs = append(cfg.VIPs, netip.MustParseAddr(v))
	}
	zerolog.TimeFieldFormat = "15:04:05.000000"
	log := zerolog.New(os.Stdout).With().Timestamp().Logger()
	var synced atomic.Int64
	var bulk BulkSender
	syncIf := hc.Interfaces[len(hc.Interfaces)-1]
	if hc.Sync {
		cfg.RequireSync = true
		cfg.SyncReceived = func() uint64 { return uint64(synced.Load()) }
		rc, err := connsync.ListenReceiver(connsync.TransportConfig{Interface: syncIf, Peer: netip.MustParseAddr(hc.Peers[len(hc.Peers)-1])})
		if err != nil {
			fmt.Println("FATAL", err)
			os.Exit(2)
		}
		go rc.Run(context.Background(), &connsync.Decoder{}, countingSink{&synced}, nil)
		bulk = func(ctx context.Context, to netip.Addr) (int, error) {
			select {
			case <-time.After(time.Duration(hc.BulkDelayMS) * time.Millisecond):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			return NewBulkSender(fakeTable(hc.Table), connsync.TransportConfig{Interface: syncIf}, 0, 0)(ctx, to)
		}
	}
	n, err := NewNode(cfg, printDirector{&synced}, bulk, log)
	if err == nil {
		err = n.Open()
	}
	if err != nil {
		fmt.Println("FATAL", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fmt.Println("READY")
	if err := n.Run(ctx); err != nil {
		fmt.Println("FATAL", err)
		os.Exit(2)
	}
	fmt.Println("EXIT")
	os.Exit(0)
}

func startNode(t *testing.T, name, ns string, hc helperConfig) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(hc)
	p := startIn(t, name, ns, haveChrt(), []string{"ULVS_FAILOVER_HELPER=" + string(js)}, exe, "-test.run=^TestHelperNode$")
	p.waitLine(t, "READY", time.Time{}, 10*time.Second)
	return p
}

// TestNetnsPairFailover: two ulvs nodes on two heartbeat networks elect the
// higher priority, the backup takes over within 3 intervals + skew when the
// active is killed (with a gratuitous ARP burst on both networks), the
// returning primary takes the role back after its preempt delay, and a
// graceful stop hands over within Skew_Time.
func TestNetnsPairFailover(t *testing.T) {
	needRoot(t, "tcpdump")
	sfx := suffix()
	nsA := newNS(t, "ulvsfoA"+sfx)
	nsB := newNS(t, "ulvsfoB"+sfx)
	link(t, nsA, "fa0"+sfx, "10.0.0.1/24", nsB, "fb0"+sfx, "10.0.0.2/24")
	link(t, nsA, "fa1"+sfx, "10.0.1.1/24", nsB, "fb1"+sfx, "10.0.1.2/24")
	base := helperConfig{VRID: 57, IntervalMS: 100, VIPs: []string{"10.0.0.100", "2001:db8::100"}, Preempt: true, Secret: "s3cret"}
	ca := base
	ca.Priority, ca.DelayMS = 150, 500
	ca.Interfaces, ca.Peers = []string{"fa0" + sfx, "fa1" + sfx}, []string{"10.0.0.2", "10.0.1.2"}
	cb := base
	cb.Priority = 100
	cb.Interfaces, cb.Peers = []string{"fb0" + sfx, "fb1" + sfx}, []string{"10.0.0.1", "10.0.1.1"}

	a := startNode(t, "A", nsA, ca)
	b := startNode(t, "B", nsB, cb)
	start := time.Now()
	a.waitLine(t, "ROLE active", start, 5*time.Second)
	// Started together, both may time out at once; the stand-down and the
	// VRRP rule leave B backup. Then B must stay backup.
	time.Sleep(500 * time.Millisecond)
	if r := b.lastRole(); r != "backup" {
		t.Fatalf("B is %q, want backup", r)
	}
	steady := time.Now()
	time.Sleep(time.Second)
	if n := b.count("ROLE active", steady); n != 0 || b.lastRole() != "backup" {
		t.Fatalf("B became active %d times while A was up", n)
	}

	// Capture ARP on both networks at B while A dies.
	caps := []*proc{
		startIn(t, "tcpdump0", nsB, false, nil, "tcpdump", "-l", "-n", "-i", "fb0"+sfx, "arp", "or", "icmp6"),
		startIn(t, "tcpdump1", nsB, false, nil, "tcpdump", "-l", "-n", "-i", "fb1"+sfx, "arp", "or", "icmp6"),
	}
	for _, c := range caps {
		c.waitLine(t, "listening on", time.Time{}, 5*time.Second)
	}
	killAt := time.Now()
	a.kill()
	took := b.waitLine(t, "ROLE active", killAt, 3*time.Second).Sub(killAt)
	t.Logf("takeover after kill -9 of the active: %v (MDI for priority 100 at 100 ms = 360.9 ms)", took)
	if took > time.Second {
		t.Fatalf("takeover took %v, want < 1 s with 100 ms adverts", took)
	}
	garpLine := "Request who-has 10.0.0.100 tell 10.0.0.100"
	naLine := "neighbor advertisement, tgt is 2001:db8::100"
	for i, c := range caps {
		deadline := time.Now().Add(3 * time.Second)
		for (c.count(garpLine, killAt) < 5 || c.count(naLine, killAt) < 5) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // nothing more than the burst
		if n := c.count(garpLine, killAt); n != 5 {
			t.Fatalf("network %d: %d gratuitous ARPs for the VIP at takeover, want 5", i, n)
		}
		if n := c.count(naLine, killAt); n != 5 {
			t.Fatalf("network %d: %d unsolicited NAs for the IPv6 VIP at takeover, want 5", i, n)
		}
		c.kill()
	}

	// Failback: A returns, waits preempt_delay, takes the role back; B yields.
	backAt := time.Now()
	a = startNode(t, "A2", nsA, ca)
	got := a.waitLine(t, "ROLE active", backAt, 5*time.Second)
	if d := got.Sub(backAt); d < 500*time.Millisecond {
		t.Fatalf("A preempted after %v, before its 500 ms delay", d)
	}
	b.waitLine(t, "ROLE backup", backAt, 2*time.Second)
	t.Logf("failback after restart: %v (preempt_delay 500 ms)", got.Sub(backAt))

	// Graceful stop: priority 0, B takes over after Skew_Time (~61 ms).
	time.Sleep(300 * time.Millisecond)
	stopAt := time.Now()
	a.term(t)
	took = b.waitLine(t, "ROLE active", stopAt, 2*time.Second).Sub(stopAt)
	t.Logf("takeover after graceful stop: %v", took)
	if took > 500*time.Millisecond {
		t.Fatalf("graceful handover took %v; priority 0 should make it ~skew", took)
	}
}

// TestNetnsOneNetworkDown: with one heartbeat link down the backup reports
// it and does not take over.
func TestNetnsOneNetworkDown(t *testing.T) {
	needRoot(t)
	sfx := suffix()
	nsA := newNS(t, "ulvsfoA"+sfx)
	nsB := newNS(t, "ulvsfoB"+sfx)
	link(t, nsA, "fa0"+sfx, "10.0.0.1/24", nsB, "fb0"+sfx, "10.0.0.2/24")
	link(t, nsA, "fa1"+sfx, "10.0.1.1/24", nsB, "fb1"+sfx, "10.0.1.2/24")
	// 200 ms adverts: this test asserts that nothing flaps, and the
	// helpers may run race-instrumented on a loaded CI machine.
	ca := helperConfig{VRID: 9, Priority: 200, IntervalMS: 200, Interfaces: []string{"fa0" + sfx, "fa1" + sfx}, Peers: []string{"10.0.0.2", "10.0.1.2"}, Preempt: true, Secret: "x", VIPs: []string{"10.0.0.100"}}
	cb := ca
	cb.Priority = 100
	cb.Interfaces, cb.Peers = []string{"fb0" + sfx, "fb1" + sfx}, []string{"10.0.0.1", "10.0.1.1"}
	a := startNode(t, "A", nsA, ca)
	b := startNode(t, "B", nsB, cb)
	a.waitLine(t, "ROLE active", time.Time{}, 5*time.Second)
	time.Sleep(time.Second)
	if r := b.lastRole(); r != "backup" {
		t.Fatalf("B is %q before the test, want backup", r)
	}
	downAt := time.Now()
	sh(t, "ip", "-n", nsA, "link", "set", "fa0"+sfx, "down")
	b.waitLine(t, "heartbeat network down", downAt, 3*time.Second)
	time.Sleep(time.Second)
	if n := b.count("ROLE active", downAt); n != 0 {
		t.Fatal("B took over with one network still carrying adverts")
	}
	sh(t, "ip", "-n", nsA, "link", "set", "fa0"+sfx, "up")
	b.waitLine(t, "heartbeat network up again", downAt, 3*time.Second)
	_ = a
}

const keepalivedConf = `global_defs {
    router_id ulvs_interop
    vrrp_version 3
    script_user root
    enable_script_security
}
vrrp_instance VI_1 {
    state BACKUP
    interface %s
    virtual_router_id 57
    priority %d
    advert_int 0.2
    virtual_ipaddress {
        %s
    }
%s}
`

const keepalivedUnicast = `    unicast_src_ip 10.0.0.1
    unicast_peer {
        10.0.0.2
    }
`

func startKeepalived(t *testing.T, ns, ifname string, prio int, unicast bool, vip string) *proc {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(keepalivedConf, ifname, prio, vip, map[bool]string{true: keepalivedUnicast}[unicast])), 0o644); err != nil {
		t.Fatal(err)
	}
	return startIn(t, "keepalived", ns, haveChrt(), nil, "keepalived", "-n", "-l", "-D", "-G", "-P", "-f", conf,
		"-p", filepath.Join(dir, "k.pid"), "-r", filepath.Join(dir, "v.pid"), "-c", filepath.Join(dir, "c.pid"))
}

func hasVIP(t *testing.T, ns, ifname, vip string) bool {
	return strings.Contains(sh(t, "ip", "-n", ns, "addr", "show", "dev", ifname), " "+vip+"/")
}

func waitVIP(t *testing.T, ns, ifname, vip string, want bool, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if hasVIP(t, ns, ifname, vip) == want {
			return time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("keepalived VIP present=%v not reached in %v", want, timeout)
	return time.Time{}
}

// TestNetnsKeepalivedInterop runs a real keepalived (vrrp_version 3, same
// VRID) as the peer of a ulvs node, in both roles.
func TestNetnsKeepalivedInterop(t *testing.T) {
	needRoot(t, "keepalived")
	for _, tc := range []struct {
		name           string
		kPrio, uPrio   int
		keepalivedWins bool
		unicast        bool
		v6             bool
	}{
		{"keepalived master, ulvs backup", 150, 100, true, false, false},
		{"ulvs master, keepalived backup", 100, 150, false, false, false},
		{"unicast keepalived master, ulvs backup", 150, 100, true, true, false},
		{"unicast ulvs master, keepalived backup", 100, 150, false, true, false},
		{"ipv6 keepalived master, ulvs backup", 150, 100, true, false, true},
		{"ipv6 ulvs master, keepalived backup", 100, 150, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sfx := suffix()
			nsK := newNS(t, "ulvsfoK"+sfx)
			nsU := newNS(t, "ulvsfoU"+sfx)
			kif, uif := "fk0"+sfx, "fu0"+sfx
			vip, vipLen, peer := "10.0.0.100", "/24", "10.0.0.1"
			if tc.v6 {
				// Only fe80::1 / fe80::2 as link-local addresses (no DAD).
				for _, ns := range []string{nsK, nsU} {
					sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1")
				}
				vip, vipLen, peer = "2001:db8::100", "/64", "fe80::1"
			}
			link(t, nsK, kif, "10.0.0.1/24", nsU, uif, "10.0.0.2/24")
			if tc.v6 {
				sh(t, "ip", "-n", nsK, "-6", "addr", "add", "fe80::1/64", "dev", kif, "nodad")
				sh(t, "ip", "-n", nsU, "-6", "addr", "add", "fe80::2/64", "dev", uif, "nodad")
			}
			k := startKeepalived(t, nsK, kif, tc.kPrio, tc.unicast, vip+vipLen)
			u := startNode(t, "ulvs", nsU, helperConfig{VRID: 57, Priority: uint8(tc.uPrio), IntervalMS: 200,
				Interfaces: []string{uif}, Peers: []string{peer}, VIPs: []string{vip}, Preempt: true, Secret: "x", Unicast: tc.unicast})
			if tc.keepalivedWins {
				k.waitLine(t, "Entering MASTER STATE", time.Time{}, 10*time.Second)
				waitVIP(t, nsK, kif, vip, true, 2*time.Second)
				// Started together, ulvs may be active for a moment before
				// keepalived's first advert; then it must stay backup.
				time.Sleep(500 * time.Millisecond)
				steady := time.Now()
				time.Sleep(time.Second)
				if r := u.lastRole(); r != "backup" {
					t.Fatalf("ulvs is %q while keepalived (higher priority) is master", r)
				}
				if n := u.count("ROLE active", steady); n != 0 {
					t.Fatalf("ulvs became active %d times in steady state", n)
				}
				killAt := time.Now()
				k.kill()
				took := u.waitLine(t, "ROLE active", killAt, 3*time.Second).Sub(killAt)
				t.Logf("ulvs took over from killed keepalived in %v (200 ms adverts, MDI 721.9 ms)", took)
			} else {
				u.waitLine(t, "ROLE active", time.Time{}, 5*time.Second)
				// keepalived must settle as backup and stay there.
				k.waitLine(t, "Entering BACKUP STATE", time.Time{}, 10*time.Second)
				time.Sleep(time.Second)
				if hasVIP(t, nsK, kif, vip) {
					t.Fatal("keepalived holds the VIP while ulvs (higher priority) is master")
				}
				if n := k.count("Entering MASTER STATE", time.Now().Add(-800*time.Millisecond)); n != 0 {
					t.Fatal("keepalived flapped to master while ulvs is active")
				}
				killAt := time.Now()
				u.kill()
				k.waitLine(t, "Entering MASTER STATE", killAt, 3*time.Second)
				took := waitVIP(t, nsK, kif, vip, true, 3*time.Second).Sub(killAt)
				t.Logf("keepalived took over from killed ulvs in %v", took)
			}
			for _, bad := range []string{"checksum", "bogus", "invalid", "mismatch"} {
				if n := k.count(bad, time.Time{}); n != 0 {
					t.Errorf("keepalived logged %d lines containing %q", n, bad)
				}
			}
		})
	}
}

// TestNetnsFailbackWaitsForSync: the returning primary (sync = true) asks
// the active for a bulk copy of its connection table and takes the role
// back only once the copy is complete, even though its preempt delay ran
// out long before.
func TestNetnsFailbackWaitsForSync(t *testing.T) {
	needRoot(t)
	sfx := suffix()
	nsA := newNS(t, "ulvsfoA"+sfx)
	nsB := newNS(t, "ulvsfoB"+sfx)
	link(t, nsA, "fa0"+sfx, "10.0.0.1/24", nsB, "fb0"+sfx, "10.0.0.2/24")
	link(t, nsA, "fa1"+sfx, "10.0.1.1/24", nsB, "fb1"+sfx, "10.0.1.2/24")
	base := helperConfig{VRID: 57, IntervalMS: 100, VIPs: []string{"10.0.0.100"}, Preempt: true, Secret: "s3cret", Sync: true}
	ca := base
	ca.Priority, ca.DelayMS = 150, 200
	ca.Interfaces, ca.Peers = []string{"fa0" + sfx, "fa1" + sfx}, []string{"10.0.0.2", "10.0.1.2"}
	cb := base
	cb.Priority, cb.Table, cb.BulkDelayMS = 100, 3000, 1500
	cb.Interfaces, cb.Peers = []string{"fb0" + sfx, "fb1" + sfx}, []string{"10.0.0.1", "10.0.1.1"}

	b := startNode(t, "B", nsB, cb)
	b.waitLine(t, "ROLE active", time.Time{}, 5*time.Second)
	back := time.Now()
	a := startNode(t, "A", nsA, ca)
	got := a.waitLine(t, "ROLE active", back, 10*time.Second)
	if d := got.Sub(back); d < 1500*time.Millisecond {
		t.Fatalf("A took over after %v, before the bulk copy (sent after 1.5 s)", d)
	}
	if n := a.count("SYNCCOUNT 3000", back); n != 1 {
		t.Fatal("A became active without the 3000 synced connections")
	}
	b.waitLine(t, "ROLE backup", back, 2*time.Second)
	t.Logf("failback with sync: %v after restart (bulk copy of 3000 entries released after 1.5 s)", got.Sub(back))
}

// TestNetnsPairIPv6: the same election and takeover with IPv6 heartbeats
// (VRRPv3 to ff02::12 from link-local addresses, control messages over
// link-local UDP).
func TestNetnsPairIPv6(t *testing.T) {
	needRoot(t)
	sfx := suffix()
	nsA := newNS(t, "ulvsfoA"+sfx)
	nsB := newNS(t, "ulvsfoB"+sfx)
	// No automatic link-local addresses: fe80::a and fe80::b (no DAD) are
	// the only ones, so they are the VRRP sources the peers expect.
	for _, ns := range []string{nsA, nsB} {
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1")
	}
	link(t, nsA, "fa0"+sfx, "10.0.0.1/24", nsB, "fb0"+sfx, "10.0.0.2/24")
	sh(t, "ip", "-n", nsA, "-6", "addr", "add", "fe80::a/64", "dev", "fa0"+sfx, "nodad")
	sh(t, "ip", "-n", nsB, "-6", "addr", "add", "fe80::b/64", "dev", "fb0"+sfx, "nodad")
	base := helperConfig{VRID: 60, IntervalMS: 200, VIPs: []string{"2001:db8::100"}, Preempt: true, Secret: "s3cret6"}
	ca := base
	ca.Priority = 150
	ca.Interfaces, ca.Peers = []string{"fa0" + sfx}, []string{"fe80::b"}
	cb := base
	cb.Priority = 100
	cb.Interfaces, cb.Peers = []string{"fb0" + sfx}, []string{"fe80::a"}
	a := startNode(t, "A", nsA, ca)
	b := startNode(t, "B", nsB, cb)
	a.waitLine(t, "ROLE active", time.Time{}, 5*time.Second)
	time.Sleep(time.Second)
	steady := time.Now()
	time.Sleep(time.Second)
	if b.lastRole() != "backup" || b.count("ROLE active", steady) != 0 {
		t.Fatal("B not a steady backup over IPv6 heartbeats")
	}
	killAt := time.Now()
	a.kill()
	took := b.waitLine(t, "ROLE active", killAt, 3*time.Second).Sub(killAt)
	t.Logf("IPv6 takeover after kill -9: %v (200 ms adverts)", took)
}
