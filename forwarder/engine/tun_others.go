//go:build !linux

package engine

// TUN is the TUN engine; it exists only on Linux.
type TUN struct{}

// OpenTUN returns ErrUnimplemented outside Linux.
func OpenTUN(cfg TUNConfig) (*TUN, error) { return nil, ErrUnimplemented }

// Name returns "" outside Linux.
func (t *TUN) Name() string { return "" }

// Queues returns nil outside Linux.
func (t *TUN) Queues() []Queue { return nil }

// Stats returns zero outside Linux.
func (t *TUN) Stats() Stats { return Stats{} }

// Close returns ErrUnimplemented outside Linux.
func (t *TUN) Close() error { return ErrUnimplemented }
