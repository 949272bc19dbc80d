package web

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/control"
)

// fakePlane is a data plane whose counters move: every Snapshot adds
// traffic to each real server with a weight above 0, as if clients kept
// coming. Active connections, health and drops are set by the test.
type fakePlane struct {
	mu     sync.Mutex
	tick   uint64
	active map[string]uint32 // by real server address
	health map[string]string
	conns  []ipvsadm.Conn
}

func newFakePlane() *fakePlane {
	return &fakePlane{active: map[string]uint32{}, health: map[string]string{}}
}

func (f *fakePlane) Apply(op config.Op) error { return nil }
func (f *fakePlane) Zero(k *config.Key) error { return nil }

func (f *fakePlane) Snapshot(s *ipvsadm.Snapshot, conns bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tick++
	for i := range s.Services {
		svc := &s.Services[i]
		for j := range svc.Servers {
			rs := &svc.Servers[j]
			a := rs.Address.String()
			n := f.tick * uint64(max(rs.Weight, 0))
			rs.Stats = ipvsadm.Stats{Conns: n, InPkts: 10 * n, OutPkts: 8 * n, InBytes: 1000 * n, OutBytes: 9000 * n}
			rs.Rate = ipvsadm.Rate{CPS: uint64(rs.Weight) * (f.tick % 7), InPPS: 10 * f.tick, OutPPS: 8 * f.tick, InBPS: 8000 * f.tick, OutBPS: 72000 * f.tick}
			rs.ActiveConns = f.active[a]
			rs.InactConns = f.active[a] / 2
			rs.Health = f.health[a]
			svc.Stats.Conns += rs.Stats.Conns
			svc.Stats.InPkts += rs.Stats.InPkts
			svc.Stats.OutPkts += rs.Stats.OutPkts
			svc.Stats.InBytes += rs.Stats.InBytes
			svc.Stats.OutBytes += rs.Stats.OutBytes
			svc.Rate.InPPS += rs.Rate.InPPS
			svc.Rate.OutPPS += rs.Rate.OutPPS
			svc.Rate.CPS += rs.Rate.CPS
		}
	}
	if conns {
		s.Conns = append([]ipvsadm.Conn(nil), f.conns...)
	}
}

func (f *fakePlane) set(fn func()) {
	f.mu.Lock()
	fn()
	f.mu.Unlock()
}

// recorder passes commands to the real control plane and records them.
type recorder struct {
	*control.Control
	mu   sync.Mutex
	cmds [][]string
}

func (r *recorder) Command(argv []string, stdin []byte) error {
	r.mu.Lock()
	r.cmds = append(r.cmds, append([]string(nil), argv...))
	r.mu.Unlock()
	return r.Control.Command(argv, stdin)
}

func (r *recorder) last() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cmds) == 0 {
		return nil
	}
	return r.cmds[len(r.cmds)-1]
}

const testTable = `
[director]
public_interface = "eth0"
[[virtual_server]]
protocol = "tcp"
address = "10.0.0.1:80"
scheduler = "wrr"
  [[virtual_server.real_server]]
  address = "10.0.1.1:80"
  method = "nat"
  weight = 3
  [[virtual_server.real_server]]
  address = "10.0.1.2:80"
  method = "dr"
  weight = 1
[[virtual_server]]
protocol = "udp"
address = "10.0.0.1:53"
  [[virtual_server.real_server]]
  address = "10.0.1.3:53"
  method = "tun"
  weight = 2
`

var (
	hashOnce sync.Once
	pwHash   string
)

const testPassword = "correct horse"

func testHash(t testing.TB) string {
	hashOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		pwHash = string(h)
	})
	return pwHash
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	m     *Monitor
	plane *fakePlane
	ctl   *control.Control
	rec   *recorder
	url   string // https://127.0.0.1:port
	addr  string
	clock *clock
	pool  *x509.CertPool
	logs  *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	cfg, err := config.Parse([]byte(testTable), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	plane := newFakePlane()
	ctl := control.New(plane, "", cfg.Director, zerolog.Nop())
	if _, err := ctl.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Control: ctl}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	logs := &syncBuf{}
	o := Options{
		Web: config.Web{Listen: l.Addr().String(), StateDir: t.TempDir(), SessionTimeout: time.Hour,
			Users: []config.WebUser{
				{Name: "admin", PasswordHash: testHash(t), Role: config.WebRoleAdmin},
				{Name: "viewer", PasswordHash: testHash(t), Role: config.WebRoleViewer},
			}},
		Control: rec,
		Status: func() any {
			return map[string]any{"drops": map[string]uint64{"not_vip": 4, "truncated": 2},
				"engine": map[string]uint64{"KernelDrops": 17, "RxFrames": 1000, "TxFrames": 990}, "standby": false}
		},
		Log: zerolog.New(logs),
		Now: clk.now,
	}
	if mod != nil {
		mod(&o)
	}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	pool := x509.NewCertPool()
	leaf, err := x509.ParseCertificate(m.Certificate().Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(leaf)
	return &env{t: t, m: m, plane: plane, ctl: ctl, rec: rec, url: "https://" + l.Addr().String(),
		addr: l.Addr().String(), clock: clk, pool: pool, logs: logs}
}

