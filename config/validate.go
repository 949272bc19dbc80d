package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

// FieldError is one thing wrong with a configuration: where (file, line,
// key) and what. Key uses array indexes counted from 0, as in
// "virtual_server[0].real_server[1].weight". Unwrap returns the sentinel
// (ErrInvalid, ErrUnknownKey, ErrDuplicate, ErrUnsupported, ErrSyntax).
type FieldError struct {
	File string // "" when the config did not come from a file
	Line int    // 0 when unknown
	Key  string // "" for file-level errors
	Msg  string
	Err  error
}

// Error renders "file:line: key: msg", leaving out the parts that are
// unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the sentinel error.
func (e *FieldError) Unwrap() error { return e.Err }

// errList collects FieldErrors.
type errList []*FieldError

func (l *errList) add(key string, sentinel error, format string, args ...any) {
	*l = append(*l, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...), Err: sentinel})
}

// addErr adds err (which wraps a sentinel) under key, with err's text
// minus the sentinel's prefix.
func (l *errList) addErr(key string, err error) {
	var fe *FieldError
	if errors.As(err, &fe) {
		if fe.Key == "" {
			fe.Key = key
		}
		*l = append(*l, fe)
		return
	}
	msg := err.Error()
	var sentinel error = ErrInvalid
	for _, s := range []error{ErrInvalid, ErrUnsupported, ErrDuplicate, ErrUnknownKey} {
		if errors.Is(err, s) {
			sentinel = s
			msg = strings.TrimPrefix(msg, s.Error()+": ")
			break
		}
	}
	*l = append(*l, &FieldError{Key: key, Msg: msg, Err: sentinel})
}

// join sorts the errors by line then key and joins them; nil if none.
func (l errList) join() error {
	if len(l) == 0 {
		return nil
	}
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return false
	})
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Validate checks every rule of the model (ranges, the scheduler and its
// flags, ports, address families, duplicates, thresholds) as ipvsadm and
// kernel IPVS check them. It returns nil or an errors.Join of *FieldError.
// It does not require Director.PublicInterface (Parse does), so that a table
// built from ipvsadm rules validates on its own.
func (c *Config) Validate() error {
	var l errList
	c.validate(&l)
	return l.join()
}

func (c *Config) validate(l *errList) {
	d := &c.Director
	for _, f := range []struct{ key, v string }{{"director.public_interface", d.PublicInterface}, {"director.private_interface", d.PrivateInterface}} {
		if f.v != "" && (len(f.v) > 15 || strings.ContainsAny(f.v, "/ \t:") || f.v == "." || f.v == "..") {
			l.add(f.key, ErrInvalid, "%q is not a valid interface name (at most 15 characters, no '/', ':' or spaces)", f.v)
		}
	}
	switch d.Engine {
	case EngineAFPacket, EngineTUN:
	default:
		l.add("director.engine", ErrInvalid, "%q (want afpacket or tun)", string(d.Engine))
	}
	switch d.RxRing {
	case RxRingV3, RxRingV2:
	default:
		l.add("director.rx_ring", ErrInvalid, "%q (want v3 or v2)", string(d.RxRing))
	}
	switch d.XDP {
	case XDPOff, XDPNative, XDPGeneric:
	default:
		l.add("director.xdp", ErrInvalid, "%q (want off, native or generic)", string(d.XDP))
	}
	if d.XDP != XDPOff && d.Engine == EngineTUN {
		l.add("director.xdp", ErrInvalid, "%q needs engine = \"afpacket\" (the TUN engine has no XDP lane)", string(d.XDP))
	}
	if d.Workers < 0 || d.Workers > MaxWorkers {
		l.add("director.workers", ErrInvalid, "%d out of range 0..%d", d.Workers, MaxWorkers)
	}
	if d.ControlSocket == "" || !strings.HasPrefix(d.ControlSocket, "/") {
		l.add("director.control_socket", ErrInvalid, "%q must be an absolute path", d.ControlSocket)
	}
	if d.MaxConnections < 1 || d.MaxConnections > 1<<31-1 {
		l.add("director.max_connections", ErrInvalid, "%d out of range 1..%d", d.MaxConnections, 1<<31-1)
	}
	if !slices.Contains(LogLevels, d.LogLevel) {
		l.add("director.log_level", ErrInvalid, "%q (want one of %s)", d.LogLevel, strings.Join(LogLevels, ", "))
	}
	if d.HealthMaxInFlight < 0 || d.HealthMaxInFlight > 1<<20 {
		l.add("director.health_max_in_flight", ErrInvalid, "%d out of range 0..%d (0 = default 256)", d.HealthMaxInFlight, 1<<20)
	}
	if d.ConnTableBits < 8 || d.ConnTableBits > 20 {
		l.add("director.conn_table_bits", ErrInvalid, "%d out of range 8..20", d.ConnTableBits)
	}
	checkTimeout(l, "timeouts.tcp", c.Timeouts.TCP)
	checkTimeout(l, "timeouts.tcpfin", c.Timeouts.TCPFin)
	checkTimeout(l, "timeouts.udp", c.Timeouts.UDP)
	if m := c.Conntrack.ConnReuseMode; m < 0 || m > 3 {
		l.add("conntrack.conn_reuse_mode", ErrInvalid, "%d out of range 0..3", m)
	}

	seen := map[Key]int{}
	for i := range c.VirtualServers {
		vs := &c.VirtualServers[i]
		p := fmt.Sprintf("virtual_server[%d]", i)
		vs.validate(l, p)
		if vs.Address.IsValid() {
			if j, dup := seen[vs.Key()]; dup {
				l.add(p+".address", ErrDuplicate, "%s %s is already virtual_server[%d]", vs.Protocol, vs.Address, j)
			} else {
				seen[vs.Key()] = i
			}
		}
	}
}

func checkTimeout(l *errList, key string, d time.Duration) {
	if d < time.Second || d > MaxTimeout {
		l.add(key, ErrInvalid, "%s out of range 1s..%ds (31 days)", fmtDur(d), int(MaxTimeout/time.Second))
	} else if d%time.Second != 0 {
		l.add(key, ErrInvalid, "%s is not a whole number of seconds", d)
	}
}

func fmtDur(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int64(d/time.Second))
	}
	return d.String()
}

