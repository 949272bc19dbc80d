package ipvsadm

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ulvs/ulvs/config"
)

// Snapshot is the live table as the printers need it: what the daemon
// reports through the control API, and what `ulvsadm --json` prints.
type Snapshot struct {
	Version       string          `json:"version"`         // IPVS version shown; "" = "1.2.1"
	ConnTableSize int             `json:"conn_table_size"` // shown as "size="; 0 = 4096
	Services      []Service       `json:"services"`        // in table order (--nosort prints this order)
	Timeouts      TimeoutsSeconds `json:"timeouts"`
	Daemons       []DaemonState   `json:"daemons,omitempty"`
	Conns         []Conn          `json:"connections,omitempty"`
}

// TimeoutsSeconds are --timeout's three values in seconds.
type TimeoutsSeconds struct {
	TCP    int `json:"tcp"`
	TCPFin int `json:"tcpfin"`
	UDP    int `json:"udp"`
}

// Service is one virtual service with its counters.
type Service struct {
	Protocol    config.Protocol `json:"protocol"`
	Address     netip.AddrPort  `json:"address"`
	Scheduler   string          `json:"scheduler"`
	SchedFlags  []string        `json:"sched_flags,omitempty"`
	Persistence uint32          `json:"persistence"` // seconds; 0 = not persistent
	Netmask     int             `json:"netmask"`     // prefix length
	OnePacket   bool            `json:"one_packet,omitempty"`
	Stats       Stats           `json:"stats"`
	Rate        Rate            `json:"rate"`
	Servers     []Server        `json:"real_servers"` // in table order
	// SorryServer is the sorry server ("" = none); SorryActive is true
	// while it takes the service's traffic (no real server is up).
	SorryServer string `json:"sorry_server,omitempty"`
	SorryActive bool   `json:"sorry_active,omitempty"`
}

// Server is one real server with its counters.
type Server struct {
	Address        netip.AddrPort `json:"address"`
	Method         config.Method  `json:"method"`
	Weight         int            `json:"weight"`
	UpperThreshold uint32         `json:"upper_threshold"`
	LowerThreshold uint32         `json:"lower_threshold"`
	ActiveConns    uint32         `json:"active_conns"`
	InactConns     uint32         `json:"inact_conns"`
	PersistConns   uint32         `json:"persist_conns"`
	Stats          Stats          `json:"stats"`
	Rate           Rate           `json:"rate"`
	// Health is the health-check state, "up" or "down"; "" = not
	// checked. ipvsadm's text formats do not show it (ulvsadm -L --health
	// does). Weight above stays the configured weight.
	Health string `json:"health,omitempty"`
	// Reason says why the real server entered its health state ("status
	// 503", "passed 2 consecutive checks: status 200").
	Reason string `json:"reason,omitempty"`
	// Since is when it entered that state.
	Since time.Time `json:"since,omitzero"`
	// Check is the health check's type ("http", ...); "" = none.
	Check string `json:"check,omitempty"`
	// EffectiveWeight is the weight the scheduler uses: the configured
	// weight changed by health (0 while quiesced, a dynamic weight from
	// exec or feedback checks). InPool is false while the real server is
	// out of the scheduler's pool (down with on_failure = "remove").
	EffectiveWeight int  `json:"effective_weight"`
	InPool          bool `json:"in_pool"`
}

// Stats are totals since the service or server was added (or zeroed).
type Stats struct {
	Conns    uint64 `json:"conns"`
	InPkts   uint64 `json:"in_pkts"`
	OutPkts  uint64 `json:"out_pkts"`
	InBytes  uint64 `json:"in_bytes"`
	OutBytes uint64 `json:"out_bytes"`
}

// Rate are moving averages per second, like IPVS's estimator.
type Rate struct {
	CPS    uint64 `json:"cps"`
	InPPS  uint64 `json:"in_pps"`
	OutPPS uint64 `json:"out_pps"`
	InBPS  uint64 `json:"in_bps"`
	OutBPS uint64 `json:"out_bps"`
}

