package forwarder

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/ulvs/ulvs/conntrack"
	"github.com/ulvs/ulvs/scheduler"
)

// Errors of the control-plane methods.
var (
	ErrServiceExists  = errors.New("virtual service already exists")
	ErrNoService      = errors.New("no such virtual service")
	ErrDestExists     = errors.New("real server already exists")
	ErrNoDest         = errors.New("no such real server")
	ErrTooManyService = errors.New("too many virtual services")
	ErrInvalid        = errors.New("invalid argument")
)

// ServiceKey names a virtual service: protocol, VIP and port.
type ServiceKey struct {
	Proto uint8 // 6 TCP, 17 UDP
	Addr  netip.Addr
	Port  uint16
}

func (k ServiceKey) String() string {
	p := "tcp"
	if k.Proto == 17 {
		p = "udp"
	}
	return p + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// ServiceSpec is a virtual service's settings (ipvsadm -A / -E).
type ServiceSpec struct {
	ServiceKey
	Scheduler   string
	Flags       []string      // ipvsadm -b: sh-port, sh-fallback, mh-port, mh-fallback
	Persistence time.Duration // 0 = not persistent
	// Netmask is the persistence granularity as a prefix length of the
	// client address: 32 (128) keeps each client on its server, 24 a whole
	// /24 (ipvsadm -M 255.255.255.0). Only used with Persistence.
	Netmask   int
	OnePacket bool
}

// DestSpec is a real server's settings (ipvsadm -a / -e).
type DestSpec struct {
	Addr   netip.AddrPort
	Method conntrack.Method
	Weight int32
	Upper  uint32
	Lower  uint32
}

// svcKey is the packed form of ServiceKey used on the packet path.
type svcKey struct {
	addr  [16]byte
	port  uint16
	proto uint8
}

func packKey(k ServiceKey) svcKey {
	return svcKey{addr: k.Addr.Unmap().As16(), port: k.Port, proto: k.Proto}
}

// Service is one virtual service of the running table.
type Service struct {
	spec  ServiceSpec
	key   svcKey
	id    int
	ct    conntrack.Service
	pool  *scheduler.Pool
	dests map[netip.AddrPort]*destState
}

type destState struct {
	d    *scheduler.Dest
	id   conntrack.DestID
	spec DestSpec
}

// svcTable is the immutable snapshot the packet path reads: one atomic load
// per packet, then plain map lookups. Control-plane changes build a new one.
type svcTable struct {
	byKey map[svcKey]*Service
	vips  map[[16]byte]struct{}
	// anyPort0 is set when some service has port 0 (a persistent
	// all-ports service), so lookups try port 0 after the exact port.
	anyPort0 bool
	// For the daemon's kernel filter: the services and the NAT real
	// servers' addresses.
	keys     []ServiceKey
	natDests [][16]byte
}

func (t *svcTable) lookup(proto uint8, addr *[16]byte, port uint16) *Service {
	if s := t.byKey[svcKey{addr: *addr, port: port, proto: proto}]; s != nil {
		return s
	}
	if t.anyPort0 {
		return t.byKey[svcKey{addr: *addr, proto: proto}]
	}
	return nil
}

func (t *svcTable) isVIP(a *[16]byte) bool {
	_, ok := t.vips[*a]
	return ok
}

// publishLocked builds and publishes a new snapshot. ctl is held.
func (d *Director) publishLocked() {
	t := &svcTable{byKey: make(map[svcKey]*Service, len(d.services)), vips: map[[16]byte]struct{}{}}
	seen := map[[16]byte]bool{}
	for _, s := range d.services {
		t.byKey[s.key] = s
		t.vips[s.key.addr] = struct{}{}
		t.keys = append(t.keys, s.spec.ServiceKey)
		if s.key.port == 0 {
			t.anyPort0 = true
		}
		for _, ds := range s.dests {
			a := ds.spec.Addr.Addr().Unmap().As16()
			if ds.spec.Method == conntrack.MethodMasq && !seen[a] {
				seen[a] = true
				t.natDests = append(t.natDests, a)
			}
		}
	}
	d.table.Store(t)
	if d.onChange != nil {
		d.onChange()
	}
}

func (d *Director) serviceLocked(k ServiceKey) (*Service, error) {
	s := d.services[packKey(k)]
	if s == nil {
		return nil, fmt.Errorf("%s: %w", k, ErrNoService)
	}
	return s, nil
}

func (s *Service) applySpec(spec ServiceSpec) error {
	if spec.Persistence < 0 || spec.Persistence > 31*24*time.Hour {
		return fmt.Errorf("persistence %s: %w", spec.Persistence, ErrInvalid)
	}
	ct := conntrack.Service{
		Proto:          spec.Proto,
		Addr:           spec.Addr.Unmap().As16(),
		Port:           spec.Port,
		IPv6:           spec.Addr.Is6() && !spec.Addr.Is4In6(),
		PersistTimeout: uint32(spec.Persistence / time.Second),
		OnePacket:      spec.OnePacket,
	}
	if spec.Persistence > 0 {
		if err := ct.SetPrefix(spec.Netmask); err != nil {
			return err
		}
	}
	s.ct = ct
	s.spec = spec
	return nil
}

// AddService adds a virtual service (ipvsadm -A).
func (d *Director) AddService(spec ServiceSpec) error {
	if spec.Proto != 6 && spec.Proto != 17 {
		return fmt.Errorf("protocol %d: %w (tcp or udp)", spec.Proto, ErrInvalid)
	}
	if spec.Port == 0 && spec.Persistence == 0 {
		return fmt.Errorf("%s: port 0 needs persistence: %w", spec.ServiceKey, ErrInvalid)
	}
	d.ctl.Lock()
	defer d.ctl.Unlock()
	key := packKey(spec.ServiceKey)
	if d.services[key] != nil {
		return fmt.Errorf("%s: %w", spec.ServiceKey, ErrServiceExists)
	}
	flags, err := scheduler.ParseFlags(spec.Flags)
	if err != nil {
		return err
	}
	pool, err := scheduler.New(orDefault(spec.Scheduler, "wlc"), flags, d.schedOpts)
	if err != nil {
		return err
	}
	id := d.allocServiceID()
	if id < 0 {
		return fmt.Errorf("%s: %w (at most %d)", spec.ServiceKey, ErrTooManyService, d.cfg.MaxServices)
	}
	s := &Service{key: key, id: id, pool: pool, dests: map[netip.AddrPort]*destState{}}
	if err := s.applySpec(spec); err != nil {
		d.svcIDs[id] = false
		return err
	}
	d.stats.resetService(id)
	d.services[key] = s
	d.publishLocked()
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (d *Director) allocServiceID() int {
	for i, used := range d.svcIDs {
		if !used {
			d.svcIDs[i] = true
			return i
		}
	}
	return -1
}

// EditService changes a service's scheduler and persistence (ipvsadm -E).
// Real servers, their counters and existing connections are kept.
func (d *Director) EditService(spec ServiceSpec) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	s, err := d.serviceLocked(spec.ServiceKey)
	if err != nil {
		return err
	}
	flags, err := scheduler.ParseFlags(spec.Flags)
	if err != nil {
		return err
	}
	if spec.Port == 0 && spec.Persistence == 0 {
		return fmt.Errorf("%s: port 0 needs persistence: %w", spec.ServiceKey, ErrInvalid)
	}
	// Validate everything before changing anything.
	probe := &Service{}
	if err := probe.applySpec(spec); err != nil {
		return err
	}
	if err := s.pool.SetScheduler(orDefault(spec.Scheduler, "wlc"), flags); err != nil {
		return err
	}
	// A new Service value keeps the snapshot immutable for readers.
	ns := *s
	ns.ct, ns.spec = probe.ct, probe.spec
	d.services[s.key] = &ns
	d.publishLocked()
	return nil
}

// DeleteService removes a service and its real servers (ipvsadm -D). Its
// connections are flushed.
func (d *Director) DeleteService(k ServiceKey) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	s, err := d.serviceLocked(k)
	if err != nil {
		return err
	}
	delete(d.services, s.key)
	d.publishLocked()
	for _, ds := range s.dests {
		_ = s.pool.Delete(ds.d)
		d.ct.FlushDest(ds.id)
		d.forgetDest(ds)
	}
	d.svcIDs[s.id] = false
	return nil
}

