package healthcheck

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const probeTimeout = 300 * time.Millisecond

type probeCase struct {
	name   string
	addr   netip.AddrPort
	cfg    Config
	ok     bool
	reason string // regexp the reason must match (anchored)
	weight int    // expected Result.Weight (-1 = none)
}

func runProbes(t *testing.T, cases []probeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.Timeout == 0 {
				// Cases that test a timeout use a short one; the others a
				// long one, so that a loaded machine (-race, other jobs)
				// does not turn them into timeouts.
				tc.cfg.Timeout = 5 * time.Second
				if strings.Contains(tc.reason, "timeout") {
					tc.cfg.Timeout = probeTimeout
				}
			}
			s := Spec{ID: TargetID{Service: "svc", Server: tc.addr}, Weight: 10, Config: tc.cfg}
			if err := tc.cfg.Validate(); err != nil {
				t.Fatalf("config: %v", err)
			}
			start := time.Now()
			r := Probe(context.Background(), s)
			took := time.Since(start)
			if r.OK != tc.ok || !regexp.MustCompile("^(?:"+tc.reason+")$").MatchString(r.Reason) {
				t.Fatalf("got ok=%v reason %q, want ok=%v reason /%s/", r.OK, r.Reason, tc.ok, tc.reason)
			}
			if r.Weight != tc.weight {
				t.Fatalf("weight %d, want %d", r.Weight, tc.weight)
			}
			// Every probe honours its deadline (with slack for a loaded
			// machine running -race).
			if strings.Contains(tc.reason, "timeout") && took > tc.cfg.Timeout+2*time.Second {
				t.Fatalf("probe took %s with a %s timeout", took, tc.cfg.Timeout)
			}
		})
	}
}

func TestTCPCheck(t *testing.T) {
	echo := tcpEcho(t)
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		// IPv6 loopback, where the machine has it.
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		runProbes(t, []probeCase{{"ipv6", addrOf(ln.Addr()), Config{Type: TypeTCP}, true, "connected", -1}})
	}
	runProbes(t, []probeCase{
		{"connect", echo, Config{Type: TypeTCP}, true, "connected", -1},
		{"refused", closedPort(t, "tcp"), Config{Type: TypeTCP}, false, "connection refused", -1},
		{"connect_address with port", netip.MustParseAddrPort("127.0.0.1:1"),
			Config{Type: TypeTCP, ConnectAddress: echo.String()}, true, "connected", -1},
		{"connect_port", netip.AddrPortFrom(echo.Addr(), 1),
			Config{Type: TypeTCP, ConnectPort: int(echo.Port())}, true, "connected", -1},
	})
}

func TestSendExpectCheck(t *testing.T) {
	echo := tcpEcho(t)
	silent := tcpSilent(t)
	slow := tcpSlow(t, 2*probeTimeout, "PONG\r\n")
	wrong := tcpReply(t, "ERR busy\r\n")
	uecho := udpServer(t, func(b []byte) []byte { return append([]byte{}, b...) })
	usilent := udpServer(t, func([]byte) []byte { return nil })
	se := func(send, expect string) Config { return Config{Type: TypeSendExpect, Send: send, Expect: expect} }
	seu := func(send, expect string) Config {
		c := se(send, expect)
		c.Proto = "udp"
		return c
	}
	runProbes(t, []probeCase{
		{"tcp match", echo, se(`PING\r\n`, `^PING\r\n`), true, "response matches after 6 bytes", -1},
		{"tcp expect without send", tcpReply(t, "220 smtp ready\r\n"), se("", `^220 `), true, "response matches after \\d+ bytes", -1},
		{"tcp refused", closedPort(t, "tcp"), se(`PING\n`, `PING`), false, "connection refused", -1},
		{"tcp silent", silent, se(`PING\n`, `PONG`), false, "timeout after 300ms waiting for expected response \\(got 0 bytes\\)", -1},
		{"tcp slow", slow, se(`PING\n`, `PONG`), false, "timeout after 300ms waiting for expected response \\(got 0 bytes\\)", -1},
		{"tcp wrong answer then close", wrong, se(`PING\n`, `^PONG`), false, `connection closed before expected response \(got 10 bytes: "ERR busy\\r\\n"\)`, -1},
		{"udp match", uecho, seu(`hello\x00\xff`, `^hello\x00`), true, "reply of 7 bytes", -1},
		{"udp mismatch", uecho, seu(`hello`, `^bye`), false, `reply does not match expect \(5 bytes: "hello"\)`, -1},
		{"udp silent", usilent, seu(`hello`, `x`), false, "timeout after 300ms: no reply", -1},
		{"udp ICMP unreachable", closedPort(t, "udp"), seu(`hello`, `x`), false, "ICMP port unreachable", -1},
	})
}