// DaemonState is one running sync daemon, for --daemon.
type DaemonState struct {
	State          string     `json:"state"` // "master" or "backup"
	McastInterface string     `json:"mcast_interface"`
	SyncID         int        `json:"syncid"`
	SyncMaxlen     int        `json:"sync_maxlen,omitempty"`
	McastGroup     netip.Addr `json:"mcast_group,omitzero"`
	McastPort      int        `json:"mcast_port,omitempty"`
	McastTTL       int        `json:"mcast_ttl,omitempty"`
}

// Conn is one connection-table entry, for -L -c.
type Conn struct {
	Protocol config.Protocol `json:"protocol"`
	Client   netip.AddrPort  `json:"client"`
	Virtual  netip.AddrPort  `json:"virtual"`
	Dest     netip.AddrPort  `json:"destination"`
	State    string          `json:"state"`   // IPVS state name: ESTABLISHED, SYN_RECV, ..., UDP, NONE
	Expires  uint32          `json:"expires"` // seconds left
}

// FromConfig builds a snapshot of c's table with zero counters, in c's
// order, as a daemon that has just loaded c would report it.
func FromConfig(c *config.Config) *Snapshot {
	s := &Snapshot{ConnTableSize: 1 << c.Director.ConnTableBits, Timeouts: TimeoutsSeconds{
		TCP: int(c.Timeouts.TCP / time.Second), TCPFin: int(c.Timeouts.TCPFin / time.Second), UDP: int(c.Timeouts.UDP / time.Second)}}
	for _, vs := range c.VirtualServers {
		svc := Service{Protocol: vs.Protocol, Address: vs.Address, Scheduler: vs.Scheduler,
			SchedFlags: append([]string(nil), vs.SchedFlags...), Persistence: uint32(vs.Persistence / time.Second),
			Netmask: vs.Netmask, OnePacket: vs.OnePacket}
		if vs.SorryServer.IsValid() {
			svc.SorryServer = vs.SorryServer.String() + " " + vs.SorryMethod.String()
		}
		for _, rs := range vs.RealServers {
			svc.Servers = append(svc.Servers, Server{Address: rs.Address, Method: rs.Method, Weight: rs.Weight,
				UpperThreshold: rs.UpperThreshold, LowerThreshold: rs.LowerThreshold, EffectiveWeight: rs.Weight, InPool: true})
		}
		s.Services = append(s.Services, svc)
	}
	return s
}

// VirtualServer returns the service's configuration (thresholds included).
func (s *Service) VirtualServer() config.VirtualServer {
	vs := config.VirtualServer{Protocol: s.Protocol, Address: s.Address, Scheduler: s.Scheduler,
		SchedFlags: append([]string(nil), s.SchedFlags...), Persistence: time.Duration(s.Persistence) * time.Second,
		Netmask: s.Netmask, OnePacket: s.OnePacket}
	for _, d := range s.Servers {
		vs.RealServers = append(vs.RealServers, config.RealServer{Address: d.Address, Method: d.Method,
			Weight: d.Weight, UpperThreshold: d.UpperThreshold, LowerThreshold: d.LowerThreshold})
	}
	vs.Normalize()
	return vs
}

// JSON encodes the snapshot for `--json` (indented, with a final newline).
func (s *Snapshot) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Printer prints ipvsadm's listings. Resolver is used without -n
// (FmtNumeric) to print host and service names; nil means NoResolver
// (numbers, as -n).
type Printer struct {
	Resolver Resolver
}

func (p *Printer) res() Resolver {
	if p.Resolver == nil {
		return NoResolver{}
	}
	return p.Resolver
}

