package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/lab"
)

func TestNAT(t *testing.T) { t.Parallel(); runMode(t, lab.NAT) }
func TestDR(t *testing.T)  { t.Parallel(); runMode(t, lab.DR) }
func TestTUN(t *testing.T) { t.Parallel(); runMode(t, lab.TUN) }

// runMode runs every end-to-end check of one forwarding method on one lab
// and one ulvsd, changing the table through the control socket between
// subtests.
func runMode(t *testing.T, mode lab.Mode) {
	e := newEnv(t, mode)
	// The services most subtests share, kept until ulvsd stops: TCP port
	// 80 (rr) on both VIPs, UDP echo and UDP name on the IPv4 VIP, UDP echo
	// on the IPv6 VIP.
	web4 := e.service(t, "tcp", false, portRR, "rr", nil, noCleanup)
	web6 := e.service(t, "tcp", true, portRR, "rr", nil, noCleanup)
	echo4 := e.service(t, "udp", false, e.l.Plan.UDPEchoPort, "rr", nil, noCleanup)
	name4 := e.service(t, "udp", false, e.l.Plan.UDPNamePort, "rr", nil, noCleanup)
	echo6 := e.service(t, "udp", true, e.l.Plan.UDPEchoPort, "rr", nil, noCleanup)
	for _, c := range e.l.Plan.Clients() {
		e.waitHTTP(t, c.Name, url(web4, "/"))
	}
	for _, src := range extraSources {
		e.waitHTTP(t, "client1", url(web4, "/"), "--interface", src)
	}

	t.Run("rr", func(t *testing.T) { e.testRR(t, web4) })
	t.Run("wlc", e.testWLC)
	t.Run("sh", e.testSH)
	t.Run("mh", e.testMH)
	t.Run("download10MB", func(t *testing.T) { e.testDownload(t, web4) })
	t.Run("wrk", func(t *testing.T) { e.testWrk(t, web4) })
	t.Run("ipv6", func(t *testing.T) { e.testIPv6(t, web6) })
	t.Run("drain", e.testDrain)
	t.Run("malformed", func(t *testing.T) { e.testMalformed(t, web4, web6, name4) })
	// UDP flows last: with IPVS's default UDP timeout, a UDP flow stalls
	// ulvsd's connection table a few seconds later (see
	// TestRegressionUDPFlowSweep; newEnv lowers the timeout).
	t.Run("capture", func(t *testing.T) { e.testCapture(t, web4, web6, echo4) })
	t.Run("udp", func(t *testing.T) { e.testUDP(t, echo4, name4, echo6) })
	t.Run("badL4Checksum", func(t *testing.T) {
		rejected, dropped := e.testBadL4Checksum(t, web4, name4)
		t.Logf("bad L4 checksums: %d rejected by the real servers, %d dropped by ulvsd", rejected, dropped)
	})
}

// rr: 300 requests, each on its own connection, split exactly 100/100/100,
// by the bodies nginx served and by the director's connection counters.
func (e *env) testRR(t *testing.T, svc netip.AddrPort) {
	e.admin(t, "-Z", "-t", svc.String())
	start := time.Now()
	got := split(t, e.curlMany(t, "client1", url(svc, "/"), 300))
	el := time.Since(start)
	want := map[string]int{"rs1": 100, "rs2": 100, "rs3": 100}
	if fmtSplit(got) != fmtSplit(want) {
		t.Errorf("rr: 300 requests served %s, want %s", fmtSplit(got), fmtSplit(want))
	}
	if conns := e.connsByServer(t, svc, "tcp"); fmtSplit(conns) != fmtSplit(want) {
		t.Errorf("rr: director's connection counters %s, want %s", fmtSplit(conns), fmtSplit(want))
	}
	t.Logf("MEASURE %s rr: 300 curl connections in %.2f s (%.0f conn/s): %s", e.mode, el.Seconds(), 300/el.Seconds(), fmtSplit(got))
}

// wlcShares is what IPVS's wlc gives n sequential short connections:
// every finished connection stays inactive, each new one goes to the
// server with the least (256*active + inactive)/weight, the first in table
// order on ties (ip_vs_wlc_schedule).
func wlcShares(weights []int, n int) []int {
	inact := make([]int, len(weights))
	for i := 0; i < n; i++ {
		least := -1
		for j, w := range weights {
			if w <= 0 {
				continue
			}
			if least < 0 || inact[least]*w > inact[j]*weights[least] {
				least = j
			}
		}
		inact[least]++
	}
	return inact
}

