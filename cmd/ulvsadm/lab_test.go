package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
)

// buildULVSD builds the daemon once for the lab tests of this package.
var (
	buildOnce sync.Once
	ulvsdBin  string
	buildErr  error
)

func ulvsd(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ulvsadm-test-")
		if err != nil {
			buildErr = err
			return
		}
		ulvsdBin = filepath.Join(dir, "ulvsd")
		cmd := exec.Command("go", "build", "-o", ulvsdBin, "github.com/ulvs/ulvs/cmd/ulvsd")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building ulvsd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return ulvsdBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if ulvsdBin != "" {
		os.RemoveAll(filepath.Dir(ulvsdBin))
	}
	os.Exit(code)
}

// loadResult is one request of the load loop.
type loadResult struct {
	at     time.Time
	server string // the real server that answered, "" on failure
	err    error
}

// runLoad sends requests through the VIP from client1 with a new TCP
// connection each, from workers goroutines, until stop is closed (bounded
// by max per worker), and returns every result.
func runLoad(l *lab.Lab, workers, max int, stop <-chan struct{}) []loadResult {
	url := fmt.Sprintf("http://%s:%d/", l.Plan.VIP4, l.Plan.HTTPPort)
	var mu sync.Mutex
	var all []loadResult
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := l.HTTPClient("client1", 3*time.Second)
			for n := 0; n < max; n++ {
				select {
				case <-stop:
					return
				default:
				}
				r := loadResult{at: time.Now()}
				resp, err := hc.Get(url)
				if err == nil {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					switch {
					case rerr != nil:
						err = rerr
					case resp.StatusCode != http.StatusOK:
						err = fmt.Errorf("status %s", resp.Status)
					default:
						r.server = strings.TrimSpace(string(b))
					}
				}
				r.err = err
				mu.Lock()
				all = append(all, r)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return all
}

// TestHitlessChangesUnderLoad drives a live ulvsd with ulvsadm commands and
// a SIGHUP reload while a bounded request loop runs through the VIP: adding
// a real server, editing weights, changing the scheduler and reloading a
// changed file fail no request; deleting a real server fails at most the
// requests in flight to it at that moment, and none after.
func TestHitlessChangesUnderLoad(t *testing.T) {
	l := labtest.New(t, lab.Spec{Mode: lab.NAT, Servers: 3})
	bin := ulvsd(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "ulvsd.sock")
	cfgPath := filepath.Join(dir, "ulvsd.toml")
	rs := l.Plan.RealServers()
	rsAddr := func(i int) string { return fmt.Sprintf("%s:%d", rs[i].Addr4(), l.Plan.HTTPPort) }
	vip := fmt.Sprintf("%s:%d", l.Plan.VIP4, l.Plan.HTTPPort)
	// Two services: the web one under test, and an untouched UDP one whose
	// counters must survive every change.
	base := fmt.Sprintf(`[director]
public_interface = "eth0"
private_interface = "eth1"
workers = 2
control_socket = %q

[[virtual_server]]
protocol = "tcp"
address = %q
scheduler = "rr"
  [[virtual_server.real_server]]
  address = %q
  method = "nat"
  [[virtual_server.real_server]]
  address = %q
  method = "nat"

[[virtual_server]]
protocol = "udp"
address = "%s:%d"
scheduler = "wlc"
  [[virtual_server.real_server]]
  address = "%s:%d"
  method = "nat"
`, sock, vip, rsAddr(0), rsAddr(1), l.Plan.VIP4, l.Plan.UDPEchoPort, rs[0].Addr4(), l.Plan.UDPEchoPort)
	if err := os.WriteFile(cfgPath, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, err := l.Start("dir1", bin, "-config", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	adm := func(args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(append([]string{"--socket", sock}, args...), strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("ulvsadm %q: exit %d: %s", args, code, errb.String())
		}
	}
	c := control.NewClient(sock)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Snapshot(false); err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(proc.Log)
			t.Fatalf("ulvsd did not come up:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Warm up: the first request resolves the neighbours.
	hc := l.HTTPClient("client1", 3*time.Second)
	for i := 0; ; i++ {
		resp, err := hc.Get("http://" + vip + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 50 {
			t.Fatalf("no request through the VIP succeeds: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Put the untouched UDP service's counters in motion.
	if err := l.Do("client1", func() error {
		return udpEcho(fmt.Sprintf("%s:%d", l.Plan.VIP4, l.Plan.UDPEchoPort))
	}); err != nil {
		t.Fatalf("UDP service: %v", err)
	}
	udpBefore := udpStats(t, c)

	// Phase A: changes that remove no real server.
	stop := make(chan struct{})
	resA := make(chan []loadResult, 1)
	go func() { resA <- runLoad(l, 8, 2000, stop) }()
	time.Sleep(700 * time.Millisecond)
	adm("-a", "-t", vip, "-r", rsAddr(2), "-m", "-w", "2")
	time.Sleep(500 * time.Millisecond)
	adm("-e", "-t", vip, "-r", rsAddr(0), "-m", "-w", "3")
	time.Sleep(500 * time.Millisecond)
	adm("-E", "-t", vip, "-s", "wlc")
	time.Sleep(500 * time.Millisecond)
	// A reload whose file changes a weight and the scheduler again.
	next := strings.Replace(base, `scheduler = "rr"`, `scheduler = "wrr"`, 1)
	next = strings.Replace(next, fmt.Sprintf("address = %q\n  method = \"nat\"\n\n[[virtual_server]]", rsAddr(1)),
		fmt.Sprintf("address = %q\n  method = \"nat\"\n  weight = 4\n  [[virtual_server.real_server]]\n  address = %q\n  method = \"nat\"\n  weight = 2\n\n[[virtual_server]]", rsAddr(1), rsAddr(2)), 1)
	if err := os.WriteFile(cfgPath, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(proc.PID, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	a := <-resA
	perServer := map[string]int{}
	for _, r := range a {
		if r.err != nil {
			t.Errorf("phase A: a request failed at %s: %v", r.at.Format("15:04:05.000"), r.err)
			continue
		}
		perServer[r.server]++
	}
	t.Logf("phase A (add, edit, -E, SIGHUP reload): %d requests, by server %v", len(a), perServer)
	if len(a) < 100 || perServer["rs3"] == 0 {
		t.Fatalf("phase A: %d requests, by server %v: too few, or the added server never served", len(a), perServer)
	}
	snap, err := c.Snapshot(false)
	if err != nil {
		t.Fatal(err)
	}
	if s := snap.Find(keyOf(t, "tcp", vip)); s == nil || s.Scheduler != "wrr" || len(s.Servers) != 3 {
		t.Fatalf("after reload: %+v", s)
	}
	if udpAfter := udpStats(t, c); udpAfter.Conns < udpBefore.Conns || udpAfter.InPkts < udpBefore.InPkts || udpBefore.InPkts == 0 {
		t.Fatalf("the untouched UDP service's counters went from %+v to %+v", udpBefore, udpAfter)
	}

	// Phase B: delete rs1 under load.
	stop = make(chan struct{})
	resB := make(chan []loadResult, 1)
	go func() { resB <- runLoad(l, 8, 2000, stop) }()
	time.Sleep(700 * time.Millisecond)
	adm("-d", "-t", vip, "-r", rsAddr(0))
	// The delete has taken effect when ulvsadm returns: a request started
	// while the command was on its way may still have gone to rs1.
	deleted := time.Now()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	b := <-resB
	failed, late := 0, 0
	for _, r := range b {
		switch {
		case r.err != nil:
			failed++
			// A request that failed must have started before the delete
			// returned (it was in flight to the removed server).
			if r.at.After(deleted) {
				t.Errorf("phase B: a request started %v after the delete failed: %v", r.at.Sub(deleted), r.err)
			}
		case r.server == "rs1" && r.at.After(deleted.Add(50*time.Millisecond)):
			late++
		}
	}
	t.Logf("phase B (delete under load): %d requests, %d failed (in flight to the deleted server), %d reached it after the delete", len(b), failed, late)
	if failed > 8 {
		t.Fatalf("phase B: %d requests failed; at most the 8 in flight may", failed)
	}
	if late > 0 {
		t.Fatalf("phase B: %d requests reached the deleted server after the delete", late)
	}
}

func keyOf(t *testing.T, proto, addr string) config.Key {
	t.Helper()
	p, err := config.ParseProtocol(proto)
	if err != nil {
		t.Fatal(err)
	}
	return config.Key{Protocol: p, Address: netip.MustParseAddrPort(addr)}
}

func udpStats(t *testing.T, c *control.Client) ipvsadm.Stats {
	t.Helper()
	s, err := c.Snapshot(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range s.Services {
		if svc.Protocol.String() == "udp" {
			return svc.Stats
		}
	}
	t.Fatal("no UDP service")
	return ipvsadm.Stats{}
}

// udpEcho sends a few datagrams to addr and waits for the echoes.
func udpEcho(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 64)
	got := 0
	for i := 0; i < 20 && got < 5; i++ { // bounded: a datagram may be lost while ARP resolves
		msg := fmt.Sprintf("ping %d", i)
		if _, err := conn.Write([]byte(msg)); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && string(buf[:n]) == msg {
			got++
		}
	}
	if got < 5 {
		return fmt.Errorf("%d of 5 echoes", got)
	}
	return nil
}
