package healthcheck

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// The README's examples, one per type; each must decode and validate.
const exampleTOML = `
[tcp]
type = "tcp"
interval = "2s"
timeout = "1s"
rise = 2
fall = 3
on_failure = "remove"

[send_expect]
type = "send_expect"
proto = "tcp"
send = 'HELO ulvs\r\n'
expect = '^250 '
connect_port = 25

[http]
type = "http"
path = "/health"
host = "www.example.com"
expect_status = [200, 204]
body_regex = "ok"
on_failure = "quiesce"

[https]
type = "https"
path = "/"
host = "www.example.com"
sni = "www.example.com"
verify_tls = true
ca_file = "/etc/ssl/certs/ca-certificates.crt"
body_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
expiry_warning = "720h"

[tls]
type = "tls"
connect_address = "10.0.0.5:443"
sni = "www.example.com"

[udp]
type = "udp"
send = '\x00\x01ping'
expect = "pong"

[dns]
type = "dns"
query_name = "www.example.com"
query_type = "A"
expect_answer = "192.0.2.10"

[exec]
type = "exec"
program = "/bin/true"
args = ["--vip", "192.0.2.1"]
env = { MODE = "strict" }
timeout = "3s"

[feedback]
type = "feedback"
connect_port = 7777
agent_path = "/load"
min_weight = 1
max_weight = 20
hysteresis = 0.1
interval = "5s"

[none]
type = "none"

[down_first]
type = "tcp"
initial_state = "down"
connect_address = "10.0.0.5"
`

func TestExampleTOMLDecodesAndValidates(t *testing.T) {
	var cfgs map[string]Config
	md, err := toml.Decode(exampleTOML, &cfgs)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("keys not in Config: %v", u)
	}
	for name, c := range cfgs {
		if err := c.Validate(); err != nil {
			t.Errorf("[%s]: %v", name, err)
		}
	}
	for _, typ := range Types {
		if _, ok := cfgs[typ]; !ok {
			t.Errorf("no example for type %s", typ)
		}
	}
	if c := cfgs["tcp"]; c.Interval != 2*time.Second || c.Timeout != time.Second {
		t.Fatalf("durations: %+v", c)
	}
	if c := cfgs["exec"]; c.Env["MODE"] != "strict" || !reflect.DeepEqual(c.Args, []string{"--vip", "192.0.2.1"}) {
		t.Fatalf("exec: %+v", c)
	}
	send, _ := Unescape(cfgs["send_expect"].Send)
	if string(send) != "HELO ulvs\r\n" {
		t.Fatalf("send %q", send)
	}
	// Every key of Config has a toml tag documented in keysByType or the
	// common set, and every key is exercised by an example.
	common := map[string]bool{"type": true, "interval": true, "timeout": true, "rise": true, "fall": true, "on_failure": true, "initial_state": true}
	rt := reflect.TypeFor[Config]()
	for i := range rt.NumField() {
		tag := rt.Field(i).Tag.Get("toml")
		if tag == "" {
			t.Errorf("field %s has no toml tag", rt.Field(i).Name)
			continue
		}
		if common[tag] {
			continue
		}
		found := false
		for _, keys := range keysByType {
			for _, k := range keys {
				found = found || k == tag
			}
		}
		if !found {
			t.Errorf("key %s is accepted by no type", tag)
		}
		if !strings.Contains(exampleTOML, "\n"+tag+" =") {
			t.Errorf("key %s has no example", tag)
		}
	}
}

