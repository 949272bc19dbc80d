package healthcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Manager tests on the system clock against real servers. They poll the
// Manager's Status, bounded in time; the state machine itself is tested
// with a fake clock in manager_test.go.

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds, failing after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func statusOf(m *Manager, id TargetID) (Status, bool) {
	for _, s := range m.Status() {
		if s.ID == id {
			return s, true
		}
	}
	return Status{}, false
}

// waitGoroutines waits (bounded) for the goroutine count to drop to base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutine leak: %d goroutines, %d before\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestManagerTransitionsAgainstNginx(t *testing.T) {
	n := startNginx(t)
	var logs syncBuffer
	sink := &recSink{}
	m := NewManager(zerolog.New(&logs), sink, WithJitter(func(time.Duration) time.Duration { return 0 }))
	defer m.Close()
	id := TargetID{Service: "web", Server: n.http}
	tlsID := TargetID{Service: "web-tls", Server: n.https}
	cfg := Config{Type: TypeHTTP, Path: "/health", Interval: 50 * time.Millisecond, Timeout: 2 * time.Second, Rise: 2, Fall: 2}
	if err := m.Update([]Spec{
		{ID: id, Weight: 5, Config: cfg},
		{ID: tlsID, Weight: 5, Config: Config{Type: TypeTLS, Interval: 50 * time.Millisecond, Timeout: 2 * time.Second}},
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "three successful checks", func() bool {
		s, _ := statusOf(m, id)
		return s.Checks >= 3 && s.Up && s.LastOK
	})
	n.kill()
	waitFor(t, 20*time.Second, "down", func() bool { s, _ := statusOf(m, id); return !s.Up })
	s, _ := statusOf(m, id)
	// Refused once nginx is gone; a probe caught in its exit may see a reset.
	downReason := s.Reason
	if (downReason != "connection refused" && downReason != "connection reset by peer") || s.Failures < 2 {
		t.Fatalf("down status %+v", s)
	}
	n.restart()
	waitFor(t, 20*time.Second, "up again", func() bool { s, _ := statusOf(m, id); return s.Up })
	s, _ = statusOf(m, id)
	if s.Reason != "passed 2 consecutive checks: status 200" {
		t.Fatalf("up status %+v", s)
	}
	m.notes.flush()
	sink.mu.Lock()
	var evs []string
	for _, e := range sink.evs {
		if strings.HasPrefix(e, n.http.String()+" ") {
			evs = append(evs, e)
		}
	}
	sink.mu.Unlock()
	eq(t, "sink", evs, []string{
		n.http.String() + " initial-up initial state up",
		n.http.String() + " down " + downReason,
		n.http.String() + " up passed 2 consecutive checks: status 200",
	})
	// One log line per transition, not per probe; one certificate warning
	// (the test certificate expires in 24h, inside the 14-day warning).
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"service":"web",`) && strings.Contains(l, `"message":"real server `) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], `"up":false,"reason":"`+downReason+`","consecutive":2`) ||
		!strings.Contains(lines[1], `"up":true,"reason":"passed 2 consecutive checks: status 200"`) {
		t.Fatalf("log lines of the http check, want one down and one up:\n%s", logs.String())
	}
	if c := logs.count("certificate expires soon"); c != 1 {
		t.Fatalf("%d certificate warnings, want 1\n%s", c, logs.String())
	}
	tl, _ := statusOf(m, tlsID)
	if !tl.CertNotAfter.Equal(n.certs.notAfter) {
		t.Fatalf("tls status cert expiry %s, want %s", tl.CertNotAfter, n.certs.notAfter)
	}
}

