package lab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// get fetches http://addr:port/ from a host and returns the body.
func get(t *testing.T, l *lab.Lab, host string, addr netip.Addr) (string, error) {
	t.Helper()
	c := l.HTTPClient(host, 3*time.Second)
	resp, err := c.Get("http://" + netip.AddrPortFrom(addr, uint16(l.Plan.HTTPPort)).String() + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if got := resp.Header.Get("X-Real-Server"); got+"\n" != string(b) {
		t.Errorf("header X-Real-Server %q disagrees with body %q", got, b)
	}
	return string(b), err
}

func mustGet(t *testing.T, l *lab.Lab, host string, addr netip.Addr, want string) {
	t.Helper()
	body, err := get(t, l, host, addr)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", addr, host, err)
	}
	if body != want+"\n" {
		t.Fatalf("GET %s from %s: body %q, want %q", addr, host, body, want+"\n")
	}
}

func mustPing(t *testing.T, l *lab.Lab, host string, addr netip.Addr) {
	t.Helper()
	if err := l.Ping(ctxT(t, 3*time.Second), host, addr); err != nil {
		t.Fatal(err)
	}
}

func mustNotPing(t *testing.T, l *lab.Lab, host string, addr netip.Addr) {
	t.Helper()
	if err := l.Ping(ctxT(t, 500*time.Millisecond), host, addr); err == nil {
		t.Fatalf("%s reached %s, which the topology must not allow", host, addr)
	}
}

// assertGone checks that Down left no namespace, state or process behind.
func assertGone(t *testing.T, l *lab.Lab, pids []int, stateDir string) {
	t.Helper()
	for _, ns := range l.Plan.Namespaces() {
		if _, err := os.Stat(lab.NetnsPath(ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists after Down (%v)", ns, err)
		}
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Down (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(lab.StatePath(stateDir, l.Plan.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file still exists after Down")
	}
}

// threadNetns returns the network namespaces of this process's threads.
func threadNetns(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/task/" + e.Name() + "/ns/net"); err == nil {
			m[l] = true
		}
	}
	return m
}

func TestNAT(t *testing.T) {
	labtest.RequireRoot(t)
	before := threadNetns(t)
	stateDir := t.TempDir()
	l := labtest.New(t, lab.Spec{Mode: lab.NAT, Servers: 2, IPv6: true, StateDir: stateDir})
	p := &l.Plan
	client, _ := p.Host("client1")
	dir, _ := p.Host("dir1")
	pub, _ := dir.Iface("public")
	priv, _ := dir.Iface("private")
	if priv.Addr4.Addr() != p.Gateway4 || priv.Addr6.Addr() != p.Gateway6 {
		t.Fatalf("director private %v/%v is not the gateway %v/%v", priv.Addr4, priv.Addr6, p.Gateway4, p.Gateway6)
	}

	mustPing(t, l, "client1", pub.Addr4.Addr())
	mustPing(t, l, "client1", pub.Addr6.Addr())
	mustPing(t, l, "dir1", client.Addr4())
	for _, rs := range p.RealServers() {
		mustPing(t, l, rs.Name, p.Gateway4)
		mustPing(t, l, rs.Name, p.Gateway6)
		mustGet(t, l, "dir1", rs.Addr4(), rs.Name)
		mustGet(t, l, "dir1", rs.Addr6(), rs.Name)
		// The director does not forward: the client cannot reach a real
		// server by its own address (only ulvs, through the VIP, will).
		mustNotPing(t, l, "client1", rs.Addr4())
	}
	// Nobody holds the VIP.
	mustNotPing(t, l, "client1", p.VIP4)
	for _, host := range []string{"dir1", "rs1", "client1"} {
		out, err := l.Exec(ctxT(t, 5*time.Second), host, "ip", "-o", "addr").CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr in %s: %v: %s", host, err, out)
		}
		if strings.Contains(string(out), p.VIP4.String()+"/") {
			t.Errorf("%s holds the VIP %s as a kernel address:\n%s", host, p.VIP4, out)
		}
	}
	for _, key := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if v, err := l.ReadSysctl("dir1", key); err != nil || v != "0" {
			t.Errorf("director %s = %q (%v), want 0", key, v, err)
		}
		out, err := l.Exec(ctxT(t, 5*time.Second), "dir1", "sysctl", "-n", key).Output()
		if err != nil || strings.TrimSpace(string(out)) != "0" {
			t.Errorf("director %s = %q (%v) seen by sysctl(8), want 0", key, out, err)
		}
	}
	if err := l.Sysctl("client1", "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if v, _ := l.ReadSysctl("client1", "net.ipv4.ip_forward"); v != "1" {
		t.Errorf("Sysctl did not set client1's ip_forward: %q", v)
	}
	if v, _ := l.ReadSysctl("dir1", "net.ipv4.ip_forward"); v != "0" {
		t.Errorf("Sysctl on client1 changed dir1's ip_forward: %q", v)
	}
	// Offloads are off on the lab's veths.
	out, err := l.Exec(ctxT(t, 5*time.Second), "dir1", "ethtool", "-k", "eth0").Output()
	if err == nil {
		for _, f := range []string{"tx-checksumming: off", "tcp-segmentation-offload: off", "generic-segmentation-offload: off", "generic-receive-offload: off"} {
			if !strings.Contains(string(out), f) {
				t.Errorf("dir1 eth0: want %q in ethtool -k:\n%s", f, out)
			}
		}
	} else {
		t.Logf("ethtool not runnable (%v); offload check skipped", err)
	}

	var pids []int
	for _, pr := range l.Processes() {
		pids = append(pids, pr.PID)
	}
	if len(pids) != 2 {
		t.Fatalf("%d processes, want 2 built-in servers", len(pids))
	}
	if err := l.Down(); err != nil {
		t.Fatalf("down: %v", err)
	}
	assertGone(t, l, pids, stateDir)
	if err := l.Down(); err != nil {
		t.Fatalf("second down: %v", err)
	}
	// Every thread that visited a lab namespace came back.
	if after := threadNetns(t); len(after) != 1 || len(before) != 1 || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("threads' network namespaces: before %v, after %v", before, after)
	}
}

