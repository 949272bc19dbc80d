package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
)

// TestRegressionUDPFlowSweep guards against a data-path bug (conntrack),
// fixed: it was
// a few seconds after one UDP flow went through a service, ulvsd's
// connection-table sweep spins forever holding a shard lock, so every
// table change that flushes connections (ulvsadm -D, -d) hangs, and new
// flows that hash to that shard stall.
//
// Where: conntrack/sweep.go sweepShard refiles an entry whose expiry is in
// the future with wheelAdd (sweep.go:47). A new connection is filed under
// StateNone's 2 s expiry (conn.go, Connect); by the time its slot comes
// round, the packet path has moved its expiry to UDP's 300 s, beyond the
// wheel's 256 s horizon. wheelAdd clamps it to wheelNext+wheelSize-1, and
// since sweepShard has already advanced wheelNext past the slot it is
// emptying, that is the very same wheel index: the inner loop pops and
// re-files the same entry forever. A goroutine dump of the stuck ulvsd
// shows housekeep in sweepShard -> wheelAdd, and DeleteService ->
// FlushDest blocked on the shard mutex.
func TestRegressionUDPFlowSweep(t *testing.T) {
	e := newEnv(t, lab.NAT)
	e.admin(t, "--set", "900", "0", "300") // IPVS's default timeouts (newEnv lowers them)
	echo := e.service(t, "udp", false, e.l.Plan.UDPEchoPort, "rr", nil, noCleanup)
	e.waitUDP(t, "client1", echo)
	// Past the 2 s initial expiry and a few sweeps.
	time.Sleep(4 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.adm, "--socket", e.sock, "-D", "-u", echo.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("ulvsadm -D -u %s (which flushes its connections) 4 s after one UDP flow: %v (%s); ulvsd's connection sweep is stuck", echo,
			err, strings.TrimSpace(string(out)))
	}
}

// TestRegressionLabBridgeNetfilter guards against a lab bug, fixed: the lab's bridges (in the
// switch namespace) run bridged traffic through netfilter, because
// br_netfilter's net.bridge.bridge-nf-call-{iptables,ip6tables,arptables}
// default to 1 in every new namespace when the module is loaded (it is on
// this machine). The bridge then validates IP headers and silently drops
// malformed frames (bad IPv4 checksum, length or version; bad IPv6 payload
// length) before they reach the director, so tests of ulvs's own drop
// counters see nothing, and every bridged packet costs netfilter work (and
// conntrack, if loaded) in the switch namespace. Where: lab.buildSwitch
// should write those three sysctls to 0 in the switch namespace.
func TestRegressionLabBridgeNetfilter(t *testing.T) {
	l := labtest.New(t, lab.Spec{Mode: lab.DR, Servers: 1, NoServers: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := l.Exec(ctx, "switch", "sh", "-c",
		`for k in iptables ip6tables arptables; do f=/proc/sys/net/bridge/bridge-nf-call-$k; [ -e $f ] && echo "$k=$(cat $f)"; done; true`).CombinedOutput()
	if err != nil {
		t.Fatalf("reading the switch's br_netfilter sysctls: %v (%s)", err, out)
	}
	for _, line := range strings.Fields(string(out)) {
		if strings.HasSuffix(line, "=1") {
			t.Errorf("lab switch namespace: bridge-nf-call-%s: bridged frames go through netfilter, which drops malformed IP before the director sees it", line)
		}
	}
}

// TestRegressionNATBadL4Checksum guards against a gap, closed: against the issue ("bad
// checksums ... are counted and dropped") and against IPVS: in NAT mode
// IPVS verifies the TCP and UDP checksum before rewriting
// (tcp_dnat_handler / udp_dnat_handler call the csum_check), and drops a
// bad segment. ulvs does not verify L4 checksums at all (forwarder/pkt
// parses only the IPv4 header checksum): it schedules the segment, creates
// a connection entry for it, rewrites it incrementally (so it stays bad)
// and forwards it; only the real server's kernel drops it, and no ulvs
// counter says so. Where: the NAT rewrite path (forwarder/worker.go, the
// DNAT of a new or tracked flow) could verify the L4 checksum of segments
// from clients (they are not offloaded on ingress) and count a reason such
// as bad_tcp_checksum / bad_udp_checksum.
func TestRegressionNATBadL4Checksum(t *testing.T) {
	e := newEnv(t, lab.NAT)
	web := e.service(t, "tcp", false, portRR, "rr", nil, noCleanup)
	name := e.service(t, "udp", false, e.l.Plan.UDPNamePort, "rr", nil, noCleanup)
	e.waitHTTP(t, "client1", url(web, "/"))
	rejected, dropped := e.testBadL4Checksum(t, web, name)
	if dropped != 10 {
		t.Errorf("NAT: of 5 TCP and 5 UDP segments with bad checksums, ulvsd dropped (and counted) %d; %d were forwarded, still bad, for the real servers' kernels to reject", dropped, rejected)
	}
}

// TestRegressionIdleWorkerSleeps guards against a data-path bug (seen on an
// earlier engine; the engine that landed sleeps in poll when idle) (forwarder/engine, the
// AF_PACKET engine): with no traffic at all, a ulvsd worker does not sleep
// in poll(2) for its 100 ms poll timeout but returns from ppoll at once,
// about a million times a second (the engine's RxPolls counter), which
// costs 60-70% of a CPU on this machine while idle (perf: ppoll ->
// packet_poll / datagram_poll_queue from afpQueue.Read). Where:
// forwarder/engine/afpacket_linux.go afpQueue.Read: ppoll reports the ring
// sockets ready (check revents: likely POLLERR from a pending socket error
// or error-queue entry, or a readiness the ring drain does not consume), so
// the loop never blocks.
func TestRegressionIdleWorkerSleeps(t *testing.T) {
	e := newEnv(t, lab.DR)
	polls := func() float64 {
		v, _ := e.status(t).Engine["RxPolls"].(float64)
		return v
	}
	time.Sleep(500 * time.Millisecond)
	p0 := polls()
	time.Sleep(time.Second)
	// One worker, one ring, a 100 ms poll timeout: about 10 polls a second
	// when idle. 1000 leaves two orders of magnitude of slack.
	if n := polls() - p0; n > 1000 {
		t.Errorf("idle ulvsd (no traffic, no service): its worker polled %.0f times in 1 s; want it asleep in poll(2) (about 10)", n)
	}
}
