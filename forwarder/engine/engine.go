package engine

import (
	"errors"
	"sync/atomic"
)

// Headroom is the number of free bytes every engine leaves in front of a
// received frame, so that the data path can prepend an encapsulation header
// (IP-in-IP for the TUN method, 20 or 40 bytes, plus a rewritten Ethernet
// header) without moving the payload.
const Headroom = 128

// DefaultFrameRoom is the largest frame NewBatch makes room for after the
// headroom: a 1500-byte MTU frame with Ethernet and VLAN headers fits with
// room to spare.
const DefaultFrameRoom = 2048 - Headroom

// Iface names the interface a packet arrived on or leaves through.
type Iface uint8

const (
	// Public is the interface clients reach the virtual services on. On a
	// one-armed director (DR/TUN) it is the only interface.
	Public Iface = iota
	// Private is the interface towards the real servers, when there is one.
	Private
	numIfaces
)

func (i Iface) String() string {
	switch i {
	case Public:
		return "public"
	case Private:
		return "private"
	}
	return "invalid"
}

// Packet is one slot of a batch. The frame is Buf[Off:Off+Len]. Read stores
// each frame at Buf[Headroom:] and sets Off to Headroom; the data path may
// then move Off down (to prepend a header) or change Len before handing the
// same slot to Write. Iface is the interface a frame arrived on (after Read)
// and the one it must leave through (for Write).
type Packet struct {
	Buf   []byte
	Off   int
	Len   int
	Iface Iface
}

// Frame returns the frame bytes of p.
func (p *Packet) Frame() []byte { return p.Buf[p.Off : p.Off+p.Len] }

// NewBatch allocates n packet slots backed by one slab, each with Headroom
// free bytes followed by frameRoom bytes for the frame. frameRoom <= 0 means
// DefaultFrameRoom.
func NewBatch(n, frameRoom int) []Packet {
	if frameRoom <= 0 {
		frameRoom = DefaultFrameRoom
	}
	size := Headroom + frameRoom
	slab := make([]byte, n*size)
	pkts := make([]Packet, n)
	for i := range pkts {
		pkts[i] = Packet{Buf: slab[i*size : (i+1)*size : (i+1)*size], Off: Headroom}
	}
	return pkts
}

// Queue is one worker's view of an engine: its own receive ring(s) and its
// own transmit path. Different queues of one engine run in parallel without
// sharing anything. One goroutine may Read while another Writes on the same
// queue (a worker, and a control-plane sender of gratuitous ARP); concurrent
// Reads, or concurrent Writes, of one queue are serialized.
type Queue interface {
	// Read blocks until at least one frame is available (or the engine is
	// closed), then fills up to len(pkts) slots without blocking again. For
	// each filled slot it copies the frame to Buf[Headroom:] and sets Off,
	// Len and Iface. Frames that do not fit len(Buf)-Headroom are dropped
	// and counted (Stats.RxTooBig). After Close it returns ErrClosed.
	Read(pkts []Packet) (n int, err error)
	// Write transmits pkts[i].Buf[Off:Off+Len] on pkts[i].Iface, batched
	// (one system call per interface per batch where the engine allows).
	// It returns the number of frames the kernel accepted; frames it could
	// not send (bad Off/Len, an interface the engine does not have, a full
	// buffer) are counted in Stats.TxDropped. Write does not retain pkts.
	Write(pkts []Packet) (n int, err error)
	// BatchSize is the number of slots Read fills at most per call on this
	// engine; size batches with it.
	BatchSize() int
}

// Engine is a packet I/O engine: one Queue per worker.
type Engine interface {
	// Queues returns the per-worker queues; len(Queues()) is the number of
	// workers the engine was opened with.
	Queues() []Queue
	// Stats sums the counters of every queue.
	Stats() Stats
	// Close stops the engine: blocked Reads return ErrClosed promptly (within
	// the engine's poll timeout) and the sockets or devices are released.
	Close() error
}

// FilterSetter is implemented by engines whose kernel-side filter can be
// replaced while they run (AFPacket).
type FilterSetter interface {
	SetFilter(FilterSpec) error
}

// Stats are an engine's counters, summed over its queues.
type Stats struct {
	RxFrames   uint64 // frames handed to Read callers
	RxBytes    uint64 // bytes of those frames
	RxTooBig   uint64 // frames dropped because they did not fit the caller's slot, were truncated by the ring, or were empty
	RxOutgoing uint64 // frames skipped because the kernel marked them outgoing
	// Kernel ring counters (AF_PACKET PACKET_STATISTICS, accumulated).
	KernelPackets uint64 // frames the kernel passed the filter for this socket
	KernelDrops   uint64 // frames the kernel dropped because the ring was full
	KernelFreezes uint64 // times the TPACKET_V3 queue froze (all blocks held by userspace)
	TxFrames      uint64 // frames the kernel accepted for transmit
	TxBytes       uint64
	TxDropped     uint64 // frames Write could not send (buffer full, device down, bad length)
	TxCalls       uint64 // transmit system calls made
	RxPolls       uint64 // times Read had to wait in poll(2)
}

func (s *Stats) add(o *Stats) {
	s.RxFrames += o.RxFrames
	s.RxBytes += o.RxBytes
	s.RxTooBig += o.RxTooBig
	s.RxOutgoing += o.RxOutgoing
	s.KernelPackets += o.KernelPackets
	s.KernelDrops += o.KernelDrops
	s.KernelFreezes += o.KernelFreezes
	s.TxFrames += o.TxFrames
	s.TxBytes += o.TxBytes
	s.TxDropped += o.TxDropped
	s.TxCalls += o.TxCalls
	s.RxPolls += o.RxPolls
}

// counters are one queue's counters. Only the queue's goroutine writes
// them (atomically, once per batch), so they never contend; Stats reads them
// from any goroutine.
type counters struct {
	rxFrames, rxBytes, rxTooBig, rxOutgoing atomic.Uint64
	kPackets, kDrops, kFreezes              atomic.Uint64
	txFrames, txBytes, txDropped, txCalls   atomic.Uint64
	rxPolls                                 atomic.Uint64
	_                                       [64]byte // keep neighbouring queues' counters off this cache line
}

func (c *counters) snapshot() Stats {
	return Stats{
		RxFrames: c.rxFrames.Load(), RxBytes: c.rxBytes.Load(), RxTooBig: c.rxTooBig.Load(),
		RxOutgoing: c.rxOutgoing.Load(), KernelPackets: c.kPackets.Load(), KernelDrops: c.kDrops.Load(),
		KernelFreezes: c.kFreezes.Load(), TxFrames: c.txFrames.Load(), TxBytes: c.txBytes.Load(),
		TxDropped: c.txDropped.Load(), TxCalls: c.txCalls.Load(), RxPolls: c.rxPolls.Load(),
	}
}

var (
	// ErrClosed is returned by Read and Write after the engine was closed.
	ErrClosed = errors.New("engine: closed")
	// ErrUnimplemented is returned on platforms without the engine.
	ErrUnimplemented = errors.New("engine: not implemented on this platform")
	// ErrFilterTooLarge is returned when a FilterSpec compiles to more
	// classic BPF instructions than the kernel accepts (4096).
	ErrFilterTooLarge = errors.New("engine: filter too large for classic BPF")
	// ErrBadConfig wraps configuration errors.
	ErrBadConfig = errors.New("engine: bad configuration")
)
