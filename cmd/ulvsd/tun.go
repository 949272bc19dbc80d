package main

// Issue 4: [director] engine = "tun", the L3 deployment. ulvsd creates the
// TUN device tunDevice, routes every VIP into it, and steers the NAT real
// servers' replies into it with policy routing; the kernel forwards what
// ulvs writes back into the device.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/forwarder/engine"
)

const (
	// tunDevice is the TUN device ulvsd creates (one director per network
	// namespace).
	tunDevice = "ulvs0"
	// tunTable is the routing table holding "default dev ulvs0", looked up
	// for the NAT real servers' replies.
	tunTable = 30567
	// tunRulePriority is the priority of the "from RS iif IFACE lookup
	// tunTable" rules (before the main table's 32766).
	tunRulePriority = 30567
)

// ErrTUNSetup is returned when the L3 deployment cannot be set up.
var ErrTUNSetup = errors.New("director.engine = \"tun\"")

// tunSetup is the kernel state ulvsd keeps for the TUN engine: routes of
// the VIPs into the device, policy rules for the NAT real servers' replies.
type tunSetup struct {
	log     zerolog.Logger
	link    netlink.Link
	replyIf string // interface the NAT real servers' replies arrive on

	mu     sync.Mutex
	vips   map[netip.Addr]bool // routed into the device
	rules  map[netip.Addr]bool // "from RS iif replyIf lookup tunTable"
	tables map[int]bool        // families with "default dev ulvs0 table tunTable"
}

// checkTUNConfig refuses what the L3 deployment cannot do: DR real
// servers (no L2 path to them), [failover] (it announces addresses on L2),
// and a kernel that does not forward.
func checkTUNConfig(cfg *config.Config) error {
	need6 := false
	for _, vs := range cfg.VirtualServers {
		if vs.Address.Addr().Is6() {
			need6 = true
		}
		for _, rs := range vs.RealServers {
			if rs.Method == config.DR {
				return fmt.Errorf("%w: virtual server %s: real server %s uses method \"dr\", which needs L2 access; use \"nat\" or \"tun\"",
					ErrTUNSetup, vs.Address, rs.Address)
			}
			if rs.Address.Addr().Is6() {
				need6 = true
			}
		}
	}
	if cfg.Failover != nil {
		return fmt.Errorf("%w: [failover] is not supported with the TUN engine; use engine = \"afpacket\"", ErrTUNSetup)
	}
	if err := needSysctl("net/ipv4/ip_forward"); err != nil {
		return err
	}
	if need6 {
		if err := needSysctl("net/ipv6/conf/all/forwarding"); err != nil {
			return err
		}
	}
	return nil
}

func needSysctl(key string) error {
	b, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		return fmt.Errorf("%w: reading %s: %v", ErrTUNSetup, strings.ReplaceAll(key, "/", "."), err)
	}
	if strings.TrimSpace(string(b)) != "1" {
		name := strings.ReplaceAll(key, "/", ".")
		return fmt.Errorf("%w needs the kernel to forward what ulvs writes into the TUN device: %s is %s; set it to 1 (sysctl -w %s=1)",
			ErrTUNSetup, name, strings.TrimSpace(string(b)), name)
	}
	return nil
}

// openTUN checks the configuration, creates the TUN device with one queue
// per worker and brings it up. names are the public and (optional) private
// interfaces.
func (d *daemon) openTUN(cfg *config.Config, names []string) error {
	if err := checkTUNConfig(cfg); err != nil {
		return err
	}
	// Attaching to an existing device would share its traffic with
	// whoever holds it (another ulvsd in this network namespace).
	if _, err := netlink.LinkByName(tunDevice); err == nil {
		return fmt.Errorf("%w: the device %s already exists (another ulvsd running in this network namespace?); remove it (ip link del %s)",
			ErrTUNSetup, tunDevice, tunDevice)
	}
	eng, err := engine.OpenTUN(engine.TUNConfig{Name: tunDevice, Workers: cfg.Director.Workers})
	if err != nil {
		return fmt.Errorf("opening the TUN engine on %s: %w", tunDevice, err)
	}
	ts := &tunSetup{
		log:     d.log.With().Str("component", "tun").Logger(),
		replyIf: names[len(names)-1],
		vips:    map[netip.Addr]bool{},
		rules:   map[netip.Addr]bool{},
		tables:  map[int]bool{},
	}
	fail := func(err error) error {
		ts.teardown()
		eng.Close()
		return fmt.Errorf("%w: setting up %s: %v", ErrTUNSetup, tunDevice, err)
	}
	if ts.link, err = netlink.LinkByName(tunDevice); err != nil {
		return fail(err)
	}
	if err := netlink.LinkSetUp(ts.link); err != nil {
		return fail(err)
	}
	// Packets ulvs writes have foreign sources (clients, the VIP) or, for
	// TUN real servers, the director's own address as the outer source:
	// no reverse-path filtering and accept_local on the device. The
	// kernel uses the larger of conf.all and conf.ulvs0 for rp_filter.
	for k, v := range map[string]string{"rp_filter": "0", "accept_local": "1"} {
		p := "/proc/sys/net/ipv4/conf/" + tunDevice + "/" + k
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			return fail(err)
		}
	}
	warnRPFilter(cfg, ts.log)
	ts.removeStaleRules()
	d.eng, d.tun = eng, ts
	return nil
}

