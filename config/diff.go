package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// OpKind is the kind of one change to the running table.
type OpKind uint8

// Operation kinds, one per ipvsadm command that changes the table.
const (
	OpSetTimeouts   OpKind = iota + 1 // ipvsadm --set
	OpSetConntrack                    // the [conntrack] knobs (sysctls)
	OpDeleteService                   // ipvsadm -D
	OpEditService                     // ipvsadm -E
	OpDeleteServer                    // ipvsadm -d
	OpEditServer                      // ipvsadm -e
	OpAddServer                       // ipvsadm -a
	OpAddService                      // ipvsadm -A (its servers follow as OpAddServer)
)

var opNames = [...]string{"", "set-timeouts", "set-conntrack", "delete-service", "edit-service", "delete-server", "edit-server", "add-server", "add-service"}

// String returns the operation's name, as "edit-server".
func (k OpKind) String() string {
	if int(k) < len(opNames) && k != 0 {
		return opNames[k]
	}
	return fmt.Sprintf("op-%d", uint8(k))
}

// Op is one change. Service is set for service operations (for add and
// edit it holds the new settings and no real servers); Key names the
// service for every service and server operation; Server is set for server
// operations; Timeouts and Conntrack for their operations.
type Op struct {
	Kind      OpKind
	Key       Key
	Service   VirtualServer
	Server    RealServer
	Timeouts  Timeouts
	Conntrack Conntrack
}

// String renders the operation for logs, for example
// "edit-server tcp 10.0.0.1:80 10.0.1.2:80 nat weight 3".
func (o Op) String() string {
	switch o.Kind {
	case OpSetTimeouts:
		return fmt.Sprintf("%s tcp %s tcpfin %s udp %s", o.Kind, fmtDur(o.Timeouts.TCP), fmtDur(o.Timeouts.TCPFin), fmtDur(o.Timeouts.UDP))
	case OpSetConntrack:
		return fmt.Sprintf("%s %+v", o.Kind, o.Conntrack)
	case OpAddService, OpEditService:
		s := fmt.Sprintf("%s %s %s", o.Kind, o.Key, o.Service.Scheduler)
		if len(o.Service.SchedFlags) > 0 {
			s += " (" + strings.Join(o.Service.SchedFlags, ",") + ")"
		}
		if o.Service.Persistence > 0 {
			s += fmt.Sprintf(" persistent %s mask %s", fmtDur(o.Service.Persistence), o.Service.NetmaskString())
		}
		if o.Service.OnePacket {
			s += " ops"
		}
		return s
	case OpDeleteService:
		return fmt.Sprintf("%s %s", o.Kind, o.Key)
	case OpDeleteServer:
		return fmt.Sprintf("%s %s %s", o.Kind, o.Key, o.Server.Address)
	case OpAddServer, OpEditServer:
		return fmt.Sprintf("%s %s %s %s weight %d thresholds %d/%d", o.Kind, o.Key, o.Server.Address, o.Server.Method, o.Server.Weight, o.Server.UpperThreshold, o.Server.LowerThreshold)
	}
	return o.Kind.String()
}

// Changes is what Diff found.
type Changes struct {
	// Ops turn the old table into the new one, in an order that can be
	// applied one by one: timeouts and conntrack knobs, deleted services,
	// then per kept service its edit and its server deletes, edits and adds,
	// then new services each followed by its servers.
	Ops []Op
	// Restart lists the director keys whose change needs a restart of
	// ulvsd; a reload leaves them as they are and reports them.
	Restart []string
}

// Empty reports whether there is nothing to do.
func (c Changes) Empty() bool { return len(c.Ops) == 0 && len(c.Restart) == 0 }

