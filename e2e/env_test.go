package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
)

// Ports. nginx listens on every nginxPorts port of every real server; each
// subtest gets its own virtual service (and so its own connection counts)
// on one of them. The lab's built-in server keeps its UDP ports (echo and
// name) and moves its HTTP port out of nginx's way.
const (
	portRR      = 80 // rr, shared by the IPv6, capture and malformed subtests
	portWLC     = 81
	portSH      = 82
	portMH      = 83
	portDrain   = 84
	portBuiltin = 9080

	bigSize = 10 << 20 // the download checked by sha256
	midSize = 1 << 20  // a medium file, for captures
)

// bridgeNFOff turns br_netfilter off in a namespace, where it exists.
const bridgeNFOff = `for k in iptables ip6tables arptables; do f=/proc/sys/net/bridge/bridge-nf-call-$k; [ ! -e $f ] || echo 0 > $f; done`

var nginxPorts = []int{portRR, portWLC, portSH, portMH, portDrain}

// extraSources are more source addresses on client1, so that sh and mh see
// a dozen clients without a dozen namespaces.
var extraSources = []string{"10.0.0.31", "10.0.0.32", "10.0.0.33", "10.0.0.34", "10.0.0.35",
	"10.0.0.36", "10.0.0.37", "10.0.0.38", "10.0.0.39"}

// env is one mode's lab with nginx on three real servers and ulvsd on the
// director, shared by that mode's subtests.
type env struct {
	t      *testing.T
	l      *lab.Lab
	mode   lab.Mode
	dir    string // temporary files
	sock   string // ulvsd's control socket
	ctl    *control.Client
	ulvsd  *lab.Process
	adm    string // ulvsadm binary
	bigSum string // sha256 of the big file, hex
	midSum string
	rxRing string // [director] rx_ring, "" for the default
}

// newEnv builds the lab for mode, starts nginx on its real servers and
// ulvsd (with no virtual service yet) on its director.
func newEnv(t *testing.T, mode lab.Mode) *env {
	t.Helper()
	return newEnvRing(t, mode, "")
}