// removeStaleRules deletes the rules a previous ulvsd left (killed without
// cleaning up): every rule that looks up tunTable.
func (ts *tunSetup) removeStaleRules() {
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := netlink.RuleListFiltered(fam, &netlink.Rule{Table: tunTable}, netlink.RT_FILTER_TABLE)
		if err != nil {
			continue
		}
		for i := range rules {
			if err := netlink.RuleDel(&rules[i]); err != nil {
				ts.log.Warn().Err(err).Msg("removing a stale policy rule")
			}
		}
	}
}

// warnRPFilter: the IP-in-IP packets for TUN-method real servers leave
// ulvs with the director's own address as their source; the kernel drops
// them on a device without addresses unless reverse-path filtering is off
// (net.ipv4.conf.all.rp_filter = 0; ulvsd sets ulvs0's own to 0).
func warnRPFilter(cfg *config.Config, log zerolog.Logger) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter")
	if err != nil || strings.TrimSpace(string(b)) == "0" {
		return
	}
	for _, vs := range cfg.VirtualServers {
		for _, rs := range vs.RealServers {
			if rs.Method == config.TUN && rs.Address.Addr().Is4() {
				log.Warn().Str("rp_filter", strings.TrimSpace(string(b))).Stringer("real_server", rs.Address).
					Msg("net.ipv4.conf.all.rp_filter is not 0: the kernel drops the IP-in-IP packets ulvs writes into " +
						tunDevice + " for TUN-method real servers; set it to 0")
				return
			}
		}
	}
}

func hostNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func (ts *tunSetup) vipRoute(a netip.Addr) *netlink.Route {
	return &netlink.Route{LinkIndex: ts.link.Attrs().Index, Dst: hostNet(a), Scope: netlink.SCOPE_LINK}
}

func (ts *tunSetup) rule(a netip.Addr) *netlink.Rule {
	r := netlink.NewRule()
	r.Priority, r.Table, r.Src, r.IifName = tunRulePriority, tunTable, hostNet(a), ts.replyIf
	r.Family = unix.AF_INET
	if a.Is6() {
		r.Family = unix.AF_INET6
	}
	return r
}

func (ts *tunSetup) defaultRoute(fam int) *netlink.Route {
	dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	if fam == unix.AF_INET6 {
		dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &netlink.Route{LinkIndex: ts.link.Attrs().Index, Dst: dst, Table: tunTable, Scope: netlink.SCOPE_LINK}
}

// sync makes the routes and rules follow the service table: a route into
// the device for every VIP, a rule for every NAT real server.
func (ts *tunSetup) sync(vips, natDests []netip.Addr) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	want := map[netip.Addr]bool{}
	for _, v := range vips {
		want[v] = true
		if ts.vips[v] {
			continue
		}
		if err := netlink.RouteReplace(ts.vipRoute(v)); err != nil {
			ts.log.Error().Err(err).Stringer("vip", v).Msg("routing the VIP into " + tunDevice)
			continue
		}
		ts.vips[v] = true
	}
	for v := range ts.vips {
		if !want[v] {
			if err := netlink.RouteDel(ts.vipRoute(v)); err != nil && !errors.Is(err, unix.ESRCH) {
				ts.log.Warn().Err(err).Stringer("vip", v).Msg("removing the VIP's route")
			}
			delete(ts.vips, v)
		}
	}
	want = map[netip.Addr]bool{}
	for _, a := range natDests {
		want[a] = true
		if ts.rules[a] {
			continue
		}
		r := ts.rule(a)
		if !ts.tables[r.Family] {
			if err := netlink.RouteReplace(ts.defaultRoute(r.Family)); err != nil {
				ts.log.Error().Err(err).Int("table", tunTable).Msg("adding the default route into " + tunDevice)
				continue
			}
			ts.tables[r.Family] = true
		}
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			ts.log.Error().Err(err).Stringer("real_server", a).Msg("adding the policy rule for the NAT real server's replies")
			continue
		}
		ts.rules[a] = true
	}
	for a := range ts.rules {
		if !want[a] {
			if err := netlink.RuleDel(ts.rule(a)); err != nil {
				ts.log.Warn().Err(err).Stringer("real_server", a).Msg("removing the policy rule")
			}
			delete(ts.rules, a)
		}
	}
}

// teardown removes every route and rule ulvsd installed (the device goes
// with the engine's last queue).
func (ts *tunSetup) teardown() {
	if ts == nil || ts.link == nil {
		return
	}
	ts.sync(nil, nil)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for fam := range ts.tables {
		if err := netlink.RouteDel(ts.defaultRoute(fam)); err != nil && !errors.Is(err, unix.ESRCH) {
			ts.log.Warn().Err(err).Msg("removing the default route of table " + fmt.Sprint(tunTable))
		}
		delete(ts.tables, fam)
	}
}

// tunChanged follows a change of the service table (chained after
// updateFilter in the director's OnChange hook).
func (d *daemon) tunChanged() {
	if d.tun == nil || d.dir == nil {
		return
	}
	var vips, nat []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, k := range d.dir.ServiceKeys() {
		a := k.Addr.Unmap()
		if !a.IsValid() || seen[a] {
			continue
		}
		seen[a] = true
		vips = append(vips, a)
	}
	for _, a := range d.dir.NATDests() {
		nat = append(nat, netip.AddrFrom16(a).Unmap())
	}
	d.tun.sync(vips, nat)
}
