package healthcheck

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// needRoot skips when not root, and fails under CI=true.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to create a network namespace (CI=true: required)")
		}
		t.Skip("needs root to create a network namespace")
	}
}

// newNetns creates a network namespace with lo up, set up by the given ip
// and nft commands, deleted on cleanup.
func newNetns(t *testing.T, ipCmds []string, nftRules string) string {
	t.Helper()
	needRoot(t)
	need(t, "ip")
	name := fmt.Sprintf("ulvshc%d%04x", os.Getpid()%100000, rand.Uint32()&0xffff)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run("ip", "-n", name, "link", "set", "lo", "up")
	for _, c := range ipCmds {
		run(append([]string{"ip", "-n", name}, strings.Fields(c)...)...)
	}
	if nftRules != "" {
		need(t, "nft")
		cmd := exec.Command("ip", "netns", "exec", name, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(nftRules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v\n%s", err, out)
		}
	}
	return name
}

// probeInNetns runs one probe from inside the namespace: the goroutine's
// thread joins it, so the probe's sockets are created there. (Not for http,
// https and feedback: net/http dials from goroutines of its own.) The thread stays
// locked and is discarded when the goroutine ends.
func probeInNetns(t *testing.T, ns string, s Spec) Result {
	t.Helper()
	type out struct {
		r   Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- out{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- out{err: err}
			return
		}
		ch <- out{r: Probe(context.Background(), s)}
	}()
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	return o.r
}

// TestCheckFailuresInNetns: a server whose SYNs are dropped (the tcp
// check times out), an unreachable network and a prohibited route, which
// loopback alone cannot show.
func TestCheckFailuresInNetns(t *testing.T) {
	ns := newNetns(t, []string{
		"route add unreachable 198.51.100.0/24",
	}, `table inet ulvs_hc_test {
  chain out {
    type filter hook output priority 0; policy accept;
    tcp dport 9 drop
    udp dport 10 drop
  }
  chain in {
    type filter hook input priority 0; policy accept;
    udp dport 11 drop
  }
}
`)
	for _, tc := range []struct {
		name   string
		addr   string
		cfg    Config
		reason string
	}{
		{"SYN dropped", "127.0.0.1:9", Config{Type: TypeTCP}, "timeout after 300ms"},
		{"send_expect SYN dropped", "127.0.0.1:9", Config{Type: TypeSendExpect, Expect: "x"}, "timeout after 300ms"},
		{"unreachable route", "198.51.100.7:80", Config{Type: TypeTCP}, "host unreachable|network unreachable"},
		{"udp dropped on the way in", "127.0.0.1:11", Config{Type: TypeUDP, Send: "x"}, "timeout after 300ms: no reply"},
		{"udp refused by the local firewall", "127.0.0.1:10", Config{Type: TypeUDP, Send: "x"}, "operation not permitted"},
		{"dns dropped", "127.0.0.1:11", Config{Type: TypeDNS, QueryName: "x.test"}, "timeout after 300ms: no DNS reply"},
		{"no route", "203.0.113.1:80", Config{Type: TypeTCP}, "network unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Timeout = probeTimeout
			r := probeInNetns(t, ns, Spec{ID: TargetID{"s", netip.MustParseAddrPort(tc.addr)}, Config: tc.cfg})
			if r.OK || !strings.Contains("|"+tc.reason+"|", "|"+r.Reason+"|") {
				t.Fatalf("got ok=%v %q, want failure %q", r.OK, r.Reason, tc.reason)
			}
		})
	}
}