// Clear removes every service (ipvsadm -C).
func (d *Director) Clear() {
	d.ctl.Lock()
	keys := make([]ServiceKey, 0, len(d.services))
	for _, s := range d.services {
		keys = append(keys, s.spec.ServiceKey)
	}
	d.ctl.Unlock()
	for _, k := range keys {
		_ = d.DeleteService(k)
	}
}

// AddDest adds a real server to a service (ipvsadm -a).
func (d *Director) AddDest(k ServiceKey, spec DestSpec) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	s, err := d.serviceLocked(k)
	if err != nil {
		return err
	}
	if s.dests[spec.Addr] != nil {
		return fmt.Errorf("%s in %s: %w", spec.Addr, k, ErrDestExists)
	}
	if err := checkDestSpec(k, spec); err != nil {
		return err
	}
	dst := scheduler.NewDest(spec.Addr, spec.Weight, spec.Upper, spec.Lower)
	id, err := d.ct.RegisterDest(dst, spec.Method)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", spec.Addr, k, err)
	}
	if err := s.pool.Add(dst); err != nil {
		_ = d.ct.UnregisterDest(id)
		return err
	}
	d.stats.resetDest(int(id))
	s.dests[spec.Addr] = &destState{d: dst, id: id, spec: spec}
	d.Resolve(spec.Addr.Addr())
	d.publishLocked()
	return nil
}

