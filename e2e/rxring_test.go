package e2e

import (
	"strings"
	"testing"

	"github.com/ulvs/ulvs/lab"
)

// TestNATRxRingV2 runs NAT traffic through a director whose receive rings
// are TPACKET_V2 ([director] rx_ring = "v2"): new connections spread over
// the real servers by rr, and a large transfer arrives intact.
func TestNATRxRingV2(t *testing.T) {
	t.Parallel()
	e := newEnvRing(t, lab.NAT, "v2")
	web := e.service(t, "tcp", false, portRR, "rr", nil, noCleanup)
	e.waitHTTP(t, "client1", url(web, "/"))
	got := split(t, e.curlMany(t, "client1", url(web, "/"), 30))
	if len(got) != 3 {
		t.Errorf("30 new connections with rr reached %d real servers (%v), want all 3", len(got), got)
	}
	for s, n := range got {
		if n != 10 {
			t.Errorf("rr: %s got %d of 30 connections, want 10 (%v)", s, n, got)
		}
	}
	e.testDownload(t, web)
	out, _ := e.ulvsd.Output()
	if !strings.Contains(string(out), `"rx_ring":"v2"`) {
		t.Errorf("ulvsd's start line does not report rx_ring v2:\n%s", tail(out, 2000))
	}
}
