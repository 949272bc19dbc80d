package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"

	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
)

// TestBrowserMonitor runs ulvsd with [web] in a real NAT lab, sends HTTP
// traffic from a lab client through the VIP, and drives headless Chromium
// (Debian's chromium, through chromedp) against the monitor over HTTPS: it
// logs in, watches the live numbers change while the traffic runs, drains a
// real server from the service page and sees the table change. It saves
// screenshots and checks that they are real PNG images; with
// ULVS_SCREENSHOT_DIR set it also copies them there (docs/monitor.png).
func TestBrowserMonitor(t *testing.T) {
	labtest.RequireRoot(t)
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is missing (scripts/test-deps.sh installs it), and CI=true forbids skipping")
		}
		t.Skip("skipped: needs Debian's chromium (scripts/test-deps.sh installs it)")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "ulvsd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	l := labtest.New(t, lab.Spec{Mode: lab.NAT, Servers: 2})
	hash, err := bcrypt.GenerateFromPassword([]byte("lab-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(tmp, "ulvsd.sock")
	cfgText := l.DirectorConfig(lab.DirectorOptions{ControlSocket: sock}) + fmt.Sprintf(`
[web]
listen = "127.0.0.1:8443"
state_dir = %q
  [[web.user]]
  name = "admin"
  password_hash = %q
  role = "admin"
`, filepath.Join(tmp, "state"), hash)
	cfgPath := filepath.Join(tmp, "ulvsd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, err := l.Start("dir1", bin, "-config", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Stop(5 * time.Second) })
	ctl := control.NewClient(sock)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := ctl.Snapshot(false); err == nil {
			break
		}
		select {
		case <-proc.Done():
			out, _ := proc.Output()
			t.Fatalf("ulvsd exited: %v\n%s", proc.Wait(), out)
		default:
		}
		if time.Now().After(deadline) {
			out, _ := proc.Output()
			t.Fatalf("ulvsd not ready\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(tmp, "state", "web-cert.pem")); err != nil {
		t.Fatalf("no self-signed certificate made: %v", err)
	}

	// The monitor listens on 127.0.0.1:8443 inside dir1; a relay on this
	// namespace's loopback lets the browser reach it.
	relay, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	dial := l.Dialer("dir1")
	go func() {
		for {
			c, err := relay.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				u, err := dial(ctx, "tcp", "127.0.0.1:8443")
				cancel()
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	base := "https://" + relay.Addr().String()

	// Traffic: HTTP requests from client1 through the VIP, bounded in
	// count and time, until the test ends.
	trafficCtx, stopTraffic := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stopTraffic(); wg.Wait() })
	hc := l.HTTPClient("client1", 2*time.Second)
	shotDir := os.Getenv("ULVS_SCREENSHOT_DIR")
	trafficFor := 90 * time.Second
	if shotDir != "" {
		trafficFor = 200 * time.Second // a minute of chart before the README screenshot
	}
	vipURL := fmt.Sprintf("http://%s:%d/", l.Plan.VIP4, l.Plan.HTTPPort)
	var okMu sync.Mutex
	served := map[string]int{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		end := time.Now().Add(trafficFor)
		for i := 0; i < 20000 && time.Now().Before(end) && trafficCtx.Err() == nil; i++ {
			req, _ := http.NewRequestWithContext(trafficCtx, "GET", vipURL, nil)
			resp, err := hc.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				okMu.Lock()
				served[strings.TrimSpace(string(b))]++
				okMu.Unlock()
			}
			time.Sleep(time.Duration(5+7*(i/150%4)) * time.Millisecond) // a varying load
		}
	}()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("ignore-certificate-errors", true), // the monitor's self-signed certificate
		chromedp.UserDataDir(filepath.Join(tmp, "chromium")),
		chromedp.WindowSize(1100, 800),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// The first action starts the browser: no timeout on it (that would
	// stop the browser); every later step gets its own.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(a chromedp.Action[string]) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return v
	}
	shot := func(name string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("%s screenshot: %v", name, err)
		}
		checkPNG(t, name, b)
		return b
	}

	// Without a session the monitor sends the browser to its login form.
	step("login page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#login`)))
	if loc := get(chromedp.Location()); !strings.HasPrefix(loc, base+"/login") {
		t.Fatalf("without a session: at %s, want the login page", loc)
	}
	step("login",
		chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "admin"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "lab-pass"),
		chromedp.Click(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`section.service`)),
	)
	if loc := get(chromedp.Location()); loc != base+"/" {
		t.Fatalf("after login at %s", loc)
	}

	// Live numbers: the page's packets/s of the service and its update
	// time change while traffic runs.
	svcSel := fmt.Sprintf(`section.service[data-svc="tcp-%s:%d"]`, l.Plan.VIP4, l.Plan.HTTPPort)
	seen := map[string]bool{}
	var updates []string
	var nonzero bool
	end := time.Now().Add(40 * time.Second)
	for time.Now().Before(end) && (len(seen) < 3 || !nonzero || len(updates) < 3) {
		pps := get(chromedp.Text(chromedp.CSS(svcSel + ` [data-sf="pps"]`)))
		upd := get(chromedp.Evaluate[string](`document.body.dataset.updated || ""`))
		seen[pps] = true
		if pps != "0" {
			nonzero = true
		}
		if upd != "" && (len(updates) == 0 || updates[len(updates)-1] != upd) {
			updates = append(updates, upd)
		}
		time.Sleep(time.Second)
	}
	if len(seen) < 3 || !nonzero || len(updates) < 3 {
		t.Fatalf("live numbers did not move: packets/s values %v, updates %v", seen, updates)
	}
	t.Logf("packets/s shown: %v; %d live updates", keys(seen), len(updates))
	if shotDir != "" {
		time.Sleep(60 * time.Second)
	}
	overviewShot := shot("overview")

	// Drain a real server from the service page.
	snap, err := ctl.Snapshot(false)
	if err != nil || len(snap.Services) == 0 || len(snap.Services[0].Servers) < 2 {
		t.Fatalf("snapshot: %v %+v", err, snap)
	}
	rs := snap.Services[0].Servers[0].Address.String()
	rowSel := fmt.Sprintf(`tr[data-id="tcp-%s:%d/%s"]`, l.Plan.VIP4, l.Plan.HTTPPort, rs)
	step("service page",
		chromedp.Navigate(fmt.Sprintf("%s/service?svc=tcp-%s:%d", base, l.Plan.VIP4, l.Plan.HTTPPort)),
		chromedp.WaitVisible(chromedp.CSS(rowSel)))
	before := get(chromedp.Text(chromedp.CSS(rowSel + ` [data-f="weight"]`)))
	step("drain",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`.rsform[data-rs="%s"] button.drain`, rs))),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)))
	flash := get(chromedp.Text(chromedp.CSS(`#flash`)))
	after := get(chromedp.Text(chromedp.CSS(rowSel + ` [data-f="weight"]`)))
	rowText := get(chromedp.Text(chromedp.CSS(rowSel)))
	if before != "1" || after != "0" || !strings.Contains(flash, "draining") || !strings.Contains(rowText, "draining") {
		t.Fatalf("drain: weight %q -> %q, flash %q, row %q", before, after, flash, rowText)
	}
	snap, _ = ctl.Snapshot(false)
	if w := snap.Services[0].Servers[0].Weight; w != 0 {
		t.Fatalf("the data path still has weight %d for %s", w, rs)
	}
	// New connections now go to the other real server only.
	okMu.Lock()
	base0 := copyMap(served)
	okMu.Unlock()
	time.Sleep(3 * time.Second)
	okMu.Lock()
	after0 := copyMap(served)
	okMu.Unlock()
	var moved []string
	for k, v := range after0 {
		if v > base0[k] {
			moved = append(moved, k)
		}
	}
	if len(moved) != 1 {
		t.Fatalf("after the drain, requests went to %v (want exactly the other real server)", moved)
	}
	time.Sleep(2500 * time.Millisecond) // one more live update with the drained row
	serviceShot := shot("service")

	// /metrics of the real daemon: no session needed, parsed by the
	// Prometheus text parser, the data path's counters in it.
	mc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	mresp, err := mc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(mresp.Body)
	mresp.Body.Close()
	if err != nil || mresp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", mresp.StatusCode, err)
	}
	var conns float64
	for _, m := range fams["ulvs_real_server_connections_total"].GetMetric() {
		conns += m.GetCounter().GetValue()
	}
	if conns < 10 || fams["ulvs_engine_rx_frames_total"].GetMetric()[0].GetCounter().GetValue() < 10 ||
		fams["ulvs_engine_ring_drops_total"] == nil || fams["ulvs_standby"] == nil {
		t.Fatalf("/metrics of the lab: connections %v, families %d", conns, len(fams))
	}

	// On a phone (390 px wide) the page does not scroll sideways: the
	// tables scroll inside their boxes.
	step("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`section.service`)))
	if w := get(chromedp.Evaluate[string](`String(document.documentElement.scrollWidth) + "/" + String(window.innerWidth)`)); func() bool {
		a, b, _ := strings.Cut(w, "/")
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return y == 0 || x > y
	}() {
		t.Fatalf("on a phone the page is wider than the screen (scrollWidth/innerWidth %s)", w)
	}
	phoneShot := shot("phone")
	if dir := shotDir; dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"monitor.png": overviewShot, "monitor-service.png": serviceShot, "monitor-phone.png": phoneShot} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "overview.png"), overviewShot, 0o644); err != nil {
		t.Fatal(err)
	}
}

func checkPNG(t *testing.T, name string, b []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s screenshot: not a PNG: %v", name, err)
	}
	r := img.Bounds()
	if r.Dx() < 600 || r.Dy() < 400 || len(b) < 10000 {
		t.Fatalf("%s screenshot: %dx%d, %d bytes: too small", name, r.Dx(), r.Dy(), len(b))
	}
	// Not blank: more than a handful of distinct colours.
	colours := map[uint32]bool{}
	for y := r.Min.Y; y < r.Max.Y; y += 7 {
		for x := r.Min.X; x < r.Max.X; x += 7 {
			c1, c2, c3, _ := img.At(x, y).RGBA()
			colours[c1<<16^c2<<8^c3] = true
		}
	}
	if len(colours) < 8 {
		t.Fatalf("%s screenshot looks blank (%d colours)", name, len(colours))
	}
	t.Logf("%s screenshot: %dx%d, %s bytes, %d colours", name, r.Dx(), r.Dy(), strconv.Itoa(len(b)), len(colours))
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func copyMap(m map[string]int) map[string]int {
	n := make(map[string]int, len(m))
	for k, v := range m {
		n[k] = v
	}
	return n
}