func checkDestSpec(k ServiceKey, spec DestSpec) error {
	if spec.Weight < 0 || spec.Weight > 65535 {
		return fmt.Errorf("weight %d: %w (0..65535)", spec.Weight, ErrInvalid)
	}
	if spec.Lower > spec.Upper && spec.Upper != 0 {
		return fmt.Errorf("lower threshold %d above upper %d: %w", spec.Lower, spec.Upper, ErrInvalid)
	}
	v6 := spec.Addr.Addr().Is6() && !spec.Addr.Addr().Is4In6()
	svc6 := k.Addr.Is6() && !k.Addr.Is4In6()
	if v6 != svc6 && spec.Method != conntrack.MethodTunnel {
		return fmt.Errorf("%s: a real server of another address family needs the tun method: %w", spec.Addr, ErrInvalid)
	}
	switch spec.Method {
	case conntrack.MethodMasq, conntrack.MethodRoute, conntrack.MethodTunnel:
	default:
		return fmt.Errorf("forwarding method %s: %w", spec.Method, ErrInvalid)
	}
	return nil
}

// EditDest changes a real server's method, weight and thresholds (ipvsadm -e).
func (d *Director) EditDest(k ServiceKey, spec DestSpec) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	s, err := d.serviceLocked(k)
	if err != nil {
		return err
	}
	ds := s.dests[spec.Addr]
	if ds == nil {
		return fmt.Errorf("%s in %s: %w", spec.Addr, k, ErrNoDest)
	}
	if err := checkDestSpec(k, spec); err != nil {
		return err
	}
	if err := s.pool.Edit(ds.d, spec.Weight, spec.Upper, spec.Lower); err != nil {
		return err
	}
	if err := d.ct.SetDestMethod(ds.id, spec.Method); err != nil {
		return err
	}
	ds.spec = spec
	d.publishLocked()
	return nil
}

// DeleteDest removes a real server (ipvsadm -d). Its connections stay in the
// table and follow expire_nodest_conn; the server is forgotten when the
// last of them ends.
func (d *Director) DeleteDest(k ServiceKey, addr netip.AddrPort) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	s, err := d.serviceLocked(k)
	if err != nil {
		return err
	}
	ds := s.dests[addr]
	if ds == nil {
		return fmt.Errorf("%s in %s: %w", addr, k, ErrNoDest)
	}
	if err := s.pool.Delete(ds.d); err != nil {
		return err
	}
	delete(s.dests, addr)
	d.forgetDest(ds)
	d.publishLocked()
	return nil
}

// forgetDest unregisters a deleted server now if no connection uses it, or
// later from the housekeeping loop.
func (d *Director) forgetDest(ds *destState) {
	if err := d.ct.UnregisterDest(ds.id); err != nil {
		d.draining = append(d.draining, ds.id)
	}
}

// retryForget unregisters deleted servers whose connections have ended.
func (d *Director) retryForget() {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	keep := d.draining[:0]
	for _, id := range d.draining {
		if err := d.ct.UnregisterDest(id); err != nil {
			keep = append(keep, id)
		}
	}
	d.draining = keep
}

// ServiceInfo describes a service for listings.
type ServiceInfo struct {
	Spec  ServiceSpec
	Stats Counters
	Dests []DestInfo
}

// DestInfo describes a real server for listings.
type DestInfo struct {
	Spec                       DestSpec
	ActiveConns, InactiveConns int32
	PersistentConns            int32
	Overloaded                 bool
	Stats                      Counters
}

// Services lists the running table: services in no particular order, real
// servers in the scheduler's list order (most recently added first).
func (d *Director) Services() []ServiceInfo {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	out := make([]ServiceInfo, 0, len(d.services))
	for _, s := range d.services {
		si := ServiceInfo{Spec: s.spec, Stats: d.stats.service(s.id)}
		byPtr := make(map[*scheduler.Dest]*destState, len(s.dests))
		for _, ds := range s.dests {
			byPtr[ds.d] = ds
		}
		for _, dst := range s.pool.Dests() {
			if ds := byPtr[dst]; ds != nil {
				si.Dests = append(si.Dests, DestInfo{
					Spec:            ds.spec,
					ActiveConns:     dst.ActiveConns(),
					InactiveConns:   dst.InactiveConns(),
					PersistentConns: dst.PersistentConns(),
					Overloaded:      dst.Overloaded(),
					Stats:           d.stats.dest(int(ds.id)),
				})
			}
		}
		out = append(out, si)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.ServiceKey.String() < out[j].Spec.ServiceKey.String() })
	return out
}
