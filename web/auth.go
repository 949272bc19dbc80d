package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ulvs/ulvs/config"
)

// CookieName is the session cookie. The __Host- prefix makes browsers
// accept it only from HTTPS, for this host alone, with Path=/.
const CookieName = "__Host-ulvs_session"

// Login limits: after MaxFailures failed logins within LockoutWindow for
// one user name, or from one source address, further attempts for it are
// refused (without checking the password) until LockoutWindow has passed
// since the last failure.
const (
	MaxFailures   = 5
	LockoutWindow = 15 * time.Minute
	maxTracked    = 10000 // bound on the failure table (names and addresses)
	maxSessions   = 10000 // bound on live sessions; the oldest is dropped
)

// Errors of a login.
var (
	ErrBadLogin = errors.New("wrong user name or password")
	ErrLocked   = errors.New("too many failed logins; try again later")
)

type session struct {
	id       string
	user     string
	role     string
	csrf     string
	expires  time.Time
	flash    string // message of the last action, shown once
	flashErr bool
}

func (s *session) admin() bool { return s.role == config.WebRoleAdmin }

type failures struct {
	count int
	last  time.Time
}

type auth struct {
	mu       sync.Mutex
	users    map[string]config.WebUser
	ttl      time.Duration
	now      func() time.Time
	sessions map[string]*session
	fails    map[string]*failures // "u:"+name, "a:"+address
	dummy    []byte               // compared against for unknown users (same timing)
	bcrypts  chan struct{}        // bounds concurrent password checks (CPU)
}

func newAuth(users []config.WebUser, ttl time.Duration, now func() time.Time) *auth {
	a := &auth{users: map[string]config.WebUser{}, ttl: ttl, now: now,
		sessions: map[string]*session{}, fails: map[string]*failures{},
		bcrypts: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))}
	cost := bcrypt.DefaultCost
	for _, u := range users {
		a.users[u.Name] = u
		if c, err := bcrypt.Cost([]byte(u.PasswordHash)); err == nil {
			cost = c
		}
	}
	a.dummy, _ = bcrypt.GenerateFromPassword([]byte("ulvs-dummy-password"), cost)
	return a
}

func randomToken() string {
	var b [32]byte // 256 bits
	if _, err := rand.Read(b[:]); err != nil {
		panic("web: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// locked reports whether key is locked out now; it forgets stale entries.
func (a *auth) lockedLocked(key string, now time.Time) bool {
	f := a.fails[key]
	if f == nil {
		return false
	}
	if now.Sub(f.last) >= LockoutWindow {
		delete(a.fails, key)
		return false
	}
	return f.count >= MaxFailures
}

func (a *auth) failLocked(key string, now time.Time) {
	f := a.fails[key]
	if f == nil || now.Sub(f.last) >= LockoutWindow {
		if len(a.fails) >= maxTracked {
			a.pruneFailsLocked(now)
		}
		f = &failures{}
		a.fails[key] = f
	}
	f.count++
	f.last = now
}

func (a *auth) pruneFailsLocked(now time.Time) {
	for k, f := range a.fails {
		if now.Sub(f.last) >= LockoutWindow {
			delete(a.fails, k)
		}
	}
	if len(a.fails) >= maxTracked { // still full: forget the oldest half at random
		n := 0
		for k := range a.fails {
			delete(a.fails, k)
			if n++; n >= maxTracked/2 {
				break
			}
		}
	}
}

// login checks name and password from addr and returns a new session.
func (a *auth) login(name, password, addr string) (*session, error) {
	now := a.now()
	a.mu.Lock()
	if a.lockedLocked("u:"+name, now) || a.lockedLocked("a:"+addr, now) {
		a.mu.Unlock()
		return nil, ErrLocked
	}
	u, ok := a.users[name]
	a.mu.Unlock()

	hash := a.dummy
	if ok {
		hash = []byte(u.PasswordHash)
	}
	// At most half the CPUs check passwords at a time, so that a flood of
	// logins cannot starve the data path.
	a.bcrypts <- struct{}{}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	<-a.bcrypts

	a.mu.Lock()
	defer a.mu.Unlock()
	if !ok || err != nil {
		a.failLocked("u:"+name, now)
		a.failLocked("a:"+addr, now)
		return nil, ErrBadLogin
	}
	delete(a.fails, "u:"+name)
	delete(a.fails, "a:"+addr)
	if len(a.sessions) >= maxSessions {
		a.pruneSessionsLocked(now)
	}
	s := &session{id: randomToken(), user: u.Name, role: u.Role, csrf: randomToken(), expires: now.Add(a.ttl)}
	a.sessions[s.id] = s
	return s, nil
}

func (a *auth) pruneSessionsLocked(now time.Time) {
	var oldest *session
	for id, s := range a.sessions {
		if now.After(s.expires) {
			delete(a.sessions, id)
		} else if oldest == nil || s.expires.Before(oldest.expires) {
			oldest = s
		}
	}
	if len(a.sessions) >= maxSessions && oldest != nil {
		delete(a.sessions, oldest.id)
	}
}

// session returns the live session of r, or nil.
func (a *auth) session(r *http.Request) *session {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[c.Value]
	if s == nil {
		return nil
	}
	if a.now().After(s.expires) {
		delete(a.sessions, s.id)
		return nil
	}
	if _, ok := a.users[s.user]; !ok {
		return nil
	}
	return s
}

func (a *auth) logout(s *session) {
	a.mu.Lock()
	delete(a.sessions, s.id)
	a.mu.Unlock()
}

// checkCSRF compares the token of a change (form field "csrf" or header
// X-CSRF-Token) with the session's, in constant time.
func checkCSRF(s *session, r *http.Request) bool {
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		tok = r.PostFormValue("csrf")
	}
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) == 1
}

func sessionCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

// sourceAddr is the client's IP address (no port): the lockout counts per
// address, not per connection.
func sourceAddr(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}
