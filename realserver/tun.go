package realserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultTunDevice is the TUN device that holds the VIPs.
const DefaultTunDevice = "ulvstun0"

// TUNConfig says how to receive TUN-mode (IP-in-IP) traffic.
type TUNConfig struct {
	VIPs     []netip.Addr
	Device   string // TUN device name (default DefaultTunDevice)
	StateDir string // default DefaultStateDir
	// StatsInterval is how often Run logs the counters when they changed
	// (default one minute; negative: never).
	StatsInterval time.Duration
}

// Stats counts received packets per Reason.
type Stats [NumReasons]uint64

// Get returns the count for one reason.
func (s Stats) Get(r Reason) uint64 { return s[r] }

// Tunnel is a running userspace IP-in-IP decapsulator.
type Tunnel struct {
	cfg    TUNConfig
	log    zerolog.Logger
	vips   *VIPSet
	tun    *water.Interface
	socks  []rawSock
	rec    *record
	path   string
	counts [NumReasons]atomic.Uint64

	nsfd      int // the namespace set up, for Close from any thread
	closeOnce sync.Once
	closeErr  error
}

type rawSock struct {
	f     *os.File
	outer int   // unix.AF_INET or unix.AF_INET6
	proto uint8 // 4 or 41
}

// NewTunnel sets up TUN-mode reception in the calling thread's network
// namespace:
//   - a TUN device holding each VIP (/32, /128), up;
//   - rp_filter relaxed for that device only: the inner packets come from
//     clients whose route is another interface. The kernel uses the larger of
//     net.ipv4.conf.all.rp_filter and the device's value, so when "all" is
//     set, each other interface gets max(all, its own) and "all" becomes 0;
//   - arp_ignore=1 and arp_announce=2 on "all", as for DR: the VIP is a local
//     address, which the host must not answer ARP for;
//   - raw sockets for protocols 4 and 41, IPv4 and IPv6 outer headers.
//
// Every sysctl change is recorded, restored by Close, and by UndoTUN after
// a crash.
func NewTunnel(cfg TUNConfig, log zerolog.Logger) (*Tunnel, error) {
	if err := checkVIPs(cfg.VIPs); err != nil {
		return nil, err
	}
	if cfg.Device == "" {
		cfg.Device = DefaultTunDevice
	}
	if len(cfg.Device) > unix.IFNAMSIZ-1 {
		return nil, fmt.Errorf("tun set-up: device name %q longer than %d", cfg.Device, unix.IFNAMSIZ-1)
	}
	path, ino, err := stateFile(cfg.StateDir, "tun")
	if err != nil {
		return nil, err
	}
	old, err := loadRecord(path)
	if err != nil {
		return nil, err
	}
	if old != nil {
		return nil, fmt.Errorf("tun set-up: %s exists: another `ulvs-realserver tun` runs in this namespace, or one crashed (run `ulvs-realserver tun --undo`)", path)
	}
	nsfd, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tun set-up: open own network namespace: %w", err)
	}
	t := &Tunnel{cfg: cfg, log: log, vips: NewVIPSet(cfg.VIPs...), path: path, rec: &record{Netns: ino, Device: cfg.Device}, nsfd: nsfd}
	if err := t.setup(); err != nil {
		return nil, errors.Join(err, t.Close())
	}
	return t, nil
}

