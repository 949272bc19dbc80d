package config

import (
	"errors"
	"strings"
	"testing"
)

// A bcrypt hash of "secret" (cost 4).
const testHash = "$2a$04$XVKAiyMKmOlpsl/sgpX4c.FdyuZq1S6mAACC5AWOWREZdR/xal3DC"

func TestWebTable(t *testing.T) {
	head := "[director]\npublic_interface = \"eth0\"\n"
	good := head + "[web]\nlisten = \"127.0.0.1:8443\"\nmetrics_listen = \"127.0.0.1:9469\"\n" +
		"[[web.user]]\nname = \"admin\"\npassword_hash = \"" + testHash + "\"\nrole = \"admin\"\n" +
		"[[web.user]]\nname = \"ops\"\npassword_hash = \"" + testHash + "\"\nrole = \"viewer\"\n"
	c, err := Parse([]byte(good), "w.toml")
	if err != nil {
		t.Fatal(err)
	}
	w := c.Web
	if !w.Enabled() || w.Listen != "127.0.0.1:8443" || len(w.Users) != 2 || w.Users[1].Role != WebRoleViewer ||
		w.StateDir != DefaultWebStateDir || w.SessionTimeout != DefaultWebSessionTimeout {
		t.Fatalf("parsed %+v", w)
	}
	// Round trip through Marshal.
	c2, err := Parse(Marshal(c), "m.toml")
	if err != nil {
		t.Fatalf("%v\n%s", err, Marshal(c))
	}
	if !c2.Web.Equal(&c.Web) {
		t.Fatalf("round trip: %+v != %+v", c2.Web, c.Web)
	}
	// Clone is deep.
	cl := c.Clone()
	cl.Web.Users[0].Role = "viewer"
	if c.Web.Users[0].Role != "admin" {
		t.Fatal("Clone shares the users")
	}
	// A change of [web] needs a restart.
	if ch := Diff(c, cl); len(ch.Restart) != 1 || ch.Restart[0] != "web" {
		t.Fatalf("Diff restart = %v", ch.Restart)
	}
	if ch := Diff(nil, c); len(ch.Restart) != 0 {
		t.Fatalf("Diff from nothing restart = %v", ch.Restart)
	}
	// No [web]: off, and nothing written.
	c3, err := Parse([]byte(head), "n.toml")
	if err != nil || c3.Web.Enabled() || strings.Contains(string(Marshal(c3)), "[web]") {
		t.Fatalf("no web: %v %+v", err, c3.Web)
	}

	user := "[[web.user]]\nname = \"a\"\npassword_hash = \"" + testHash + "\"\nrole = \"admin\"\n"
	for _, tc := range []struct{ name, text, want string }{
		{"bad listen", "[web]\nlisten = \"nope\"\n" + user, `b.toml:4: web.listen: "nope": want host:port`},
		{"bad port", "[web]\nlisten = \":99999\"\n" + user, `b.toml:4: web.listen: ":99999": port "99999" is not 1-65535`},
		{"metrics not loopback", "[web]\nlisten = \":8443\"\nmetrics_listen = \"0.0.0.0:9469\"\n" + user, `b.toml:5: web.metrics_listen: "0.0.0.0:9469": plain-HTTP metrics only on a loopback address`},
		{"cert without key", "[web]\nlisten = \":8443\"\ncert_file = \"/x.pem\"\n" + user, `b.toml:3: web.key_file: missing: cert_file and key_file go together`},
		{"no users", "[web]\nlisten = \":8443\"\n", `b.toml:3: web: no [[web.user]]`},
		{"users without listen", "[web]\n" + user, `b.toml:3: web.listen: missing`},
		{"bad role", "[web]\nlisten = \":8443\"\n" + strings.Replace(user, `"admin"`, `"root"`, 1), `b.toml:8: web.user[0].role: "root": want admin or viewer`},
		{"bad hash", "[web]\nlisten = \":8443\"\n" + strings.Replace(user, testHash, "secret", 1), `b.toml:7: web.user[0].password_hash: not a bcrypt hash`},
		{"duplicate user", "[web]\nlisten = \":8443\"\n" + user + user, `b.toml:10: web.user[1].name: user "a" is already defined as web.user[0]`},
		{"unknown key", "[web]\nlisten = \":8443\"\nport = 1\n" + user, `b.toml:5: web.port: unknown key "port"`},
		{"short session", "[web]\nlisten = \":8443\"\nsession_timeout = \"10s\"\n" + user, `b.toml:5: web.session_timeout: 10s out of range`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(head+tc.text), "b.toml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("not a FieldError: %T", err)
			}
		})
	}
}