func TestManagerNoGoroutineLeaks(t *testing.T) {
	n := startNginx(t)
	dns := startDnsmasq(t)
	echo := tcpEcho(t)
	silent := tcpSilent(t)
	uecho := udpServer(t, func(b []byte) []byte { return append([]byte{}, b...) })
	agent, adir := startAgent(t, AgentOptions{CPUs: 2})
	setFile(t, filepath.Join(adir, "loadavg"), "0.5 0.5 0.5 1/1 1\n")
	script := writeScript(t, "exit 3")
	hang := writeScript(t, "sleep 30")
	// The agent serves (so its goroutines exist) before the count is taken.
	if r := Probe(context.Background(), Spec{ID: TargetID{"a", agent}, Weight: 1, Config: Config{Type: TypeFeedback, ConnectPort: int(agent.Port()), Timeout: 5 * time.Second}}); !r.OK {
		t.Fatal(r.Reason)
	}
	base := runtime.NumGoroutine()

	fast := func(c Config) Config {
		c.Interval, c.Rise, c.Fall = 30*time.Millisecond, 1, 1
		if c.Timeout == 0 {
			c.Timeout = 5 * time.Second
		}
		return c
	}
	specs := []Spec{
		{ID: TargetID{"http", n.http}, Weight: 1, Config: fast(Config{Type: TypeHTTP})},
		{ID: TargetID{"https", n.https}, Weight: 1, Config: fast(Config{Type: TypeHTTPS})},
		{ID: TargetID{"tls", n.https}, Weight: 1, Config: fast(Config{Type: TypeTLS})},
		{ID: TargetID{"tcp", echo}, Weight: 1, Config: fast(Config{Type: TypeTCP})},
		{ID: TargetID{"se", echo}, Weight: 1, Config: fast(Config{Type: TypeSendExpect, Send: `a\n`, Expect: "a"})},
		{ID: TargetID{"silent", silent}, Weight: 1, Config: fast(Config{Type: TypeSendExpect, Send: `a\n`, Expect: "a", Timeout: 50 * time.Millisecond})},
		{ID: TargetID{"udp", uecho}, Weight: 1, Config: fast(Config{Type: TypeUDP, Send: "x"})},
		{ID: TargetID{"dns", dns}, Weight: 1, Config: fast(Config{Type: TypeDNS, QueryName: "x.test"})},
		{ID: TargetID{"exec", echo}, Weight: 4, Config: fast(Config{Type: TypeExec, Program: script})},
		{ID: TargetID{"hang", echo}, Weight: 4, Config: fast(Config{Type: TypeExec, Program: hang, Timeout: time.Hour})},
		{ID: TargetID{"feedback", netip.AddrPortFrom(agent.Addr(), 80)}, Weight: 10, Config: fast(Config{Type: TypeFeedback, ConnectPort: int(agent.Port())})},
		{ID: TargetID{"none", echo}, Weight: 1, Config: Config{Type: TypeNone}},
	}
	sink := &recSink{}
	m := NewManager(zerolog.Nop(), sink)
	if err := m.Update(specs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every check to run twice", func() bool {
		for _, s := range m.Status() {
			if s.Checks < 2 && s.Type != TypeNone && s.ID.Service != "hang" {
				return false
			}
		}
		return true
	})
	for _, s := range m.Status() {
		wantUp := s.ID.Service != "silent"
		if s.Up != wantUp && s.Type != TypeNone {
			t.Errorf("%s: up=%v (%s), want %v", s.ID.Service, s.Up, s.LastResult, wantUp)
		}
		switch s.ID.Service {
		case "exec":
			if s.Weight != 1 {
				t.Errorf("exec weight %d, want 1 (exit 3)", s.Weight)
			}
		case "feedback":
			if s.Weight != 8 { // 10 * (1 - 0.5/2) = 7.5
				t.Errorf("feedback weight %d, want 8", s.Weight)
			}
		}
	}
	// Drop half (the hanging exec among them), then all, then close.
	if err := m.Update(specs[6:8]); err != nil {
		t.Fatal(err)
	}
	if got := len(m.Status()); got != 2 {
		t.Fatalf("%d checks after removal, want 2", got)
	}
	if err := m.Update(nil); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m.Close() // idempotent
	if err := m.Update(specs); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close: %v", err)
	}
	if m.Status() != nil {
		t.Fatal("Status after Close")
	}
	waitGoroutines(t, base)
	if z := zombieChildren(); len(z) > 0 {
		t.Fatalf("zombie children: %v", z)
	}
}