// Diff returns the minimal list of operations that turns old into new. A
// service whose key (protocol, address, port) exists in both is edited in
// place (only if a setting changed), never deleted and re-added, so that it
// keeps its connections and counters; the same holds for real servers,
// keyed by address and port. Both configs should be normalised (as Parse
// and the ipvsadm conversions return them). A nil old is an empty table.
func Diff(old, new *Config) Changes {
	if old == nil {
		old = &Config{Director: new.Director, Timeouts: new.Timeouts, Conntrack: new.Conntrack, Web: new.Web, Failover: new.Failover}
	}
	var ch Changes
	od, nd := old.Director, new.Director
	for _, f := range []struct {
		key  string
		a, b any
	}{
		{"director.public_interface", od.PublicInterface, nd.PublicInterface},
		{"director.private_interface", od.PrivateInterface, nd.PrivateInterface},
		{"director.engine", od.Engine, nd.Engine},
		{"director.workers", od.Workers, nd.Workers},
		{"director.control_socket", od.ControlSocket, nd.ControlSocket},
		{"director.max_connections", od.MaxConnections, nd.MaxConnections},
		{"director.log_level", od.LogLevel, nd.LogLevel},
		{"director.conn_table_bits", od.ConnTableBits, nd.ConnTableBits},
		{"director.health_max_in_flight", od.HealthMaxInFlight, nd.HealthMaxInFlight},
		{"director.rx_ring", od.RxRing, nd.RxRing},
		{"director.xdp", od.XDP, nd.XDP},
	} {
		if f.a != f.b {
			ch.Restart = append(ch.Restart, f.key)
		}
	}
	if !old.Web.Equal(&new.Web) { // config/web.go
		ch.Restart = append(ch.Restart, "web")
	}
	if failoverChanged(old.Failover, new.Failover) { // config/failover.go
		ch.Restart = append(ch.Restart, "failover")
	}
	if old.Timeouts != new.Timeouts {
		ch.Ops = append(ch.Ops, Op{Kind: OpSetTimeouts, Timeouts: new.Timeouts})
	}
	if old.Conntrack != new.Conntrack {
		ch.Ops = append(ch.Ops, Op{Kind: OpSetConntrack, Conntrack: new.Conntrack})
	}
	oldIdx := make(map[Key]int, len(old.VirtualServers))
	for i := range old.VirtualServers {
		oldIdx[old.VirtualServers[i].Key()] = i
	}
	newIdx := make(map[Key]int, len(new.VirtualServers))
	for i := range new.VirtualServers {
		newIdx[new.VirtualServers[i].Key()] = i
	}
	for i := range old.VirtualServers {
		ovs := &old.VirtualServers[i]
		if _, ok := newIdx[ovs.Key()]; !ok {
			ch.Ops = append(ch.Ops, Op{Kind: OpDeleteService, Key: ovs.Key()})
		}
	}
	for i := range new.VirtualServers {
		nvs := &new.VirtualServers[i]
		j, ok := oldIdx[nvs.Key()]
		if !ok {
			continue
		}
		ovs := &old.VirtualServers[j]
		if !sameSettings(ovs, nvs) {
			ch.Ops = append(ch.Ops, Op{Kind: OpEditService, Key: nvs.Key(), Service: settingsOnly(nvs)})
		}
		oldRS := make(map[netip.AddrPort]RealServer, len(ovs.RealServers))
		for _, rs := range ovs.RealServers {
			oldRS[rs.Address] = rs
		}
		newRS := make(map[netip.AddrPort]bool, len(nvs.RealServers))
		for _, rs := range nvs.RealServers {
			newRS[rs.Address] = true
		}
		for _, ors := range ovs.RealServers {
			if !newRS[ors.Address] {
				ch.Ops = append(ch.Ops, Op{Kind: OpDeleteServer, Key: nvs.Key(), Server: RealServer{Address: ors.Address}})
			}
		}
		for _, nrs := range nvs.RealServers {
			if ors, ok := oldRS[nrs.Address]; ok && !sameServer(&ors, &nrs) {
				ch.Ops = append(ch.Ops, Op{Kind: OpEditServer, Key: nvs.Key(), Server: nrs})
			}
		}
		for _, nrs := range nvs.RealServers {
			if _, ok := oldRS[nrs.Address]; !ok {
				ch.Ops = append(ch.Ops, Op{Kind: OpAddServer, Key: nvs.Key(), Server: nrs})
			}
		}
	}
	for i := range new.VirtualServers {
		nvs := &new.VirtualServers[i]
		if _, ok := oldIdx[nvs.Key()]; ok {
			continue
		}
		ch.Ops = append(ch.Ops, Op{Kind: OpAddService, Key: nvs.Key(), Service: settingsOnly(nvs)})
		for _, rs := range nvs.RealServers {
			ch.Ops = append(ch.Ops, Op{Kind: OpAddServer, Key: nvs.Key(), Server: rs})
		}
	}
	return ch
}

