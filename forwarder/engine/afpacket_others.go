//go:build !linux

package engine

import "net"

// AFPacket is the AF_PACKET engine; it exists only on Linux.
type AFPacket struct{}

// OpenAFPacket returns ErrUnimplemented outside Linux.
func OpenAFPacket(cfg AFPacketConfig) (*AFPacket, error) { return nil, ErrUnimplemented }

// Queues returns nil outside Linux.
func (e *AFPacket) Queues() []Queue { return nil }

// Interface returns nil outside Linux.
func (e *AFPacket) Interface(i Iface) *net.Interface { return nil }

// Stats returns zero outside Linux.
func (e *AFPacket) Stats() Stats { return Stats{} }

// SetFilter returns ErrUnimplemented outside Linux.
func (e *AFPacket) SetFilter(FilterSpec) error { return ErrUnimplemented }

// Close returns ErrUnimplemented outside Linux.
func (e *AFPacket) Close() error { return ErrUnimplemented }
