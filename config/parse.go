package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/ulvs/ulvs/failover"
	"github.com/ulvs/ulvs/healthcheck"
)

// The file's shape. Leaf values are decoded as `any` so that every type
// error is ours to report, with the key path and line.
type rawFile struct {
	Director      rawDirector        `toml:"director"`
	Timeouts      rawTimeouts        `toml:"timeouts"`
	Conntrack     rawConntrack       `toml:"conntrack"`
	VirtualServer []rawVS            `toml:"virtual_server"`
	Web           rawWeb             `toml:"web"`      // config/web.go
	Failover      *failover.Settings `toml:"failover"` // config/failover.go
}

type rawDirector struct {
	PublicInterface   any `toml:"public_interface"`
	PrivateInterface  any `toml:"private_interface"`
	Engine            any `toml:"engine"`
	Workers           any `toml:"workers"`
	ControlSocket     any `toml:"control_socket"`
	MaxConnections    any `toml:"max_connections"`
	LogLevel          any `toml:"log_level"`
	ConnTableBits     any `toml:"conn_table_bits"`
	HealthMaxInFlight any `toml:"health_max_in_flight"`
	RxRing            any `toml:"rx_ring"`
	XDP               any `toml:"xdp"`
}

type rawTimeouts struct {
	TCP    any `toml:"tcp"`
	TCPFin any `toml:"tcpfin"`
	UDP    any `toml:"udp"`
}

type rawConntrack struct {
	ExpireNodestConn        any `toml:"expire_nodest_conn"`
	ExpireQuiescentTemplate any `toml:"expire_quiescent_template"`
	ConnReuseMode           any `toml:"conn_reuse_mode"`
	SloppyTCP               any `toml:"sloppy_tcp"`
}

type rawVS struct {
	Protocol    any     `toml:"protocol"`
	Address     any     `toml:"address"`
	Scheduler   any     `toml:"scheduler"`
	Persistence any     `toml:"persistence"`
	Netmask     any     `toml:"netmask"`
	SchedFlags  any     `toml:"sched_flags"`
	OnePacket   any     `toml:"one_packet"`
	SorryServer any     `toml:"sorry_server"`
	SorryMethod any     `toml:"sorry_method"`
	HealthCheck any     `toml:"health_check"`
	RealServer  []rawRS `toml:"real_server"`
}

type rawRS struct {
	Address        any `toml:"address"`
	Method         any `toml:"method"`
	Weight         any `toml:"weight"`
	UpperThreshold any `toml:"upper_threshold"`
	LowerThreshold any `toml:"lower_threshold"`
	HealthCheck    any `toml:"health_check"`
}

// schema lists every key the file may hold, without array indexes. To add a
// section (for example [failover] or a per-server health_check table), add
// a raw struct field above, its keys here, and a conversion in build.
var schema = map[string]bool{
	"director": true, "director.public_interface": true, "director.private_interface": true,
	"director.engine": true, "director.workers": true, "director.control_socket": true,
	"director.max_connections": true, "director.log_level": true, "director.conn_table_bits": true,
	"director.rx_ring": true, "director.xdp": true, "timeouts": true, "timeouts.tcp": true, "timeouts.tcpfin": true, "timeouts.udp": true,
	"conntrack": true, "conntrack.expire_nodest_conn": true, "conntrack.expire_quiescent_template": true,
	"conntrack.conn_reuse_mode": true, "conntrack.sloppy_tcp": true,
	"virtual_server": true, "virtual_server.protocol": true, "virtual_server.address": true,
	"virtual_server.scheduler": true, "virtual_server.persistence": true, "virtual_server.netmask": true,
	"virtual_server.sched_flags": true, "virtual_server.one_packet": true,
	"virtual_server.real_server": true, "virtual_server.real_server.address": true,
	"virtual_server.real_server.method": true, "virtual_server.real_server.weight": true,
	"virtual_server.real_server.upper_threshold": true, "virtual_server.real_server.lower_threshold": true,
}