func TestNormalizeDefaults(t *testing.T) {
	c := Config{}.Normalize()
	if c.Type != TypeTCP || c.Interval != 2*time.Second || c.Timeout != time.Second || c.Rise != 2 || c.Fall != 3 ||
		c.OnFailure != ActionRemove || c.InitialState != "up" {
		t.Fatalf("defaults %+v", c)
	}
	if c := (Config{Interval: 300 * time.Millisecond}).Normalize(); c.Timeout != 300*time.Millisecond {
		t.Fatalf("timeout defaults to a short interval: %s", c.Timeout)
	}
	if c := (Config{Type: TypeHTTP}).Normalize(); c.Path != "/" || !reflect.DeepEqual(c.ExpectStatus, []int{200}) {
		t.Fatalf("http defaults %+v", c)
	}
	if c := (Config{Type: TypeFeedback}).Normalize(); c.AgentPath != "/load" || c.MinWeight != 1 || c.Hysteresis != 0.1 {
		t.Fatalf("feedback defaults %+v", c)
	}
	if c := (Config{Type: TypeDNS, QueryType: "aaaa"}).Normalize(); c.QueryType != "AAAA" {
		t.Fatalf("dns query_type %q", c.QueryType)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	badCA := filepath.Join(dir, "ca.pem")
	os.WriteFile(badCA, []byte("not pem"), 0o644)
	for _, tc := range []struct {
		cfg Config
		key string
		msg string
	}{
		{Config{Type: "icmp"}, "type", "unknown check type"},
		{Config{Interval: -time.Second}, "interval", "at least 10ms"},
		{Config{Interval: time.Millisecond}, "interval", "at least 10ms"},
		{Config{Timeout: -1}, "timeout", "at least 1ms"},
		{Config{Rise: -1}, "rise", "at least 1"},
		{Config{Fall: -2}, "fall", "at least 1"},
		{Config{OnFailure: "drop"}, "on_failure", `"remove" or "quiesce"`},
		{Config{InitialState: "maybe"}, "initial_state", `"up" or "down"`},
		{Config{Path: "/x"}, "path", `not used by a "tcp" check`},
		{Config{Type: TypeHTTP, Send: "x"}, "send", `not used by a "http" check`},
		{Config{Type: TypeNone, ConnectPort: 80}, "connect_port", `not used by a "none" check`},
		{Config{ConnectAddress: "host.example"}, "connect_address", "neither an IP address nor IP:port"},
		{Config{ConnectAddress: "10.0.0.1:80", ConnectPort: 81}, "connect_port", "already has a port"},
		{Config{ConnectPort: 70000}, "connect_port", "1..65535"},
		{Config{Type: TypeSendExpect, Send: "x"}, "expect", "required"},
		{Config{Type: TypeSendExpect, Expect: "(", Send: "x"}, "expect", "bad regular expression"},
		{Config{Type: TypeSendExpect, Expect: "x", Proto: "sctp"}, "proto", `"tcp" or "udp"`},
		{Config{Type: TypeSendExpect, Expect: "x", Send: `\q`}, "send", `unknown escape \q`},
		{Config{Type: TypeUDP, Send: `\x4`}, "send", "two hex digits"},
		{Config{Type: TypeHTTP, Path: "health"}, "path", "must start with /"},
		{Config{Type: TypeHTTP, ExpectStatus: []int{200, 999}}, "expect_status", "999 is not an HTTP status"},
		{Config{Type: TypeHTTP, BodyRegex: "[a"}, "body_regex", "bad regular expression"},
		{Config{Type: TypeHTTPS, BodySHA256: "abc"}, "body_sha256", "64 hex digits"},
		{Config{Type: TypeHTTPS, CAFile: badCA}, "ca_file", "no PEM certificate"},
		{Config{Type: TypeTLS, CAFile: filepath.Join(dir, "missing")}, "ca_file", "no such file"},
		{Config{Type: TypeTLS, ExpiryWarning: -time.Hour}, "expiry_warning", "must be positive"},
		{Config{Type: TypeDNS}, "query_name", "required"},
		{Config{Type: TypeDNS, QueryName: "x.test", QueryType: "ANY"}, "query_type", "unsupported"},
		{Config{Type: TypeDNS, QueryName: strings.Repeat("a", 300)}, "query_name", ""},
		{Config{Type: TypeExec}, "program", "required"},
		{Config{Type: TypeExec, Program: "true"}, "program", "absolute path"},
		{Config{Type: TypeExec, Program: filepath.Join(dir, "missing")}, "program", "no such file"},
		{Config{Type: TypeExec, Program: notExec}, "program", "not an executable file"},
		{Config{Type: TypeExec, Program: "/bin/true", Env: map[string]string{"A=B": "x"}}, "env", "bad variable name"},
		{Config{Type: TypeFeedback, AgentPath: "load"}, "agent_path", "must start with /"},
		{Config{Type: TypeFeedback, MinWeight: 5, MaxWeight: 2}, "max_weight", "at least min_weight"},
		{Config{Type: TypeFeedback, Hysteresis: 1.5}, "hysteresis", "[0, 1)"},
		{Config{Type: TypeFeedback, Hysteresis: math.NaN()}, "hysteresis", "[0, 1)"},
	} {
		err := tc.cfg.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: error %v is not a *ConfigError", tc.cfg, err)
			continue
		}
		if ce.Key != tc.key || !strings.Contains(ce.Msg, tc.msg) || !strings.HasPrefix(err.Error(), "health_check."+tc.key+": ") {
			t.Errorf("%+v: got %q (key %s), want key %s with %q", tc.cfg, err, ce.Key, tc.key, tc.msg)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		``:                   "",
		`plain`:              "plain",
		`GET / HTTP/1.0\r\n`: "GET / HTTP/1.0\r\n",
		`\t\0\\`:             "\t\x00\\",
		`\x00\xff\x7F`:       "\x00\xff\x7f",
		"real\r\nbytes":      "real\r\nbytes",
	} {
		got, err := Unescape(in)
		if err != nil || string(got) != want {
			t.Errorf("Unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`\`, `a\`, `\x`, `\x1`, `\xzz`, `\e`} {
		if _, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%q) accepted", bad)
		}
	}
}

// FuzzUnescape: never panics, and escaping any bytes then unescaping
// gives them back.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{``, `\x0`, `\\x41`, `\r\n`, "\xff", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		Unescape(s)
		var esc strings.Builder
		for _, b := range []byte(s) {
			switch {
			case b == '\\':
				esc.WriteString(`\\`)
			case b < 0x20 || b >= 0x7f:
				esc.WriteString(`\x`)
				esc.WriteByte("0123456789abcdef"[b>>4])
				esc.WriteByte("0123456789abcdef"[b&15])
			default:
				esc.WriteByte(b)
			}
		}
		got, err := Unescape(esc.String())
		if err != nil || !bytes.Equal(got, []byte(s)) {
			t.Fatalf("round trip of %q via %q: %q, %v", s, esc.String(), got, err)
		}
	})
}
