package healthcheck

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Check types, the values of the type key.
const (
	TypeTCP        = "tcp"
	TypeSendExpect = "send_expect"
	TypeHTTP       = "http"
	TypeHTTPS      = "https"
	TypeTLS        = "tls"
	TypeUDP        = "udp"
	TypeDNS        = "dns"
	TypeExec       = "exec"
	TypeFeedback   = "feedback"
	TypeNone       = "none"
)

// Types lists every check type, in documentation order.
var Types = []string{TypeTCP, TypeSendExpect, TypeHTTP, TypeHTTPS, TypeTLS, TypeUDP, TypeDNS, TypeExec, TypeFeedback, TypeNone}

// Action is what a failed real server's sink does with it (on_failure).
type Action string

const (
	// ActionRemove takes the real server out of the scheduler's pool, as
	// keepalived does; its existing connections follow expire_nodest_conn.
	ActionRemove Action = "remove"
	// ActionQuiesce sets the real server's weight to 0: no new connections,
	// existing ones drain.
	ActionQuiesce Action = "quiesce"
)

// Defaults of the keys left unset (zero).
const (
	DefaultInterval      = 2 * time.Second
	DefaultTimeout       = 1 * time.Second
	DefaultRise          = 2
	DefaultFall          = 3
	DefaultExpiryWarning = 14 * 24 * time.Hour
	DefaultAgentPort     = 7777
	DefaultAgentPath     = "/load"

	MinInterval = 10 * time.Millisecond // a shorter interval would busy-loop
	MinTimeout  = time.Millisecond
)

// ErrInvalidConfig is matched (errors.Is) by every *ConfigError.
var ErrInvalidConfig = errors.New("invalid health check")

// ConfigError names the health_check key that is wrong and why.
type ConfigError struct {
	Key string // the TOML key, e.g. "timeout"
	Msg string
}

func (e *ConfigError) Error() string { return "health_check." + e.Key + ": " + e.Msg }

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

func cfgErr(key, format string, a ...any) error {
	return &ConfigError{Key: key, Msg: fmt.Sprintf(format, a...)}
}

// Config is one health check as written in TOML ([virtual_server.health_check]
// or a real server's override). The zero value of every key means its
// default; Normalize fills them in. Keys that do not apply to the chosen type
// are rejected by Validate, so that a typo in the type does not silently
// ignore the rest.
type Config struct {
	// Common keys.
	Type         string        `toml:"type"`          // tcp (default) | send_expect | http | https | tls | udp | dns | exec | feedback | none
	Interval     time.Duration `toml:"interval"`      // time between probe starts; default 2s
	Timeout      time.Duration `toml:"timeout"`       // deadline of one probe; default 1s (or interval if shorter)
	Rise         int           `toml:"rise"`          // consecutive successes to come back up; default 2
	Fall         int           `toml:"fall"`          // consecutive failures to go down; default 3
	OnFailure    Action        `toml:"on_failure"`    // remove (default) | quiesce
	InitialState string        `toml:"initial_state"` // up (default) | down

	// Where to connect (tcp, send_expect, http, https, tls, udp, dns,
	// feedback): by default the real server's address and port.
	ConnectAddress string `toml:"connect_address"` // "IP" or "IP:port" (DR/TUN: check the real IP instead of the VIP)
	ConnectPort    int    `toml:"connect_port"`    // port only

	// send_expect, udp.
	Proto  string `toml:"proto"`  // send_expect: tcp (default) | udp
	Send   string `toml:"send"`   // bytes to send; escapes \r \n \t \0 \\ \xHH are decoded
	Expect string `toml:"expect"` // regular expression the reply must match

	// http, https.
	Path         string `toml:"path"`          // default "/"
	Host         string `toml:"host"`          // Host header; default the connect address
	ExpectStatus []int  `toml:"expect_status"` // default [200]
	BodyRegex    string `toml:"body_regex"`    // the body must match
	BodySHA256   string `toml:"body_sha256"`   // hex SHA-256 of the whole body

	// https, tls.
	SNI           string        `toml:"sni"`            // TLS server name; default host when it is a name
	VerifyTLS     bool          `toml:"verify_tls"`     // verify the certificate chain and name; default false
	CAFile        string        `toml:"ca_file"`        // PEM roots for verify_tls; default the system roots
	ExpiryWarning time.Duration `toml:"expiry_warning"` // log when the certificate expires within this; default 336h

	// dns.
	QueryName    string `toml:"query_name"`    // name to ask for (required)
	QueryType    string `toml:"query_type"`    // A (default) | AAAA | CNAME | MX | NS | PTR | SOA | SRV | TXT
	ExpectAnswer string `toml:"expect_answer"` // an answer that must be present, e.g. "192.0.2.1"

	// exec.
	Program string            `toml:"program"` // absolute path of the program (required)
	Args    []string          `toml:"args"`    // its arguments
	Env     map[string]string `toml:"env"`     // extra environment variables

	// feedback.
	AgentPath  string  `toml:"agent_path"` // HTTP path on the agent; default "/load"
	MinWeight  int     `toml:"min_weight"` // lower bound of the scaled weight; default 1
	MaxWeight  int     `toml:"max_weight"` // upper bound; default the configured weight
	Hysteresis float64 `toml:"hysteresis"` // fraction of the configured weight a change must exceed; default 0.1
}