// wlc with weights 3/2/1: 60 sequential connections split by weight.
func (e *env) testWLC(t *testing.T) {
	weights := []int{3, 2, 1}
	svc := e.service(t, "tcp", false, portWLC, "wlc", weights)
	got := split(t, e.curlMany(t, "client1", url(svc, "/"), 60))
	exp := wlcShares(weights, 60)
	for i, h := range e.l.Plan.RealServers() {
		// One connection's slack: the rule is exact, but a FIN that the
		// director has not seen when the next SYN arrives shifts one pick.
		if d := got[h.Name] - exp[i]; d < -1 || d > 1 {
			t.Errorf("wlc weights %v: %s got %d of 60, want %d (+-1); all: %s", weights, h.Name, got[h.Name], exp[i], fmtSplit(got))
		}
	}
	if !(got["rs1"] > got["rs2"] && got["rs2"] > got["rs3"]) {
		t.Errorf("wlc weights 3/2/1: shares %s not ordered by weight", fmtSplit(got))
	}
	t.Logf("wlc 3/2/1 over 60: %s (rule: %v)", fmtSplit(got), exp)
}

// source is one client address: a client host, optionally with one of its
// extra addresses as the source.
type source struct {
	host, addr string
}

func (e *env) sources() []source {
	var s []source
	for _, c := range e.l.Plan.Clients() {
		s = append(s, source{c.Name, c.Addr4().String()})
	}
	for _, a := range extraSources {
		s = append(s, source{"client1", a})
	}
	return s
}

// bySource sends n requests from every source and returns the one server
// each source reached; a source that reached several fails the test.
func (e *env) bySource(t *testing.T, svc netip.AddrPort, n int) map[source]string {
	t.Helper()
	out := map[source]string{}
	for _, s := range e.sources() {
		got := split(t, e.curlMany(t, s.host, url(svc, "/"), n, "--interface", s.addr))
		if len(got) != 1 {
			t.Errorf("source %s reached several servers: %s (want one)", s.addr, fmtSplit(got))
		}
		for srv := range got {
			out[s] = srv
		}
	}
	return out
}

func distinct(m map[source]string) map[string]int {
	d := map[string]int{}
	for _, srv := range m {
		d[srv]++
	}
	return d
}

// sh: a source always reaches the same server; sources spread.
func (e *env) testSH(t *testing.T) {
	svc := e.service(t, "tcp", false, portSH, "sh", nil)
	m := e.bySource(t, svc, 4)
	d := distinct(m)
	if len(d) < 2 {
		t.Errorf("sh: %d sources all reached %s; want them spread", len(m), fmtSplit(d))
	}
	t.Logf("sh: sources per server %s", fmtSplit(d))
}

// mh: like sh, and removing a server moves only the sources it had.
func (e *env) testMH(t *testing.T) {
	svc := e.service(t, "tcp", false, portMH, "mh", nil)
	before := e.bySource(t, svc, 3)
	d := distinct(before)
	if len(d) < 2 {
		t.Fatalf("mh: %d sources all reached %s; want them spread", len(before), fmtSplit(d))
	}
	// Remove the server with the most sources.
	victim := ""
	for _, k := range sortedKeys(d) {
		if victim == "" || d[k] > d[victim] {
			victim = k
		}
	}
	ra := netip.AddrPortFrom(e.rsAddr(victim, false), portMH)
	e.admin(t, "-d", "-t", svc.String(), "-r", ra.String())
	after := e.bySource(t, svc, 3)
	moved := 0
	for s, was := range before {
		now := after[s]
		switch {
		case now == victim:
			t.Errorf("mh: source %s still reaches the removed %s", s.addr, victim)
		case was != victim && now != was:
			t.Errorf("mh: source %s moved from %s to %s, though only %s was removed", s.addr, was, now, victim)
		case was == victim:
			moved++
		}
	}
	t.Logf("mh: sources per server %s; removing %s moved its %d sources and no other", fmtSplit(d), victim, moved)
}

