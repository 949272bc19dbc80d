package main

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
)

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "usage"},
		{[]string{"nat"}, 2, "unknown command"},
		{[]string{"dr"}, 2, "--vip is required"},
		{[]string{"dr", "--vip", "10.0.0.300"}, 2, "not an IP address"},
		{[]string{"dr", "--vip", "10.0.0.0/24"}, 2, "not an IP address"},
		{[]string{"tun", "--vip", "127.0.0.1", "--state-dir", t.TempDir()}, 1, "bad VIP"},
	} {
		var errb bytes.Buffer
		if code := run(tc.args, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("ulvs-realserver %q: exit %d, %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.msg)
		}
	}
}

func hasLoAddr(t *testing.T, l *lab.Lab, host string, a netip.Addr) bool {
	t.Helper()
	found := false
	if err := l.Do(host, func() error {
		ifi, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		as, err := ifi.Addrs()
		for _, x := range as {
			if netip.MustParsePrefix(x.String()).Addr() == a {
				found = true
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

func TestDRCommand(t *testing.T) {
	labtest.RequireRoot(t)
	l := labtest.New(t, lab.Spec{Mode: lab.DR, Servers: 1, NoRealServerSetup: true, NoServers: true})
	dir := t.TempDir()
	vip := l.Plan.VIP4.String()
	var errb bytes.Buffer
	for _, args := range [][]string{
		{"dr", "--vip", vip + "/32", "--state-dir", dir},
		{"dr", "--vip", vip, "--state-dir", dir},
	} {
		var code int
		l.Do("rs1", func() error { code = run(args, &errb); return nil })
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, errb.String())
		}
	}
	if !hasLoAddr(t, l, "rs1", l.Plan.VIP4) {
		t.Fatal("VIP not on lo after dr")
	}
	var code int
	l.Do("rs1", func() error { code = run([]string{"dr", "--undo", "--state-dir", dir}, &errb); return nil })
	if code != 0 {
		t.Fatalf("dr --undo: exit %d: %s", code, errb.String())
	}
	if hasLoAddr(t, l, "rs1", l.Plan.VIP4) {
		t.Fatal("VIP still on lo after dr --undo")
	}
}

// TestTUNCommand runs the real binary in a real server's namespace, sends
// it IP-in-IP from the director and stops it with SIGTERM.
func TestTUNCommand(t *testing.T) {
	labtest.RequireRoot(t)
	l := labtest.New(t, lab.Spec{Mode: lab.TUN, Servers: 1, NoRealServerSetup: true})
	bin := filepath.Join(t.TempDir(), "ulvs-realserver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	state := t.TempDir()
	p, err := l.Start("rs1", bin, "tun", "--vip", l.Plan.VIP4.String(), "--state-dir", state)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the device.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var up bool
		l.Do("rs1", func() error {
			ifi, err := net.InterfaceByName("ulvstun0")
			up = err == nil && ifi.Flags&net.FlagUp != 0
			if up {
				as, _ := ifi.Addrs()
				up = len(as) > 0
			}
			return nil
		})
		if up {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(p.Log)
			t.Fatalf("ulvstun0 not up after 5s; log:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}

	client, _ := l.Plan.Host("client1")
	rs, _ := l.Plan.Host("rs1")
	var c *net.UDPConn
	if err := l.Do("client1", func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: client.Addr4().AsSlice(), Port: 40001})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var fd int
	if err := l.Do("dir1", func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 4)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// Inner IPv4/UDP, client:40001 -> VIP:echo, UDP checksum 0.
	payload := "via the ulvs-realserver binary"
	b := make([]byte, 28+len(payload))
	b[0], b[8], b[9] = 0x45, 64, 17
	b[2], b[3] = byte(len(b)>>8), byte(len(b))
	s, d := client.Addr4().As4(), l.Plan.VIP4.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	b[20], b[21], b[23] = 0x9c, 0x41, byte(l.Plan.UDPEchoPort)
	b[25] = byte(8 + len(payload))
	copy(b[28:], payload)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	sum = sum>>16 + sum&0xffff
	sum += sum >> 16
	b[10], b[11] = ^byte(sum>>8), ^byte(sum)
	// UDP may be lost (first-packet ARP resolution on a loaded machine):
	// send again, a bounded number of times, until the echo comes back.
	buf := make([]byte, 1500)
	var (
		n    int
		from netip.AddrPort
	)
	err = errors.New("no echo")
	for try := 0; try < 5 && err != nil; try++ {
		if err := unix.Sendto(fd, b, 0, &unix.SockaddrInet4{Addr: rs.Addr4().As4()}); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err = c.ReadFromUDPAddrPort(buf)
	}
	if err != nil || string(buf[:n]) != payload || from.Addr().Unmap() != l.Plan.VIP4 {
		log, _ := os.ReadFile(p.Log)
		t.Fatalf("echo: %q from %v, %v; log:\n%s", buf[:n], from, err, log)
	}

	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		log, _ := os.ReadFile(p.Log)
		t.Fatalf("exit after SIGTERM: %v; log:\n%s", err, log)
	}
	log, _ := os.ReadFile(p.Log)
	if !strings.Contains(string(log), "injected=1") {
		t.Errorf("final log line lacks injected=1:\n%s", log)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("state left after SIGTERM: %v", ents)
	}

	// A crash (SIGKILL) leaves the sysctls changed and the record behind:
	// a new run refuses to start, and --undo restores them.
	arpIgnore := func() string {
		var v string
		l.Do("rs1", func() error {
			b, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/arp_ignore")
			v = strings.TrimSpace(string(b))
			return err
		})
		return v
	}
	if got := arpIgnore(); got != "0" {
		t.Fatalf("arp_ignore = %s after a clean stop, want 0", got)
	}
	p, err = l.Start("rs1", bin, "tun", "--vip", l.Plan.VIP4.String(), "--state-dir", state)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); arpIgnore() != "1"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("second run did not set arp_ignore")
		}
	}
	time.Sleep(100 * time.Millisecond) // let it finish its set-up
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.Wait()
	var code int
	var errb bytes.Buffer
	l.Do("rs1", func() error {
		code = run([]string{"tun", "--vip", l.Plan.VIP4.String(), "--state-dir", state}, &errb)
		return nil
	})
	if code != 1 || !strings.Contains(errb.String(), "--undo") {
		t.Errorf("tun after a crash: exit %d, %q; want a refusal that mentions --undo", code, errb.String())
	}
	if got := arpIgnore(); got != "1" {
		t.Fatalf("arp_ignore = %s after a crash, want 1 (left by the crashed run)", got)
	}
	l.Do("rs1", func() error {
		code = run([]string{"tun", "--undo", "--state-dir", state}, &errb)
		return nil
	})
	if code != 0 {
		t.Fatalf("tun --undo: exit %d: %s", code, errb.String())
	}
	if got := arpIgnore(); got != "0" {
		t.Errorf("arp_ignore = %s after tun --undo, want 0", got)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("state left after --undo: %v", ents)
	}
}