func (t *Tunnel) setup() error {
	// Record first, so that a crash mid-way can be undone.
	if err := saveRecord(t.path, t.rec); err != nil {
		return err
	}
	tun, err := water.New(water.Config{DeviceType: water.TUN, PlatformSpecificParams: water.PlatformSpecificParams{Name: t.cfg.Device}})
	if err != nil {
		return fmt.Errorf("tun set-up: create TUN device %s: %w", t.cfg.Device, err)
	}
	t.tun = tun
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName(t.cfg.Device)
	if err != nil {
		return fmt.Errorf("tun set-up: %s: %w", t.cfg.Device, err)
	}

	if l, err := h.LinkByName("tunl0"); err == nil && l != nil {
		// The kernel has the ipip module: its fallback tunnel would also see
		// these packets and, while down, answer them with ICMP port
		// unreachable. The kernel's own tunl0 is the better tool there.
		t.log.Warn().Msg("tun: this kernel has the ipip module (tunl0 exists); prefer the kernel's tunl0 with the VIP on it, as LVS documents")
	}
	has4 := slices.ContainsFunc(t.cfg.VIPs, func(a netip.Addr) bool { return a.Unmap().Is4() })
	if has4 {
		if err := t.relaxRPFilter(h); err != nil {
			t.saveQuiet()
			return err
		}
		if err := t.rec.setSysctl("net/ipv4/conf/all/arp_ignore", "1"); err != nil {
			t.saveQuiet()
			return err
		}
		if err := t.rec.setSysctl("net/ipv4/conf/all/arp_announce", "2"); err != nil {
			t.saveQuiet()
			return err
		}
	}
	if err := saveRecord(t.path, t.rec); err != nil {
		return err
	}
	if slices.ContainsFunc(t.cfg.VIPs, func(a netip.Addr) bool { return a.Unmap().Is6() }) {
		// The device must not run DAD or it would hold the VIP tentative.
		if err := writeSysctl("net/ipv6/conf/"+t.cfg.Device+"/accept_dad", "0"); err != nil {
			return err
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("tun set-up: %s up: %w", t.cfg.Device, err)
	}
	for _, v := range t.cfg.VIPs {
		p := vipPrefix(v)
		if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipnet(p), Flags: unix.IFA_F_NODAD}); err != nil {
			return fmt.Errorf("tun set-up: add %s to %s: %w", p, t.cfg.Device, err)
		}
	}

	// Raw sockets: inner family = the VIPs', outer family = either.
	for _, outer := range []int{unix.AF_INET, unix.AF_INET6} {
		for _, proto := range []uint8{ProtoIPIP, ProtoIPv6} {
			if proto == ProtoIPIP && !has4 || proto == ProtoIPv6 && !slices.ContainsFunc(t.cfg.VIPs, func(a netip.Addr) bool { return a.Unmap().Is6() }) {
				continue
			}
			fd, err := unix.Socket(outer, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto))
			if err != nil {
				if outer == unix.AF_INET6 && errors.Is(err, unix.EAFNOSUPPORT) {
					continue
				}
				return fmt.Errorf("tun set-up: raw socket family %d protocol %d: %w", outer, proto, err)
			}
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
			t.socks = append(t.socks, rawSock{f: os.NewFile(uintptr(fd), "raw"+strconv.Itoa(int(proto))), outer: outer, proto: proto})
		}
	}
	t.log.Info().Str("device", t.cfg.Device).Stringer("vips", vipsStringer(t.cfg.VIPs)).Int("sockets", len(t.socks)).Msg("tun: receiving IP-in-IP")
	return nil
}

type vipsStringer []netip.Addr

func (v vipsStringer) String() string { return fmt.Sprint([]netip.Addr(v)) }

func (t *Tunnel) saveQuiet() { _ = saveRecord(t.path, t.rec) }

func (t *Tunnel) relaxRPFilter(h *netlink.Handle) error {
	all, err := readSysctl("net/ipv4/conf/all/rp_filter")
	if err != nil {
		return err
	}
	allV, _ := strconv.Atoi(all)
	if allV != 0 {
		links, err := h.LinkList()
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		for _, l := range links {
			name := l.Attrs().Name
			if name == t.cfg.Device {
				continue
			}
			key := "net/ipv4/conf/" + name + "/rp_filter"
			own, err := readSysctl(key)
			if err != nil {
				continue
			}
			if ownV, _ := strconv.Atoi(own); ownV < allV {
				if err := t.rec.setSysctl(key, all); err != nil {
					return err
				}
			}
		}
		if err := t.rec.setSysctl("net/ipv4/conf/all/rp_filter", "0"); err != nil {
			return err
		}
	}
	// The device's own value is not recorded: the device goes away with us.
	return writeSysctl("net/ipv4/conf/"+t.cfg.Device+"/rp_filter", "0")
}