func TestTwoDirectorsTwoClients(t *testing.T) {
	labtest.RequireRoot(t)
	l := labtest.New(t, lab.Spec{Mode: lab.NAT, Servers: 1, Directors: 2, Clients: 2, NoServers: true})
	p := &l.Plan
	rs, _ := p.Host("rs1")
	for _, d := range p.Directors() {
		pub, _ := d.Iface("public")
		priv, _ := d.Iface("private")
		mustPing(t, l, "client2", pub.Addr4.Addr())
		mustPing(t, l, "client1", pub.Addr4.Addr())
		mustPing(t, l, "rs1", priv.Addr4.Addr())
		mustPing(t, l, d.Name, rs.Addr4())
		if priv.Addr4.Addr() == p.Gateway4 {
			t.Errorf("%s holds the floating gateway %s", d.Name, p.Gateway4)
		}
	}
	mustPing(t, l, "client1", p.Clients()[1].Addr4())
	// The floating gateway is nobody's until failover takes it.
	mustNotPing(t, l, "rs1", p.Gateway4)
	if len(l.Processes()) != 0 {
		t.Errorf("NoServers: %d processes started", len(l.Processes()))
	}
}

func TestDownByNameWithoutState(t *testing.T) {
	labtest.RequireRoot(t)
	stateDir := t.TempDir()
	name := labtest.UniqueName()
	l, err := lab.Up(ctxT(t, 30*time.Second), lab.Spec{Name: name, Mode: lab.DR, Servers: 2, StateDir: stateDir, NoServers: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	// A lab whose name extends this one's must survive.
	other := labtest.New(t, lab.Spec{Name: name + "-x", Mode: lab.DR, Servers: 1, NoServers: true})
	if err := os.Remove(lab.StatePath(stateDir, name)); err != nil {
		t.Fatal(err)
	}
	if err := lab.DownByName(stateDir, name); err != nil {
		t.Fatalf("DownByName without a state file: %v", err)
	}
	assertGone(t, l, nil, stateDir)
	for _, ns := range other.Plan.Namespaces() {
		if _, err := os.Stat(lab.NetnsPath(ns)); err != nil {
			t.Errorf("namespace %s of lab %s was deleted too: %v", ns, other.Plan.Name, err)
		}
	}
	if err := lab.DownByName(stateDir, name); !errors.Is(err, lab.ErrNotFound) {
		t.Errorf("DownByName of a gone lab: %v, want ErrNotFound", err)
	}
	if err := l.Exec(context.Background(), "nohost", "true").Run(); !errors.Is(err, lab.ErrNoHost) {
		t.Errorf("Exec on an unknown host: %v, want ErrNoHost", err)
	}
}

// assertDirectorSilent sends TCP and UDP to the VIP through the director's
// MAC and checks that its kernel neither answers, resets nor reports an
// error: with ip_forward=0 and no VIP address, VIP traffic is ulvs's alone.
func assertDirectorSilent(t *testing.T, l *lab.Lab, dirName string) {
	t.Helper()
	dir, _ := l.Plan.Host(dirName)
	for _, v := range l.Plan.VIPs() {
		out, err := l.Exec(ctxT(t, 5*time.Second), "client1", "ip", "neigh", "replace", v.String(), "lladdr", dir.Ifaces[0].MAC, "dev", "eth0", "nud", "permanent").CombinedOutput()
		if err != nil {
			t.Fatalf("ip neigh: %v: %s", err, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		_, err = l.Dialer("client1")(ctx, "tcp", netip.AddrPortFrom(v, 80).String())
		cancel()
		var ne net.Error
		if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
			t.Errorf("TCP to %s via %s: %v, want a timeout (no RST, no ICMP from the director's kernel)", v, dirName, err)
		}
		c, err := l.Dialer("client1")(context.Background(), "udp", netip.AddrPortFrom(v, 7).String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err = c.Read(make([]byte, 10))
		c.Close()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("UDP to %s via %s: %v, want a timeout (no ICMP error from the director's kernel)", v, dirName, err)
		}
		out, err = l.Exec(ctxT(t, 5*time.Second), "client1", "ip", "neigh", "del", v.String(), "dev", "eth0").CombinedOutput()
		if err != nil {
			t.Fatalf("ip neigh del: %v: %s", err, out)
		}
	}
}

func TestDirectorKernelSilent(t *testing.T) {
	labtest.RequireRoot(t)
	for _, m := range []lab.Mode{lab.NAT, lab.DR} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			l := labtest.New(t, lab.Spec{Mode: m, Servers: 1, IPv6: true, NoServers: true})
			assertDirectorSilent(t, l, "dir1")
		})
	}
}

// TestSwitchIsPlain checks that bridged frames skip netfilter in the
// switch namespace (br_netfilter would validate and drop malformed IP
// before the director sees it).
func TestSwitchIsPlain(t *testing.T) {
	l := labtest.New(t, lab.Spec{Mode: lab.DR, Servers: 1, NoServers: true})
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		t.Skip("br_netfilter is not loaded on this kernel: nothing to check")
	}
	for _, k := range []string{"iptables", "ip6tables", "arptables"} {
		out, err := l.Exec(context.Background(), "switch", "cat", "/proc/sys/net/bridge/bridge-nf-call-"+k).Output()
		if err != nil {
			t.Fatalf("reading the switch's bridge-nf-call-%s: %v", k, err)
		}
		v := strings.TrimSpace(string(out))
		if v != "0" {
			t.Errorf("switch: net.bridge.bridge-nf-call-%s = %s, want 0", k, v)
		}
	}
}