// fetch downloads u in host to a file and checks its size and sha256; it
// returns the transfer time curl measured.
func (e *env) fetch(t *testing.T, host, u string, size int, sum string) time.Duration {
	t.Helper()
	out := filepath.Join(e.dir, fmt.Sprintf("download-%s-%s", host, t.Name()[strings.LastIndex(t.Name(), "/")+1:]))
	defer os.Remove(out)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := e.l.Exec(ctx, host, "curl", "-g", "-s", "-o", out, "--max-time", "80",
		"-w", "%{http_code} %{size_download} %{time_total}", u).Output()
	if err != nil {
		t.Fatalf("curl %s: %v (%s)", u, err, res)
	}
	f := strings.Fields(string(res))
	if len(f) != 3 || f[0] != "200" {
		t.Fatalf("curl %s: %q", u, res)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.Sum256(b)
	if hex.EncodeToString(got[:]) != sum || len(b) != size {
		t.Fatalf("download %s: %d bytes, sha256 %x; want %d bytes, %s", u, len(b), got, size, sum)
	}
	secs, _ := strconv.ParseFloat(f[2], 64)
	return time.Duration(secs * float64(time.Second))
}

// download: a 10 MB file arrives intact (sha256), through the VIP.
func (e *env) testDownload(t *testing.T, svc netip.AddrPort) {
	d := e.fetch(t, "client1", url(svc, "/big.bin"), bigSize, e.bigSum)
	t.Logf("MEASURE %s download: 10 MiB intact in %.3f s (%.1f MB/s)", e.mode, d.Seconds(), float64(bigSize)/d.Seconds()/1e6)
}

var (
	wrkReqs   = regexp.MustCompile(`(\d+) requests in`)
	wrkRate   = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkSocket = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// wrk: a bounded load run through the VIP completes without errors.
func (e *env) testWrk(t *testing.T, svc netip.AddrPort) {
	needTools(t, "wrk")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.l.Exec(ctx, "client1", "wrk", "-t1", "-c8", "-d2s", "--timeout", "2s", url(svc, "/")).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	m := wrkReqs.FindSubmatch(out)
	if m == nil {
		t.Fatalf("wrk output has no request count:\n%s", out)
	}
	if n, _ := strconv.Atoi(string(m[1])); n == 0 {
		t.Errorf("wrk completed no request:\n%s", out)
	}
	if m := wrkSocket.FindSubmatch(out); m != nil && (string(m[1]) != "0" || string(m[2]) != "0" || string(m[3]) != "0") {
		t.Errorf("wrk socket errors:\n%s", out)
	}
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		t.Errorf("wrk non-2xx responses:\n%s", out)
	}
	rate := "?"
	if m := wrkRate.FindSubmatch(out); m != nil {
		rate = string(m[1])
	}
	t.Logf("MEASURE %s wrk -t1 -c8 -d2s: %s requests/s (keep-alive, loaded shared 2-core VM)", e.mode, rate)
}

// udpAskAll sends one datagram from each of n new sockets (n new UDP
// connections) and returns the replies.
func (e *env) udpAskAll(t *testing.T, host string, vip netip.AddrPort, n int, payload []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 0; i < n; i++ {
		r, err := e.udpAskRetry(host, vip, payload)
		if err != nil {
			t.Fatalf("UDP %s from %s, datagram %d: %v", vip, host, i, err)
		}
		out = append(out, r)
	}
	return out
}

// udp: the echo returns the payload intact; rr splits 30 new UDP flows
// exactly over the servers (the name port answers the server's name); the
// IPv6 VIP's echo works.
func (e *env) testUDP(t *testing.T, echo, name, echo6 netip.AddrPort) {
	e.waitUDP(t, "client2", echo)
	e.waitUDP(t, "client2", name)
	payload := make([]byte, 1200)
	rand.Read(payload)
	for _, r := range e.udpAskAll(t, "client2", echo, 6, payload) {
		if !bytes.Equal(r, payload) {
			t.Fatalf("UDP echo through %s: %d bytes back, not the %d sent", echo, len(r), len(payload))
		}
	}
	got := map[string]int{}
	for _, r := range e.udpAskAll(t, "client2", name, 30, []byte("who")) {
		got[strings.TrimSpace(string(r))]++
	}
	if want := "rs1=10 rs2=10 rs3=10"; fmtSplit(got) != want {
		t.Errorf("UDP rr over 30 flows: %s, want %s", fmtSplit(got), want)
	}
	// The IPv6 VIP's UDP service.
	e.waitUDP(t, "client1", echo6)
	p6 := []byte("ipv6 echo through ulvs")
	for _, r := range e.udpAskAll(t, "client1", echo6, 3, p6) {
		if !bytes.Equal(r, p6) {
			t.Errorf("IPv6 UDP echo: got %q", r)
		}
	}
}

// ipv6: the IPv6 VIP serves HTTP (rr split and a 1 MiB download; its
// UDP service is checked in testUDP).
func (e *env) testIPv6(t *testing.T, web netip.AddrPort) {
	e.waitHTTP(t, "client1", url(web, "/"))
	got := split(t, e.curlMany(t, "client1", url(web, "/"), 30))
	if want := "rs1=10 rs2=10 rs3=10"; fmtSplit(got) != want {
		t.Errorf("IPv6 rr over 30: %s, want %s", fmtSplit(got), want)
	}
	e.fetch(t, "client1", url(web, "/mid.bin"), midSize, e.midSum)
}

// drain: with a connection open on a server, weight 0 sends new
// connections elsewhere while the open one finishes, and keeps serving
// requests (keep-alive).
func (e *env) testDrain(t *testing.T) {
	svc := e.service(t, "tcp", false, portDrain, "rr", nil)
	e.waitHTTP(t, "client2", url(svc, "/"))
	held, err := e.dialHTTP("client2", svc)
	if err != nil {
		t.Fatal(err)
	}
	defer held.c.Close()
	srv, n, err := held.get("/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	if n != bigSize {
		t.Fatalf("big.bin: Content-Length %d", n)
	}
	h := sha256.New()
	if err := held.body(h, 1<<20); err != nil {
		t.Fatalf("first MiB from %s: %v", srv, err)
	}
	ra := netip.AddrPortFrom(e.rsAddr(srv, false), portDrain)
	e.admin(t, "-e", "-t", svc.String(), "-r", ra.String(), e.methodFlag(), "-w", "0")
	for _, s := range e.findService(t, svc, "tcp").Servers {
		if s.Address == ra && (s.Weight != 0 || s.ActiveConns < 1) {
			t.Errorf("%s after -w 0: weight %d, %d active connections; want 0 and >= 1", srv, s.Weight, s.ActiveConns)
		}
	}
	got := split(t, e.curlMany(t, "client1", url(svc, "/"), 30))
	if got[srv] != 0 {
		t.Errorf("drain: %d new connections went to %s, whose weight is 0", got[srv], srv)
	}
	for _, h := range e.l.Plan.RealServers() {
		if h.Name != srv && got[h.Name] != 15 {
			t.Errorf("drain: new connections %s, want 15 on each of the two others", fmtSplit(got))
			break
		}
	}
	if err := held.body(h, bigSize-(1<<20)); err != nil {
		t.Fatalf("rest of the download from the drained %s: %v", srv, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != e.bigSum {
		t.Errorf("download on the drained connection: sha256 %s, want %s", sum, e.bigSum)
	}
	// The open connection still carries new requests to the same server.
	srv2, n2, err := held.get("/")
	if err != nil {
		t.Fatalf("second request on the held connection: %v", err)
	}
	var body bytes.Buffer
	if err := held.body(&body, n2); err != nil {
		t.Fatal(err)
	}
	if srv2 != srv || body.String() != srv {
		t.Errorf("second request on the held connection: served by %s (%q), want %s", srv2, body.String(), srv)
	}
}

// udpAskRetry is udpAsk with up to three sends on the same socket (the same
// UDP connection), so that a lost datagram does not change the scheduling.
func (e *env) udpAskRetry(host string, vip netip.AddrPort, payload []byte) ([]byte, error) {
	network := "udp4"
	if vip.Addr().Is6() {
		network = "udp6"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := e.l.Dialer(host)(ctx, network, vip.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 65536)
	for try := 0; ; try++ {
		if _, err := c.Write(payload); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			return buf[:n], nil
		}
		if try == 2 {
			return nil, fmt.Errorf("no reply to 3 sends: %w", err)
		}
	}
}