func TestUDPCheck(t *testing.T) {
	uecho := udpServer(t, func(b []byte) []byte { return append([]byte{}, b...) })
	usilent := udpServer(t, func([]byte) []byte { return nil })
	runProbes(t, []probeCase{
		{"reply", uecho, Config{Type: TypeUDP, Send: "ping"}, true, "reply of 4 bytes", -1},
		{"empty payload", uecho, Config{Type: TypeUDP}, true, "reply of 0 bytes", -1},
		{"reply matches expect", uecho, Config{Type: TypeUDP, Send: "ping", Expect: "^pi"}, true, "reply of 4 bytes", -1},
		{"reply does not match", uecho, Config{Type: TypeUDP, Send: "ping", Expect: "^no"}, false, "reply does not match expect.*", -1},
		{"silent", usilent, Config{Type: TypeUDP, Send: "ping"}, false, "timeout after 300ms: no reply", -1},
		{"ICMP port unreachable", closedPort(t, "udp"), Config{Type: TypeUDP, Send: "ping"}, false, "ICMP port unreachable", -1},
	})
}

func TestHTTPChecksAgainstNginx(t *testing.T) {
	n := startNginx(t)
	sum := sha256.Sum256([]byte("ok ulvs\n"))
	digest := hex.EncodeToString(sum[:])
	slow := tcpSlow(t, 2*probeTimeout, "HTTP/1.0 200 OK\r\n\r\nlate")
	silent := tcpSilent(t)
	slowBody := serveTCP(t, func(c net.Conn) {
		// Answer only after the request: a response before it is an
		// "unsolicited response" to Go's client, a different failure.
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		req := make([]byte, 0, 512)
		for buf := make([]byte, 512); !bytes.Contains(req, []byte("\r\n\r\n")); {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			req = append(req, buf[:n]...)
		}
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok "))
		time.Sleep(2 * probeTimeout)
	})
	h := func(c Config) Config { c.Type = TypeHTTP; return c }
	hs := func(c Config) Config { c.Type = TypeHTTPS; return c }
	runProbes(t, []probeCase{
		{"http 200", n.http, h(Config{Path: "/health"}), true, "status 200", -1},
		{"http default path", n.http, h(Config{}), true, "status 200", -1},
		{"http wrong status", n.http, h(Config{Path: "/fail"}), false, "status 503", -1},
		{"http expected 503", n.http, h(Config{Path: "/fail", ExpectStatus: []int{200, 503}}), true, "status 503", -1},
		{"http redirect not followed", n.http, h(Config{Path: "/redirect"}), false, "status 301", -1},
		{"http body regex", n.http, h(Config{Path: "/health", BodyRegex: `^ok ulvs\n$`}), true, "status 200, body ok", -1},
		{"http body does not match", n.http, h(Config{Path: "/health", BodyRegex: `^ready`}), false, "body does not match regex", -1},
		{"http host header", n.http, h(Config{Path: "/host", Host: "www.example.test", BodyRegex: `host=www\.example\.test `}), true, "status 200, body ok", -1},
		{"http body sha256", n.http, h(Config{Path: "/health", BodySHA256: digest}), true, "status 200, body ok", -1},
		{"http body sha256 mismatch", n.http, h(Config{Path: "/", BodySHA256: digest}), false, "body digest mismatch: sha256 [0-9a-f]{64}", -1},
		{"http refused", closedPort(t, "tcp"), h(Config{}), false, "connection refused", -1},
		{"http silent", silent, h(Config{}), false, "timeout after 300ms", -1},
		{"http slow", slow, h(Config{}), false, "timeout after 300ms", -1},
		{"http slow body", slowBody, h(Config{BodyRegex: "ok"}), false, "reading body: timeout after 300ms", -1},
		{"http to a TLS port", n.https, h(Config{}), false, "status 400", -1},
		{"https no verify", n.https, hs(Config{Path: "/health"}), true, "status 200", -1},
		{"https verify unknown CA", n.https, hs(Config{VerifyTLS: true, SNI: "rs.test"}), false, "certificate verify failed: unknown authority", -1},
		{"https verify with ca_file", n.https, hs(Config{VerifyTLS: true, CAFile: n.certs.caFile, Host: "rs.test", Path: "/host", BodyRegex: `host=rs\.test sni=rs\.test`}), true, "status 200, body ok", -1},
		{"https verify IP", n.https, hs(Config{VerifyTLS: true, CAFile: n.certs.caFile}), true, "status 200", -1},
		{"https verify wrong name", n.https, hs(Config{VerifyTLS: true, CAFile: n.certs.caFile, SNI: "other.test"}), false, "certificate verify failed: x509: certificate is valid for rs.test, not other.test", -1},
		{"https to a plain port", n.http, hs(Config{}), false, "TLS handshake failed: server did not answer with TLS", -1},
	})
}

