package engine

import (
	"fmt"
	"sync"
)

// Fake is a channel-backed engine for tests: it needs no privileges and no
// interfaces, so the whole forwarder can run in a unit test. Tests inject
// frames into a queue with Inject and read what the forwarder transmitted
// from Sent.
type Fake struct {
	queues    []*FakeQueue
	qs        []Queue
	sent      chan FakeFrame
	closed    chan struct{}
	closeOnce sync.Once
}

// FakeFrame is one frame crossing a Fake engine.
type FakeFrame struct {
	Iface Iface
	Frame []byte
}

// FakeQueue is one worker's queue of a Fake engine.
type FakeQueue struct {
	f     *Fake
	in    chan FakeFrame
	batch int
	c     counters
}

var (
	_ Engine = (*Fake)(nil)
	_ Queue  = (*FakeQueue)(nil)
)

// NewFake returns a fake engine with the given number of queues, batch
// size and channel capacity (for each queue's input and for the shared
// output). Zero values mean 1 worker, DefaultBatchSize and 1024.
func NewFake(workers, batch, capacity int) *Fake {
	if workers <= 0 {
		workers = 1
	}
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	if capacity <= 0 {
		capacity = 1024
	}
	f := &Fake{sent: make(chan FakeFrame, capacity), closed: make(chan struct{})}
	for i := 0; i < workers; i++ {
		q := &FakeQueue{f: f, in: make(chan FakeFrame, capacity), batch: batch}
		f.queues = append(f.queues, q)
		f.qs = append(f.qs, q)
	}
	return f
}

// Inject hands a copy of frame to queue q as if it arrived on iface. It
// blocks while the queue's channel is full, and returns ErrClosed once the
// engine is closed.
func (f *Fake) Inject(q int, iface Iface, frame []byte) error {
	if q < 0 || q >= len(f.queues) {
		return fmt.Errorf("%w: fake engine has no queue %d", ErrBadConfig, q)
	}
	fr := FakeFrame{Iface: iface, Frame: append([]byte(nil), frame...)}
	select {
	case <-f.closed:
		return ErrClosed
	default:
	}
	select {
	case f.queues[q].in <- fr:
		return nil
	case <-f.closed:
		return ErrClosed
	}
}

// Sent delivers the frames written to any queue, in order per queue.
func (f *Fake) Sent() <-chan FakeFrame { return f.sent }

// Queues implements Engine.
func (f *Fake) Queues() []Queue { return f.qs }

// Stats implements Engine.
func (f *Fake) Stats() Stats {
	var s Stats
	for _, q := range f.queues {
		qs := q.c.snapshot()
		s.add(&qs)
	}
	return s
}

// Close implements Engine; it is idempotent.
func (f *Fake) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

// BatchSize implements Queue.
func (q *FakeQueue) BatchSize() int { return q.batch }

// Read implements Queue: it blocks for the first frame, then takes what is
// already queued.
func (q *FakeQueue) Read(pkts []Packet) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	n := 0
	var fr FakeFrame
	select {
	case <-q.f.closed:
		return 0, ErrClosed
	case fr = <-q.in:
	}
	for {
		p := &pkts[n]
		if len(fr.Frame) > len(p.Buf)-Headroom {
			q.c.rxTooBig.Add(1)
		} else {
			p.Off, p.Len, p.Iface = Headroom, copy(p.Buf[Headroom:], fr.Frame), fr.Iface
			q.c.rxBytes.Add(uint64(p.Len))
			n++
		}
		if n == len(pkts) {
			break
		}
		select {
		case fr = <-q.in:
			continue
		default:
		}
		break
	}
	q.c.rxFrames.Add(uint64(n))
	return n, nil
}

// Write implements Queue. Each frame is copied (this allocates; the fake is
// for tests) and delivered on Sent; Write blocks while Sent is full and
// returns ErrClosed once the engine is closed.
func (q *FakeQueue) Write(pkts []Packet) (int, error) {
	sent := 0
	for i := range pkts {
		p := &pkts[i]
		if p.Len <= 0 || p.Off < 0 || p.Off+p.Len > len(p.Buf) || p.Iface >= numIfaces {
			q.c.txDropped.Add(1)
			continue
		}
		fr := FakeFrame{Iface: p.Iface, Frame: append([]byte(nil), p.Frame()...)}
		select {
		case q.f.sent <- fr:
			sent++
			q.c.txFrames.Add(1)
			q.c.txBytes.Add(uint64(p.Len))
		case <-q.f.closed:
			return sent, ErrClosed
		}
	}
	q.c.txCalls.Add(1)
	return sent, nil
}
