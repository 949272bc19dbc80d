package engine

import (
	"fmt"
	"runtime"
	"time"
)

// AFPacketConfig configures OpenAFPacket. The zero value of every tunable
// means its default.
type AFPacketConfig struct {
	// Public is the name of the interface clients reach the VIPs on.
	// Required.
	Public string
	// Private is the interface towards the real servers; "" for a
	// one-armed director.
	Private string
	// Workers is the number of queues (one RX ring per interface each,
	// joined in one fanout group per interface). 0 = runtime.NumCPU().
	Workers int
	// BlockSize is the size of one TPACKET_V3 ring block in bytes: a
	// power-of-two multiple of the page size, larger than the largest
	// frame. Default 256 KiB.
	BlockSize int
	// BlockCount is the number of blocks per ring. Default 16 (4 MiB per
	// ring with the default block size).
	BlockCount int
	// BlockTimeout is how long the kernel keeps a partly filled block before
	// handing it to userspace; it bounds the latency added at low rates.
	// Millisecond granularity, at least 1 ms. Default 1 ms.
	BlockTimeout time.Duration
	// RxRingV2 uses TPACKET_V2 receive rings (fixed 2 KiB slots, each
	// handed over as soon as it is filled) instead of TPACKET_V3 blocks.
	// V2 adds no block-timeout latency at low rates; V3 packs frames
	// densely and wakes the worker once per block at high rates. The ring
	// then has BlockSize*BlockCount bytes of 2 KiB slots.
	RxRingV2 bool
	// BatchSize is the most frames one Read returns and the size of the
	// sendmmsg batch. Default 64.
	BatchSize int
	// PollTimeout bounds how long Read sleeps in poll(2) before it looks at
	// the closed flag again, and how long a transmit may block on a full
	// socket buffer. Close also wakes pollers at once. Default 100 ms.
	PollTimeout time.Duration
	// Filter is compiled (FilterSpec.Compile) and attached to every receive
	// socket before it is bound, so no unfiltered frame is ever queued. nil
	// receives every frame of the interfaces (tests, debugging).
	Filter *FilterSpec
	// FanoutDefrag sets PACKET_FANOUT_FLAG_DEFRAG: the kernel reassembles
	// IPv4 fragments before hashing and delivers whole datagrams. Off by
	// default: the kernel's flow hash already ignores ports for fragments,
	// so the fragments of one address pair reach one worker, and a
	// reassembled datagram larger than the MTU could not be transmitted
	// anyway.
	FanoutDefrag bool
	// FanoutRollover sets PACKET_FANOUT_FLAG_ROLLOVER: when a worker's ring
	// is full, frames go to another worker instead of being dropped. This
	// trades flow affinity for fewer drops; off by default.
	FanoutRollover bool
	// UseQdisc sends through the interface's queueing discipline. By
	// default transmit sockets set PACKET_QDISC_BYPASS (no qdisc, no tc
	// egress, straight to the driver), which is faster; set UseQdisc when
	// traffic shaping on the interfaces must apply.
	UseQdisc bool
	// SendBuffer is the transmit socket buffer (SO_SNDBUFFORCE). Default
	// 4 MiB.
	SendBuffer int
	// TxRing transmits through a memory-mapped TPACKET_V2 TX ring (frames
	// copied into the ring, one send(2) kick per batch) instead of
	// sendmmsg(2). See the package documentation for the comparison.
	TxRing bool
	// TxRingFrames is the number of 2 KiB frames in each TX ring. Default
	// 1024.
	TxRingFrames int
	// XDP adds the XDP fast lane (see the package documentation): XDPOff
	// (""), XDPNative (the driver's XDP hook) or XDPGeneric (the kernel's
	// generic hook, for drivers without native XDP). Every interface needs
	// at least Workers receive queues: worker w's AF_XDP sockets take
	// queue w.
	XDP string
}

// XDP modes of AFPacketConfig.XDP.
const (
	XDPOff     = ""
	XDPNative  = "native"
	XDPGeneric = "generic"
)

// Defaults of AFPacketConfig.
const (
	DefaultBlockSize    = 256 << 10
	DefaultBlockCount   = 16
	DefaultBlockTimeout = time.Millisecond
	DefaultBatchSize    = 64
	DefaultPollTimeout  = 100 * time.Millisecond
	DefaultSendBuffer   = 4 << 20
	DefaultTxRingFrames = 1024
)

func (c *AFPacketConfig) withDefaults() (AFPacketConfig, error) {
	d := *c
	if d.Public == "" {
		return d, fmt.Errorf("%w: afpacket: public interface not set", ErrBadConfig)
	}
	if d.Private == d.Public {
		return d, fmt.Errorf("%w: afpacket: private interface %q is the public one", ErrBadConfig, d.Private)
	}
	if d.Workers < 0 || d.BlockSize < 0 || d.BlockCount < 0 || d.BlockTimeout < 0 || d.BatchSize < 0 || d.PollTimeout < 0 || d.SendBuffer < 0 {
		return d, fmt.Errorf("%w: afpacket: negative tunable in %+v", ErrBadConfig, *c)
	}
	if d.Workers == 0 {
		d.Workers = runtime.NumCPU()
	}
	if d.Workers > 256 {
		return d, fmt.Errorf("%w: afpacket: %d workers, a fanout group holds at most 256", ErrBadConfig, d.Workers)
	}
	if d.BlockSize == 0 {
		d.BlockSize = DefaultBlockSize
	}
	if d.BlockSize < 4096 || d.BlockSize&(d.BlockSize-1) != 0 {
		return d, fmt.Errorf("%w: afpacket: block size %d is not a power of two of at least 4096", ErrBadConfig, d.BlockSize)
	}
	if d.BlockCount == 0 {
		d.BlockCount = DefaultBlockCount
	}
	if d.BlockTimeout == 0 {
		d.BlockTimeout = DefaultBlockTimeout
	}
	if d.BlockTimeout < time.Millisecond {
		return d, fmt.Errorf("%w: afpacket: block timeout %v is below 1ms", ErrBadConfig, d.BlockTimeout)
	}
	if d.BatchSize == 0 {
		d.BatchSize = DefaultBatchSize
	}
	if d.BatchSize > 1024 {
		return d, fmt.Errorf("%w: afpacket: batch size %d above 1024 (UIO_MAXIOV)", ErrBadConfig, d.BatchSize)
	}
	if d.PollTimeout == 0 {
		d.PollTimeout = DefaultPollTimeout
	}
	if d.TxRingFrames < 0 {
		return d, fmt.Errorf("%w: afpacket: negative TX ring frames %d", ErrBadConfig, d.TxRingFrames)
	}
	if d.TxRingFrames == 0 {
		d.TxRingFrames = DefaultTxRingFrames
	}
	if d.SendBuffer == 0 {
		d.SendBuffer = DefaultSendBuffer
	}
	switch d.XDP {
	case XDPOff, XDPNative, XDPGeneric:
	default:
		return d, fmt.Errorf("%w: afpacket: XDP mode %q (want %q, %q or off)", ErrBadConfig, d.XDP, XDPNative, XDPGeneric)
	}
	if d.Filter != nil {
		if err := d.Filter.Validate(); err != nil {
			return d, err
		}
	}
	return d, nil
}
