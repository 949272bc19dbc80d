package healthcheck

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Test servers on loopback. Every one is stopped by t.Cleanup.

// need skips the test when bin is not installed, but fails under CI=true.
func need(t *testing.T, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (CI=true: required)", bin)
		}
		t.Skipf("%s is not installed (Debian package: see scripts/test-deps.sh)", bin)
	}
	return p
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func addrOf(a net.Addr) netip.AddrPort { return netip.MustParseAddrPort(a.String()) }

// serveTCP runs handle for each connection until cleanup, which closes the
// listener and every connection and waits for the handlers.
func serveTCP(t *testing.T, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	ln := listenTCP(t)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return addrOf(ln.Addr())
}

// tcpEcho echoes every line.
func tcpEcho(t *testing.T) netip.AddrPort {
	return serveTCP(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := c.Write([]byte(l)); err != nil {
				return
			}
		}
	})
}

// tcpSilent accepts and never answers (until cleanup closes it).
func tcpSilent(t *testing.T) netip.AddrPort {
	return serveTCP(t, func(c net.Conn) {
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
}

// tcpSlow answers reply after delay.
func tcpSlow(t *testing.T, delay time.Duration, reply string) netip.AddrPort {
	return serveTCP(t, func(c net.Conn) {
		time.Sleep(delay)
		c.Write([]byte(reply))
	})
}

// tcpReply writes reply and closes.
func tcpReply(t *testing.T, reply string) netip.AddrPort {
	return serveTCP(t, func(c net.Conn) {
		c.Write([]byte(reply))
		// Half-close and drain, so that the client reads EOF, not a reset
		// for the request we did not read.
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c)
	})
}

// closedPort returns a loopback port with nothing listening on it.
func closedPort(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	var a net.Addr
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a = c.LocalAddr()
		c.Close()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a = ln.Addr()
		ln.Close()
	}
	return addrOf(a)
}

// udpServer answers each datagram with reply(payload); nil reply = silent.
func udpServer(t *testing.T, reply func([]byte) []byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := reply(buf[:n]); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return addrOf(pc.LocalAddr())
}

// certs is a test CA and a leaf certificate it signed for rs.test and
// 127.0.0.1, written as PEM files in dir.
type certs struct {
	caFile, certFile, keyFile string
	leaf                      tls.Certificate
	notAfter                  time.Time
}

func makeCerts(t *testing.T, dir string, notBefore, notAfter time.Time) certs {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ulvs test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "rs.test"},
		DNSNames: []string{"rs.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := certs{
		caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"),
		notAfter: notAfter.Truncate(time.Second),
	}
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(c.caFile, "CERTIFICATE", caDER)
	write(c.certFile, "CERTIFICATE", der)
	write(c.keyFile, "EC PRIVATE KEY", keyDER)
	c.leaf, err = tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tlsServer serves TLS with cert on loopback, answering nothing.
func tlsServer(t *testing.T, cert tls.Certificate) netip.AddrPort {
	t.Helper()
	ln := tls.NewListener(listenTCP(t), &tls.Config{Certificates: []tls.Certificate{cert}})
	return serveTCP2(t, ln)
}

func serveTCP2(t *testing.T, ln net.Listener) netip.AddrPort {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Read(make([]byte, 1))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return addrOf(ln.Addr())
}

// freePort returns a loopback port free for both TCP and UDP, below the
// usual ephemeral range (32768-60999) so that the many client connections
// of the tests do not take it before the daemon binds it.
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		p := 20000 + mrand.IntN(12000)
		a := "127.0.0.1:" + strconv.Itoa(p)
		ln, err := net.Listen("tcp", a)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", a)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return p
	}
	t.Fatal("no free port")
	return 0
}

// startDaemon starts cmd, records its PID, and kills exactly that process
// on cleanup. kill stops it earlier (idempotent); exited is closed when it
// has exited.
func startDaemon(t *testing.T, cmd *exec.Cmd) (kill func(), exited <-chan struct{}) {
	t.Helper()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	kill = func() {
		select {
		case <-done:
		default:
			syscall.Kill(pid, syscall.SIGKILL)
			<-done
		}
	}
	t.Cleanup(func() {
		kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), out.String())
		}
	})
	return kill, done
}

