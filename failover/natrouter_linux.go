//go:build linux

package failover

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NATRouter adds the floating gateway addresses of NAT real servers
// (nat_router) to the private interface when the director becomes active,
// and removes them when it becomes backup. Unlike VIPs, which ulvs answers
// for itself, these are kernel addresses: the real servers' default route
// points at them. A Director implementation calls Up from BecomeActive and
// Down from BecomeBackup.
type NATRouter struct {
	Link     string
	Prefixes []netip.Prefix
	// Handle is the netlink handle to use (nil: the calling thread's
	// network namespace).
	Handle *netlink.Handle
}

func (r *NATRouter) h() *netlink.Handle {
	if r.Handle != nil {
		return r.Handle
	}
	return &netlink.Handle{}
}

func (r *NATRouter) addrs() (netlink.Link, []*netlink.Addr, error) {
	l, err := r.h().LinkByName(r.Link)
	if err != nil {
		return nil, nil, fmt.Errorf("failover: nat_router interface %q: %w", r.Link, err)
	}
	var out []*netlink.Addr
	for _, p := range r.Prefixes {
		out = append(out, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}})
	}
	return l, out, nil
}

// Up adds every address (already present is fine). All are tried; the
// errors are joined.
func (r *NATRouter) Up() error {
	l, as, err := r.addrs()
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range as {
		if err := r.h().AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("failover: add nat_router %v on %s: %w", a.IPNet, r.Link, err))
		}
	}
	return errors.Join(errs...)
}

// Down removes every address (already absent is fine).
func (r *NATRouter) Down() error {
	l, as, err := r.addrs()
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range as {
		if err := r.h().AddrDel(l, a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("failover: remove nat_router %v on %s: %w", a.IPNet, r.Link, err))
		}
	}
	return errors.Join(errs...)
}