// newEnvRing is newEnv with ulvsd's [director] rx_ring set ("" keeps the
// default).
func newEnvRing(t *testing.T, mode lab.Mode, ring string) *env {
	t.Helper()
	ulvsd := bin(t, "ulvsd")
	needTools(t, "nginx", "curl", "nsenter")
	e := &env{t: t, mode: mode, adm: bin(t, "ulvsadm"), rxRing: ring}
	e.l = labtest.New(t, lab.Spec{Mode: mode, Servers: 3, Clients: 3, IPv6: true, HTTPPort: portBuiltin})
	// Temporary files outside t.TempDir: nginx and curl run in other
	// processes, and a short path keeps the unix socket under 108 bytes.
	dir, err := os.MkdirTemp("", "ulvs-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e.dir = dir
	e.sock = filepath.Join(dir, "ulvsd.sock")
	e.ctl = control.NewClient(e.sock)

	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	e.bigSum = writeRandom(t, filepath.Join(www, "big.bin"), bigSize)
	e.midSum = writeRandom(t, filepath.Join(www, "mid.bin"), midSize)

	// The lab's bridges run bridged IPv4/IPv6 through the switch namespace's
	// netfilter (br_netfilter defaults to on in every new namespace), which
	// validates IP headers and drops malformed frames before they reach the
	// director: turn that off, as a real switch would not filter (see
	// TestRegressionLabBridgeNetfilter).
	e.run(t, "switch", "sh", "-c", bridgeNFOff)
	for _, ip := range extraSources {
		e.run(t, "client1", "ip", "addr", "add", ip+"/24", "dev", "eth0")
	}
	for _, rs := range e.l.Plan.RealServers() {
		e.startNginx(rs.Name, www)
	}

	cfg := e.directorConfig()
	cfgPath := filepath.Join(dir, "ulvsd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := e.l.Start("dir1", ulvsd, "-config", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e.ulvsd = p
	t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Errorf("stopping ulvsd: %v", err)
		}
		if t.Failed() {
			out, _ := p.Output()
			t.Logf("ulvsd log (tail):\n%s", tail(out, 4000))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := e.ctl.Snapshot(false); err == nil {
			break
		}
		select {
		case <-p.Done():
			out, _ := p.Output()
			t.Fatalf("ulvsd exited at start: %v\n%s", p.Wait(), out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("ulvsd did not open its control socket within 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return e
}

// directorConfig is ulvsd's TOML: the director's interfaces, one worker
// (so that a connection's FIN is handled before the next connection's SYN,
// which wlc's exact shares rely on), TCP and UDP timeouts of 200 s, and no
// virtual service.
func (e *env) directorConfig() string {
	d, _ := e.l.Plan.Host("dir1")
	var b strings.Builder
	b.WriteString("[director]\n")
	for _, ifc := range d.Ifaces {
		switch ifc.Net {
		case "public":
			fmt.Fprintf(&b, "public_interface = %q\n", ifc.Name)
		case "private":
			fmt.Fprintf(&b, "private_interface = %q\n", ifc.Name)
		}
	}
	fmt.Fprintf(&b, "workers = 1\ncontrol_socket = %q\n", e.sock)
	if e.rxRing != "" {
		fmt.Fprintf(&b, "rx_ring = %q\n", e.rxRing)
	}
	// Connections time out below the connection table's 256 s wheel
	// horizon: with IPVS's defaults (tcp 900 s, udp 300 s), a flow can
	// stall the table a few seconds later (TestRegressionUDPFlowSweep
	// shows that bug, with the defaults); the checks here must not depend
	// on it.
	b.WriteString("\n[timeouts]\ntcp = \"200s\"\nudp = \"200s\"\n")
	return b.String()
}

func writeRandom(t *testing.T, path string, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// startNginx runs nginx in the real server's namespace: one process
// (master_process off, daemon off) whose PID the lab records and kills,
// with its own prefix, pid file and logs. "/" answers the server's name
// (no newline) with the header X-Real-Server; other paths serve www.
func (e *env) startNginx(host, www string) {
	t := e.t
	prefix := filepath.Join(e.dir, "nginx-"+host)
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		t.Fatal(err)
	}
	var listen strings.Builder
	for _, p := range nginxPorts {
		fmt.Fprintf(&listen, "    listen %d;\n    listen [::]:%d;\n", p, p)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  keepalive_timeout 60s;
  send_timeout 60s;
  server {
%[2]s
    root %[3]s;
    add_header X-Real-Server %[4]s always;
    location = / {
      default_type text/plain;
      return 200 "%[4]s";
    }
  }
}
`, prefix, listen.String(), www, host)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := e.l.Start(host, "nginx", "-p", prefix, "-e", filepath.Join(prefix, "error.log"), "-c", confPath)
	if err != nil {
		t.Fatal(err)
	}
	// Ready when every port accepts on the server's own loopback.
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range nginxPorts {
		for {
			var err error
			derr := e.l.Do(host, func() error {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
				if err == nil {
					c.Close()
				}
				return err
			})
			if err = derr; err == nil {
				break
			}
			select {
			case <-p.Done():
				out, _ := p.Output()
				log, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
				t.Fatalf("nginx in %s exited: %v\n%s\n%s", host, p.Wait(), out, log)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx in %s does not accept on port %d after 10 s: %v", host, port, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// run runs argv in host and fails the test on error.
func (e *env) run(t testing.TB, host string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := e.l.Exec(ctx, host, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", strings.Join(argv, " "), host, err, out)
	}
	return string(out)
}

// adm runs ulvsadm against the daemon's control socket.
func (e *env) admin(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.adm, append([]string{"--socket", e.sock}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ulvsadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// methodFlag is ipvsadm's forwarding-method flag for the lab's mode.
func (e *env) methodFlag() string {
	switch e.mode {
	case lab.NAT:
		return "-m"
	case lab.TUN:
		return "-i"
	}
	return "-g"
}

// rsAddr returns a real server's address in the VIP's family.
func (e *env) rsAddr(name string, v6 bool) netip.Addr {
	h, ok := e.l.Plan.Host(name)
	if !ok {
		panic("e2e: no host " + name)
	}
	if v6 {
		return h.Addr6()
	}
	return h.Addr4()
}

func (e *env) vip(v6 bool) netip.Addr {
	if v6 {
		return e.l.Plan.VIP6
	}
	return e.l.Plan.VIP4
}

// noCleanup, among service's options, keeps the service until ulvsd stops
// (for the services a whole mode shares).
const noCleanup = "\x00no-cleanup"

// service adds a virtual service (proto "tcp" or "udp") on the VIP with
// every real server, weights in real-server order (nil: all 1), and deletes
// it when the test ends (unless opts holds noCleanup; the other opts are
// ipvsadm options for -A). It returns the service's VIP:port.
func (e *env) service(t *testing.T, proto string, v6 bool, port int, sched string, weights []int, opts ...string) netip.AddrPort {
	t.Helper()
	flag := "-t"
	if proto == "udp" {
		flag = "-u"
	}
	cleanup := true
	var extra []string
	for _, o := range opts {
		if o == noCleanup {
			cleanup = false
			continue
		}
		extra = append(extra, o)
	}
	vip := netip.AddrPortFrom(e.vip(v6), uint16(port))
	e.admin(t, append([]string{"-A", flag, vip.String(), "-s", sched}, extra...)...)
	if cleanup {
		t.Cleanup(func() { e.admin(t, "-D", flag, vip.String()) })
	}
	for i, rs := range e.l.Plan.RealServers() {
		w := 1
		if weights != nil {
			w = weights[i]
		}
		ra := netip.AddrPortFrom(e.rsAddr(rs.Name, v6), uint16(port))
		e.admin(t, "-a", flag, vip.String(), "-r", ra.String(), e.methodFlag(), "-w", strconv.Itoa(w))
	}
	return vip
}

// serverName maps a real server's address back to its host name.
func (e *env) serverName(a netip.Addr) string {
	for _, h := range e.l.Plan.RealServers() {
		if h.Addr4() == a || h.Addr6() == a {
			return h.Name
		}
	}
	return a.String()
}

// findService returns the service at vip from a snapshot.
func (e *env) findService(t testing.TB, vip netip.AddrPort, proto string) ipvsadm.Service {
	t.Helper()
	snap, err := e.ctl.Snapshot(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snap.Services {
		if s.Address == vip && strings.EqualFold(s.Protocol.String(), proto) {
			return s
		}
	}
	t.Fatalf("service %s %s not in the snapshot", proto, vip)
	return ipvsadm.Service{}
}

// connsByServer returns the director's connection counter per real server
// name for a service.
func (e *env) connsByServer(t testing.TB, vip netip.AddrPort, proto string) map[string]int {
	out := map[string]int{}
	for _, s := range e.findService(t, vip, proto).Servers {
		out[e.serverName(s.Address.Addr())] = int(s.Stats.Conns)
	}
	return out
}

// url is http://VIP:port/path, IPv6 in brackets.
func url(vip netip.AddrPort, path string) string {
	return "http://" + vip.String() + path
}

// curlResult is one transfer of a curl run.
type curlResult struct {
	Server   string // the body ("/" answers the server's name)
	Connects int    // new connections this transfer opened
	Code     int
}

// curlMany fetches url n times with one curl process in host, each
// transfer on a new connection (the server closes it: Connection: close),
// and returns what each transfer got. extra goes before the URLs
// (--interface ADDR picks the source address).
func (e *env) curlMany(t testing.TB, host, u string, n int, extra ...string) []curlResult {
	t.Helper()
	args := []string{"curl", "-g", "-s", "--connect-timeout", "3", "--max-time", "5",
		"-H", "Connection: close", "-w", "\t%{num_connects}\t%{http_code}\n"}
	args = append(args, extra...)
	for i := 0; i < n; i++ {
		args = append(args, u)
	}
	// Bounded as a whole too: curl's own limits allow 5 s per transfer.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := e.l.Exec(ctx, host, args...).Output()
	if err != nil && len(out) == 0 {
		t.Fatalf("curl in %s: %v", host, err)
	}
	var res []curlResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			t.Fatalf("curl output line %q: want body<TAB>connects<TAB>code", sc.Text())
		}
		c, _ := strconv.Atoi(f[1])
		code, _ := strconv.Atoi(f[2])
		res = append(res, curlResult{Server: f[0], Connects: c, Code: code})
	}
	if len(res) != n {
		t.Fatalf("curl in %s: %d results for %d transfers (exit %v)\n%s", host, len(res), n, err, out)
	}
	return res
}

// split counts curl results by server and fails the test for any transfer
// that failed or reused a connection.
func split(t *testing.T, res []curlResult) map[string]int {
	t.Helper()
	m := map[string]int{}
	bad := 0
	for _, r := range res {
		if r.Code != 200 || r.Connects != 1 {
			bad++
			if bad <= 3 {
				t.Errorf("transfer: code %d, %d new connections (want 200 and 1)", r.Code, r.Connects)
			}
			continue
		}
		m[r.Server]++
	}
	if bad > 0 {
		t.Errorf("%d of %d transfers failed or reused a connection", bad, len(res))
	}
	return m
}

// waitHTTP polls url from host until one request succeeds (ARP, NDP and
// neighbour warm-up), with a deadline.
func (e *env) waitHTTP(t *testing.T, host, u string, extra ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		args := append([]string{"curl", "-g", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--connect-timeout", "1", "--max-time", "2"}, extra...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, _ := e.l.Exec(ctx, host, append(args, u)...).Output()
		cancel()
		if string(out) == "200" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s from %s: no 200 within 15 s (last status %q)", u, host, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// udpAsk sends payload from a new socket in host to vip and returns the
// reply; every new socket is a new UDP connection for the director.
func (e *env) udpAsk(host string, vip netip.AddrPort, payload []byte, timeout time.Duration) ([]byte, error) {
	network := "udp4"
	if vip.Addr().Is6() {
		network = "udp6"
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := e.l.Dialer(host)(ctx, network, vip.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := c.Write(payload); err != nil {
		return nil, err
	}
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// waitUDP polls until the UDP service answers.
func (e *env) waitUDP(t *testing.T, host string, vip netip.AddrPort) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := e.udpAsk(host, vip, []byte("ping"), 500*time.Millisecond)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("UDP %s from %s: no answer within 15 s: %v", vip, host, err)
		}
	}
}

// status is what ulvsd's /v1/status says: drops by reason, engine counters.
type status struct {
	Drops  map[string]uint64 `json:"drops"`
	Engine map[string]any    `json:"engine"`
}

func (e *env) status(t testing.TB) status {
	t.Helper()
	var st status
	if err := e.ctl.Status(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// drops returns ulvsd's drop counters by reason.
func (e *env) drops(t testing.TB) map[string]uint64 {
	t.Helper()
	return e.status(t).Drops
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func sortedKeys(m map[string]int) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func fmtSplit(m map[string]int) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, " %s=%d", k, m[k])
	}
	return strings.TrimSpace(b.String())
}

// rawHTTP is a client connection read at the test's pace, for draining.
type rawHTTP struct {
	c  net.Conn
	br *bufio.Reader
}

func (e *env) dialHTTP(host string, vip netip.AddrPort) (*rawHTTP, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.l.Dialer(host)(ctx, "tcp", vip.String())
	if err != nil {
		return nil, err
	}
	return &rawHTTP{c: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

// get sends a GET and reads the status line and headers; the body is left
// in br. It returns the X-Real-Server header and Content-Length.
func (r *rawHTTP) get(path string) (server string, length int64, err error) {
	r.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(r.c, "GET %s HTTP/1.1\r\nHost: vip\r\n\r\n", path); err != nil {
		return "", 0, err
	}
	status, err := r.br.ReadString('\n')
	if err != nil {
		return "", 0, err
	}
	if !strings.Contains(status, " 200 ") {
		return "", 0, fmt.Errorf("status %q", strings.TrimSpace(status))
	}
	length = -1
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			return "", 0, err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		k, v, _ := strings.Cut(line, ":")
		switch strings.ToLower(k) {
		case "x-real-server":
			server = strings.TrimSpace(v)
		case "content-length":
			length, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if length < 0 {
		return "", 0, errors.New("no Content-Length")
	}
	return server, length, nil
}

// body reads n bytes of body into h.
func (r *rawHTTP) body(h io.Writer, n int64) error {
	r.c.SetDeadline(time.Now().Add(30 * time.Second))
	_, err := io.CopyN(h, r.br, n)
	return err
}
