//go:build !linux

package dataplane

import (
	"context"
	"errors"
	"io"
)

// Run needs Linux (network namespaces, AF_PACKET, nftables).
func Run(ctx context.Context, o Options, log io.Writer) (*Report, error) {
	return nil, errors.New("dataplane: needs Linux")
}