// client returns a browser-like client: it trusts the monitor's
// certificate, keeps cookies and does not follow redirects.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool, ServerName: "localhost"}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) do(c *http.Client, method, path string, form url.Values, hdr ...string) (*http.Response, string) {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func (e *env) login(user string) *http.Client {
	e.t.Helper()
	c := e.client()
	resp, body := e.do(c, "POST", "/login", url.Values{"name": {user}, "password": {testPassword}, "next": {"/"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		e.t.Fatalf("login %s: %d %s", user, resp.StatusCode, body)
	}
	return c
}

var reCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (e *env) csrf(c *http.Client) string {
	e.t.Helper()
	_, body := e.do(c, "GET", "/", nil)
	m := reCSRF.FindStringSubmatch(body)
	if m == nil {
		e.t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

func (e *env) weight(svc, rs string) int {
	for _, s := range e.ctl.Snapshot(false).Services {
		if s.Address.String() == svc {
			for _, r := range s.Servers {
				if r.Address.String() == rs {
					return r.Weight
				}
			}
		}
	}
	return -1
}

func TestNoSession(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	for _, p := range []string{"/", "/service?svc=tcp-10.0.0.1:80", "/failover", "/health", "/conns?q=1.2.3.4"} {
		resp, _ := e.do(c, "GET", p, nil)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next="+url.QueryEscape(p) {
			t.Errorf("GET %s: %d %q, want a redirect to the login page", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp, _ := e.do(c, "GET", "/api/overview", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/overview: %d, want 401", resp.StatusCode)
	}
	form := url.Values{"op": {"quiesce"}, "svc": {"tcp-10.0.0.1:80"}, "rs": {"10.0.1.1:80"}, "csrf": {"x"}}
	if resp, _ := e.do(c, "POST", "/action", form); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /action: %d, want 401", resp.StatusCode)
	}
	if e.weight("10.0.0.1:80", "10.0.1.1:80") != 3 || len(e.rec.cmds) != 0 {
		t.Fatal("an unauthenticated action changed the table")
	}
	// A forged cookie is no session.
	u, _ := url.Parse(e.url)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: CookieName, Value: randomToken()}})
	if resp, _ := e.do(c, "GET", "/api/overview", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged cookie: %d, want 401", resp.StatusCode)
	}
	// The login page is a form; /metrics needs no session.
	if resp, body := e.do(c, "GET", "/login", nil); resp.StatusCode != 200 || !strings.Contains(body, `<form class="login" method="post" action="/login">`) {
		t.Errorf("login page: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := e.do(c, "GET", "/metrics", nil); resp.StatusCode != 200 {
		t.Errorf("/metrics: %d", resp.StatusCode)
	}
}

func TestLoginAndCookie(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	resp, body := e.do(c, "POST", "/login", url.Values{"name": {"admin"}, "password": {testPassword}, "next": {"/health"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/health" {
		t.Fatalf("login: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == CookieName {
			ck = k
		}
	}
	if ck == nil {
		t.Fatal("no session cookie")
	}
	raw := resp.Header.Get("Set-Cookie")
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.MaxAge != 3600 {
		t.Fatalf("cookie flags: %q", raw)
	}
	for _, f := range []string{"Secure", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(raw, f) {
			t.Errorf("Set-Cookie %q lacks %s", raw, f)
		}
	}
	if !strings.HasPrefix(raw, "__Host-") {
		t.Errorf("cookie %q lacks the __Host- prefix", raw)
	}
	if len(ck.Value) != 43 { // 32 random bytes, base64url without padding
		t.Errorf("session id %q: %d characters, want 43 (256 bits)", ck.Value, len(ck.Value))
	}
	if resp, body := e.do(c, "GET", "/", nil); resp.StatusCode != 200 || !strings.Contains(body, "10.0.1.2:80") {
		t.Fatalf("overview after login: %d", resp.StatusCode)
	}
	if !strings.Contains(e.logs.String(), `"audit":"login","user":"admin"`) {
		t.Errorf("no audit line for the login:\n%s", e.logs.String())
	}
	// A second login gets another id.
	c2 := e.login("admin")
	u, _ := url.Parse(e.url)
	if id2 := c2.Jar.Cookies(u)[0].Value; id2 == ck.Value {
		t.Fatal("two logins share a session id")
	}
	// The session expires.
	e.clock.add(time.Hour + time.Second)
	if resp, _ := e.do(c, "GET", "/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("expired session: %d, want a redirect to login", resp.StatusCode)
	}
	// Log out ends the session (with its CSRF token).
	c3 := e.login("viewer")
	tok := e.csrf(c3)
	if resp, _ := e.do(c3, "POST", "/logout", url.Values{"csrf": {tok}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := e.do(c3, "GET", "/api/overview", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", resp.StatusCode)
	}
}

func TestWrongPasswordAndLockout(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	for _, tc := range []struct{ name, pw string }{{"admin", "wrong"}, {"admin", ""}, {"nobody", testPassword}, {"admin", testPassword + " "}} {
		resp, body := e.do(c, "POST", "/login", url.Values{"name": {tc.name}, "password": {tc.pw}})
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, ErrBadLogin.Error()) || len(resp.Cookies()) != 0 {
			t.Fatalf("%s/%q: %d (cookies %v)", tc.name, tc.pw, resp.StatusCode, resp.Cookies())
		}
	}
	if !strings.Contains(e.logs.String(), `"audit":"login-failed","user":"nobody"`) {
		t.Error("no audit line for a failed login")
	}
	// The fifth failure from this address locks it: even the right
	// password is refused now.
	e.do(c, "POST", "/login", url.Values{"name": {"viewer"}, "password": {"nope"}})
	resp, body := e.do(c, "POST", "/login", url.Values{"name": {"viewer"}, "password": {testPassword}})
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "too many failed logins") {
		t.Fatalf("locked address: %d", resp.StatusCode)
	}
	// After the window it works again.
	e.clock.add(LockoutWindow)
	if resp, _ := e.do(c, "POST", "/login", url.Values{"name": {"viewer"}, "password": {testPassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the lockout window: %d", resp.StatusCode)
	}

	// Per user name, from many addresses (as a spread attack would).
	a := e.m.auth
	for i := range MaxFailures {
		if _, err := a.login("admin", "guess", fmt.Sprintf("192.0.2.%d", i)); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if _, err := a.login("admin", testPassword, "198.51.100.7"); !errors.Is(err, ErrLocked) {
		t.Fatalf("locked user from a new address: %v, want ErrLocked", err)
	}
	if _, err := a.login("viewer", testPassword, "198.51.100.7"); err != nil {
		t.Fatalf("another user is not locked: %v", err)
	}
	e.clock.add(LockoutWindow - time.Second)
	if _, err := a.login("admin", testPassword, "198.51.100.7"); !errors.Is(err, ErrLocked) {
		t.Fatalf("still in the window: %v", err)
	}
	e.clock.add(time.Second)
	if _, err := a.login("admin", testPassword, "198.51.100.7"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login("admin")
	form := func(tok string) url.Values {
		v := url.Values{"op": {"weight"}, "svc": {"tcp-10.0.0.1:80"}, "rs": {"10.0.1.1:80"}, "weight": {"9"}}
		if tok != "" {
			v.Set("csrf", tok)
		}
		return v
	}
	other := e.login("viewer")
	for name, tok := range map[string]string{"missing": "", "wrong": randomToken(), "another session's": e.csrf(other)} {
		if resp, _ := e.do(c, "POST", "/action", form(tok)); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s token: %d, want 403", name, resp.StatusCode)
		}
	}
	if e.weight("10.0.0.1:80", "10.0.1.1:80") != 3 || len(e.rec.cmds) != 0 {
		t.Fatal("a change without the right CSRF token reached the control plane")
	}
	if !strings.Contains(e.logs.String(), `"audit":"csrf-rejected"`) {
		t.Error("no audit line for the refused change")
	}
	tok := e.csrf(c)
	// The right token from another site's page: refused on its Origin.
	if resp, _ := e.do(c, "POST", "/action", form(tok), "Origin", "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin change: %d, want 403", resp.StatusCode)
	}
	if resp, _ := e.do(e.client(), "POST", "/login", url.Values{"name": {"admin"}, "password": {testPassword}}, "Origin", "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin login: %d, want 403", resp.StatusCode)
	}
	if e.weight("10.0.0.1:80", "10.0.1.1:80") != 3 {
		t.Fatal("a cross-origin change reached the control plane")
	}
	resp, _ := e.do(c, "POST", "/action", form(tok), "Origin", e.url)
	if resp.StatusCode != http.StatusSeeOther || e.weight("10.0.0.1:80", "10.0.1.1:80") != 9 {
		t.Fatalf("with the token: %d, weight %d", resp.StatusCode, e.weight("10.0.0.1:80", "10.0.1.1:80"))
	}
	// The token also works as a header (fetch).
	v := form("")
	v.Set("weight", "4")
	resp, body := e.do(c, "POST", "/action", v, "X-CSRF-Token", tok, "Accept", "application/json")
	if resp.StatusCode != 200 || !strings.Contains(body, `"ok":true`) || e.weight("10.0.0.1:80", "10.0.1.1:80") != 4 {
		t.Fatalf("header token: %d %s", resp.StatusCode, body)
	}
}

func TestViewerCannotChange(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login("viewer")
	tok := e.csrf(c)
	_, page := e.do(c, "GET", "/service?svc=tcp-10.0.0.1:80", nil)
	if strings.Contains(page, `action="/action"`) {
		t.Error("the viewer's page shows change forms")
	}
	for _, op := range []url.Values{
		{"op": {"weight"}, "weight": {"7"}, "rs": {"10.0.1.1:80"}},
		{"op": {"quiesce"}, "rs": {"10.0.1.1:80"}},
		{"op": {"drain"}, "rs": {"10.0.1.1:80"}},
		{"op": {"remove"}, "rs": {"10.0.1.1:80"}},
		{"op": {"add"}, "rs": {"10.0.1.9:80"}, "method": {"nat"}},
	} {
		op.Set("svc", "tcp-10.0.0.1:80")
		op.Set("csrf", tok)
		if resp, _ := e.do(c, "POST", "/action", op); resp.StatusCode != http.StatusForbidden {
			t.Errorf("viewer %s: %d, want 403", op.Get("op"), resp.StatusCode)
		}
	}
	if len(e.rec.cmds) != 0 || e.weight("10.0.0.1:80", "10.0.1.1:80") != 3 || e.weight("10.0.0.1:80", "10.0.1.9:80") != -1 {
		t.Fatalf("the viewer changed the table: %v", e.rec.cmds)
	}
	// Read-only pages work.
	for _, p := range []string{"/", "/failover", "/health", "/conns", "/api/overview"} {
		if resp, _ := e.do(c, "GET", p, nil); resp.StatusCode != 200 {
			t.Errorf("viewer GET %s: %d", p, resp.StatusCode)
		}
	}
}

func TestAdminActions(t *testing.T) {
	e := newEnv(t, nil)
	c := e.login("admin")
	tok := e.csrf(c)
	act := func(v url.Values) string {
		t.Helper()
		v.Set("csrf", tok)
		resp, _ := e.do(c, "POST", "/action", v)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%v: %d", v, resp.StatusCode)
		}
		_, page := e.do(c, "GET", resp.Header.Get("Location"), nil)
		return page
	}
	want := func(argv ...string) {
		t.Helper()
		if got := e.rec.last(); strings.Join(got, " ") != strings.Join(argv, " ") {
			t.Fatalf("Command(%q), want %q", got, argv)
		}
	}
	act(url.Values{"op": {"weight"}, "svc": {"tcp-10.0.0.1:80"}, "rs": {"10.0.1.2:80"}, "weight": {"5"}})
	want("ulvsadm", "-e", "-t", "10.0.0.1:80", "-r", "10.0.1.2:80", "-g", "-w", "5") // DR stays DR
	act(url.Values{"op": {"quiesce"}, "svc": {"tcp-10.0.0.1:80"}, "rs": {"10.0.1.1:80"}})
	want("ulvsadm", "-e", "-t", "10.0.0.1:80", "-r", "10.0.1.1:80", "-m", "-w", "0")
	if e.weight("10.0.0.1:80", "10.0.1.1:80") != 0 {
		t.Fatal("quiesce did not set weight 0")
	}
	page := act(url.Values{"op": {"add"}, "svc": {"udp-10.0.0.1:53"}, "rs": {"10.0.1.4:53"}, "method": {"tun"}, "weight": {"2"}})
	want("ulvsadm", "-a", "-u", "10.0.0.1:53", "-r", "10.0.1.4:53", "-i", "-w", "2")
	if e.weight("10.0.0.1:53", "10.0.1.4:53") != 2 || !strings.Contains(page, "done: ulvsadm -a -u 10.0.0.1:53") {
		t.Fatalf("add: weight %d\n%s", e.weight("10.0.0.1:53", "10.0.1.4:53"), page)
	}
	// ulvsadm's validation answers, and the page shows its error.
	page = act(url.Values{"op": {"add"}, "svc": {"udp-10.0.0.1:53"}, "rs": {"10.0.1.4:53"}, "method": {"tun"}})
	if !strings.Contains(page, `class="flash err"`) || !strings.Contains(page, "already exists") {
		t.Fatalf("duplicate add: no error shown\n%s", page)
	}
	page = act(url.Values{"op": {"weight"}, "svc": {"tcp-10.0.0.1:80"}, "rs": {"10.0.1.2:80"}, "weight": {"70000"}})
	if !strings.Contains(page, `class="flash err"`) || e.weight("10.0.0.1:80", "10.0.1.2:80") != 5 {
		t.Fatalf("weight 70000 accepted\n%s", page)
	}
	page = act(url.Values{"op": {"weight"}, "svc": {"tcp-10.0.0.1:80"}, "rs": {"10.0.1.2:80"}, "weight": {"abc"}})
	if !strings.Contains(page, "weight &#34;abc&#34; is not a number") {
		t.Fatalf("weight abc\n%s", page)
	}
	act(url.Values{"op": {"remove"}, "svc": {"udp-10.0.0.1:53"}, "rs": {"10.0.1.4:53"}})
	want("ulvsadm", "-d", "-u", "10.0.0.1:53", "-r", "10.0.1.4:53")
	if e.weight("10.0.0.1:53", "10.0.1.4:53") != -1 {
		t.Fatal("remove did not remove")
	}
	// Drain: weight 0 now, removal once the connections have ended.
	e.plane.set(func() { e.plane.active["10.0.1.2:80"] = 4 })
	page = act(url.Values{"op": {"drain"}, "svc": {"tcp-10.0.0.1:80"}, "rs": {"10.0.1.2:80"}})
	want("ulvsadm", "-e", "-t", "10.0.0.1:80", "-r", "10.0.1.2:80", "-g", "-w", "0")
	if !strings.Contains(page, "draining") {
		t.Fatal("the page does not show the drain")
	}
	e.m.SampleOnce()
	if e.weight("10.0.0.1:80", "10.0.1.2:80") != 0 {
		t.Fatal("drained server removed while it still has connections")
	}
	e.plane.set(func() { e.plane.active["10.0.1.2:80"] = 0 })
	e.m.SampleOnce()
	want("ulvsadm", "-d", "-t", "10.0.0.1:80", "-r", "10.0.1.2:80")
	if e.weight("10.0.0.1:80", "10.0.1.2:80") != -1 {
		t.Fatal("drained server not removed")
	}
	logs := e.logs.String()
	for _, w := range []string{`"audit":"change","user":"admin"`, `"op":"drain"`, `"audit":"drained"`} {
		if !strings.Contains(logs, w) {
			t.Errorf("no audit line with %s", w)
		}
	}
	// Bad forms never reach the control plane.
	n := len(e.rec.cmds)
	for _, v := range []url.Values{
		{"op": {"explode"}, "svc": {"tcp-10.0.0.1:80"}, "rs": {"10.0.1.1:80"}},
		{"op": {"weight"}, "svc": {"nope"}, "rs": {"10.0.1.1:80"}, "weight": {"1"}},
		{"op": {"weight"}, "svc": {"tcp-10.0.0.1:80"}, "rs": {"10.0.1.1"}, "weight": {"1"}},
		{"op": {"add"}, "svc": {"tcp-10.0.0.1:80"}, "rs": {"10.0.1.8:80"}, "method": {"carrier-pigeon"}},
	} {
		if page := act(v); !strings.Contains(page, "bad action") {
			t.Errorf("%v: no error shown", v)
		}
	}
	if len(e.rec.cmds) != n {
		t.Fatalf("bad forms reached Command: %v", e.rec.cmds[n:])
	}
}

func TestPlainHTTPRedirected(t *testing.T) {
	e := newEnv(t, nil)
	conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /service?svc=x HTTP/1.1\r\nHost: mon.example:8443\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://mon.example:8443/service?svc=x" {
		t.Fatalf("plain HTTP: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if strings.Contains(string(body), "10.0.0.1") {
		t.Fatal("plain HTTP got data")
	}
	// Also /metrics and the API: only the redirect.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	for _, p := range []string{"/metrics", "/api/overview", "/login"} {
		r, err := c.Get("http://" + e.addr + p)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusMovedPermanently || r.Header.Get("Location") != "https://"+e.addr+p {
			t.Errorf("plain GET %s: %d %q", p, r.StatusCode, r.Header.Get("Location"))
		}
	}
	r, err := c.Post("http://"+e.addr+"/login", "application/x-www-form-urlencoded", strings.NewReader("name=admin&password=x"))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("plain POST: %d, want 308", r.StatusCode)
	}
	// A silent client does not stop others from being served.
	idle, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if resp, _ := e.do(e.client(), "GET", "/login", nil); resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("HTTPS beside an idle connection: %d", resp.StatusCode)
	}
	// Security headers on HTTPS.
	resp2, _ := e.do(e.client(), "GET", "/login", nil)
	if !strings.Contains(resp2.Header.Get("Content-Security-Policy"), "script-src 'self'") || resp2.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers: %v", resp2.Header)
	}
}

func TestSelfSignedCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	c1, gen, err := LoadCertificate("", "", dir, "192.0.2.10:8443")
	if err != nil || !gen {
		t.Fatalf("first start: %v generated=%v", err, gen)
	}
	st, err := os.Stat(filepath.Join(dir, SelfSignedKey))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, st)
	}
	c2, gen, err := LoadCertificate("", "", dir, "192.0.2.10:8443")
	if err != nil || gen || Fingerprint(c1) != Fingerprint(c2) {
		t.Fatalf("second start: %v generated=%v, same=%v", err, gen, Fingerprint(c1) == Fingerprint(c2))
	}
	leaf, _ := x509.ParseCertificate(c1.Certificate[0])
	if err := leaf.VerifyHostname("192.0.2.10"); err != nil {
		t.Errorf("certificate not valid for the listen address: %v", err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Errorf("certificate not valid for localhost: %v", err)
	}
	// Given files are used as they are.
	c3, gen, err := LoadCertificate(filepath.Join(dir, SelfSignedCert), filepath.Join(dir, SelfSignedKey), t.TempDir(), ":1")
	if err != nil || gen || Fingerprint(c3) != Fingerprint(c1) {
		t.Fatalf("cert_file: %v %v", err, gen)
	}
	if _, _, err := LoadCertificate("/nonexistent.pem", "/nonexistent.key", dir, ":1"); err == nil || !strings.Contains(err.Error(), "cert_file") {
		t.Fatalf("missing cert_file: %v", err)
	}
	// A corrupt stored certificate is an error, not silently replaced.
	os.WriteFile(filepath.Join(dir, SelfSignedCert), []byte("junk"), 0o644)
	if _, _, err := LoadCertificate("", "", dir, ":1"); err == nil || !strings.Contains(err.Error(), "delete") {
		t.Fatalf("corrupt stored cert: %v", err)
	}
	// The monitor reuses the state directory's certificate across restarts.
	sd := t.TempDir()
	mk := func() string {
		m, err := New(Options{Web: config.Web{Listen: "127.0.0.1:0", StateDir: sd, Users: []config.WebUser{{Name: "a", PasswordHash: testHash(t), Role: "admin"}}},
			Control: &recorder{Control: control.New(newFakePlane(), "", config.Director{}, zerolog.Nop())}, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		return Fingerprint(m.Certificate())
	}
	if a, b := mk(), mk(); a != b {
		t.Fatal("restart made a new certificate")
	}
}

func TestMetrics(t *testing.T) {
	fo := &FailoverStatus{Role: "master", Peer: "10.0.0.3", Transitions: 3, Reason: "peer silent"}
	e := newEnv(t, func(o *Options) { o.Failover = func() *FailoverStatus { return fo } })
	e.plane.set(func() {
		e.plane.active["10.0.1.1:80"] = 12
		e.plane.health["10.0.1.1:80"] = "up"
		e.plane.health["10.0.1.2:80"] = "down"
	})
	e.m.Event(HealthEvent{Service: "tcp 10.0.0.1:80", RealServer: "10.0.1.2:80", From: "up", To: "down"})
	resp, body := e.do(e.client(), "GET", "/metrics", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus parser: %v\n%s", err, body)
	}
	get := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s", name)
		}
	next:
		for _, m := range f.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	// The fake plane's snapshot for /metrics was its first: tick 1.
	rs1 := map[string]string{"protocol": "tcp", "vip": "10.0.0.1:80", "real_server": "10.0.1.1:80"}
	with := func(m map[string]string, k, v string) map[string]string {
		n := map[string]string{k: v}
		for a, b := range m {
			n[a] = b
		}
		return n
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ulvs_real_server_connections_total", rs1, 3},
		{"ulvs_scheduler_decisions_total", rs1, 3},
		{"ulvs_real_server_packets_total", with(rs1, "direction", "in"), 30},
		{"ulvs_real_server_bytes_total", with(rs1, "direction", "out"), 27000},
		{"ulvs_real_server_active_connections", rs1, 12},
		{"ulvs_real_server_inactive_connections", rs1, 6},
		{"ulvs_real_server_weight", rs1, 3},
		{"ulvs_real_server_health", with(rs1, "state", "up"), 1},
		{"ulvs_real_server_health", map[string]string{"real_server": "10.0.1.2:80", "state": "down"}, 1},
		{"ulvs_real_server_health", map[string]string{"real_server": "10.0.1.3:53", "protocol": "udp", "state": "not_checked"}, 1},
		{"ulvs_virtual_service_connections_total", map[string]string{"protocol": "tcp", "vip": "10.0.0.1:80"}, 4},
		{"ulvs_virtual_service_packets_total", map[string]string{"vip": "10.0.0.1:80", "direction": "out"}, 32},
		{"ulvs_virtual_service_active_connections", map[string]string{"vip": "10.0.0.1:80"}, 12},
		{"ulvs_drops_total", map[string]string{"reason": "not_vip"}, 4},
		{"ulvs_drops_total", map[string]string{"reason": "truncated"}, 2},
		{"ulvs_engine_ring_drops_total", nil, 17},
		{"ulvs_engine_rx_frames_total", nil, 1000},
		{"ulvs_standby", nil, 0},
		{"ulvs_failover_role", map[string]string{"role": "master"}, 1},
		{"ulvs_failover_transitions_total", nil, 3},
		{"ulvs_health_transitions_total", nil, 1},
	} {
		if got := get(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "ulvs_") {
			t.Errorf("metric %s lacks the ulvs_ prefix", name)
		}
		if isCounter := f.GetType().String() == "COUNTER"; isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: type %s", name, f.GetType())
		}
	}
	// The plain metrics listener serves only /metrics.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.m.ServeMetrics(ctx, l) }()
	defer func() { cancel(); <-done }()
	r, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if _, err := p.TextToMetricFamilies(strings.NewReader(string(b))); err != nil || r.StatusCode != 200 {
		t.Fatalf("plain /metrics: %d %v", r.StatusCode, err)
	}
	if r, err := http.Get("http://" + l.Addr().String() + "/"); err != nil || r.StatusCode != 404 {
		t.Fatalf("plain / : %v %v", r, err)
	}
	// Without failover, no failover metrics.
	e2 := newEnv(t, nil)
	_, body = e2.do(e2.client(), "GET", "/metrics", nil)
	if strings.Contains(body, "ulvs_failover_role") {
		t.Error("failover metrics without failover")
	}
}

