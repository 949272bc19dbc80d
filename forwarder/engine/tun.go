package engine

import "fmt"

// TUNConfig configures OpenTUN.
type TUNConfig struct {
	// Name of the TUN device, created if it does not exist (a persistent
	// device must have been created with IFF_MULTI_QUEUE). Required.
	// Addresses, routes to the VIPs and the link state are the caller's to
	// set.
	Name string
	// Workers is the number of queues (IFF_MULTI_QUEUE file descriptors);
	// the kernel spreads flows across them by flow hash. 0 = NumCPU.
	Workers int
	// BatchSize is the most packets one Read returns. Default 64.
	BatchSize int
}

func (c *TUNConfig) withDefaults(numCPU int) (TUNConfig, error) {
	d := *c
	if d.Name == "" || len(d.Name) > 15 {
		return d, fmt.Errorf("%w: tun: device name %q must have 1 to 15 characters", ErrBadConfig, d.Name)
	}
	if d.Workers < 0 || d.BatchSize < 0 {
		return d, fmt.Errorf("%w: tun: negative workers or batch size", ErrBadConfig)
	}
	if d.Workers == 0 {
		d.Workers = numCPU
	}
	if d.BatchSize == 0 {
		d.BatchSize = DefaultBatchSize
	}
	return d, nil
}