// arrays are the keys that hold arrays of tables (indexed in key paths).
var arrays = map[string]bool{"virtual_server": true, "virtual_server.real_server": true}

// Load reads and parses the file at path. Errors name the file by its base
// name, as in "ulvsd.toml:14: virtual_server[0].real_server[1].weight: ...".
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, filepath.Base(path))
}

// Parse parses a TOML configuration; name is used in error messages. It
// returns a complete, validated and normalised Config, or nil and an error
// (an errors.Join of *FieldError, sorted by line) that lists everything
// wrong with the file.
func Parse(data []byte, name string) (*Config, error) {
	var raw rawFile
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line := pe.Position.Line
			if st := pe.Position.Start; st > 0 && st <= len(data) {
				// The lexer counts a newline it stops at as the next line.
				line = 1 + bytes.Count(data[:st], []byte("\n"))
			}
			return nil, &FieldError{File: name, Line: line, Key: pe.LastKey, Msg: "TOML: " + pe.Message, Err: ErrSyntax}
		}
		// Type errors from the decoder itself (a table where a value is
		// expected, an array of tables given as a plain value...).
		fe := &FieldError{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: "), Err: ErrSyntax}
		if m := reDecodeErr.FindStringSubmatch(err.Error()); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Key, fe.Msg = m[2], m[3]
		}
		return nil, fe
	}
	pos := indexPositions(md, string(data))

	var l errList
	var unknown []string
	for _, k := range pos.order {
		if !schema[k.plain] && !freeForm(k.plain) && !hasPrefixAny(k.path, unknown) {
			unknown = append(unknown, k.path)
			what := "key"
			if t := md.Type(strings.Split(k.plain, ".")...); t == "Hash" || t == "ArrayHash" {
				what = "table"
			}
			l.add(k.path, ErrUnknownKey, "unknown %s %q", what, k.plain[strings.LastIndex(k.plain, ".")+1:])
		}
	}
	c := build(&raw, md, &l)
	c.Failover = raw.Failover // config/failover.go
	if c.Director.PublicInterface == "" {
		l.add("director.public_interface", ErrInvalid, "missing (the interface where clients' traffic arrives)")
	}
	// Cross-field checks, skipping keys that already have an error (their
	// value in c is a default, not what the file says).
	var v errList
	c.validate(&v)
	c.validateFailover(&v) // config/failover.go
	bad := map[string]bool{}
	for _, e := range l {
		bad[e.Key] = true
	}
	for _, e := range v {
		if !bad[e.Key] {
			l = append(l, e)
		}
	}
	for _, e := range l {
		e.File = name
		e.Line = pos.line(e.Key)
	}
	if err := l.join(); err != nil {
		return nil, err
	}
	return c, nil
}

type keyPos struct {
	path  string // with indexes: virtual_server[0].real_server[1].weight
	plain string // without: virtual_server.real_server.weight
	line  int
}

type positions struct {
	order []keyPos
	lines map[string]int
}

