package engine

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// needRoot skips a privileged test when not root, unless CI=true, where it
// must run (and so fails).
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		t.Skip("needs root (network namespaces, AF_PACKET); run as root or with CI=true")
	}
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testNS is a network namespace created for one test, deleted in Cleanup.
type testNS struct {
	name string
	t    testing.TB
}

// newNS creates a namespace with IPv6 off (no autoconfiguration chatter on
// the test links) and loopback up.
func newNS(t testing.TB) *testNS {
	t.Helper()
	needRoot(t)
	name := fmt.Sprintf("ulvse%d%04x", os.Getpid()%100000, rand.IntN(1<<16))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ns := &testNS{name: name, t: t}
	ns.exec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	ns.exec("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
	ns.exec("ip", "link", "set", "lo", "up")
	return ns
}

func (ns *testNS) exec(args ...string) string {
	ns.t.Helper()
	return run(ns.t, append([]string{"ip", "netns", "exec", ns.name}, args...)...)
}

// veth creates the pair a<->b in ns, up, offloads off.
func (ns *testNS) veth(a, b string) {
	ns.t.Helper()
	ns.exec("ip", "link", "add", a, "type", "veth", "peer", "name", b)
	for _, d := range []string{a, b} {
		ns.exec("ethtool", "-K", d, "tx", "off", "tso", "off", "gso", "off", "gro", "off")
		ns.exec("ip", "link", "set", d, "up")
	}
}

// do runs fn on an OS thread switched into ns. Sockets opened by fn stay in
// ns after it returns.
func (ns *testNS) do(fn func()) {
	ns.t.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		ns.t.Fatal(err)
	}
	defer unix.Close(orig)
	target, err := unix.Open("/run/netns/"+ns.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		ns.t.Fatal(err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		ns.t.Fatal(err)
	}
	defer func() {
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			ns.t.Errorf("setns back: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// rawSock is a plain AF_PACKET socket on one interface: the test's traffic
// generator and capture.
type rawSock struct {
	fd      int
	ifindex int
}

func (ns *testNS) rawSock(dev string) *rawSock {
	ns.t.Helper()
	var s *rawSock
	ns.do(func() {
		ifi, err := netInterface(dev)
		if err != nil {
			ns.t.Fatal(err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			ns.t.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi}); err != nil {
			ns.t.Fatal(err)
		}
		tv := unix.Timeval{Usec: 200000}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
		s = &rawSock{fd: fd, ifindex: ifi}
	})
	ns.t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

func (s *rawSock) send(t testing.TB, frame []byte) {
	t.Helper()
	if _, err := unix.Write(s.fd, frame); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// recv returns the next frame received (not sent) on the socket's
// interface, or nil after the receive timeout.
func (s *rawSock) recv(buf []byte) []byte {
	for {
		n, from, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			return nil
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return buf[:n]
	}
}

func netInterface(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}
