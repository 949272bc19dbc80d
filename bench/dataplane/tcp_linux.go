package dataplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ulvs/ulvs/lab"
)

// startNginx starts nginx on every real server (one worker, return 200).
func (b *bench) startNginx(ctx context.Context) error {
	for _, h := range b.l.Plan.RealServers() {
		d := filepath.Join(b.dir, "nginx-"+h.Name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  keepalive_requests 1000000;
  server {
    listen %[2]d reuseport backlog=4096;
    location / { return 200 "%[3]s\n"; }
  }
}
`, d, b.l.Plan.HTTPPort, h.Name)
		path := filepath.Join(d, "nginx.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return err
		}
		pr, err := b.l.Start(h.Name, b.niced([]string{"nginx", "-c", path, "-p", d})...)
		if err != nil {
			return err
		}
		if err := b.waitHTTP(ctx, "dir1", fmt.Sprintf("http://%s:%d/", h.Addr4(), b.l.Plan.HTTPPort), pr); err != nil {
			return fmt.Errorf("nginx on %s: %w", h.Name, err)
		}
	}
	return nil
}

// waitHTTP polls url with curl from host until it answers (10 s).
func (b *bench) waitHTTP(ctx context.Context, host, url string, pr *lab.Process) error {
	deadline := time.Now().Add(10 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if pr != nil {
			select {
			case <-pr.Done():
				out, _ := pr.Output()
				return fmt.Errorf("exited: %s", strings.TrimSpace(string(out)))
			default:
			}
		}
		_, last = b.sh(ctx, host, "curl", "-sf", "-m", "1", "-o", "/dev/null", url)
		if last == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within 10 s: %v", url, last)
}

var reqSec = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
var wrkErrs = regexp.MustCompile(`Non-2xx or 3xx responses: ([0-9]+)|Socket errors: (.*)`)

// wrk runs wrk from the client against url and returns requests per
// second; close asks for a new connection per request.
func (b *bench) wrk(ctx context.Context, url string, close bool) (float64, string, error) {
	d := b.o.TCPDuration
	secs := strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
	argv := []string{"wrk", "-t", "1", "-c", strconv.Itoa(b.o.TCPConns), "-d", secs + "s", "--timeout", "2s"}
	if close {
		argv = append(argv, "-H", "Connection: close")
	}
	argv = append(argv, url)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	out, err := b.l.Exec(ctx, "client1", b.niced(argv)...).CombinedOutput()
	if err != nil {
		return 0, string(out), fmt.Errorf("wrk: %w: %s", err, out)
	}
	m := reqSec.FindSubmatch(out)
	if m == nil {
		return 0, string(out), fmt.Errorf("wrk printed no Requests/sec: %s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	note := ""
	for _, e := range wrkErrs.FindAllString(string(out), -1) {
		note += strings.TrimSpace(e) + "; "
	}
	return v, strings.TrimSuffix(note, "; "), nil
}

func (b *bench) tcpRow(ctx context.Context, name, url string) (TCPRow, error) {
	r := TCPRow{Name: name}
	var ka, cl []float64
	for i := 0; i < b.o.Reps; i++ {
		v, note, err := b.wrk(ctx, url, false)
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
		ka = append(ka, v)
		if note != "" {
			r.Notes = append(r.Notes, "keep-alive: "+note)
		}
		v, note, err = b.wrk(ctx, url, true)
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
		cl = append(cl, v)
		if note != "" {
			r.Notes = append(r.Notes, "close: "+note)
		}
	}
	r.RequestsPerSec, r.ConnsPerSec = median(ka), median(cl)
	fmt.Fprintf(b.log, "  %-28s %10.0f req/s keep-alive  %10.0f conn/s (new connection per request)\n", name, r.RequestsPerSec, r.ConnsPerSec)
	return r, nil
}

func (b *bench) measureTCP(ctx context.Context, rep *Report) error {
	fmt.Fprintf(b.log, "TCP through the VIP: wrk -t1 -c%d, %s x %d runs, nginx on %d real servers; unpinned, no RPS\n",
		b.o.TCPConns, b.o.TCPDuration, b.o.Reps, len(b.rs))
	if err := b.rps(ctx, false); err != nil {
		return err
	}
	if err := b.startNginx(ctx); err != nil {
		return err
	}
	url := fmt.Sprintf("http://%s:%d/", b.vip, b.l.Plan.HTTPPort)

	// ulvsd NAT, one worker: with the default TPACKET_V3 receive ring
	// (frames handed over in blocks, at most 1 ms late) and with V2 (a
	// slot per frame, no added latency).
	type variant struct{ ring, xdp string }
	variants := []variant{{"v3", ""}, {"v2", ""}}
	if b.o.XDP != "" {
		variants = append(variants, variant{"", b.o.XDP})
	}
	for _, v := range variants {
		name := "ulvsd NAT, rx_ring " + v.ring
		if v.xdp != "" {
			name = "ulvsd NAT, XDP " + v.xdp
		}
		pr, err := b.startUlvsd(ctx, "nat", 1, -1, v.ring, v.xdp)
		if err != nil {
			return err
		}
		if err := b.waitHTTP(ctx, "client1", url, pr); err != nil {
			_ = pr.Stop(3 * time.Second)
			return fmt.Errorf("%s: %w", name, err)
		}
		r, err := b.tcpRow(ctx, name, url)
		_ = pr.Stop(3 * time.Second)
		if err != nil {
			return err
		}
		rep.TCP = append(rep.TCP, r)
	}

	// nftables DNAT.
	if err := b.forwarding(ctx, true); err != nil {
		return err
	}
	if err := b.nft(ctx, "dir1", b.dnatRules()); err != nil {
		return err
	}
	if err := b.waitHTTP(ctx, "client1", url, nil); err != nil {
		return fmt.Errorf("nftables DNAT: %w", err)
	}
	r, err := b.tcpRow(ctx, "nftables DNAT", url)
	if err != nil {
		return err
	}
	rep.TCP = append(rep.TCP, r)
	if _, err := b.sh(ctx, "dir1", "nft", "delete", "table", "ip", "dpbnat"); err != nil {
		return err
	}
	if err := b.forwarding(ctx, false); err != nil {
		return err
	}

	// HAProxy in TCP mode on the director's own address.
	dir := b.host("dir1")
	pub, _ := dir.Iface("public")
	var srv strings.Builder
	for i, a := range b.rs {
		fmt.Fprintf(&srv, "  server rs%d %s:%d\n", i+1, a, b.l.Plan.HTTPPort)
	}
	conf := fmt.Sprintf(`global
  maxconn 8000
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend f
  bind %s:%d
  default_backend b
backend b
  balance roundrobin
%s`, pub.Addr4.Addr(), b.l.Plan.HTTPPort, srv.String())
	path := filepath.Join(b.dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	hp, err := b.l.Start("dir1", b.niced([]string{"haproxy", "-db", "-f", path})...)
	if err != nil {
		return err
	}
	defer hp.Stop(3 * time.Second)
	hurl := fmt.Sprintf("http://%s:%d/", pub.Addr4.Addr(), b.l.Plan.HTTPPort)
	if err := b.waitHTTP(ctx, "client1", hurl, hp); err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	r, err = b.tcpRow(ctx, "HAProxy mode tcp", hurl)
	if err != nil {
		return err
	}
	rep.TCP = append(rep.TCP, r)
	return b.rps(ctx, true)
}