// Run receives, decapsulates and injects until ctx is done, then cleans up
// (Close). It returns nil on a clean stop.
func (t *Tunnel) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(t.socks))
	for _, s := range t.socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- t.loop(s)
		}()
	}
	interval := t.cfg.StatsInterval
	if interval == 0 {
		interval = time.Minute
	}
	var tick <-chan time.Time
	if interval > 0 {
		tk := time.NewTicker(interval)
		defer tk.Stop()
		tick = tk.C
	}
	var err error
	var last Stats
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			break loop
		case <-tick:
			if s := t.Stats(); s != last {
				t.logStats(t.log.Info(), s).Msg("tun: packets")
				last = s
			}
		}
	}
	cerr := t.Close()
	wg.Wait()
	t.logStats(t.log.Info(), t.Stats()).Msg("tun: stopped")
	return errors.Join(err, cerr)
}

func (t *Tunnel) loop(s rawSock) error {
	buf := make([]byte, 65536)
	for {
		n, err := s.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) {
				continue
			}
			return fmt.Errorf("tun: read raw socket: %w", err)
		}
		t.handle(buf[:n], s.outer, s.proto, t.tun)
	}
}

// handle decapsulates one received packet and writes the inner packet to w.
// It is the per-packet path: no allocation, no logging.
func (t *Tunnel) handle(pkt []byte, outer int, proto uint8, w io.Writer) Reason {
	var inner []byte
	var r Reason
	if outer == unix.AF_INET {
		inner, r = DecapIPv4(pkt, t.vips)
	} else {
		// AF_INET6 raw sockets deliver the payload without the IPv6 header.
		inner, r = CheckInner(pkt, proto, t.vips)
	}
	if r == Injected {
		if _, err := w.Write(inner); err != nil {
			r = DropWrite
		}
	}
	t.counts[r].Add(1)
	return r
}

func (t *Tunnel) logStats(ev *zerolog.Event, s Stats) *zerolog.Event {
	for r := Reason(0); r < NumReasons; r++ {
		if s[r] > 0 || r == Injected {
			ev = ev.Uint64(r.String(), s[r])
		}
	}
	return ev
}

// Stats returns the counters.
func (t *Tunnel) Stats() Stats {
	var s Stats
	for i := range t.counts {
		s[i] = t.counts[i].Load()
	}
	return s
}

// Close stops reception, removes the TUN device and restores the sysctls.
func (t *Tunnel) Close() error {
	t.closeOnce.Do(func() {
		var errs []error
		for _, s := range t.socks {
			errs = append(errs, s.f.Close())
		}
		if t.tun != nil {
			errs = append(errs, t.tun.Close())
		}
		// The sysctls belong to the namespace NewTunnel ran in, which need
		// not be the one of the thread calling Close.
		errs = append(errs, inNetns(t.nsfd, t.rec.restoreSysctls))
		unix.Close(t.nsfd)
		if err := os.Remove(t.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

// UndoTUN reverses what a crashed `ulvs-realserver tun` left in the calling
// thread's namespace: its sysctl changes (the TUN device vanished with the
// process). Without a record it does nothing.
func UndoTUN(cfg TUNConfig) error {
	path, _, err := stateFile(cfg.StateDir, "tun")
	if err != nil {
		return err
	}
	rec, err := loadRecord(path)
	if err != nil || rec == nil {
		return err
	}
	var errs []error
	if h, err := netlink.NewHandle(); err == nil {
		if l, err := h.LinkByName(rec.Device); err == nil && l.Type() == "tuntap" && l.Attrs().Flags&net.FlagUp != 0 {
			errs = append(errs, fmt.Errorf("tun undo: device %s still exists: is `ulvs-realserver tun` still running?", rec.Device))
		}
		h.Close()
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := rec.restoreSysctls(); err != nil {
		return err
	}
	return os.Remove(path)
}

// inNetns runs fn on a locked thread that joined the namespace nsfd. The
// thread is not unlocked, so it is discarded afterwards.
func inNetns(nsfd int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