func TestPagesAndHistory(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.History = 5 })
	c := e.login("viewer")
	_, page := e.do(c, "GET", "/failover", nil)
	if !strings.Contains(page, "failover not configured") {
		t.Error("failover page without failover")
	}
	fo := &FailoverStatus{Role: "backup", Peer: "10.0.0.3", Reason: "peer has higher priority", Since: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)}
	e.m.SetFailover(func() *FailoverStatus { return fo })
	_, page = e.do(c, "GET", "/failover", nil)
	for _, w := range []string{"backup", "10.0.0.3", "peer has higher priority", "2026-01-02 03:00:00 UTC"} {
		if !strings.Contains(page, w) {
			t.Errorf("failover page lacks %q", w)
		}
	}
	// Health: changes seen between samples are logged.
	e.m.SampleOnce()
	e.plane.set(func() { e.plane.health["10.0.1.1:80"] = "down" })
	e.m.SampleOnce()
	_, page = e.do(c, "GET", "/health", nil)
	if !strings.Contains(page, "10.0.1.1:80") || !strings.Contains(page, `<span class="health bad">down</span></td><td>seen by the monitor`) {
		t.Errorf("health log lacks the transition:\n%s", page)
	}
	if !strings.Contains(page, NotChecked) {
		t.Error("unchecked servers not shown as such")
	}
	// History is bounded and moves.
	for range 10 {
		e.clock.add(2 * time.Second)
		e.m.SampleOnce()
	}
	resp, body := e.do(c, "GET", "/api/overview", nil)
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	h := e.m.history(nil)
	if len(h.Times) != 5 || len(h.Series["tcp-10.0.0.1:80"].PPS) != 5 {
		t.Fatalf("history: %d samples", len(h.Times))
	}
	if s := h.Series["tcp-10.0.0.1:80"].PPS; s[4] <= s[0] {
		t.Errorf("pps series does not move: %v", s)
	}
	if !strings.Contains(body, `"series"`) || !strings.Contains(body, `"id":"tcp-10.0.0.1:80"`) {
		t.Errorf("overview JSON: %s", body)
	}
	// Connection search.
	e.plane.set(func() {
		e.plane.conns = []ipvsadm.Conn{
			{Protocol: config.TCP, Client: netip.MustParseAddrPort("192.0.2.7:40000"), Virtual: netip.MustParseAddrPort("10.0.0.1:80"), Dest: netip.MustParseAddrPort("10.0.1.1:80"), State: "ESTABLISHED", Expires: 899},
			{Protocol: config.TCP, Client: netip.MustParseAddrPort("192.0.2.8:40001"), Virtual: netip.MustParseAddrPort("10.0.0.1:80"), Dest: netip.MustParseAddrPort("10.0.1.2:80"), State: "FIN_WAIT", Expires: 100},
		}
	})
	for q, want := range map[string]int{"192.0.2.7": 1, "10.0.1.2:80": 1, "10.0.0.1": 2, "192.0.2.": 2, "203.0.113.1": 0} {
		_, page = e.do(c, "GET", "/conns?q="+url.QueryEscape(q), nil)
		if got := strings.Count(page, "<td>tcp</td>"); got != want {
			t.Errorf("search %q: %d rows, want %d", q, got, want)
		}
	}
	// Detail page of an unknown service.
	if resp, _ := e.do(c, "GET", "/service?svc=tcp-10.9.9.9:1", nil); resp.StatusCode != 404 {
		t.Errorf("unknown service: %d", resp.StatusCode)
	}
	// Assets are embedded.
	for _, a := range []string{"/assets/app.js", "/assets/style.css"} {
		if resp, body := e.do(c, "GET", a, nil); resp.StatusCode != 200 || len(body) < 500 {
			t.Errorf("%s: %d", a, resp.StatusCode)
		}
	}
}

