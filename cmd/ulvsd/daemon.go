package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/forwarder"
	"github.com/ulvs/ulvs/forwarder/engine"
	"github.com/ulvs/ulvs/forwarder/pkt"
	"github.com/ulvs/ulvs/healthcheck"
)

// daemon is one running ulvsd: the data path, the control plane and the
// control socket.
type daemon struct {
	log    zerolog.Logger
	cfg    *config.Config
	ifaces []forwarder.Iface
	eng    engine.Engine
	dir    *forwarder.Director
	ctl    *control.Control
	hm     *healthcheck.Manager
	est    *control.Estimator
	raw    *rawSender
	sock   net.Listener
	sd     *syncDaemons // issue 7: sync daemons (cmd/ulvsd/failover.go)
	fo     *failoverRun // issue 7: [failover], nil when absent
	tun    *tunSetup    // issue 4: engine = "tun" (cmd/ulvsd/tun.go), nil otherwise

	filterMu sync.Mutex
}

func start(ctx context.Context, cfg *config.Config, path string, log zerolog.Logger) (*daemon, error) {
	d := &daemon{log: log, cfg: cfg}
	names := []string{cfg.Director.PublicInterface}
	if p := cfg.Director.PrivateInterface; p != "" && p != cfg.Director.PublicInterface {
		names = append(names, p)
	}
	ifaces, err := forwarder.LoadIfaces(names)
	if err != nil {
		return nil, err
	}
	d.ifaces = ifaces
	if cfg.Director.Engine != config.EngineTUN { // issue 4: the TUN engine needs forwarding on
		checkKernelForwarding(log)
	}

	switch cfg.Director.Engine {
	case config.EngineTUN: // issue 4 (cmd/ulvsd/tun.go)
		if err := d.openTUN(cfg, names); err != nil {
			return nil, err
		}
	default:
		acfg := engine.AFPacketConfig{Public: names[0], Workers: cfg.Director.Workers, RxRingV2: cfg.Director.RxRing == config.RxRingV2}
		if cfg.Director.XDP != config.XDPOff {
			acfg.XDP = string(cfg.Director.XDP)
		}
		if len(names) > 1 {
			acfg.Private = names[1]
		}
		spec := d.baseFilter()
		acfg.Filter = &spec
		eng, err := engine.OpenAFPacket(acfg)
		if err != nil {
			return nil, fmt.Errorf("opening AF_PACKET engine on %s: %w", strings.Join(names, ", "), err)
		}
		d.eng = eng
	}
	var raw forwarder.RawSender // issue 4: the TUN engine (L3) sends no ARP
	if d.tun == nil {
		r, err := openRaw(ifaces)
		if err != nil {
			d.eng.Close()
			return nil, err
		}
		d.raw, raw = r, r
	}

	dir, err := forwarder.New(forwarder.Config{
		Ifaces:   ifaces,
		L3:       d.tun != nil, // issue 4
		MaxConns: cfg.Director.MaxConnections,
		Raw:      raw,
		Log:      log,
	}, d.eng)
	if err != nil {
		d.close()
		return nil, err
	}
	d.dir = dir
	if err := d.refreshRoutes(); err != nil {
		d.close()
		return nil, err
	}
	d.est = control.NewEstimator()
	d.ctl = control.New(&control.DirectorPlane{D: dir, Rates: d.est}, path, cfg.Director, log)
	dir.OnChange(func() { d.updateFilter(); d.tunChanged() }) // issue 4: tunChanged routes the VIPs into the TUN device
	var hopts []healthcheck.Option
	if n := cfg.Director.HealthMaxInFlight; n > 0 {
		hopts = append(hopts, healthcheck.WithMaxInFlight(n))
	}
	d.hm = healthcheck.NewManager(log.With().Str("component", "health").Logger(), d.ctl, hopts...)
	if err := d.ctl.SetHealthManager(d.hm); err != nil {
		d.close()
		return nil, err
	}
	if _, err := d.ctl.Start(cfg); err != nil {
		d.close()
		return nil, fmt.Errorf("applying %s: %w", path, err)
	}
	if err := d.startFailover(names); err != nil { // issue 7 (cmd/ulvsd/failover.go)
		d.close()
		return nil, err
	}
	sockPath := cfg.Director.ControlSocket
	if sockPath == "" {
		sockPath = control.DefaultSocket
	}
	if d.sock, err = control.Listen(sockPath); err != nil {
		d.close()
		return nil, err
	}
	mon, err := startWeb(ctx, cfg.Web, d.ctl, d.status, log) // cmd/ulvsd/web.go
	if err != nil {
		d.close()
		return nil, err
	}
	if mon != nil && d.fo != nil {
		mon.SetFailover(d.fo.webStatus)
	}
	ev := log.Info().Strs("interfaces", names).Int("workers", len(d.eng.Queues()))
	if d.tun == nil {
		ev = ev.Str("rx_ring", string(cfg.Director.RxRing)).Str("xdp", string(cfg.Director.XDP))
	}
	ev.Int("virtual_services", len(cfg.VirtualServers)).Str("control_socket", sockPath).Msg("started")
	return d, nil
}

func (d *daemon) close() {
	if d.hm != nil {
		d.hm.Close() // stops every check before the data path goes
	}
	if d.sd != nil { // issue 7
		d.sd.stop(0)
	}
	if d.sock != nil {
		d.sock.Close()
	}
	if d.raw != nil {
		d.raw.Close()
	}
	d.tun.teardown() // issue 4: routes and rules of the TUN engine (nil-safe)
	if d.eng != nil {
		d.eng.Close()
	}
}

