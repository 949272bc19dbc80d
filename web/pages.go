package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ulvs/ulvs/config/ipvsadm"
)

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"rate": humanRate,
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"healthClass": func(h string) string {
		switch h {
		case "up", "alive":
			return "ok"
		case "down", "dead", "failed":
			return "bad"
		case NotChecked:
			return "none"
		}
		return "warn"
	},
}).ParseFS(assets, "assets/*.html"))

// humanRate prints a count per second with k/M/G suffixes.
func humanRate(v uint64) string {
	f := float64(v)
	for _, u := range []string{"", "k", "M", "G"} {
		if f < 1000 || u == "G" {
			if u == "" {
				return strconv.FormatUint(v, 10)
			}
			return strconv.FormatFloat(f, 'f', 1, 64) + u
		}
		f /= 1000
	}
	return ""
}

// pageData is what every page template gets.
type pageData struct {
	Title    string
	Nav      string
	User     string
	Admin    bool
	CSRF     string
	Flash    string
	FlashErr bool
	Next     string
	Error    string

	Services []ServiceView
	Service  *ServiceView
	Failover *FailoverStatus
	Events   []HealthEvent
	Query    string
	Conns    []ipvsadm.Conn
	NConns   int
	Capped   bool
	Status   daemonStatus
}

func (m *Monitor) routes() {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /metrics", m.metrics)
	mux.HandleFunc("GET /login", m.loginPage)
	mux.HandleFunc("POST /login", m.loginPost)
	mux.HandleFunc("POST /logout", m.authed(m.logoutPost, true))
	mux.HandleFunc("GET /{$}", m.authed(m.overview, false))
	mux.HandleFunc("GET /service", m.authed(m.servicePage, false))
	mux.HandleFunc("GET /failover", m.authed(m.failoverPage, false))
	mux.HandleFunc("GET /health", m.authed(m.healthPage, false))
	mux.HandleFunc("GET /conns", m.authed(m.connsPage, false))
	mux.HandleFunc("GET /api/overview", m.authed(m.apiOverview, false))
	mux.HandleFunc("POST /action", m.authed(m.action, true))
	m.mux = http.NewServeMux()
	m.mux.Handle("/", m.secure(mux))
}

// secure answers plain HTTP with a redirect to HTTPS and sets the
// security headers.
func (m *Monitor) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			w.Header().Set("Connection", "close")
			code := http.StatusMovedPermanently
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				code = http.StatusPermanentRedirect
			}
			host := r.Host
			if host == "" {
				host = m.o.Web.Listen
			}
			http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), code)
			return
		}
		// A change from another site's page: refused (besides SameSite
		// cookies and CSRF tokens), the login form included.
		if r.Method == http.MethodPost {
			if o := r.Header.Get("Origin"); o != "" && o != "null" && o != "https://"+r.Host {
				m.log.Warn().Str("audit", "cross-origin").Str("origin", o).Str("from", sourceAddr(r)).
					Str("path", r.URL.Path).Msg("request from another site refused")
				httpError(w, http.StatusForbidden, "cross-site request refused")
				return
			}
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

type ctxHandler func(w http.ResponseWriter, r *http.Request, s *session)

// authed requires a session: pages redirect to the login form, API calls
// and changes answer 401. change also requires the admin role (403) and
// the session's CSRF token (403) — except logout, which any role may do.
func (m *Monitor) authed(h ctxHandler, change bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := m.auth.session(r)
		if s == nil {
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			httpError(w, http.StatusUnauthorized, "log in first")
			return
		}
		if change {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if !checkCSRF(s, r) {
				m.log.Warn().Str("audit", "csrf-rejected").Str("user", s.user).Str("from", sourceAddr(r)).
					Str("path", r.URL.Path).Msg("change refused: missing or wrong CSRF token")
				httpError(w, http.StatusForbidden, "missing or wrong CSRF token; reload the page")
				return
			}
			if r.URL.Path != "/logout" && !s.admin() {
				m.log.Warn().Str("audit", "forbidden").Str("user", s.user).Str("from", sourceAddr(r)).
					Str("path", r.URL.Path).Msg("change refused: viewer role")
				httpError(w, http.StatusForbidden, "your role is viewer: read only")
				return
			}
		}
		h(w, r, s)
	}
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": msg, "code": code})
}

