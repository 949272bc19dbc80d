package config

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The [web] table: the HTTPS monitor and the Prometheus metrics.
//
//	[web]
//	listen = "10.0.0.2:8443"          # HTTPS only; required to enable the monitor
//	cert_file = "/etc/ulvs/web.pem"   # optional, with key_file; without them a
//	key_file = "/etc/ulvs/web.key"    # self-signed certificate is made in state_dir
//	state_dir = "/var/lib/ulvs"       # where the generated certificate is kept
//	metrics_listen = "127.0.0.1:9469" # optional plain-HTTP /metrics, loopback only
//	session_timeout = "8h"
//	  [[web.user]]
//	  name = "admin"
//	  password_hash = "$2a$10$..."    # ulvsadm passwd
//	  role = "admin"                  # admin | viewer
//
// Every [web] key takes effect at the next start of ulvsd.
type Web struct {
	Listen         string        // host:port of the HTTPS monitor; "" = monitor off
	CertFile       string        // PEM certificate (chain); "" = self-signed
	KeyFile        string        // PEM private key of CertFile
	StateDir       string        // where the self-signed certificate is kept
	MetricsListen  string        // host:port of a plain /metrics on loopback; "" = none
	SessionTimeout time.Duration // lifetime of a login session
	Users          []WebUser
}

// WebUser is one account of the monitor.
type WebUser struct {
	Name         string
	PasswordHash string // bcrypt
	Role         string // WebRoleAdmin or WebRoleViewer
}

// Roles of the monitor's users.
const (
	WebRoleAdmin  = "admin"  // may change weights and real servers
	WebRoleViewer = "viewer" // read only
)

// Defaults of the [web] table.
const (
	DefaultWebStateDir       = "/var/lib/ulvs"
	DefaultWebSessionTimeout = 8 * time.Hour
)

// Enabled reports whether the monitor is configured.
func (w *Web) Enabled() bool { return w.Listen != "" }

// Clone returns a deep copy of w.
func (w Web) Clone() Web {
	w.Users = slices.Clone(w.Users)
	return w
}

// Equal reports whether w and o are the same settings.
func (w *Web) Equal(o *Web) bool {
	return w.Listen == o.Listen && w.CertFile == o.CertFile && w.KeyFile == o.KeyFile &&
		w.StateDir == o.StateDir && w.MetricsListen == o.MetricsListen &&
		w.SessionTimeout == o.SessionTimeout && slices.Equal(w.Users, o.Users)
}

type rawWeb struct {
	Listen         any          `toml:"listen"`
	CertFile       any          `toml:"cert_file"`
	KeyFile        any          `toml:"key_file"`
	StateDir       any          `toml:"state_dir"`
	MetricsListen  any          `toml:"metrics_listen"`
	SessionTimeout any          `toml:"session_timeout"`
	User           []rawWebUser `toml:"user"`
}

type rawWebUser struct {
	Name         any `toml:"name"`
	PasswordHash any `toml:"password_hash"`
	Role         any `toml:"role"`
}

func init() {
	for _, k := range []string{"web", "web.listen", "web.cert_file", "web.key_file", "web.state_dir",
		"web.metrics_listen", "web.session_timeout", "web.user", "web.user.name",
		"web.user.password_hash", "web.user.role"} {
		schema[k] = true
	}
	arrays["web.user"] = true
}