// line returns the line of key, or of its nearest ancestor that has one.
func (p *positions) line(key string) int {
	for key != "" {
		if n, ok := p.lines[key]; ok {
			return n
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

var (
	reDecodeErr = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)
	reHeader    = regexp.MustCompile(`^\s*\[\[?\s*([^\]]+?)\s*\]\]?`)
)

type occurrence struct {
	line   int
	header bool
	array  bool   // [[...]]
	name   string // the header's full name, or the key's bare name
}

// indexPositions turns the decoder's ordered key list into indexed key
// paths with line numbers. BurntSushi/toml reports keys in document order
// but without array indexes or positions for repeated keys, so the text is
// scanned for key and header occurrences and matched against that order.
// It is exact for files written one key per line (the documented form) and
// best effort inside inline tables and multi-line values.
func indexPositions(md toml.MetaData, text string) *positions {
	var occ []occurrence
	for i, ln := range strings.Split(text, "\n") {
		t := strings.TrimSpace(ln)
		if strings.HasPrefix(t, "#") {
			continue
		}
		if m := reHeader.FindStringSubmatch(ln); m != nil && strings.HasPrefix(t, "[") {
			name := strings.ReplaceAll(m[1], " ", "")
			occ = append(occ, occurrence{line: i + 1, header: true, array: strings.HasPrefix(t, "[["), name: name})
			continue
		}
		for _, name := range keysInLine(stripStrings(ln)) {
			occ = append(occ, occurrence{line: i + 1, name: name})
		}
	}

	p := &positions{lines: map[string]int{}}
	idx := map[string]int{}         // current index of each array, by indexed parent path
	seenInElem := map[string]bool{} // keys seen in the current inline element
	cur := 0                        // next occurrence to consider
	for _, k := range md.Keys() {
		plain := k.String()
		parts := []string(k)
		// Find the line.
		line := 0
		for j := cur; j < len(occ); j++ {
			o := occ[j]
			if (o.header && o.name == plain) || (!o.header && o.name == parts[len(parts)-1]) {
				line, cur = o.line, j+1
				if !o.header {
					cur = j + 1
				}
				break
			}
		}
		// Build the indexed path: each array ancestor gets its current index.
		path := ""
		for i, part := range parts {
			if i > 0 {
				path += "."
			}
			path += part
			pre := strings.Join(parts[:i+1], ".")
			if arrays[pre] && i < len(parts)-1 {
				path += fmt.Sprintf("[%d]", max(idx[path], 0))
			}
		}
		if arrays[plain] {
			// A [[header]] starts a new element; an inline array starts at 0.
			isHeader := line > 0 && cur > 0 && occ[cur-1].header
			if isHeader {
				if _, ok := idx[path]; ok {
					idx[path]++
				} else {
					idx[path] = 0
				}
				resetBelow(idx, path)
				p.lines[fmt.Sprintf("%s[%d]", path, idx[path])] = line
			} else {
				idx[path] = 0
				resetBelow(idx, path)
				p.lines[path+"[0]"] = line
			}
		} else if len(parts) > 1 {
			// Inside an inline array of tables, a repeated key starts the
			// next element.
			parent := strings.Join(parts[:len(parts)-1], ".")
			if arrays[parent] && line > 0 && !(cur > 0 && occ[cur-1].header) {
				ppath := path[:strings.LastIndex(path, "[")]
				if seenInElem[path] {
					idx[ppath]++
					clear(seenInElem)
					path = fmt.Sprintf("%s[%d].%s", ppath, idx[ppath], parts[len(parts)-1])
					p.lines[fmt.Sprintf("%s[%d]", ppath, idx[ppath])] = line
				}
				seenInElem[path] = true
			}
		}
		if _, ok := p.lines[path]; !ok || !arrays[plain] {
			p.lines[path] = line
		}
		p.order = append(p.order, keyPos{path: path, plain: plain, line: line})
	}
	return p
}

func resetBelow(idx map[string]int, path string) {
	for k := range idx {
		if strings.HasPrefix(k, path+"[") {
			delete(idx, k)
		}
	}
}

// stripStrings blanks out quoted string contents and comments on one line,
// so that "a = b" inside a value does not look like a key.
func stripStrings(ln string) string {
	b := []byte(ln)
	var q byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case q != 0:
			if c == '\\' && q == '"' && i+1 < len(b) {
				b[i], b[i+1] = ' ', ' '
				i++
				continue
			}
			if c == q {
				q = 0
				continue
			}
			b[i] = ' '
		case c == '"' || c == '\'':
			// A quoted key is kept (it is followed by '='); values are
			// blanked. Decide by what follows the closing quote.
			end := strings.IndexByte(ln[i+1:], c)
			if end >= 0 && strings.HasPrefix(strings.TrimSpace(ln[i+1+end+1:]), "=") {
				i += end + 1
				continue
			}
			q = c
		case c == '#':
			return string(b[:i])
		}
	}
	return string(b)
}