func settingsOnly(vs *VirtualServer) VirtualServer {
	s := vs.Clone()
	s.RealServers = nil
	return s
}

func sameSettings(a, b *VirtualServer) bool {
	return a.Scheduler == b.Scheduler && a.Persistence == b.Persistence && a.Netmask == b.Netmask &&
		a.OnePacket == b.OnePacket && slices.Equal(a.SchedFlags, b.SchedFlags)
}

// Apply returns a copy of c with ops applied in order, as a control layer
// would apply them to its table; it fails on an operation that does not fit
// (adding what exists, editing or deleting what does not), with the
// messages of ipvsadm (libipvs's ipvs_strerror). Apply(old, Diff(old,
// new).Ops) equals new up to the order of services and servers.
func Apply(c *Config, ops []Op) (*Config, error) {
	n := c.Clone()
	for _, o := range ops {
		if err := n.apply(o); err != nil {
			return nil, fmt.Errorf("%s: %w", o, err)
		}
	}
	return n, nil
}

// Errors Apply returns, with the text ipvsadm prints for the kernel's
// errno (they are compared with errors.Is).
var (
	ErrServiceExists = fmt.Errorf("%w: Service already exists", ErrDuplicate)
	ErrNoService     = fmt.Errorf("%w: No such service", ErrInvalid)
	ErrNoServiceDef  = fmt.Errorf("%w: Service not defined", ErrInvalid)
	ErrDestExists    = fmt.Errorf("%w: Destination already exists", ErrDuplicate)
	ErrNoDest        = fmt.Errorf("%w: No such destination", ErrInvalid)
)

func (c *Config) apply(o Op) error {
	i := c.Find(o.Key)
	switch o.Kind {
	case OpSetTimeouts:
		c.Timeouts = o.Timeouts
	case OpSetConntrack:
		c.Conntrack = o.Conntrack
	case OpAddService:
		if i >= 0 {
			return ErrServiceExists
		}
		c.VirtualServers = append(c.VirtualServers, settingsOnly(&o.Service))
	case OpEditService:
		if i < 0 {
			return ErrNoService
		}
		rs := c.VirtualServers[i].RealServers
		c.VirtualServers[i] = settingsOnly(&o.Service)
		c.VirtualServers[i].RealServers = rs
	case OpDeleteService:
		if i < 0 {
			return ErrNoService
		}
		c.VirtualServers = slices.Delete(c.VirtualServers, i, i+1)
	case OpAddServer, OpEditServer, OpDeleteServer:
		if i < 0 {
			return ErrNoServiceDef
		}
		vs := &c.VirtualServers[i]
		j := vs.Find(o.Server.Address)
		switch o.Kind {
		case OpAddServer:
			if j >= 0 {
				return ErrDestExists
			}
			vs.RealServers = append(vs.RealServers, o.Server)
		case OpEditServer:
			if j < 0 {
				return ErrNoDest
			}
			vs.RealServers[j] = o.Server
		default:
			if j < 0 {
				return ErrNoDest
			}
			vs.RealServers = slices.Delete(vs.RealServers, j, j+1)
		}
	default:
		return fmt.Errorf("%w: unknown operation %d", ErrInvalid, o.Kind)
	}
	return nil
}
