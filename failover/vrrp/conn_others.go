//go:build !linux

package vrrp

import "net/netip"

// Conn is not implemented on this platform.
type Conn struct{}

// Listen returns ErrUnsupported.
func Listen(Config) (*Conn, error) { return nil, ErrUnsupported }

// Send returns ErrUnsupported.
func (*Conn) Send(*Advert) error { return ErrUnsupported }

// Recv returns ErrUnsupported.
func (*Conn) Recv(*Advert) (netip.Addr, Reason, error) { return netip.Addr{}, OK, ErrUnsupported }

// Src returns the zero address.
func (*Conn) Src() netip.Addr { return netip.Addr{} }

// Close does nothing.
func (*Conn) Close() error { return nil }