func (m *Monitor) render(w http.ResponseWriter, name string, d *pageData, s *session) {
	if s != nil {
		d.User, d.Admin, d.CSRF = s.user, s.admin(), s.csrf
		m.auth.mu.Lock()
		if f := s.flash; f != "" {
			d.Flash, d.FlashErr = f, s.flashErr
			s.flash = ""
		}
		m.auth.mu.Unlock()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pages.ExecuteTemplate(w, name, d); err != nil {
		m.log.Error().Err(err).Str("page", name).Msg("rendering")
	}
}

func safeNext(n string) string {
	if !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.HasPrefix(n, "/\\") {
		return "/"
	}
	return n
}

func (m *Monitor) loginPage(w http.ResponseWriter, r *http.Request) {
	m.render(w, "login.html", &pageData{Title: "Log in", Next: safeNext(r.URL.Query().Get("next"))}, nil)
}

func (m *Monitor) loginPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	name, pass := r.PostFormValue("name"), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	from := sourceAddr(r)
	s, err := m.auth.login(name, pass, from)
	if err != nil {
		code := http.StatusUnauthorized
		if errors.Is(err, ErrLocked) {
			code = http.StatusTooManyRequests
		}
		m.log.Warn().Str("audit", "login-failed").Str("user", name).Str("from", from).Err(err).Msg("login refused")
		w.WriteHeader(code)
		m.render(w, "login.html", &pageData{Title: "Log in", Next: next, Error: err.Error()}, nil)
		return
	}
	m.log.Info().Str("audit", "login").Str("user", s.user).Str("role", s.role).Str("from", from).Msg("logged in")
	http.SetCookie(w, sessionCookie(s.id, int(m.o.Web.SessionTimeout/time.Second)))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (m *Monitor) logoutPost(w http.ResponseWriter, r *http.Request, s *session) {
	m.auth.logout(s)
	m.log.Info().Str("audit", "logout").Str("user", s.user).Str("from", sourceAddr(r)).Msg("logged out")
	http.SetCookie(w, sessionCookie("", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (m *Monitor) overview(w http.ResponseWriter, r *http.Request, s *session) {
	snap := m.o.Control.Snapshot(false)
	m.render(w, "overview.html", &pageData{Title: "Overview", Nav: "overview", Services: m.view(snap),
		Failover: m.failover(), Status: m.status()}, s)
}

func (m *Monitor) findService(id string) *ServiceView {
	for _, v := range m.view(m.o.Control.Snapshot(false)) {
		if v.ID == id {
			return &v
		}
	}
	return nil
}

func (m *Monitor) servicePage(w http.ResponseWriter, r *http.Request, s *session) {
	v := m.findService(r.URL.Query().Get("svc"))
	if v == nil {
		w.WriteHeader(http.StatusNotFound)
		m.render(w, "error.html", &pageData{Title: "Not found", Error: "no such virtual service"}, s)
		return
	}
	m.render(w, "service.html", &pageData{Title: v.Protocol + " " + v.Address, Nav: "overview", Service: v}, s)
}

func (m *Monitor) failoverPage(w http.ResponseWriter, r *http.Request, s *session) {
	m.render(w, "failover.html", &pageData{Title: "Failover", Nav: "failover", Failover: m.failover(), Status: m.status()}, s)
}

func (m *Monitor) healthPage(w http.ResponseWriter, r *http.Request, s *session) {
	m.mu.Lock()
	ev := make([]HealthEvent, len(m.events))
	for i, e := range m.events { // newest first
		ev[len(ev)-1-i] = e
	}
	m.mu.Unlock()
	snap := m.o.Control.Snapshot(false)
	m.render(w, "health.html", &pageData{Title: "Health checks", Nav: "health", Events: ev, Services: m.view(snap)}, s)
}

// maxConnRows bounds the rows of a connection search.
const maxConnRows = 500

func (m *Monitor) connsPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	d := &pageData{Title: "Connections", Nav: "conns", Query: q}
	if q != "" { // the connection table is copied only for a search
		snap := m.o.Control.Snapshot(true)
		d.NConns = len(snap.Conns)
		for _, c := range snap.Conns {
			if connMatches(c, q) {
				if len(d.Conns) == maxConnRows {
					d.Capped = true
					break
				}
				d.Conns = append(d.Conns, c)
			}
		}
	}
	m.render(w, "conns.html", d, s)
}

// connMatches: q is an address (matches client, virtual or real server
// address), an address:port (matches exactly one of them), or a
// substring of any of the three.
func connMatches(c ipvsadm.Conn, q string) bool {
	if ap, err := netip.ParseAddrPort(q); err == nil {
		return c.Client == ap || c.Virtual == ap || c.Dest == ap
	}
	if a, err := netip.ParseAddr(q); err == nil {
		return c.Client.Addr() == a || c.Virtual.Addr() == a || c.Dest.Addr() == a
	}
	return strings.Contains(c.Client.String(), q) || strings.Contains(c.Virtual.String(), q) ||
		strings.Contains(c.Dest.String(), q)
}

// Overview is the body of GET /api/overview.
type Overview struct {
	Time     int64           `json:"time"` // unix milliseconds
	Services []ServiceView   `json:"services"`
	History  History         `json:"history"`
	Failover *FailoverStatus `json:"failover"`
	Drops    uint64          `json:"drops"`
	Standby  bool            `json:"standby"`
}

func (m *Monitor) apiOverview(w http.ResponseWriter, r *http.Request, s *session) {
	snap := m.o.Control.Snapshot(false)
	st := m.status()
	o := Overview{Time: m.now().UnixMilli(), Services: m.view(snap), Failover: m.failover(), Standby: st.Standby}
	for _, n := range st.Drops {
		o.Drops += n
	}
	var ids map[string]bool
	if id := r.URL.Query().Get("svc"); id != "" {
		ids = map[string]bool{id: true}
		for _, v := range o.Services {
			if v.ID == id {
				for _, rs := range v.Servers {
					ids[rs.ID] = true
				}
			}
		}
	}
	o.History = m.history(ids)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(o)
}

// action carries out an admin action from a form: op = weight, quiesce,
// drain, add or remove; svc = service id; rs = real server address:port;
// weight; method (add). Each becomes one ipvsadm command for
// Control.Command, with ulvsadm's validation; its error is shown.
func (m *Monitor) action(w http.ResponseWriter, r *http.Request, s *session) {
	op, svcID, rs := r.PostFormValue("op"), r.PostFormValue("svc"), strings.TrimSpace(r.PostFormValue("rs"))
	back := "/service?svc=" + url.QueryEscape(svcID)
	argv, drain, err := m.actionArgv(op, svcID, rs, strings.TrimSpace(r.PostFormValue("weight")), r.PostFormValue("method"))
	if err == nil {
		err = m.o.Control.Command(argv, nil)
	}
	ev := m.log.Info()
	if err != nil {
		ev = m.log.Warn().Err(err)
	}
	ev.Str("audit", "change").Str("user", s.user).Str("from", sourceAddr(r)).Str("op", op).
		Str("service", svcID).Str("real_server", rs).Strs("argv", argv).Bool("ok", err == nil).Msg("admin action")
	msg := ""
	if err == nil {
		if drain != "" {
			m.mu.Lock()
			m.draining[drain] = true
			m.mu.Unlock()
		} else if op == "weight" || op == "quiesce" || op == "remove" {
			m.mu.Lock()
			delete(m.draining, serverID(svcID, netip.MustParseAddrPort(rs)))
			m.mu.Unlock()
		}
		msg = "done: " + strings.Join(argv, " ")
		if drain != "" {
			msg += " (draining: removed when its connections have ended)"
		}
	} else {
		msg = err.Error()
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		code := http.StatusOK
		if err != nil {
			code = http.StatusUnprocessableEntity
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": err == nil, "message": msg, "argv": argv})
		return
	}
	m.auth.mu.Lock()
	s.flash, s.flashErr = msg, err != nil
	m.auth.mu.Unlock()
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// ErrBadAction is a form that names no known action or a bad field.
var ErrBadAction = errors.New("bad action")

func (m *Monitor) actionArgv(op, svcID, rs, weight, method string) (argv []string, drain string, err error) {
	proto, svc, ok := parseServiceID(svcID)
	if !ok {
		return nil, "", fmt.Errorf("%w: no such virtual service %q", ErrBadAction, svcID)
	}
	rsAddr, perr := netip.ParseAddrPort(rs)
	if perr != nil {
		return nil, "", fmt.Errorf("%w: real server %q: want address:port", ErrBadAction, rs)
	}
	base := []string{"ulvsadm", "", protoFlag(proto), svc.String(), "-r", rsAddr.String()}
	// The current method of the server (edits keep it).
	cur := ""
	if v := m.findService(svcID); v != nil {
		for _, s := range v.raw.Servers {
			if s.Address == rsAddr {
				cur = s.Method.String()
			}
		}
	}
	edit := func(w string) ([]string, error) {
		if cur == "" {
			return nil, fmt.Errorf("%w: no real server %s in %s", ErrBadAction, rsAddr, svcID)
		}
		mf, _ := methodFlag(cur)
		a := append(base, mf, "-w", w)
		a[1] = "-e"
		return a, nil
	}
	switch op {
	case "weight":
		if _, err := strconv.Atoi(weight); err != nil {
			return nil, "", fmt.Errorf("%w: weight %q is not a number", ErrBadAction, weight)
		}
		argv, err = edit(weight)
	case "quiesce":
		argv, err = edit("0")
	case "drain":
		argv, err = edit("0")
		drain = serverID(svcID, rsAddr)
	case "remove":
		argv = base
		argv[1] = "-d"
	case "add":
		mf, ok := methodFlag(method)
		if !ok {
			return nil, "", fmt.Errorf("%w: method %q: want nat, dr or tun", ErrBadAction, method)
		}
		if weight == "" {
			weight = "1"
		}
		if _, err := strconv.Atoi(weight); err != nil {
			return nil, "", fmt.Errorf("%w: weight %q is not a number", ErrBadAction, weight)
		}
		argv = append(base, mf, "-w", weight)
		argv[1] = "-a"
	default:
		return nil, "", fmt.Errorf("%w %q", ErrBadAction, op)
	}
	return argv, drain, err
}