func TestTLSCheck(t *testing.T) {
	n := startNginx(t)
	dir := t.TempDir()
	expired := makeCerts(t, dir, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	tl := func(c Config) Config { c.Type = TypeTLS; return c }
	runProbes(t, []probeCase{
		{"handshake", n.https, tl(Config{}), true, "handshake ok, TLS 1.[23]", -1},
		{"verify", n.https, tl(Config{VerifyTLS: true, CAFile: n.certs.caFile, SNI: "rs.test"}), true, "handshake ok, TLS 1.[23]", -1},
		{"bad certificate", n.https, tl(Config{VerifyTLS: true, SNI: "rs.test"}), false, "certificate verify failed: unknown authority", -1},
		{"not TLS", n.http, tl(Config{}), false, "TLS handshake failed: server did not answer with TLS", -1},
		{"refused", closedPort(t, "tcp"), tl(Config{}), false, "connection refused", -1},
		{"silent", tcpSilent(t), tl(Config{}), false, "timeout after 300ms", -1},
		{"expired without verify", tlsServer(t, expired.leaf), tl(Config{}), false, "certificate expired at .*", -1},
	})
	r := Probe(context.Background(), Spec{ID: TargetID{"s", n.https}, Config: Config{Type: TypeTLS, Timeout: 5 * time.Second}})
	if !r.CertNotAfter.Equal(n.certs.notAfter) {
		t.Fatalf("CertNotAfter %s, want %s", r.CertNotAfter, n.certs.notAfter)
	}
}

func TestDNSCheck(t *testing.T) {
	dns := startDnsmasq(t)
	usilent := udpServer(t, func([]byte) []byte { return nil })
	// A responder that answers with garbage and one with the wrong ID.
	garbage := udpServer(t, func(b []byte) []byte { return []byte{1, 2, 3} })
	d := func(c Config) Config { c.Type = TypeDNS; return c }
	runProbes(t, []probeCase{
		{"NOERROR", dns, d(Config{QueryName: "x.test"}), true, "NOERROR, 1 answers", -1},
		{"expected answer", dns, d(Config{QueryName: "x.test", ExpectAnswer: "192.0.2.7"}), true, "NOERROR, answer 192.0.2.7", -1},
		{"wrong answer", dns, d(Config{QueryName: "x.test.", ExpectAnswer: "192.0.2.8"}), false, `answer 192.0.2.8 not found \(got \[192.0.2.7\]\)`, -1},
		{"no such name", dns, d(Config{QueryName: "nothing.invalid"}), false, "rcode (REFUSED|NXDOMAIN|SERVFAIL)", -1},
		{"silent", usilent, d(Config{QueryName: "x.test"}), false, "timeout after 300ms: no DNS reply", -1},
		{"ICMP unreachable", closedPort(t, "udp"), d(Config{QueryName: "x.test"}), false, "ICMP port unreachable", -1},
		{"malformed reply", garbage, d(Config{QueryName: "x.test"}), false, "malformed DNS reply: .*", -1},
	})
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "check.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecCheck(t *testing.T) {
	need(t, "sh")
	server := netip.MustParseAddrPort("192.0.2.5:8080")
	pidDir := t.TempDir()
	pidFile := filepath.Join(pidDir, "pids")
	env := writeScript(t, `[ "$ULVS_SERVER_ADDR" = 192.0.2.5 ] && [ "$ULVS_SERVER_PORT" = 8080 ] &&
[ "$ULVS_CONNECT_ADDR" = 198.51.100.1 ] && [ "$ULVS_CONNECT_PORT" = 9000 ] && [ "$ULVS_SERVICE" = svc ] &&
[ "$ULVS_WEIGHT" = 10 ] && [ "$ULVS_TIMEOUT" = 5 ] && [ "$EXTRA" = "a b" ] && [ "$1" = one ] && exit 0
echo "bad env: $ULVS_SERVER_ADDR $ULVS_CONNECT_ADDR:$ULVS_CONNECT_PORT $EXTRA" >&2; exit 1`)
	hang := writeScript(t, `sleep 30 & echo $! > `+pidFile+`; echo $$ >> `+pidFile+`; wait`)
	leaveChild := writeScript(t, `sleep 30 > /dev/null 2>&1 & echo $! > `+pidFile+`.2; exit 0`)
	e := func(prog string, args ...string) Config { return Config{Type: TypeExec, Program: prog, Args: args} }
	envCfg := e(env, "one")
	envCfg.Env = map[string]string{"EXTRA": "a b"}
	runProbes(t, []probeCase{
		{"exit 0", server, e(writeScript(t, "exit 0")), true, "exit code 0", -1},
		{"exit 1 with output", server, e(writeScript(t, "echo 'backend says no' >&2; exit 1")), false, "exit code 1: backend says no", -1},
		{"exit 2 weight 0", server, e(writeScript(t, "exit 2")), true, "exit code 2: weight 0", 0},
		{"exit 7 weight 5", server, e(writeScript(t, "exit 7")), true, "exit code 7: weight 5", 5},
		{"exit 255 weight 253", server, e(writeScript(t, "exit 255")), true, "exit code 255: weight 253", 253},
		{"environment and args", server, func() Config {
			c := envCfg
			c.ConnectAddress = "198.51.100.1:9000"
			return c
		}(), true, "exit code 0", -1},
		{"killed by signal", server, e(writeScript(t, "kill -TERM $$")), false, "killed by signal terminated", -1},
		{"timeout kills the group", server, e(hang), false, "timeout after 300ms: process group killed", -1},
		{"leftover child killed", server, e(leaveChild), true, "exit code 0", -1},
	})
	// Every process the scripts started is gone, and none of our children
	// is a zombie.
	for _, f := range []string{pidFile, pidFile + ".2"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(s)
			gone := false
			for i := 0; i < 200 && !gone; i++ {
				if gone = processGone(pid); !gone {
					time.Sleep(10 * time.Millisecond)
				}
			}
			if !gone {
				t.Errorf("process %d started by a check is still running", pid)
			}
		}
	}
	if z := zombieChildren(); len(z) > 0 {
		t.Errorf("zombie children: %v", z)
	}
}

func TestNoneCheck(t *testing.T) {
	runProbes(t, []probeCase{{"none", netip.MustParseAddrPort("192.0.2.1:80"), Config{Type: TypeNone}, true, "no check", -1}})
}

func TestDescribeTimeoutFormat(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 1500 * time.Millisecond} {
		if got, want := Describe(context.DeadlineExceeded, d, false), fmt.Sprintf("timeout after %s", d); got != want {
			t.Fatalf("%q, want %q", got, want)
		}
	}
}

func TestEnforceDeadline(t *testing.T) {
	past, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	if r := enforceDeadline(past, okResult("status 200"), time.Second); r.OK || r.Reason != "timeout after 1s" {
		t.Fatalf("late success: %+v", r)
	}
	if r := enforceDeadline(past, failResult("status 503"), time.Second); r.Reason != "status 503" {
		t.Fatalf("late failure keeps its reason: %+v", r)
	}
	future, cancel2 := context.WithTimeout(context.Background(), time.Hour)
	defer cancel2()
	if r := enforceDeadline(future, okResult("status 200"), time.Hour); !r.OK {
		t.Fatalf("success in time: %+v", r)
	}
}