// List writes `ipvsadm -L` (list_all) in the given format: the version
// line (unless FmtRule), the title, and every service in ipvsadm's sort
// order (unless FmtNoSort). With FmtRule it writes `ipvsadm -S`.
func (p *Printer) List(w io.Writer, s *Snapshot, f Format) error {
	var b strings.Builder
	if f&FmtRule == 0 {
		v, size := s.Version, s.ConnTableSize
		if v == "" {
			v = "1.2.1"
		}
		if size == 0 {
			size = 4096
		}
		fmt.Fprintf(&b, "IP Virtual Server version %s (size=%d)\n", v, size)
	}
	svcs := s.Services
	if f&FmtNoSort == 0 {
		svcs = SortedServices(svcs)
	}
	printTitle(&b, f)
	for i := range svcs {
		p.service(&b, &svcs[i], f)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Save writes `ipvsadm -S` (with FmtNumeric for -S -n).
func (p *Printer) Save(w io.Writer, s *Snapshot, f Format) error {
	return p.List(w, s, f|FmtRule)
}

// Service writes `ipvsadm -L -t addr:port` (list_service): the title and
// one service, no version line.
func (p *Printer) Service(w io.Writer, svc *Service, f Format) error {
	var b strings.Builder
	printTitle(&b, f)
	p.service(&b, svc, f)
	_, err := io.WriteString(w, b.String())
	return err
}

// Timeout writes `ipvsadm -L --timeout`.
func (p *Printer) Timeout(w io.Writer, t TimeoutsSeconds) error {
	_, err := fmt.Fprintf(w, "Timeout (tcp tcpfin udp): %d %d %d\n", t.TCP, t.TCPFin, t.UDP)
	return err
}

// Daemon writes `ipvsadm -L --daemon` (nothing when no daemon runs).
func (p *Printer) Daemon(w io.Writer, ds []DaemonState) error {
	var b strings.Builder
	for _, d := range ds {
		if d.State != "master" && d.State != "backup" {
			continue
		}
		fmt.Fprintf(&b, "%s sync daemon (mcast=%s, syncid=%d", d.State, d.McastInterface, d.SyncID)
		if d.SyncMaxlen != 0 {
			fmt.Fprintf(&b, ", maxlen=%d", d.SyncMaxlen)
		}
		if d.McastGroup.IsValid() {
			fmt.Fprintf(&b, ", group=%s", d.McastGroup)
		}
		if d.McastPort != 0 {
			fmt.Fprintf(&b, ", port=%d", d.McastPort)
		}
		if d.McastTTL != 0 {
			fmt.Fprintf(&b, ", ttl=%d", d.McastTTL)
		}
		b.WriteString(")\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Conns writes `ipvsadm -L -c` from a connection list (ipvsadm reads
// /proc/net/ip_vs_conn; ulvs has no PE data, so --persistent-conn changes
// only the header, as with kernel connections that have no PE).
func (p *Printer) Conns(w io.Writer, conns []Conn, f Format) error {
	var b strings.Builder
	b.WriteString("IPVS connection entries\n")
	if f&FmtPersistentConn != 0 {
		fmt.Fprintf(&b, "pro expire %-11s %-18s %-18s %-18s %-16s %s\n", "state", "source", "virtual", "destination", "pe name", "pe_data")
	} else {
		fmt.Fprintf(&b, "pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination")
	}
	for _, c := range conns {
		proto := strings.ToUpper(c.Protocol.String())
		exp := fmt.Sprintf("%02d:%02d", c.Expires/60, c.Expires%60)
		fmt.Fprintf(&b, "%-3s %-6s %-11s %-18s %-18s %s\n", proto, exp, c.State,
			p.addrPort(c.Client, c.Protocol, f), p.addrPort(c.Virtual, c.Protocol, f), p.addrPort(c.Dest, c.Protocol, f))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func printTitle(b *strings.Builder, f Format) {
	switch {
	case f&FmtStats != 0:
		fmt.Fprintf(b, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case f&FmtRate != 0:
		fmt.Fprintf(b, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	case f&FmtThresholds != 0:
		fmt.Fprintf(b, "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
	case f&FmtPersistentConn != 0:
		fmt.Fprintf(b, "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n", "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
	case f&FmtTunInfo != 0:
		b.WriteString("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
	case f&FmtRule == 0:
		b.WriteString("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
}

// addrPort is ipvsadm's addrport_to_anyname (a 60-byte buffer).
func (p *Printer) addrPort(ap netip.AddrPort, proto config.Protocol, f Format) string {
	a := ap.Addr()
	var host, port string
	if f&FmtNumeric != 0 {
		host, port = a.String(), strconv.Itoa(int(ap.Port()))
	} else {
		host = p.res().HostName(a)
		if host == "" {
			host = a.String()
		}
		port = p.res().PortName(proto, ap.Port())
		if port == "" {
			port = strconv.Itoa(int(ap.Port()))
		}
	}
	var s string
	if a.Is4() {
		s = host + ":" + port
	} else {
		s = "[" + host + "]:" + port
	}
	if len(s) > 59 {
		s = s[:59]
	}
	return s
}

func fwdName(m config.Method) string {
	switch m {
	case config.NAT:
		return "Masq"
	case config.TUN:
		return "Tunnel"
	case config.DR:
		return "Route"
	}
	return ""
}

func fwdSwitch(m config.Method) string {
	switch m {
	case config.NAT:
		return "-m"
	case config.TUN:
		return "-i"
	}
	return "-g"
}

func protoOption(p config.Protocol) string {
	switch p {
	case config.TCP:
		return "-t"
	case config.UDP:
		return "-u"
	case config.SCTP:
		return "--sctp-service"
	}
	return "--xxx-service"
}

func protoName(p config.Protocol) string {
	switch p {
	case config.TCP:
		return "TCP"
	case config.UDP:
		return "UDP"
	case config.SCTP:
		return "SCTP"
	}
	return "?"
}

// largeNum is ipvsadm's print_largenum.
func largeNum(b *strings.Builder, i uint64, f Format) {
	if f&FmtExact != 0 {
		s := strconv.FormatUint(i, 10)
		w := len(s) + 1
		if len(s) <= 8 {
			w = 9
		}
		fmt.Fprintf(b, "%*d", w, i)
		return
	}
	switch {
	case i < 100000000:
		fmt.Fprintf(b, "%9d", i)
	case i < 1000000000:
		fmt.Fprintf(b, "%8dK", i/1000)
	case i < 100000000000:
		fmt.Fprintf(b, "%8dM", i/1000000)
	case i < 100000000000000:
		fmt.Fprintf(b, "%8dG", i/1000000000)
	default:
		fmt.Fprintf(b, "%8dT", i/1000000000000)
	}
}

func (p *Printer) service(b *strings.Builder, se *Service, f Format) {
	is6 := se.Address.Addr().Is6()
	vname := p.addrPort(se.Address, se.Protocol, f)
	var svcName string
	if f&FmtRule != 0 {
		svcName = protoOption(se.Protocol) + " " + vname
	} else {
		svcName = fmt.Sprintf("%-4s %s", protoName(se.Protocol), vname)
		if !is6 && len(svcName) > 33 {
			svcName = svcName[:33]
		}
	}
	bits, _, _ := config.ParseSchedFlags(se.Scheduler, se.SchedFlags)
	flags := strings.Join(config.SchedFlagNames(se.Scheduler, bits), ",")
	mask := ""
	if se.Persistence > 0 {
		if !is6 && se.Netmask != 32 {
			mask = config.MaskString(se.Netmask)
		} else if is6 && se.Netmask != 128 {
			mask = strconv.Itoa(se.Netmask)
		}
	}
	switch {
	case f&FmtRule != 0:
		fmt.Fprintf(b, "-A %s -s %s", svcName, se.Scheduler)
		if se.Persistence > 0 {
			fmt.Fprintf(b, " -p %d", se.Persistence)
			if mask != "" {
				fmt.Fprintf(b, " -M %s", mask)
			}
		}
		if se.OnePacket {
			b.WriteString(" -o")
		}
		if bits != 0 {
			b.WriteString(" -b " + flags)
		}
	case f&FmtStats != 0:
		fmt.Fprintf(b, "%-33s", svcName)
		st := se.Stats
		for _, v := range []uint64{st.Conns, st.InPkts, st.OutPkts, st.InBytes, st.OutBytes} {
			largeNum(b, v, f)
		}
	case f&FmtRate != 0:
		fmt.Fprintf(b, "%-33s", svcName)
		r := se.Rate
		for _, v := range []uint64{r.CPS, r.InPPS, r.OutPPS, r.InBPS, r.OutBPS} {
			largeNum(b, v, f)
		}
	default:
		fmt.Fprintf(b, "%s %s", svcName, se.Scheduler)
		if bits != 0 {
			fmt.Fprintf(b, " (%s)", flags)
		}
		if se.Persistence > 0 {
			fmt.Fprintf(b, " persistent %d", se.Persistence)
			if mask != "" {
				fmt.Fprintf(b, " mask %s", mask)
			}
		}
		if se.OnePacket {
			b.WriteString(" ops")
		}
	}
	b.WriteByte('\n')

	dests := se.Servers
	if f&FmtNoSort == 0 {
		dests = SortedServers(dests)
	}
	for i := range dests {
		e := &dests[i]
		dname := p.addrPort(e.Address, se.Protocol, f)
		if f&FmtRule == 0 && !e.Address.Addr().Is6() && len(dname) > 28 {
			dname = dname[:28]
		}
		switch {
		case f&FmtRule != 0:
			fmt.Fprintf(b, "-a %s -r %s %s -w %d", svcName, dname, fwdSwitch(e.Method), e.Weight)
			if e.Method == config.TUN {
				b.WriteString(" --tun-type ipip")
			}
			b.WriteByte('\n')
		case f&FmtStats != 0:
			fmt.Fprintf(b, "  -> %-28s", dname)
			st := e.Stats
			for _, v := range []uint64{st.Conns, st.InPkts, st.OutPkts, st.InBytes, st.OutBytes} {
				largeNum(b, v, f)
			}
			b.WriteByte('\n')
		case f&FmtRate != 0:
			fmt.Fprintf(b, "  -> %-28s %8d %8d %8d", dname, e.Rate.CPS, e.Rate.InPPS, e.Rate.OutPPS)
			largeNum(b, e.Rate.InBPS, f)
			largeNum(b, e.Rate.OutBPS, f)
			b.WriteByte('\n')
		case f&FmtThresholds != 0:
			fmt.Fprintf(b, "  -> %-28s %-10d %-10d %-10d %-10d\n", dname, e.UpperThreshold, e.LowerThreshold, e.ActiveConns, e.InactConns)
		case f&FmtPersistentConn != 0:
			fmt.Fprintf(b, "  -> %-28s %-9d %-11d %-10d %-10d\n", dname, e.Weight, e.PersistConns, e.ActiveConns, e.InactConns)
		case f&FmtTunInfo != 0:
			ti := "n/a"
			if e.Method == config.TUN {
				ti = "ipip"
			}
			fmt.Fprintf(b, "  -> %-28s %-7s %-13s %-6d %-10d %-10d\n", dname, fwdName(e.Method), ti, e.Weight, e.ActiveConns, e.InactConns)
		default:
			fmt.Fprintf(b, "  -> %-28s %-7s %-6d %-10d %-10d\n", dname, fwdName(e.Method), e.Weight, e.ActiveConns, e.InactConns)
		}
	}
}

// ToConfig returns the snapshot's table as a configuration, for
// `ulvsadm --write-config`: director and conntrack settings from base (nil
// = defaults), timeouts and services (thresholds included) from the
// snapshot, in the snapshot's order.
func (s *Snapshot) ToConfig(base *config.Config) *config.Config {
	c := base.Clone()
	if c == nil {
		c = config.New()
	}
	if t := s.Timeouts; t.TCP > 0 && t.TCPFin > 0 && t.UDP > 0 {
		c.Timeouts = config.Timeouts{TCP: time.Duration(t.TCP) * time.Second, TCPFin: time.Duration(t.TCPFin) * time.Second, UDP: time.Duration(t.UDP) * time.Second}
	}
	c.VirtualServers = nil
	for i := range s.Services {
		c.VirtualServers = append(c.VirtualServers, s.Services[i].VirtualServer())
	}
	return c
}
