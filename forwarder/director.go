package forwarder

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/conntrack"
	"github.com/ulvs/ulvs/forwarder/engine"
	"github.com/ulvs/ulvs/forwarder/pkt"
	"github.com/ulvs/ulvs/scheduler"
)

// Config is the director's data-path configuration. Zero values mean the
// defaults given in each field's comment.
type Config struct {
	// Ifaces are the director's interfaces, the public one first and the
	// private one (if any) second, in the order of engine.Public and
	// engine.Private. For an L3 engine (TUN) only the first is used, for its
	// addresses.
	Ifaces []Iface
	// L3 is set for engines whose frames start with the IP header (TUN).
	L3 bool
	// MaxConns bounds the connection table (default 1<<20).
	MaxConns int
	// MaxServices and MaxDests bound the service table (defaults 1024 and
	// 8192); counters are preallocated for that many.
	MaxServices int
	MaxDests    int
	// Settings are the IPVS sysctls (conntrack.DefaultSettings if zero).
	Settings *conntrack.Settings
	// ICMPRate bounds the ICMP errors each worker sends per second
	// (default 100), like the kernel's icmp_ratelimit.
	ICMPRate int
	// Now returns monotonic nanoseconds (default: since the director
	// started). Tests inject a clock.
	Now func() int64
	// Raw sends the resolver's requests; nil means next hops are only
	// learnt from traffic (tests).
	Raw RawSender
	// Scheduler options passed to every pool (mh table size, twos random...).
	Sched scheduler.Options
	Log   zerolog.Logger
}

// Director is the data path: it owns the service table, the connection
// table, the neighbour cache and the workers that move packets between
// the engine's queues.
type Director struct {
	cfg Config
	eng engine.Engine
	now func() int64

	ct       *conntrack.Table
	table    atomic.Pointer[svcTable]
	routes   atomic.Pointer[RouteTable]
	neigh    *NeighTable
	resolver *Resolver
	stats    *stats
	standby  atomic.Bool // set while this director is the backup
	sync     syncState   // issue 7: connection sync seam (forwarder/sync.go)

	// Control plane, serialized by ctl.
	ctl       sync.Mutex
	services  map[svcKey]*Service
	svcIDs    []bool
	draining  []conntrack.DestID
	schedOpts scheduler.Options
	onChange  func()

	workers []*worker
	solBuf  [128]byte // the resolver goroutine's frame buffer
}

// RawSender sends frames the director originates outside the packet path:
// ARP requests and neighbour solicitations of the resolver, gratuitous ARP
// at takeover. The daemon opens one AF_PACKET socket per interface for it.
type RawSender interface {
	Send(iface int, frame []byte) error
}

// New builds a director on eng. It does not start forwarding: call Run.
func New(cfg Config, eng engine.Engine) (*Director, error) {
	if len(cfg.Ifaces) == 0 {
		return nil, errors.New("forwarder: no interface")
	}
	for i := range cfg.Ifaces {
		cfg.Ifaces[i].prepare()
	}
	if cfg.MaxServices == 0 {
		cfg.MaxServices = 1024
	}
	if cfg.MaxDests == 0 {
		cfg.MaxDests = 8192
	}
	if cfg.ICMPRate == 0 {
		cfg.ICMPRate = 100
	}
	if cfg.Now == nil {
		start := time.Now()
		cfg.Now = func() int64 { return int64(time.Since(start)) + int64(time.Hour) }
	}
	ct, err := conntrack.New(conntrack.Config{MaxConns: cfg.MaxConns, MaxDests: cfg.MaxDests})
	if err != nil {
		return nil, err
	}
	if cfg.Settings != nil {
		if err := ct.SetSettings(*cfg.Settings); err != nil {
			return nil, err
		}
	}
	d := &Director{
		cfg:       cfg,
		eng:       eng,
		now:       cfg.Now,
		ct:        ct,
		neigh:     NewNeighTable(4096),
		services:  map[svcKey]*Service{},
		svcIDs:    make([]bool, cfg.MaxServices),
		schedOpts: cfg.Sched,
	}
	d.resolver = NewResolver(d.neigh, d.solicit, d.now)
	queues := eng.Queues()
	d.stats = newStats(len(queues), cfg.MaxServices, cfg.MaxDests)
	for i, q := range queues {
		d.workers = append(d.workers, newWorker(d, i, q))
	}
	d.table.Store(&svcTable{byKey: map[svcKey]*Service{}, vips: map[[16]byte]struct{}{}})
	d.routes.Store(&RouteTable{})
	return d, nil
}

// SetRoutes replaces the next-hop table (LoadRoutes builds one from the kernel).
func (d *Director) SetRoutes(rt *RouteTable) { d.routes.Store(rt) }

// SetStandby switches forwarding and ARP answering off (a backup director)
// or on. It takes effect for the next packet of every worker.
func (d *Director) SetStandby(standby bool) { d.standby.Store(standby) }

// Standby reports whether the director is the backup.
func (d *Director) Standby() bool { return d.standby.Load() }

// Conntrack returns the connection table (for listings and sync).
func (d *Director) Conntrack() *conntrack.Table { return d.ct }

// OnChange registers a function called after every change of the service
// table, with the control lock held (the daemon updates the engine's BPF
// filter from it).
func (d *Director) OnChange(f func()) {
	d.ctl.Lock()
	d.onChange = f
	d.ctl.Unlock()
}

