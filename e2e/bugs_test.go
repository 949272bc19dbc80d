package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/lab"
)

// TestBugUDPFlowStallsConntrackSweep shows a data-path bug (conntrack):
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
func TestBugUDPFlowStallsConntrackSweep(t *testing.T) {
	e := newEnv(t, lab.NAT)
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