// Normalize returns c with every unset key at its default. It does not
// validate.
func (c Config) Normalize() Config {
	if c.Type == "" {
		c.Type = TypeTCP
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = min(DefaultTimeout, c.Interval)
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	if c.OnFailure == "" {
		c.OnFailure = ActionRemove
	}
	if c.InitialState == "" {
		c.InitialState = "up"
	}
	switch c.Type {
	case TypeSendExpect:
		if c.Proto == "" {
			c.Proto = "tcp"
		}
	case TypeHTTP, TypeHTTPS:
		if c.Path == "" {
			c.Path = "/"
		}
		if len(c.ExpectStatus) == 0 {
			c.ExpectStatus = []int{200}
		}
	case TypeDNS:
		if c.QueryType == "" {
			c.QueryType = "A"
		}
		c.QueryType = strings.ToUpper(c.QueryType)
	case TypeFeedback:
		if c.AgentPath == "" {
			c.AgentPath = DefaultAgentPath
		}
		if c.MinWeight == 0 {
			c.MinWeight = 1
		}
		if c.Hysteresis == 0 {
			c.Hysteresis = 0.1
		}
	}
	if (c.Type == TypeHTTPS || c.Type == TypeTLS) && c.ExpiryWarning == 0 {
		c.ExpiryWarning = DefaultExpiryWarning
	}
	return c
}

// keysByType lists the type-specific keys each type accepts.
var keysByType = map[string][]string{
	TypeTCP:        {"connect_address", "connect_port"},
	TypeSendExpect: {"connect_address", "connect_port", "proto", "send", "expect"},
	TypeHTTP:       {"connect_address", "connect_port", "path", "host", "expect_status", "body_regex", "body_sha256"},
	TypeHTTPS:      {"connect_address", "connect_port", "path", "host", "expect_status", "body_regex", "body_sha256", "sni", "verify_tls", "ca_file", "expiry_warning"},
	TypeTLS:        {"connect_address", "connect_port", "sni", "verify_tls", "ca_file", "expiry_warning"},
	TypeUDP:        {"connect_address", "connect_port", "send", "expect"},
	TypeDNS:        {"connect_address", "connect_port", "query_name", "query_type", "expect_answer"},
	TypeExec:       {"connect_address", "connect_port", "program", "args", "env"},
	TypeFeedback:   {"connect_address", "connect_port", "agent_path", "min_weight", "max_weight", "hysteresis"},
	TypeNone:       {},
}

// setKeys returns the type-specific keys that are set (non-zero) in c.
func (c *Config) setKeys() []string {
	var k []string
	add := func(set bool, name string) {
		if set {
			k = append(k, name)
		}
	}
	add(c.ConnectAddress != "", "connect_address")
	add(c.ConnectPort != 0, "connect_port")
	add(c.Proto != "", "proto")
	add(c.Send != "", "send")
	add(c.Expect != "", "expect")
	add(c.Path != "", "path")
	add(c.Host != "", "host")
	add(len(c.ExpectStatus) != 0, "expect_status")
	add(c.BodyRegex != "", "body_regex")
	add(c.BodySHA256 != "", "body_sha256")
	add(c.SNI != "", "sni")
	add(c.VerifyTLS, "verify_tls")
	add(c.CAFile != "", "ca_file")
	add(c.ExpiryWarning != 0, "expiry_warning")
	add(c.QueryName != "", "query_name")
	add(c.QueryType != "", "query_type")
	add(c.ExpectAnswer != "", "expect_answer")
	add(c.Program != "", "program")
	add(len(c.Args) != 0, "args")
	add(len(c.Env) != 0, "env")
	add(c.AgentPath != "", "agent_path")
	add(c.MinWeight != 0, "min_weight")
	add(c.MaxWeight != 0, "max_weight")
	add(c.Hysteresis != 0, "hysteresis")
	return k
}

// Validate reports the first key of c that is wrong, as a *ConfigError
// naming the key. Unset keys take their defaults first. It does not touch the
// network; it reads ca_file and checks that program exists.
func (c Config) Validate() error {
	if !slices.Contains(Types, c.Type) && c.Type != "" {
		return cfgErr("type", "unknown check type %q (want one of %s)", c.Type, strings.Join(Types, ", "))
	}
	n := c.Normalize()
	allowed := keysByType[n.Type]
	for _, k := range c.setKeys() {
		if !slices.Contains(allowed, k) {
			return cfgErr(k, "not used by a %q check", n.Type)
		}
	}
	switch {
	case n.Interval < MinInterval:
		return cfgErr("interval", "must be at least %s (got %s)", MinInterval, n.Interval)
	case n.Timeout < MinTimeout:
		return cfgErr("timeout", "must be at least %s (got %s)", MinTimeout, n.Timeout)
	case n.Rise < 1:
		return cfgErr("rise", "must be at least 1 (got %d)", n.Rise)
	case n.Fall < 1:
		return cfgErr("fall", "must be at least 1 (got %d)", n.Fall)
	case n.OnFailure != ActionRemove && n.OnFailure != ActionQuiesce:
		return cfgErr("on_failure", "must be \"remove\" or \"quiesce\" (got %q)", n.OnFailure)
	case n.InitialState != "up" && n.InitialState != "down":
		return cfgErr("initial_state", "must be \"up\" or \"down\" (got %q)", n.InitialState)
	case n.ExpiryWarning < 0:
		return cfgErr("expiry_warning", "must be positive (got %s)", n.ExpiryWarning)
	}
	if n.ConnectAddress != "" {
		if _, _, err := parseConnectAddress(n.ConnectAddress); err != nil {
			return cfgErr("connect_address", "%v", err)
		}
	}
	if n.ConnectPort < 0 || n.ConnectPort > 65535 {
		return cfgErr("connect_port", "must be 1..65535 (got %d)", n.ConnectPort)
	}
	if _, p, _ := parseConnectAddress(n.ConnectAddress); p != 0 && n.ConnectPort != 0 {
		return cfgErr("connect_port", "connect_address %q already has a port", n.ConnectAddress)
	}
	if n.Send != "" {
		if _, err := Unescape(n.Send); err != nil {
			return cfgErr("send", "%v", err)
		}
	}
	for _, kv := range [...][2]string{{"expect", n.Expect}, {"body_regex", n.BodyRegex}} {
		if kv[1] == "" {
			continue
		}
		if _, err := regexp.Compile(kv[1]); err != nil {
			return cfgErr(kv[0], "bad regular expression: %v", err)
		}
	}
	switch n.Type {
	case TypeSendExpect:
		if n.Proto != "tcp" && n.Proto != "udp" {
			return cfgErr("proto", "must be \"tcp\" or \"udp\" (got %q)", n.Proto)
		}
		if n.Expect == "" {
			return cfgErr("expect", "required by a send_expect check")
		}
	case TypeHTTP, TypeHTTPS:
		if !strings.HasPrefix(n.Path, "/") {
			return cfgErr("path", "must start with / (got %q)", n.Path)
		}
		for _, s := range n.ExpectStatus {
			if s < 100 || s > 599 {
				return cfgErr("expect_status", "%d is not an HTTP status code", s)
			}
		}
		if n.BodySHA256 != "" {
			if len(n.BodySHA256) != 64 || strings.Trim(strings.ToLower(n.BodySHA256), "0123456789abcdef") != "" {
				return cfgErr("body_sha256", "must be 64 hex digits (got %q)", n.BodySHA256)
			}
		}
	case TypeDNS:
		if n.QueryName == "" {
			return cfgErr("query_name", "required by a dns check")
		}
		if _, ok := dnsTypes[n.QueryType]; !ok {
			return cfgErr("query_type", "unsupported query type %q", n.QueryType)
		}
		if _, err := dnsName(n.QueryName); err != nil {
			return cfgErr("query_name", "%v", err)
		}
	case TypeExec:
		if n.Program == "" {
			return cfgErr("program", "required by an exec check")
		}
		if !strings.HasPrefix(n.Program, "/") {
			return cfgErr("program", "must be an absolute path (got %q)", n.Program)
		}
		for k := range n.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return cfgErr("env", "bad variable name %q", k)
			}
		}
	case TypeFeedback:
		if !strings.HasPrefix(n.AgentPath, "/") {
			return cfgErr("agent_path", "must start with / (got %q)", n.AgentPath)
		}
		if n.MinWeight < 0 {
			return cfgErr("min_weight", "must not be negative (got %d)", n.MinWeight)
		}
		if n.MaxWeight < 0 || (n.MaxWeight != 0 && n.MaxWeight < n.MinWeight) {
			return cfgErr("max_weight", "must be at least min_weight %d (got %d)", n.MinWeight, n.MaxWeight)
		}
		if !(n.Hysteresis >= 0 && n.Hysteresis < 1) { // NaN fails too
			return cfgErr("hysteresis", "must be in [0, 1) (got %g)", n.Hysteresis)
		}
	}
	if n.CAFile != "" {
		if _, err := loadCAFile(n.CAFile); err != nil {
			return cfgErr("ca_file", "%v", err)
		}
	}
	if n.Type == TypeExec {
		if fi, err := os.Stat(n.Program); err != nil {
			return cfgErr("program", "%v", err)
		} else if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return cfgErr("program", "%s is not an executable file", n.Program)
		}
	}
	return nil
}

// parseConnectAddress parses "IP" or "IP:port" (IPv6 with a port in
// brackets). port is 0 when absent.
func parseConnectAddress(s string) (netip.Addr, uint16, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), 0, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%q is neither an IP address nor IP:port", s)
	}
	if ap.Port() == 0 {
		return netip.Addr{}, 0, fmt.Errorf("%q: port 0", s)
	}
	return ap.Addr().Unmap(), ap.Port(), nil
}

// Unescape decodes the escapes of send: \r \n \t \0 \\ \xHH (two hex digits,
// any byte). Any other backslash sequence is an error. In TOML, write send as
// a literal string ('...') so that TOML leaves the backslashes to ulvs; in a
// basic string ("...") TOML decodes \r \n \t itself, which gives the same
// bytes.
func Unescape(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch != '\\' {
			out = append(out, ch)
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("trailing backslash at offset %d", i)
		}
		i++
		switch s[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case '0':
			out = append(out, 0)
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+3 > len(s) {
				return nil, fmt.Errorf("\\x needs two hex digits at offset %d", i-1)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("\\x needs two hex digits at offset %d", i-1)
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf("unknown escape \\%c at offset %d", s[i], i-1)
		}
	}
	return out, nil
}
