package realserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DRConfig says how to prepare a real server for direct routing.
type DRConfig struct {
	// VIPs are the virtual addresses the real server must accept.
	VIPs []netip.Addr
	// Device holds the VIPs; it must not answer ARP (default "lo").
	Device string
	// StateDir records what was changed (default DefaultStateDir).
	StateDir string
}

func checkVIPs(vips []netip.Addr) error {
	if len(vips) == 0 {
		return ErrNoVIP
	}
	if len(vips) > MaxVIPs {
		return fmt.Errorf("%w: %d VIPs, at most %d", ErrBadVIP, len(vips), MaxVIPs)
	}
	for _, v := range vips {
		if !v.IsValid() || v.IsUnspecified() || v.IsMulticast() || v.IsLoopback() {
			return fmt.Errorf("%w: %s", ErrBadVIP, v)
		}
	}
	return nil
}

func vipPrefix(v netip.Addr) netip.Prefix {
	v = v.Unmap()
	return netip.PrefixFrom(v, v.BitLen())
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// hasAddr reports whether link holds exactly the address p.
func hasAddr(h *netlink.Handle, link netlink.Link, p netip.Prefix) (bool, error) {
	fam := netlink.FAMILY_V4
	if p.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := h.AddrList(link, fam)
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == p.Addr() {
			return true, nil
		}
	}
	return false, nil
}

// SetupDR prepares the calling thread's network namespace to be a DR real
// server: each VIP as a /32 or /128 on the non-ARPing device, and
// net.ipv4.conf.all.arp_ignore=1 (answer ARP only for addresses of the
// receiving interface) and arp_announce=2 (never use the VIP as the source
// of an ARP request). The kernel uses the larger of "all" and the
// interface's own value for both, so "all" covers every interface. IPv6
// needs nothing: Linux answers neighbour solicitations only for addresses
// of the receiving interface. It is idempotent, and records what it changed
// so that UndoDR reverses exactly that. It reports whether it changed
// anything.
func SetupDR(cfg DRConfig) (changed bool, err error) {
	if err := checkVIPs(cfg.VIPs); err != nil {
		return false, err
	}
	if cfg.Device == "" {
		cfg.Device = "lo"
	}
	path, ino, err := stateFile(cfg.StateDir, "dr")
	if err != nil {
		return false, err
	}
	rec, err := loadRecord(path)
	if err != nil {
		return false, err
	}
	if rec == nil {
		rec = &record{Netns: ino, Device: cfg.Device}
	} else if rec.Device != cfg.Device {
		return false, fmt.Errorf("dr set-up: already done on device %s (undo it first to use %s)", rec.Device, cfg.Device)
	}
	before := len(rec.Added) + len(rec.Sysctls)
	// Save whatever was done, even on a later error, so that undo works.
	defer func() {
		if serr := saveRecord(path, rec); serr != nil && err == nil {
			err = serr
		}
		changed = len(rec.Added)+len(rec.Sysctls) != before
	}()

	// The sysctls first: the VIP must never be a kernel address that
	// answers ARP, not even for a moment.
	if slices.ContainsFunc(cfg.VIPs, func(a netip.Addr) bool { return a.Unmap().Is4() }) {
		if err := rec.setSysctl("net/ipv4/conf/all/arp_ignore", "1"); err != nil {
			return false, err
		}
		if err := rec.setSysctl("net/ipv4/conf/all/arp_announce", "2"); err != nil {
			return false, err
		}
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return false, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName(cfg.Device)
	if err != nil {
		return false, fmt.Errorf("dr set-up: device %s: %w", cfg.Device, err)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(link); err != nil {
			return false, fmt.Errorf("dr set-up: %s up: %w", cfg.Device, err)
		}
	}
	for _, v := range cfg.VIPs {
		p := vipPrefix(v)
		ok, err := hasAddr(h, link, p)
		if err != nil {
			return false, err
		}
		if ok {
			continue
		}
		a := &netlink.Addr{IPNet: ipnet(p), Flags: unix.IFA_F_NODAD}
		if err := h.AddrAdd(link, a); err != nil {
			return false, fmt.Errorf("dr set-up: add %s to %s: %w", p, cfg.Device, err)
		}
		if !slices.Contains(rec.Added, p.String()) {
			rec.Added = append(rec.Added, p.String())
		}
	}
	return false, nil
}

// UndoDR reverses what SetupDR recorded in this namespace: it removes the
// VIPs it added (all of them, or only cfg.VIPs when given) and, once no
// VIP it added remains, restores the sysctls. Running it again is a no-op.
func UndoDR(cfg DRConfig) error {
	path, _, err := stateFile(cfg.StateDir, "dr")
	if err != nil {
		return err
	}
	rec, err := loadRecord(path)
	if err != nil {
		return err
	}
	if rec == nil {
		return nil
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	var errs []error
	link, lerr := h.LinkByName(rec.Device)
	keep := rec.Added[:0]
	for _, s := range rec.Added {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			continue
		}
		if len(cfg.VIPs) > 0 && !slices.ContainsFunc(cfg.VIPs, func(a netip.Addr) bool { return vipPrefix(a) == p }) {
			keep = append(keep, s)
			continue
		}
		if lerr != nil {
			continue // the device is gone, and its addresses with it
		}
		if err := h.AddrDel(link, &netlink.Addr{IPNet: ipnet(p)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("dr undo: remove %s from %s: %w", p, rec.Device, err))
			keep = append(keep, s)
		}
	}
	rec.Added = keep
	if len(rec.Added) == 0 {
		errs = append(errs, rec.restoreSysctls())
	}
	if err := errors.Join(errs...); err != nil {
		_ = saveRecord(path, rec)
		return err
	}
	if len(rec.Added) > 0 {
		return saveRecord(path, rec)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
