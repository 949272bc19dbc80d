package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/healthcheck"
	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
)

// The health check of the end-to-end test, and the bounds it implies.
const (
	hcInterval = time.Second
	hcTimeout  = 500 * time.Millisecond
	hcRise     = 2
	hcFall     = 2
	// margin is added to both bounds for this shared, loaded 2-core
	// machine: process start-up of nginx, scheduling delays of the probe
	// goroutines and of the request loop. It is reported with the figures.
	margin = 500 * time.Millisecond
)

type result struct {
	start, end time.Time
	body       string // "rs1\n"... on success
	err        error
}

// TestHealthEndToEnd is issue 6's figure: three nginx real servers behind
// ulvsd (NAT) with an http check; a bounded request loop from the client,
// one new connection per request, ~20 requests/s. nginx on rs2 is stopped,
// then started again. It measures the time from the stop to the last new
// connection sent to rs2 (SYNs captured on rs2), the failed requests (none
// may fail that was not sent to rs2), and the time from the restart to
// rs2's first answer.
func TestHealthEndToEnd(t *testing.T) {
	labtest.RequireRoot(t)
	l := labtest.New(t, lab.Spec{Mode: lab.NAT, Servers: 3, NoServers: true})
	p := &l.Plan
	rs := p.RealServers()
	if len(rs) != 3 {
		t.Fatalf("lab has %d real servers", len(rs))
	}
	ngx := map[string]*nginx{}
	for _, h := range rs {
		ngx[h.Name] = startNginx(t, l, h.Name, nil)
	}
	for _, h := range rs {
		waitTCP(t, l, "dir1", netip.AddrPortFrom(h.Addr4(), 80).String(), 10*time.Second)
	}

	dir := t.TempDir()
	sock := filepath.Join(dir, "ulvsd.sock")
	cfgText := l.DirectorConfig(lab.DirectorOptions{ControlSocket: sock, Scheduler: "rr"}) + fmt.Sprintf(`
[virtual_server.health_check]
type = "http"
path = "/"
interval = %q
timeout = %q
rise = %d
fall = %d
`, hcInterval, hcTimeout, hcRise, hcFall)
	cfgPath := filepath.Join(dir, "ulvsd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	ulvsd := startULVSD(t, l, "dir1", cfgPath)
	cli := control.NewClient(sock)
	vip := netip.AddrPortFrom(p.VIP4, 80)
	rs2 := netip.AddrPortFrom(rs[1].Addr4(), 80)

	// Wait for the daemon and for traffic to all three.
	http := l.HTTPClient("client1", 2*time.Second)
	get := func() (string, error) {
		resp, err := http.Get("http://" + vip.String() + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	deadline := time.Now().Add(20 * time.Second)
	seen := map[string]bool{}
	for len(seen) < 3 {
		if time.Now().After(deadline) {
			out, _ := ulvsd.Output()
			t.Fatalf("no traffic to all three real servers (saw %v); ulvsd log:\n%s", seen, out)
		}
		if b, err := get(); err == nil {
			seen[b] = true
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Let the first probes of every check run (jitter spreads them over
	// one interval), so that all three are up by the checks, not only by
	// their initial state.
	waitHealth(t, cli, rs2, "up", 2*hcInterval+time.Second, func(s *ipvsadm.Server) bool { return s.Reason != "" })

	client1, _ := p.Host("client1")
	capt := startCapture(t, l, rs[1].Name, client1.Addr4().AsSlice())

	// The request loop: one request every 50 ms, each on a new
	// connection, at most 420 requests and 25 s.
	const every, maxReq, maxDur = 50 * time.Millisecond, 420, 25 * time.Second
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	stopLoop := make(chan struct{})
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		tick := time.NewTicker(every)
		defer tick.Stop()
		begin := time.Now()
		for i := 0; i < maxReq && time.Since(begin) < maxDur; i++ {
			select {
			case <-stopLoop:
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := result{start: time.Now()}
				r.body, r.err = get()
				r.end = time.Now()
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-loopDone:
		default:
			close(stopLoop)
			<-loopDone
		}
		wg.Wait()
	})

	time.Sleep(3 * time.Second)
	tStop := time.Now()
	if err := ngx[rs[1].Name].proc.Stop(2 * time.Second); err != nil {
		t.Logf("nginx on rs2 stopped: %v", err)
	}
	// ulvsadm -L --json (the same snapshot over the control socket)
	// shows the down server with its reason.
	srv := waitHealth(t, cli, rs2, "down", 10*time.Second, nil)
	tDown := time.Now()
	if srv.InPool || srv.Weight != 1 || srv.Reason == "" || srv.Since.Before(tStop) {
		t.Errorf("down server in the listing: %+v", srv)
	}
	t.Logf("ulvsadm -L --json: %s is %s (%q) since %s, check %s, in pool %v, weight %d (effective %d)",
		rs2, srv.Health, srv.Reason, srv.Since.Format(time.RFC3339Nano), srv.Check, srv.InPool, srv.Weight, srv.EffectiveWeight)

	// Keep the loop going with rs2 down, then restart nginx.
	time.Sleep(time.Until(tStop.Add(8 * time.Second)))
	tRestart := time.Now()
	startNginx(t, l, rs[1].Name, ngx[rs[1].Name])
	waitHealth(t, cli, rs2, "up", 10*time.Second, nil)
	time.Sleep(time.Until(tRestart.Add(7 * time.Second)))
	close(stopLoop)
	<-loopDone
	wg.Wait()
	syns := capt.syns(t)

	// The figures.
	var lastSYN time.Time
	nDown := 0
	for _, s := range syns {
		if s.After(tStop) && s.Before(tRestart) {
			nDown++
			if s.After(lastSYN) {
				lastSYN = s
			}
		}
	}
	slices.SortFunc(results, func(a, b result) int { return a.start.Compare(b.start) })
	var failed []result
	var firstBack time.Time
	count := map[string]int{}
	for _, r := range results {
		if r.err != nil {
			failed = append(failed, r)
			continue
		}
		count[strings.TrimSpace(r.body)]++
		if r.body == rs[1].Name+"\n" && r.start.After(tRestart) && firstBack.IsZero() {
			firstBack = r.start
		}
	}
	boundDown := hcFall*hcInterval + hcTimeout + hcInterval
	boundUp := hcRise*hcInterval + hcInterval
	downFig := lastSYN.Sub(tStop)
	upFig := firstBack.Sub(tRestart)
	t.Logf("requests: %d sent over %s, answers by server %v, failed %d",
		len(results), results[len(results)-1].start.Sub(results[0].start).Round(time.Millisecond), count, len(failed))
	t.Logf("stop -> transition to down (its since): %s; seen in the listing at %s",
		srv.Since.Sub(tStop).Round(time.Millisecond), tDown.Sub(tStop).Round(time.Millisecond))
	t.Logf("stop -> last new connection (SYN) sent to rs2: %s (%d connections reached rs2 after the stop); bound fall x interval + timeout + interval = %s (+ margin %s)",
		downFig.Round(time.Millisecond), nDown, boundDown, margin)
	t.Logf("restart -> first request answered by rs2: %s; bound rise x interval + interval = %s (+ margin %s)",
		upFig.Round(time.Millisecond), boundUp, margin)

	if lastSYN.IsZero() {
		t.Error("no connection reached rs2 after the stop: the capture or the loop is broken")
	} else if downFig > boundDown+margin {
		t.Errorf("new connections reached rs2 %s after the stop, more than %s + %s", downFig, boundDown, margin)
	}
	if firstBack.IsZero() {
		t.Error("rs2 took no traffic after its restart")
	} else if upFig > boundUp+margin {
		t.Errorf("rs2 took traffic again %s after the restart, more than %s + %s", upFig, boundUp, margin)
	}
	// Every failed request was sent to rs2: failures only while new
	// connections still reached it, and no more of them than reached it.
	for _, r := range failed {
		if r.start.Before(tStop) || r.start.After(lastSYN.Add(50*time.Millisecond)) {
			t.Errorf("request at stop%+s failed (%v), outside [stop, last SYN to rs2 at stop%+s]",
				r.start.Sub(tStop).Round(time.Millisecond), r.err, downFig.Round(time.Millisecond))
		}
	}
	if len(failed) > nDown {
		t.Errorf("%d requests failed, but only %d connections reached rs2 after the stop", len(failed), nDown)
	}
	if len(failed) == 0 {
		t.Error("no request failed: the stop was not observed by the loop")
	}
	for _, h := range rs {
		if count[h.Name] == 0 {
			t.Errorf("%s answered nothing", h.Name)
		}
	}

	// The checks' own state (GET /v1/health).
	st, err := cli.Health()
	if err != nil || len(st) != 3 {
		t.Fatalf("health status: %v, %d checks", err, len(st))
	}
	for _, c := range st {
		if c.Type != "http" || c.Checks == 0 || !c.Up {
			t.Errorf("check %+v", c)
		}
		if c.ID.Server == rs2 && c.Failed < hcFall {
			t.Errorf("rs2 check counted %d failed probes, want at least %d", c.Failed, hcFall)
		}
	}

	// Each transition is logged once.
	out, _ := ulvsd.Output()
	var downs, ups int
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, `"server":"`+rs2.String()+`"`) {
			continue
		}
		if strings.Contains(line, `"message":"real server down"`) {
			downs++
		}
		if strings.Contains(line, `"message":"real server up"`) {
			ups++
		}
	}
	if downs != 1 || ups != 1 {
		t.Errorf("ulvsd logged %d down and %d up transitions of rs2, want 1 and 1:\n%s", downs, ups, out)
	}
}

// waitHealth polls the listing until server's health is want (and ok, if
// given, accepts it) and returns it.
func waitHealth(t *testing.T, c *control.Client, server netip.AddrPort, want string, limit time.Duration, ok func(*ipvsadm.Server) bool) ipvsadm.Server {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last ipvsadm.Server
	for {
		s, err := c.Snapshot(false)
		if err == nil {
			for _, svc := range s.Services {
				for _, srv := range svc.Servers {
					if srv.Address == server {
						last = srv
						if srv.Health == want && (ok == nil || ok(&srv)) {
							return srv
						}
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not %s after %s (last %+v, err %v)", server, want, limit, last, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSorryServerAndQuiesceLab runs rs1 (on_failure = "quiesce") and rs2
// (remove) as real servers and rs3 as the sorry server: the sorry server
// takes traffic only while neither is up, and the listing says so.
func TestSorryServerAndQuiesceLab(t *testing.T) {
	labtest.RequireRoot(t)
	l := labtest.New(t, lab.Spec{Mode: lab.NAT, Servers: 3, NoServers: true})
	rs := l.Plan.RealServers()
	ngx := map[string]*nginx{}
	for _, h := range rs {
		ngx[h.Name] = startNginx(t, l, h.Name, nil)
		waitTCP(t, l, "dir1", netip.AddrPortFrom(h.Addr4(), 80).String(), 10*time.Second)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "ulvsd.sock")
	cfg := l.DirectorConfig(lab.DirectorOptions{ControlSocket: sock, Scheduler: "rr"})
	rs1, rs2, rs3 := netip.AddrPortFrom(rs[0].Addr4(), 80), netip.AddrPortFrom(rs[1].Addr4(), 80), netip.AddrPortFrom(rs[2].Addr4(), 80)
	block := fmt.Sprintf("\n  [[virtual_server.real_server]]\n  address = %q\n  method = \"nat\"\n", rs3)
	if !strings.Contains(cfg, block) {
		t.Fatalf("lab config lacks %q:\n%s", block, cfg)
	}
	cfg = strings.Replace(cfg, block, "", 1)
	cfg = strings.Replace(cfg, "scheduler = \"rr\"\n", fmt.Sprintf("scheduler = \"rr\"\nsorry_server = %q\nsorry_method = \"nat\"\n", rs3), 1)
	cfg = strings.Replace(cfg, fmt.Sprintf("address = %q\n  method = \"nat\"\n", rs1),
		fmt.Sprintf("address = %q\n  method = \"nat\"\n\n  [virtual_server.real_server.health_check]\n  on_failure = \"quiesce\"\n", rs1), 1)
	cfg += "\n[virtual_server.health_check]\ntype = \"http\"\ninterval = \"500ms\"\ntimeout = \"300ms\"\nrise = 1\nfall = 1\n"
	cfgPath := filepath.Join(dir, "ulvsd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ulvsd := startULVSD(t, l, "dir1", cfgPath)
	cli := control.NewClient(sock)
	vip := netip.AddrPortFrom(l.Plan.VIP4, 80)
	httpc := l.HTTPClient("client1", 2*time.Second)
	// answers returns who answered n requests (an error counts as "error").
	answers := func(n int) map[string]int {
		m := map[string]int{}
		for range n {
			resp, err := httpc.Get("http://" + vip.String() + "/")
			if err != nil {
				m["error"]++
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m[strings.TrimSpace(string(b))]++
		}
		return m
	}
	// expect waits until n consecutive answers come only from want.
	expect := func(stage string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := answers(6)
			okAll := true
			for k := range got {
				okAll = okAll && slices.Contains(want, k)
			}
			if okAll && len(got) == len(want) {
				t.Logf("%s: answers %v", stage, got)
				return
			}
			if time.Now().After(deadline) {
				out, _ := ulvsd.Output()
				t.Fatalf("%s: answers %v, want only and all of %v; ulvsd log:\n%s", stage, got, want, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	sorry := func() (bool, ipvsadm.Server, ipvsadm.Server) {
		s, err := cli.Snapshot(false)
		if err != nil || len(s.Services) == 0 || len(s.Services[0].Servers) != 2 {
			t.Fatalf("listing: %v %+v", err, s)
		}
		svc := s.Services[0]
		return svc.SorryActive, svc.Servers[0], svc.Servers[1]
	}
	expect("both up", "rs1", "rs2")

	_ = ngx["rs1"].proc.Stop(2 * time.Second)
	waitHealth(t, cli, rs1, "down", 5*time.Second, nil)
	expect("rs1 down (quiesced)", "rs2")
	if act, s1, _ := sorry(); act || !s1.InPool || s1.EffectiveWeight != 0 || s1.Weight != 1 {
		t.Errorf("rs1 quiesced: sorry active %v, %+v", act, s1)
	}

	_ = ngx["rs2"].proc.Stop(2 * time.Second)
	waitHealth(t, cli, rs2, "down", 5*time.Second, nil)
	expect("both down: the sorry server", "rs3")
	if act, _, s2 := sorry(); !act || s2.InPool {
		t.Errorf("both down: sorry active %v, rs2 %+v", act, s2)
	}

	startNginx(t, l, "rs2", ngx["rs2"])
	waitHealth(t, cli, rs2, "up", 5*time.Second, nil)
	expect("rs2 back: the sorry server leaves", "rs2")
	if act, _, _ := sorry(); act {
		t.Error("sorry server still active with rs2 up")
	}
}

// TestFeedbackWeightsLab runs the load-feedback agent (what `ulvs-realserver
// agent` serves) on rs1 with a fixed load file: ulvsd's feedback check
// scales rs1's weight by the reported load, and the agent's "drain" state
// takes it to 0 (no new connections) while the listing keeps the
// configured weight.
func TestFeedbackWeightsLab(t *testing.T) {
	labtest.RequireRoot(t)
	l := labtest.New(t, lab.Spec{Mode: lab.NAT, Servers: 2, NoServers: true})
	rs := l.Plan.RealServers()
	for _, h := range rs {
		startNginx(t, l, h.Name, nil)
		waitTCP(t, l, "dir1", netip.AddrPortFrom(h.Addr4(), 80).String(), 10*time.Second)
	}
	dir := t.TempDir()
	loadFile, stateFile := filepath.Join(dir, "loadavg"), filepath.Join(dir, "state")
	writeFile := func(p, s string) {
		t.Helper()
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(loadFile, "0.00 0.00 0.00 1/100 1\n")
	var ln net.Listener
	if err := l.Do("rs1", func() (err error) { ln, err = net.Listen("tcp", ":7777"); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() {
		agentDone <- healthcheck.ServeAgentOn(ctx, ln, healthcheck.AgentOptions{StateFile: stateFile, LoadAvgPath: loadFile, CPUs: 2})
	}()
	t.Cleanup(func() { cancel(); <-agentDone })

	sock := filepath.Join(dir, "ulvsd.sock")
	rs1 := netip.AddrPortFrom(rs[0].Addr4(), 80)
	cfg := l.DirectorConfig(lab.DirectorOptions{ControlSocket: sock, Scheduler: "wrr"})
	cfg = strings.Replace(cfg, fmt.Sprintf("address = %q\n  method = \"nat\"\n", rs1),
		fmt.Sprintf("address = %q\n  method = \"nat\"\n  weight = 10\n\n  [virtual_server.real_server.health_check]\n  type = \"feedback\"\n  interval = \"300ms\"\n  timeout = \"200ms\"\n  rise = 1\n  fall = 1\n", rs1), 1)
	cfgPath := filepath.Join(dir, "ulvsd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ulvsd := startULVSD(t, l, "dir1", cfgPath)
	cli := control.NewClient(sock)
	weightIs := func(stage string, want int) {
		t.Helper()
		srv := waitHealth(t, cli, rs1, "up", 10*time.Second, func(s *ipvsadm.Server) bool { return s.EffectiveWeight == want })
		if srv.Weight != 10 || !srv.InPool {
			t.Errorf("%s: %+v", stage, srv)
		}
		t.Logf("%s: rs1 effective weight %d (configured %d), check %s", stage, srv.EffectiveWeight, srv.Weight, srv.Check)
	}
	weightIs("idle", 10)
	writeFile(loadFile, "1.00 0.50 0.20 2/100 1\n") // utilization 0.5 on 2 CPUs
	weightIs("load 1.0 on 2 CPUs", 5)
	writeFile(stateFile, "drain\n")
	weightIs("drain", 0)
	// No new connection goes to rs1 while it drains.
	httpc := l.HTTPClient("client1", 2*time.Second)
	for range 8 {
		resp, err := httpc.Get("http://" + netip.AddrPortFrom(l.Plan.VIP4, 80).String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(string(b)) != "rs2" {
			out, _ := ulvsd.Output()
			t.Fatalf("draining rs1 answered a new connection; ulvsd log:\n%s", out)
		}
	}
	writeFile(stateFile, "down\n")
	srv := waitHealth(t, cli, rs1, "down", 10*time.Second, nil)
	if srv.Reason != "agent reports down" || srv.InPool {
		t.Errorf("agent down: %+v", srv)
	}
}