// SetTimeouts is ipvsadm --set: tcp, tcpfin and udp timeouts in seconds, 0
// leaves a value unchanged.
func (d *Director) SetTimeouts(tcp, tcpfin, udp int) error { return d.ct.SetTimeouts(tcp, tcpfin, udp) }

// Zero resets the counters of every service and real server (ipvsadm -Z).
func (d *Director) Zero() {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	for _, s := range d.services {
		d.stats.resetService(s.id)
		for _, ds := range s.dests {
			d.stats.resetDest(int(ds.id))
		}
	}
}

// ZeroService resets the counters of one service and its real servers.
func (d *Director) ZeroService(k ServiceKey) error {
	d.ctl.Lock()
	defer d.ctl.Unlock()
	s, err := d.serviceLocked(k)
	if err != nil {
		return err
	}
	d.stats.resetService(s.id)
	for _, ds := range s.dests {
		d.stats.resetDest(int(ds.id))
	}
	return nil
}

// Now returns the director's clock (monotonic nanoseconds).
func (d *Director) Now() int64 { return d.now() }

// Drops returns the drop counters by reason name.
func (d *Director) Drops() map[string]uint64 { return d.stats.drops() }

// EngineStats returns the engine's counters (ring drops among them).
func (d *Director) EngineStats() engine.Stats { return d.eng.Stats() }

// VIPs returns the addresses the director answers ARP/NDP for.
func (d *Director) VIPs() [][16]byte {
	t := d.table.Load()
	out := make([][16]byte, 0, len(t.vips))
	for v := range t.vips {
		out = append(out, v)
	}
	return out
}

// NATDests returns the addresses of the NAT real servers, whose replies the
// director must receive on its private side. It reads the published
// snapshot, so it may be called from an OnChange function.
func (d *Director) NATDests() [][16]byte { return d.table.Load().natDests }

// ServiceKeys returns the virtual services of the published snapshot.
func (d *Director) ServiceKeys() []ServiceKey { return d.table.Load().keys }

// solicit is the resolver's Solicit: an ARP request or a neighbour
// solicitation for ip out of the interface that leads to it. It runs on the
// resolver goroutine only.
func (d *Director) solicit(ip [16]byte) error {
	if d.cfg.Raw == nil || d.cfg.L3 {
		return nil
	}
	ifi, _, ok := d.routes.Load().Lookup(&ip)
	if !ok {
		return fmt.Errorf("no route to %v", netip.AddrFrom16(ip).Unmap())
	}
	ifc := &d.cfg.Ifaces[ifi]
	var n int
	var pd pkt.Drop = pkt.DropFamilyMismatch
	if pkt.IsV4(&ip) && ifc.has4 {
		n, pd = pkt.ARPRequest(d.solBuf[:], ifc.MAC, ifc.src4, ip, pkt.NoVLAN)
	} else if !pkt.IsV4(&ip) && ifc.has6 {
		n, pd = pkt.NeighborSolicit(d.solBuf[:], ifc.MAC, ifc.src6, ip, pkt.NoVLAN)
	}
	if pd != pkt.DropNone {
		return fmt.Errorf("soliciting %v on %s: %s", netip.AddrFrom16(ip).Unmap(), ifc.Name, pd)
	}
	return d.cfg.Raw.Send(ifi, d.solBuf[:n])
}

// Resolve asks for ip's MAC address ahead of traffic (the daemon calls it
// for every real server it adds).
func (d *Director) Resolve(ip netip.Addr) {
	a := ip.Unmap().As16()
	if _, hop, ok := d.routes.Load().Lookup(&a); ok {
		d.resolver.Want(&hop)
	}
}

// Run forwards until ctx ends or the engine fails. It returns after every
// worker has stopped.
func (d *Director) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(d.workers)+1)
	for _, w := range d.workers {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			if err := w.run(ctx); err != nil && !errors.Is(err, engine.ErrClosed) && ctx.Err() == nil {
				errs <- fmt.Errorf("worker %d: %w", w.id, err)
				cancel()
			}
		}(w)
	}
	wg.Add(1)
	go func() { defer wg.Done(); d.resolver.Run(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); d.housekeep(ctx) }()
	<-ctx.Done()
	_ = d.eng.Close()
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// housekeep expires connections, runs the schedulers' periodic work and
// forgets deleted real servers once their connections have gone.
func (d *Director) housekeep(ctx context.Context) {
	sweep := time.NewTicker(100 * time.Millisecond)
	defer sweep.Stop()
	var n int
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
		}
		now := d.now()
		d.ct.Sweep(now)
		n++
		if n%10 == 0 {
			for _, s := range d.table.Load().byKey {
				s.pool.Tick(now)
			}
			d.retryForget()
		}
	}
}

// tunnelFor fills t for a TUN-method packet to daddr leaving through ifc.
func tunnelFor(t *pkt.Tunnel, ifc *Iface, daddr *[16]byte) bool {
	if pkt.IsV4(daddr) {
		if !ifc.has4 {
			return false
		}
		t.Src = ifc.src4
	} else {
		if !ifc.has6 {
			return false
		}
		t.Src = ifc.src6
	}
	t.Dst = *daddr
	t.MTU = ifc.MTU
	t.PMTUDisc = true
	return true
}