func TestEventRingBounded(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Events = 3; o.HealthFeed = true })
	for i := range 10 {
		e.m.Event(HealthEvent{RealServer: fmt.Sprint(i), To: "up"})
	}
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	if len(e.m.events) != 3 || e.m.events[0].RealServer != "7" || e.m.nEvents != 10 {
		t.Fatalf("events %+v n=%d", e.m.events, e.m.nEvents)
	}
}

func TestStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	users := []config.WebUser{{Name: "a", PasswordHash: testHash(t), Role: "admin"}}
	ctl := control.New(newFakePlane(), "", config.Director{}, zerolog.Nop())
	m, err := New(Options{Web: config.Web{Listen: busy.Addr().String(), StateDir: t.TempDir(), Users: users}, Control: ctl})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "web.listen") {
		t.Fatalf("busy port: %v", err)
	}
	m, err = New(Options{Web: config.Web{Listen: "127.0.0.1:0", MetricsListen: busy.Addr().String(), StateDir: t.TempDir(), Users: users}, Control: ctl})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "web.metrics_listen") {
		t.Fatalf("busy metrics port: %v", err)
	}
	m, err = New(Options{Web: config.Web{Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", StateDir: t.TempDir(), Users: users}, Control: ctl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, err := m.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the monitor did not stop with its context")
	}
	if _, err := New(Options{Web: config.Web{Listen: ":1"}, Control: ctl}); !errors.Is(err, ErrNoUsers) {
		t.Fatalf("no users: %v", err)
	}
}