// Validate checks one virtual service and its real servers
// alone (no duplicate check against other services). Keys in the errors
// start at "virtual_server".
func (vs *VirtualServer) Validate() error {
	var l errList
	vs.validate(&l, "virtual_server")
	return l.join()
}

func (vs *VirtualServer) validate(l *errList, p string) {
	switch vs.Protocol {
	case TCP, UDP:
	case SCTP:
		l.add(p+".protocol", ErrUnsupported, "SCTP services are not supported by ulvs in userspace")
	default:
		l.add(p+".protocol", ErrInvalid, "protocol %d (want tcp or udp)", vs.Protocol)
	}
	if err := checkAddr(vs.Address.Addr()); err != nil {
		l.addErr(p+".address", err)
	}
	if !ValidScheduler(vs.Scheduler) {
		l.add(p+".scheduler", ErrInvalid, "unknown scheduler %q (want one of %s)", vs.Scheduler, strings.Join(Schedulers, " "))
	}
	if vs.Persistence != 0 {
		if vs.Persistence < time.Second || vs.Persistence > MaxTimeout {
			l.add(p+".persistence", ErrInvalid, "%s out of range: 0 (off) or 1s..%ds (31 days)", fmtDur(vs.Persistence), int(MaxTimeout/time.Second))
		} else if vs.Persistence%time.Second != 0 {
			l.add(p+".persistence", ErrInvalid, "%s is not a whole number of seconds", vs.Persistence)
		}
	}
	if vs.Address.Addr().Is4() && (vs.Netmask < 0 || vs.Netmask > 32) {
		l.add(p+".netmask", ErrInvalid, "prefix length %d out of range 0..32", vs.Netmask)
	} else if vs.Address.Addr().Is6() && (vs.Netmask < 1 || vs.Netmask > 128) {
		l.add(p+".netmask", ErrInvalid, "prefix length %d out of range 1..128", vs.Netmask)
	}
	if ValidScheduler(vs.Scheduler) {
		if _, _, err := ParseSchedFlags(vs.Scheduler, vs.SchedFlags); err != nil {
			l.addErr(p+".sched_flags", err)
		} else if b, _, _ := ParseSchedFlags(vs.Scheduler, vs.SchedFlags); !slices.Equal(SchedFlagNames(vs.Scheduler, b), vs.SchedFlags) && len(vs.SchedFlags) > 0 {
			l.add(p+".sched_flags", ErrInvalid, "%q not in canonical form %q (duplicates, or flag-N for sh/mh)", vs.SchedFlags, SchedFlagNames(vs.Scheduler, b))
		}
	}
	if vs.Address.IsValid() && vs.Address.Port() == 0 && vs.Persistence == 0 {
		l.add(p+".address", ErrInvalid, "port 0 (all ports) needs persistence (ipvsadm: Zero port specified for non-persistent service)")
	}
	if vs.OnePacket && vs.Protocol != UDP {
		l.add(p+".one_packet", ErrInvalid, "one-packet scheduling is only for UDP virtual services")
	}
	vs.validateHealth(l, p)
	seen := map[netip.AddrPort]int{}
	for j := range vs.RealServers {
		rs := &vs.RealServers[j]
		rp := fmt.Sprintf("%s.real_server[%d]", p, j)
		rs.validate(l, rp, vs)
		if rs.Address.IsValid() {
			if k, dup := seen[rs.Address]; dup {
				l.add(rp+".address", ErrDuplicate, "%s is already %s.real_server[%d]", rs.Address, p, k)
			} else {
				seen[rs.Address] = j
			}
		}
	}
}

func checkAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: missing address", ErrInvalid)
	case a.Zone() != "":
		return fmt.Errorf("%w: %s: zones are not allowed", ErrInvalid, a)
	case a.Is4In6():
		return fmt.Errorf("%w: %s: write IPv4-mapped addresses in IPv4 form", ErrInvalid, a)
	case a.IsUnspecified(), a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%w: %s is not a unicast address", ErrInvalid, a)
	}
	return nil
}

func (rs *RealServer) validate(l *errList, p string, vs *VirtualServer) {
	if err := checkAddr(rs.Address.Addr()); err != nil {
		l.addErr(p+".address", err)
	}
	switch rs.Method {
	case NAT, DR, TUN:
	default:
		l.add(p+".method", ErrInvalid, "method %d (want nat, dr or tun)", rs.Method)
	}
	if rs.Weight < 0 || rs.Weight > MaxWeight {
		l.add(p+".weight", ErrInvalid, "%d out of range 0..%d", rs.Weight, MaxWeight)
	}
	if rs.UpperThreshold > MaxThreshold {
		l.add(p+".upper_threshold", ErrInvalid, "%d out of range 0..%d", rs.UpperThreshold, MaxThreshold)
	}
	if rs.LowerThreshold > MaxThreshold {
		l.add(p+".lower_threshold", ErrInvalid, "%d out of range 0..%d", rs.LowerThreshold, MaxThreshold)
	} else if rs.LowerThreshold > rs.UpperThreshold {
		l.add(p+".lower_threshold", ErrInvalid, "%d is above upper_threshold %d (IPVS requires lower <= upper)", rs.LowerThreshold, rs.UpperThreshold)
	}
	if !rs.Address.IsValid() || !vs.Address.IsValid() {
		return
	}
	if rs.Address.Addr().Is4() != vs.Address.Addr().Is4() && rs.Method != TUN {
		l.add(p+".address", ErrInvalid, "%s is not of the virtual server's address family (allowed only for method tun)", rs.Address.Addr())
	}
	if (rs.Method == DR || rs.Method == TUN) && rs.Address.Port() != vs.Address.Port() {
		l.add(p+".address", ErrInvalid, "port %d differs from the service port %d: method %s cannot change ports (write the address without a port)", rs.Address.Port(), vs.Address.Port(), rs.Method)
	}
}

// Normalize fills what a rule or a file may leave out, in place: the default
// scheduler, the default netmask (and the full mask whenever persistence is
// off), and scheduler flags in canonical order. Invalid flags are left as
// they are for Validate to report.
func (c *Config) Normalize() {
	for i := range c.VirtualServers {
		c.VirtualServers[i].Normalize()
	}
}

// Normalize is Config.Normalize for one virtual service.
func (vs *VirtualServer) Normalize() {
	if vs.Scheduler == "" {
		vs.Scheduler = DefaultScheduler
	}
	if vs.Persistence == 0 && vs.Address.IsValid() {
		vs.Netmask = DefaultNetmask(vs.Address.Addr())
	}
	if b, _, err := ParseSchedFlags(vs.Scheduler, vs.SchedFlags); err == nil {
		vs.SchedFlags = SchedFlagNames(vs.Scheduler, b)
	}
}