// build converts the raw file into the model, reporting type and value
// errors by indexed key.
func build(raw *rawFile, md toml.MetaData, l *errList) *Config {
	c := New()
	d := &c.Director
	getString(l, "director.public_interface", raw.Director.PublicInterface, &d.PublicInterface)
	getString(l, "director.private_interface", raw.Director.PrivateInterface, &d.PrivateInterface)
	var engine string
	if getString(l, "director.engine", raw.Director.Engine, &engine) {
		d.Engine = Engine(engine)
	}
	getInt(l, "director.workers", raw.Director.Workers, &d.Workers)
	getString(l, "director.control_socket", raw.Director.ControlSocket, &d.ControlSocket)
	getInt(l, "director.max_connections", raw.Director.MaxConnections, &d.MaxConnections)
	getString(l, "director.log_level", raw.Director.LogLevel, &d.LogLevel)
	getInt(l, "director.conn_table_bits", raw.Director.ConnTableBits, &d.ConnTableBits)
	getInt(l, "director.health_max_in_flight", raw.Director.HealthMaxInFlight, &d.HealthMaxInFlight)
	var ring string
	if getString(l, "director.rx_ring", raw.Director.RxRing, &ring) {
		d.RxRing = RxRing(ring)
	}
	var xdp string
	if getString(l, "director.xdp", raw.Director.XDP, &xdp) {
		d.XDP = XDPMode(xdp)
	}

	getDuration(l, "timeouts.tcp", raw.Timeouts.TCP, &c.Timeouts.TCP)
	getDuration(l, "timeouts.tcpfin", raw.Timeouts.TCPFin, &c.Timeouts.TCPFin)
	getDuration(l, "timeouts.udp", raw.Timeouts.UDP, &c.Timeouts.UDP)

	getBool(l, "conntrack.expire_nodest_conn", raw.Conntrack.ExpireNodestConn, &c.Conntrack.ExpireNodestConn)
	getBool(l, "conntrack.expire_quiescent_template", raw.Conntrack.ExpireQuiescentTemplate, &c.Conntrack.ExpireQuiescentTemplate)
	getInt(l, "conntrack.conn_reuse_mode", raw.Conntrack.ConnReuseMode, &c.Conntrack.ConnReuseMode)
	getBool(l, "conntrack.sloppy_tcp", raw.Conntrack.SloppyTCP, &c.Conntrack.SloppyTCP)

	for i := range raw.VirtualServer {
		rv := &raw.VirtualServer[i]
		p := fmt.Sprintf("virtual_server[%d]", i)
		vs := VirtualServer{Protocol: TCP, Scheduler: DefaultScheduler}
		var s string
		if rv.Protocol == nil {
			l.add(p+".protocol", ErrInvalid, "missing (tcp or udp)")
		} else if getString(l, p+".protocol", rv.Protocol, &s) {
			if pr, err := ParseProtocol(s); err != nil {
				l.addErr(p+".protocol", err)
			} else {
				vs.Protocol = pr
			}
		}
		if rv.Address == nil {
			l.add(p+".address", ErrInvalid, "missing (VIP:port, or [IPv6]:port)")
		} else if getString(l, p+".address", rv.Address, &s) {
			if ap, err := ParseAddrPort(s, true); err != nil {
				l.addErr(p+".address", err)
			} else {
				vs.Address = ap
			}
		}
		getString(l, p+".scheduler", rv.Scheduler, &vs.Scheduler)
		getDuration(l, p+".persistence", rv.Persistence, &vs.Persistence)
		if vs.Address.IsValid() {
			vs.Netmask = DefaultNetmask(vs.Address.Addr())
		}
		if rv.Netmask != nil {
			var ms string
			switch v := rv.Netmask.(type) {
			case string:
				ms = v
			case int64:
				ms = strconv.FormatInt(v, 10)
			default:
				l.add(p+".netmask", ErrInvalid, "want a string like \"255.255.255.0\" or a prefix length, not %s", tomlType(rv.Netmask))
			}
			if ms != "" && vs.Address.IsValid() {
				if n, err := ParseNetmask(vs.Address.Addr(), ms); err != nil {
					l.addErr(p+".netmask", err)
				} else if vs.Persistence == 0 && n != DefaultNetmask(vs.Address.Addr()) {
					l.add(p+".netmask", ErrInvalid, "%s has no effect without persistence", ms)
				} else {
					vs.Netmask = n
				}
			}
		}
		if rv.SchedFlags != nil {
			arr, ok := rv.SchedFlags.([]any)
			if !ok {
				l.add(p+".sched_flags", ErrInvalid, "want an array of strings, not %s", tomlType(rv.SchedFlags))
			}
			for j, f := range arr {
				fs, ok := f.(string)
				if !ok {
					l.add(fmt.Sprintf("%s.sched_flags[%d]", p, j), ErrInvalid, "want a string, not %s", tomlType(f))
					continue
				}
				vs.SchedFlags = append(vs.SchedFlags, fs)
			}
			if ValidScheduler(vs.Scheduler) {
				if b, _, err := ParseSchedFlags(vs.Scheduler, vs.SchedFlags); err != nil {
					l.addErr(p+".sched_flags", err)
				} else {
					vs.SchedFlags = SchedFlagNames(vs.Scheduler, b)
				}
			}
		}
		getBool(l, p+".one_packet", rv.OnePacket, &vs.OnePacket)
		parseSorry(l, p, &vs, rv.SorryServer, rv.SorryMethod)
		var vsHealth healthcheck.Config
		if m, ok := healthTable(l, p+".health_check", rv.HealthCheck); ok {
			decodeHealth(l, p+".health_check", m, &vsHealth)
			vs.HealthCheck = normHealth(&vsHealth)
		}

		for j := range rv.RealServer {
			rr := &rv.RealServer[j]
			rp := fmt.Sprintf("%s.real_server[%d]", p, j)
			rs := RealServer{Method: DR, Weight: 1}
			if getString(l, rp+".method", rr.Method, &s) {
				if m, err := ParseMethod(s); err != nil {
					l.addErr(rp+".method", err)
				} else {
					rs.Method = m
				}
			}
			if rr.Address == nil {
				l.add(rp+".address", ErrInvalid, "missing (address[:port])")
			} else if getString(l, rp+".address", rr.Address, &s) {
				if ap, err := ParseAddrPort(s, false); err != nil {
					l.addErr(rp+".address", err)
				} else {
					if !hasPort(s) {
						// No port: the service's port (ipvsadm's rule).
						ap = netip.AddrPortFrom(ap.Addr(), vs.Address.Port())
					}
					rs.Address = ap
				}
			}
			getInt(l, rp+".weight", rr.Weight, &rs.Weight)
			var u, lo int
			if getInt(l, rp+".upper_threshold", rr.UpperThreshold, &u) {
				if u < 0 || u > MaxThreshold {
					l.add(rp+".upper_threshold", ErrInvalid, "%d out of range 0..%d", u, MaxThreshold)
				} else {
					rs.UpperThreshold = uint32(u)
				}
			}
			if getInt(l, rp+".lower_threshold", rr.LowerThreshold, &lo) {
				if lo < 0 || lo > MaxThreshold {
					l.add(rp+".lower_threshold", ErrInvalid, "%d out of range 0..%d", lo, MaxThreshold)
				} else {
					rs.LowerThreshold = uint32(lo)
				}
			}
			if m, ok := healthTable(l, rp+".health_check", rr.HealthCheck); ok {
				// An override with a type replaces the virtual server's
				// check; one without is merged over it.
				var h healthcheck.Config
				if _, typed := m["type"]; !typed {
					h = *CloneHealth(&vsHealth)
				}
				decodeHealth(l, rp+".health_check", m, &h)
				rs.HealthCheck = normHealth(&h)
			}
			vs.RealServers = append(vs.RealServers, rs)
		}
		c.VirtualServers = append(c.VirtualServers, vs)
	}
	buildWeb(&raw.Web, l, &c.Web) // config/web.go
	return c
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date/time"
}