// FuzzActionArgv: any form is either refused with an error or becomes an
// ulvsadm command for the named service; it never panics.
func FuzzActionArgv(f *testing.F) {
	for _, s := range [][5]string{
		{"weight", "tcp-10.0.0.1:80", "10.0.1.1:80", "5", ""},
		{"add", "udp-10.0.0.1:53", "10.0.1.9:53", "", "tun"},
		{"drain", "tcp-[::1]:80", "[::2]:80", "", ""},
		{"remove", "tcp-", "x", "-1", "nat"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	cfg, err := config.Parse([]byte(testTable), "t.toml")
	if err != nil {
		f.Fatal(err)
	}
	ctl := control.New(newFakePlane(), "", cfg.Director, zerolog.Nop())
	if _, err := ctl.Apply(cfg); err != nil {
		f.Fatal(err)
	}
	m := &Monitor{o: Options{Control: ctl}, draining: map[string]bool{}}
	f.Fuzz(func(t *testing.T, op, svc, rs, weight, method string) {
		argv, drain, err := m.actionArgv(op, svc, rs, weight, method)
		if err != nil {
			if !errors.Is(err, ErrBadAction) {
				t.Fatalf("error %v is not ErrBadAction", err)
			}
			return
		}
		if len(argv) < 6 || argv[0] != "ulvsadm" || (argv[2] != "-t" && argv[2] != "-u") || argv[4] != "-r" {
			t.Fatalf("argv %q", argv)
		}
		if drain != "" && op != "drain" {
			t.Fatalf("drain %q for op %q", drain, op)
		}
		_ = ctl.Command(argv, nil) // validated there; must not panic
	})
}

// The health overlay's fields are read by their JSON names, whether or
// not this build's ipvsadm.Server has them.
func TestHealthOf(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	type withOverlay struct {
		ipvsadm.Server
		Reason          string    `json:"reason,omitempty"`
		Since           time.Time `json:"since,omitzero"`
		Check           string    `json:"check,omitempty"`
		EffectiveWeight int       `json:"effective_weight"`
	}
	h := healthOf(&withOverlay{Server: ipvsadm.Server{Health: "down", Weight: 3}, Reason: "status 503", Since: since, Check: "http"})
	if h.Reason != "status 503" || !h.Since.Equal(since) || h.Check != "http" || h.EffectiveWeight == nil || *h.EffectiveWeight != 0 {
		t.Fatalf("%+v", h)
	}
	if h := healthOf(&ipvsadm.Server{Health: "up"}); h.Reason != "" || !h.Since.IsZero() {
		t.Fatalf("plain server: %+v", h)
	}
}
