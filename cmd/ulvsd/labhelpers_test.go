package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/ulvs/ulvs/lab"
)

// daemonArg makes the test binary run ulvsd's main instead of the tests,
// so that the lab tests need no separately built ulvsd.
const daemonArg = "-as-ulvsd"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == daemonArg {
		os.Exit(run(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// startULVSD runs ulvsd (this test binary as ulvsd) in host's namespace.
func startULVSD(t *testing.T, l *lab.Lab, host, configPath string) *lab.Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Start(host, exe, daemonArg, "-config", configPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	return p
}

// nginx is one nginx run in a real server's namespace.
type nginx struct {
	dir  string
	host string
	proc *lab.Process
}

// startNginx runs nginx in the foreground (daemon off) in host's namespace,
// answering "NAME\n" on port 80, with its logs in a temporary directory.
func startNginx(t *testing.T, l *lab.Lab, host string, n *nginx) *nginx {
	t.Helper()
	if n == nil {
		n = &nginx{dir: filepath.Join(t.TempDir(), host), host: host}
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		d := n.dir
		conf := fmt.Sprintf(`daemon off;
worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 512; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen 80;
    location / { default_type text/plain; return 200 "%[2]s\n"; }
  }
}
`, d, host)
		if err := os.WriteFile(filepath.Join(d, "nginx.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := l.Start(host, "nginx", "-c", filepath.Join(n.dir, "nginx.conf"), "-p", n.dir, "-e", filepath.Join(n.dir, "error.log"))
	if err != nil {
		t.Fatal(err)
	}
	n.proc = p
	t.Cleanup(func() { _ = p.Stop(2 * time.Second) })
	return n
}

// waitTCP waits until addr accepts a connection from host.
func waitTCP(t *testing.T, l *lab.Lab, host, addr string, limit time.Duration) {
	t.Helper()
	dial := l.Dialer(host)
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		c, err := dial(ctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept connections from %s after %s: %v", addr, host, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// capture records the TCP SYNs from src to port 80 that arrive on host's
// eth0, with tcpdump.
type capture struct {
	file string
	proc *lab.Process
}

func startCapture(t *testing.T, l *lab.Lab, host string, src net.IP) *capture {
	t.Helper()
	c := &capture{file: filepath.Join(t.TempDir(), host+".pcap")}
	p, err := l.Start(host, "tcpdump", "-i", "eth0", "-n", "-U", "-Z", "root", "-w", c.file,
		fmt.Sprintf("tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0 and src host %s and dst port 80", src))
	if err != nil {
		t.Fatal(err)
	}
	c.proc = p
	t.Cleanup(func() { _ = p.Stop(2 * time.Second) })
	// tcpdump says "listening on" once its socket is open.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := p.Output()
		if strings.Contains(string(out), "listening on") {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump did not start: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syns stops the capture and returns the SYNs' times, one per distinct
// client port (a retransmitted SYN is the same connection).
func (c *capture) syns(t *testing.T) []time.Time {
	t.Helper()
	_ = c.proc.Stop(2 * time.Second)
	f, err := os.Open(c.file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("reading %s: %v", c.file, err)
	}
	seen := map[uint16]bool{}
	var out []time.Time
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", c.file, err)
		}
		pkt := gopacket.NewPacket(data, r.LinkType(), gopacket.NoCopy)
		tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || seen[uint16(tcp.SrcPort)] {
			continue
		}
		seen[uint16(tcp.SrcPort)] = true
		out = append(out, ci.Timestamp)
	}
	return out
}

// httpGetter returns a GET of url from host's namespace (a new connection
// each time, at most timeout) that answers the body without surrounding
// space: "rs1".
func httpGetter(l *lab.Lab, host, url string, timeout time.Duration) func() (string, error) {
	c := l.HTTPClient(host, timeout)
	return func() (string, error) {
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b)), err
	}
}

// waitAnswer calls get until it succeeds (ulvsd starting up), failing the
// test with ulvsd's log after 20 s.
func waitAnswer(t *testing.T, get func() (string, error), ulvsd *lab.Process) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := get()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			out, _ := ulvsd.Output()
			t.Fatalf("no answer through the VIP: %v; ulvsd log:\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