func getString(l *errList, key string, v any, dst *string) bool {
	if v == nil {
		return false
	}
	s, ok := v.(string)
	if !ok {
		l.add(key, ErrInvalid, "want a string, not %s", tomlType(v))
		return false
	}
	*dst = s
	return true
}

func getInt(l *errList, key string, v any, dst *int) bool {
	if v == nil {
		return false
	}
	n, ok := v.(int64)
	if !ok {
		l.add(key, ErrInvalid, "want an integer, not %s", tomlType(v))
		return false
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		l.add(key, ErrInvalid, "%d out of range", n)
		return false
	}
	*dst = int(n)
	return true
}

func getBool(l *errList, key string, v any, dst *bool) {
	if v == nil {
		return
	}
	b, ok := v.(bool)
	if !ok {
		l.add(key, ErrInvalid, "want true or false, not %s", tomlType(v))
		return
	}
	*dst = b
}

// getDuration accepts a Go duration string ("900s", "15m", "0s") or an
// integer number of seconds.
func getDuration(l *errList, key string, v any, dst *time.Duration) {
	switch x := v.(type) {
	case nil:
	case int64:
		if x < 0 || x > int64(MaxTimeout/time.Second)*10 {
			l.add(key, ErrInvalid, "%d seconds out of range", x)
			return
		}
		*dst = time.Duration(x) * time.Second
	case string:
		d, err := time.ParseDuration(x)
		if err != nil {
			l.add(key, ErrInvalid, "%q is not a duration (write \"900s\", \"15m\" or an integer number of seconds)", x)
			return
		}
		if d < 0 {
			l.add(key, ErrInvalid, "%s is negative", x)
			return
		}
		*dst = d
	default:
		l.add(key, ErrInvalid, "want a duration string like \"900s\" or integer seconds, not %s", tomlType(v))
	}
}