func TestManyChecksAgainstOneSlowServer(t *testing.T) {
	const slowN = 2000
	var conns atomic.Int32
	silent := serveTCP(t, func(c net.Conn) {
		conns.Add(1)
		io.Copy(io.Discard, c) // never answers
	})
	echo := tcpEcho(t)
	base := runtime.NumGoroutine()
	// The slow deadline leaves a wide margin: the properties below hold
	// unless this process is starved of CPU for seconds.
	const timeout = 6 * time.Second
	m := NewManager(zerolog.Nop(), nil, WithMaxInFlight(slowN+1), WithJitter(func(iv time.Duration) time.Duration {
		if iv == time.Hour {
			return 20 * time.Millisecond // the slow checks start just after the fast one
		}
		return 0
	}))
	defer m.Close()
	fastID := TargetID{Service: "fast", Server: echo}
	specs := []Spec{{ID: fastID, Weight: 1, Config: Config{Type: TypeSendExpect, Send: `ping\n`, Expect: "ping", Interval: 100 * time.Millisecond, Timeout: 20 * time.Second}}}
	for i := range slowN {
		specs = append(specs, Spec{
			ID:     TargetID{Service: fmt.Sprintf("slow%04d", i), Server: silent},
			Weight: 1,
			Config: Config{Type: TypeSendExpect, Send: `ping\n`, Expect: "pong", Interval: time.Hour, Timeout: timeout},
		})
	}
	if err := m.Update(specs); err != nil {
		t.Fatal(err)
	}
	// Poll until every slow probe has ended, noting how many fast probes
	// completed while all the slow ones were still in flight.
	fastDuringSlow := uint64(0)
	var st []Status
	waitFor(t, 120*time.Second, "every slow probe to end", func() bool {
		st = m.Status()
		slowDone := 0
		var fast Status
		for _, s := range st {
			if s.ID == fastID {
				fast = s
			} else if s.Checks > 0 {
				slowDone++
			}
		}
		if slowDone == 0 {
			fastDuringSlow = fast.Checks
		}
		return slowDone == slowN
	})
	// The fast check kept its own 100ms schedule while 2000 probes hung on
	// the slow server (if it were queued behind them, it would have run at
	// most once before the first of them ended at its 6s deadline).
	if fastDuringSlow < 3 {
		t.Fatalf("the fast check completed %d probes while the slow ones were in flight", fastDuringSlow)
	}
	if got := conns.Load(); got != slowN {
		t.Fatalf("the slow server saw %d connections, want %d", got, slowN)
	}
	var first, last time.Time
	for _, s := range st {
		if s.ID == fastID {
			if !s.Up || s.Failed != 0 {
				t.Fatalf("fast check: %+v", s)
			}
			continue
		}
		// Each slow probe ended at its own deadline: not earlier, and not
		// much later.
		if s.LastOK || !strings.HasPrefix(s.LastResult, "timeout after 6s") {
			t.Fatalf("%s: %+v", s.ID.Service, s)
		}
		if s.LastDuration < timeout || s.LastDuration > timeout+10*time.Second {
			t.Fatalf("%s: probe took %s with a %s deadline", s.ID.Service, s.LastDuration, timeout)
		}
		if first.IsZero() || s.LastCheck.Before(first) {
			first = s.LastCheck
		}
		if s.LastCheck.After(last) {
			last = s.LastCheck
		}
	}
	// They ran side by side: one after another would take 2000 x 6s.
	if spread := last.Sub(first); spread > 30*time.Second {
		t.Fatalf("slow probes ended over %s: not concurrent", spread)
	}
	m.Close()
	waitGoroutines(t, base)
}