// run forwards until ctx ends.
func (d *daemon) run(ctx context.Context) error {
	defer d.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		h := control.WithDaemons(d.ctl.Handler(d.status), d.sd) // issue 7: sync daemon endpoints (control/daemon.go)
		if err := control.Serve(ctx, d.sock, h); err != nil {
			d.log.Error().Err(err).Msg("control socket")
		}
	}()
	go func() { defer wg.Done(); d.est.Run(ctx, d.dir) }()
	go func() { defer wg.Done(); d.maintain(ctx) }()
	if d.fo == nil { // issue 7: with [failover], the node announces at takeover
		d.announce()
	} else {
		wg.Add(1)
		go func() { defer wg.Done(); d.fo.run(ctx) }()
	}
	err := d.dir.Run(ctx)
	cancel()
	wg.Wait()
	return err
}

// reload re-reads the configuration file (SIGHUP).
func (d *daemon) reload() {
	ch, err := d.ctl.Reload()
	if err != nil {
		d.log.Error().Err(err).Msg("reload refused; the running configuration is unchanged")
		return
	}
	d.log.Info().Int("changes", len(ch.Ops)).Msg("reloaded")
}

// maintain refreshes the routes from the kernel.
func (d *daemon) maintain(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.refreshRoutes(); err != nil {
				d.log.Warn().Err(err).Msg("refreshing routes")
			}
		}
	}
}

func (d *daemon) refreshRoutes() error {
	rt, err := forwarder.LoadRoutes(d.ifaces)
	if err != nil {
		return err
	}
	d.dir.SetRoutes(rt)
	return nil
}

// baseFilter is the kernel filter before any service: ARP and NDP, and
// ICMP errors to the director's own addresses. updateFilter adds the VIPs
// and the NAT real servers as soon as the first table is applied.
func (d *daemon) baseFilter() engine.FilterSpec {
	spec := engine.FilterSpec{ARP: true, NDP: true}
	for _, ifc := range d.ifaces {
		for _, p := range ifc.Addrs {
			spec.DirectorAddrs = append(spec.DirectorAddrs, p.Addr())
		}
	}
	return spec
}

// updateFilter follows the service table with the kernel filter. It runs
// with the director's control lock held, after every change.
func (d *daemon) updateFilter() {
	fs, ok := d.eng.(engine.FilterSetter)
	if !ok || d.ctl == nil {
		return
	}
	spec := d.baseFilter()
	for _, v := range d.dir.ServiceKeys() {
		spec.VIPs = append(spec.VIPs, engine.VIP{Addr: v.Addr, Protocol: v.Proto, Port: v.Port})
	}
	for _, a := range d.dir.NATDests() {
		spec.RealServers = append(spec.RealServers, netip.AddrFrom16(a).Unmap())
	}
	d.filterMu.Lock()
	defer d.filterMu.Unlock()
	if err := fs.SetFilter(spec); err != nil {
		d.log.Error().Err(err).Msg("updating the kernel filter")
	}
}

// announce sends gratuitous ARP (unsolicited NA for IPv6) for every VIP on
// the public interface, so that neighbours learn at once who owns them.
func (d *daemon) announce() {
	if d.raw == nil { // issue 4: the TUN engine (L3) owns no address on L2
		return
	}
	var buf [128]byte
	ifc := &d.ifaces[0]
	for _, v := range d.dir.VIPs() {
		var n int
		var pd pkt.Drop
		if pkt.IsV4(&v) {
			n, pd = pkt.GratuitousARP(buf[:], ifc.MAC, v, pkt.NoVLAN)
		} else {
			n, pd = pkt.UnsolicitedNA(buf[:], ifc.MAC, v, pkt.NoVLAN)
		}
		if pd != pkt.DropNone {
			continue
		}
		for i := 0; i < 3; i++ {
			if err := d.raw.Send(0, buf[:n]); err != nil {
				d.log.Warn().Err(err).Msg("gratuitous ARP")
				break
			}
		}
	}
}

func (d *daemon) status() any {
	return map[string]any{
		"drops":   d.dir.Drops(),
		"engine":  d.dir.EngineStats(),
		"standby": d.dir.Standby(),
		"sync":    d.syncStatus(), // issue 7 (cmd/ulvsd/failover.go)
	}
}

// checkKernelForwarding warns when the kernel forwards IPv4: it would send
// NAT replies out a second time, unrewritten.
func checkKernelForwarding(log zerolog.Logger) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err == nil && strings.TrimSpace(string(b)) == "1" {
		log.Warn().Msg("net.ipv4.ip_forward is 1: the kernel will also forward NAT real servers' replies, unrewritten; " +
			"set it to 0 on the director (ulvs forwards the virtual services' traffic itself)")
	}
}

// rawSender sends frames the director originates (ARP requests, gratuitous
// ARP) on one AF_PACKET socket per interface, receiving nothing.
type rawSender struct {
	conns []*packet.Conn
}

func openRaw(ifaces []forwarder.Iface) (*rawSender, error) {
	r := &rawSender{}
	for _, ifc := range ifaces {
		ni, err := net.InterfaceByIndex(ifc.Index)
		if err != nil {
			r.Close()
			return nil, err
		}
		c, err := packet.Listen(ni, packet.Raw, 0, nil)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("raw socket on %s: %w", ifc.Name, err)
		}
		r.conns = append(r.conns, c)
	}
	return r, nil
}

func (r *rawSender) Send(iface int, frame []byte) error {
	if iface >= len(r.conns) {
		return fmt.Errorf("no interface %d", iface)
	}
	_, err := r.conns[iface].WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(frame[0:6])})
	return err
}

func (r *rawSender) Close() {
	for _, c := range r.conns {
		c.Close()
	}
}