// buildWeb converts and checks the [web] table.
func buildWeb(raw *rawWeb, l *errList, w *Web) {
	getString(l, "web.listen", raw.Listen, &w.Listen)
	getString(l, "web.cert_file", raw.CertFile, &w.CertFile)
	getString(l, "web.key_file", raw.KeyFile, &w.KeyFile)
	getString(l, "web.state_dir", raw.StateDir, &w.StateDir)
	getString(l, "web.metrics_listen", raw.MetricsListen, &w.MetricsListen)
	getDuration(l, "web.session_timeout", raw.SessionTimeout, &w.SessionTimeout)
	if w.Listen != "" && w.StateDir == "" {
		w.StateDir = DefaultWebStateDir
	}
	if w.Listen != "" && w.SessionTimeout == 0 {
		w.SessionTimeout = DefaultWebSessionTimeout
	}
	if w.Listen != "" {
		if err := checkListen(w.Listen, false); err != nil {
			l.add("web.listen", ErrInvalid, "%v", err)
		}
	}
	if w.MetricsListen != "" {
		if err := checkListen(w.MetricsListen, true); err != nil {
			l.add("web.metrics_listen", ErrInvalid, "%v", err)
		}
	}
	if (w.CertFile == "") != (w.KeyFile == "") {
		k := "web.key_file"
		if w.CertFile == "" {
			k = "web.cert_file"
		}
		l.add(k, ErrInvalid, "missing: cert_file and key_file go together (or neither, for a self-signed certificate)")
	}
	if w.Listen != "" && w.SessionTimeout < time.Minute || w.SessionTimeout > 30*24*time.Hour {
		l.add("web.session_timeout", ErrInvalid, "%s out of range (1m to 720h)", w.SessionTimeout)
	}
	seen := map[string]int{}
	for i := range raw.User {
		ru := &raw.User[i]
		p := fmt.Sprintf("web.user[%d]", i)
		var u WebUser
		if !getString(l, p+".name", ru.Name, &u.Name) || u.Name == "" {
			l.add(p+".name", ErrInvalid, "missing (the login name)")
		} else if j, dup := seen[u.Name]; dup {
			l.add(p+".name", ErrDuplicate, "user %q is already defined as web.user[%d]", u.Name, j)
		} else {
			seen[u.Name] = i
		}
		if !getString(l, p+".password_hash", ru.PasswordHash, &u.PasswordHash) || u.PasswordHash == "" {
			l.add(p+".password_hash", ErrInvalid, "missing (a bcrypt hash: `ulvsadm passwd` prints one)")
		} else if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			l.add(p+".password_hash", ErrInvalid, "not a bcrypt hash (%v); `ulvsadm passwd` prints one", err)
		}
		if !getString(l, p+".role", ru.Role, &u.Role) {
			l.add(p+".role", ErrInvalid, "missing (admin or viewer)")
		} else if u.Role != WebRoleAdmin && u.Role != WebRoleViewer {
			l.add(p+".role", ErrInvalid, "%q: want admin or viewer", u.Role)
		}
		w.Users = append(w.Users, u)
	}
	if w.Listen == "" && (len(raw.User) > 0 || w.CertFile != "" || w.MetricsListen != "") {
		l.add("web.listen", ErrInvalid, "missing (host:port of the HTTPS monitor)")
	}
	if w.Listen != "" && len(raw.User) == 0 {
		l.add("web", ErrInvalid, "no [[web.user]]: nobody could log in to the monitor")
	}
}

// checkListen checks a host:port to listen on; loopback requires a
// loopback address (or "localhost").
func checkListen(s string, loopback bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port (%v)", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not 1-65535", s, port)
	}
	if loopback {
		if host == "localhost" {
			return nil
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.IsLoopback() {
			return fmt.Errorf("%q: plain-HTTP metrics only on a loopback address (127.0.0.1, ::1); remote scrapers use https://<web.listen>/metrics", s)
		}
		return nil
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("%q: %q is not an IP address", s, host)
	}
	return nil
}

// marshalWeb writes the [web] table when the monitor is configured.
func marshalWeb(b *bytes.Buffer, w *Web) {
	if !w.Enabled() {
		return
	}
	b.WriteString("\n[web]\n")
	kv(b, "", "listen", quote(w.Listen))
	kv(b, "", "cert_file", quote(w.CertFile))
	kv(b, "", "key_file", quote(w.KeyFile))
	kv(b, "", "state_dir", quote(w.StateDir))
	kv(b, "", "metrics_listen", quote(w.MetricsListen))
	kv(b, "", "session_timeout", durString(w.SessionTimeout))
	for _, u := range w.Users {
		b.WriteString("\n  [[web.user]]\n")
		kv(b, "  ", "name", quote(u.Name))
		kv(b, "  ", "password_hash", quote(u.PasswordHash))
		kv(b, "  ", "role", quote(u.Role))
	}
}
