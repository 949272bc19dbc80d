package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
)

// [director] xdp = "native" in each forwarding method: requests through the
// VIP reach every real server by the fast lane, and the real servers'
// answers to the director's own health checks still reach the director's
// kernel (the lane must not take traffic to the director's addresses), so
// every server is up by its checks.
func TestXDPLaneLab(t *testing.T) {
	for _, mode := range []lab.Mode{lab.NAT, lab.DR, lab.TUN} {
		t.Run(string(mode), func(t *testing.T) { testXDPLane(t, mode) })
	}
}

func testXDPLane(t *testing.T, mode lab.Mode) {
	labtest.RequireRoot(t)
	l := labtest.New(t, lab.Spec{Mode: mode, Servers: 2})
	p := &l.Plan
	tmp := t.TempDir()
	sock := filepath.Join(tmp, "ulvsd.sock")
	cfgPath := filepath.Join(tmp, "ulvsd.toml")
	cfgText := l.DirectorConfig(lab.DirectorOptions{ControlSocket: sock, Scheduler: "rr", Extra: "xdp = \"native\"\n"}) + `
[virtual_server.health_check]
type = "http"
path = "/"
interval = "500ms"
timeout = "400ms"
rise = 1
fall = 2
`
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	ulvsd := startULVSD(t, l, "dir1", cfgPath)
	cli := control.NewClient(sock)

	get := httpGetter(l, "client1", "http://"+netip.AddrPortFrom(p.VIP4, uint16(p.HTTPPort)).String()+"/", 2*time.Second)
	waitAnswer(t, get, ulvsd)
	if out, _ := ulvsd.Output(); !strings.Contains(string(out), `"xdp":"native"`) {
		t.Errorf("ulvsd's start line does not report xdp native:\n%s", out)
	}
	// Three probes of each check, none failed.
	deadline := time.Now().Add(15 * time.Second)
	for {
		hs, err := cli.Health()
		done := err == nil && len(hs) == len(p.RealServers())
		for _, h := range hs {
			if h.Failed > 0 || !h.Up {
				t.Fatalf("health check %+v failed: the director's own traffic from the real servers must reach its kernel", h)
			}
			done = done && h.Checks >= 3
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health checks did not complete 3 probes each within 15 s: %+v, %v", hs, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		b, err := get()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		seen[b]++
	}
	if len(seen) != 2 || seen["rs1"] != 10 || seen["rs2"] != 10 {
		t.Errorf("20 new connections with rr: %v, want 10 on each of rs1 and rs2", seen)
	}
	// The fast lane carried the traffic: frames read that did not pass
	// the AF_PACKET rings' filter.
	var st struct {
		Engine map[string]uint64 `json:"engine"`
	}
	if err := cli.Status(&st); err != nil {
		t.Fatal(err)
	}
	rx, ring := st.Engine["RxFrames"], st.Engine["KernelPackets"]
	if rx <= ring || rx-ring < 40 {
		t.Errorf("engine read %d frames, %d of them through the AF_PACKET rings: want at least 40 through the XDP lane", rx, ring)
	}
	t.Logf("%s: %d frames read, %d through the AF_PACKET rings; %v", mode, rx, ring, fmt.Sprint(seen))
}