// waitReady polls ready (bounded) until it holds; false if the daemon
// exited first (a port taken between our choice and its bind, say).
func waitReady(t *testing.T, exited <-chan struct{}, ready func() bool) bool {
	t.Helper()
	for range 500 {
		if ready() {
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("daemon never became ready")
	return false
}

func tcpUp(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// waitTCP waits (bounded) until addr accepts connections.
func waitTCP(t *testing.T, addr string) {
	t.Helper()
	for i := 0; i < 250; i++ {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never accepted connections", addr)
}

type nginxServer struct {
	http, https netip.AddrPort
	certs       certs
	kill        func()        // stops it
	restart     func() func() // starts it again with the same configuration
}

// startNginx runs Debian's nginx with its own prefix on two free loopback
// ports (plain and TLS with a certificate from a test CA), in the
// foreground, single process, and kills it by PID on cleanup.
func startNginx(t *testing.T) nginxServer {
	t.Helper()
	bin := need(t, "nginx")
	dir := t.TempDir()
	c := makeCerts(t, dir, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	for _, d := range []string{"tmp", "logs"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	for attempt := 0; ; attempt++ {
		p1, p2 := freePort(t), freePort(t)
		n, ok := tryNginx(t, bin, dir, c, p1, p2)
		if ok {
			return n
		}
		if attempt == 4 {
			t.Fatal("nginx did not start in 5 attempts")
		}
	}
}

func tryNginx(t *testing.T, bin, dir string, c certs, p1, p2 int) (nginxServer, bool) {
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp; proxy_temp_path %[1]s/tmp; fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp; scgi_temp_path %[1]s/tmp;
  server {
    listen 127.0.0.1:%[2]d;
    listen 127.0.0.1:%[3]d ssl;
    ssl_certificate %[4]s;
    ssl_certificate_key %[5]s;
    default_type text/plain;
    location = /health { return 200 "ok ulvs\n"; }
    location = /fail { return 503; }
    location = /host { return 200 "host=$host sni=$ssl_server_name\n"; }
    location = /redirect { return 301 /health; }
    location / { return 200 "index\n"; }
  }
}
`, dir, p1, p2, c.certFile, c.keyFile)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n := nginxServer{
		http:  netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p1)),
		https: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p2)),
		certs: c,
	}
	start := func() (func(), bool) {
		kill, exited := startDaemon(t, exec.Command(bin, "-p", dir, "-c", cf, "-e", filepath.Join(dir, "logs/error.log")))
		return kill, waitReady(t, exited, func() bool { return tcpUp(n.http.String()) && tcpUp(n.https.String()) })
	}
	n.restart = func() func() {
		kill, ok := start()
		if !ok {
			t.Fatal("nginx did not restart")
		}
		return kill
	}
	var ok bool
	n.kill, ok = start()
	return n, ok
}

// startDnsmasq runs dnsmasq on a free loopback port answering x.test with
// 192.0.2.7, in the foreground, killed by PID on cleanup.
func startDnsmasq(t *testing.T) netip.AddrPort {
	t.Helper()
	bin := need(t, "dnsmasq")
	for range 5 {
		port := freePort(t)
		_, exited := startDaemon(t, exec.Command(bin, "--keep-in-foreground", "--conf-file=/dev/null", "--port="+strconv.Itoa(port),
			"--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=",
			"--user=root", "--address=/x.test/192.0.2.7", "--log-facility=-"))
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		s := Spec{ID: TargetID{"dns", addr}, Config: Config{Type: TypeDNS, QueryName: "x.test", Timeout: time.Second}}
		if waitReady(t, exited, func() bool { return Probe(context.Background(), s).OK }) {
			return addr
		}
	}
	t.Fatal("dnsmasq did not start in 5 attempts")
	return netip.AddrPort{}
}

// processGone reports whether pid has exited (a zombie counts as exited:
// it runs nothing; its reaping is its parent's business).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// zombieChildren lists our own children that are zombies.
func zombieChildren() []int {
	me := os.Getpid()
	var z []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+2:])
		if len(f) > 2 && f[0] == "Z" && f[1] == strconv.Itoa(me) {
			z = append(z, pid)
		}
	}
	return z
}

// listenTCPB is a loopback listener that accepts and closes, for benchmarks.
func listenTCPB(b *testing.B) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	b.Cleanup(func() { ln.Close() })
	return addrOf(ln.Addr())
}
