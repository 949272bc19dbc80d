package vrrp

import (
	"errors"
	"net/netip"
)

// ErrUnsupported is returned on platforms without raw IP sockets support.
var ErrUnsupported = errors.New("vrrp: raw sockets are only implemented on Linux")

// ErrNoAddress is returned when the interface has no usable source address.
var ErrNoAddress = errors.New("vrrp: interface has no usable source address")

// Config describes one heartbeat network: the advertisements of one address
// family on one interface.
type Config struct {
	Interface string
	IPv6      bool
	// Src is the source address of our adverts (the "primary IP address"
	// that breaks priority ties). When invalid: the interface's first IPv4
	// address, or its IPv6 link-local address.
	Src netip.Addr
	// Peers are the accepted sources. With Unicast, adverts are also sent to
	// each of them instead of the multicast group.
	Peers   []netip.Addr
	Unicast bool
	VRID    uint8
}