// hasPort reports whether an address string carries a port.
func hasPort(s string) bool {
	if strings.HasPrefix(s, "[") {
		return strings.Contains(s, "]:")
	}
	return strings.Count(s, ":") == 1
}

// ParseAddrPort parses "1.2.3.4:80", "[2001:db8::1]:80", and, when
// needPort is false, a bare "1.2.3.4" or "2001:db8::1" (port 0).
func ParseAddrPort(s string, needPort bool) (netip.AddrPort, error) {
	if hasPort(s) {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %q is not address:port (IPv6 as [addr]:port)", ErrInvalid, s)
		}
		if err := checkAddr(ap.Addr()); err != nil {
			return netip.AddrPort{}, err
		}
		return ap, nil
	}
	if needPort {
		return netip.AddrPort{}, fmt.Errorf("%w: %q has no port (write address:port, [IPv6]:port; port 0 = all ports with persistence)", ErrInvalid, s)
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %q is not an address", ErrInvalid, s)
	}
	if err := checkAddr(a); err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, 0), nil
}

func hasPrefixAny(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

// keysInLine returns the key before each '=' of a line whose string values
// were blanked by stripStrings: a bare key ([A-Za-z0-9_-]+) or a quoted one.
func keysInLine(ln string) []string {
	var keys []string
	for i := 0; i < len(ln); i++ {
		if ln[i] != '=' {
			continue
		}
		j := i - 1
		for j >= 0 && (ln[j] == ' ' || ln[j] == '\t') {
			j--
		}
		if j < 0 {
			continue
		}
		if q := ln[j]; q == '"' || q == '\'' {
			k := strings.LastIndexByte(ln[:j], q)
			if k >= 0 {
				keys = append(keys, ln[k+1:j])
			}
			continue
		}
		end := j + 1
		for j >= 0 && isBareKeyChar(ln[j]) {
			j--
		}
		if j+1 < end {
			keys = append(keys, ln[j+1:end])
		}
	}
	return keys
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
