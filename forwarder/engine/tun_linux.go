package engine

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
)

// TUN is the TUN engine: one IFF_MULTI_QUEUE file descriptor per worker on
// one TUN device. Frames are IP packets (no Ethernet header). See the
// package documentation for its limits.
type TUN struct {
	name      string
	queues    []*tunQueue
	qs        []Queue
	closeOnce sync.Once
	closed    atomic.Bool
}

var (
	_ Engine = (*TUN)(nil)
	_ Queue  = (*tunQueue)(nil)
)

type tunQueue struct {
	rxMu   sync.Mutex // serializes Reads (they share rpkts/rn/rerr)
	txMu   sync.Mutex // serializes Writes
	dev    *water.Interface
	closed *atomic.Bool
	rc     syscall.RawConn
	batch  int
	c      counters

	// State shared with the prebuilt closures below, so that a Read or
	// Write allocates nothing.
	rpkts   []Packet
	rn      int
	rerr    error
	wpkts   []Packet
	wi      int
	wsent   int
	wbytes  uint64
	wdrop   uint64
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

// OpenTUN creates (or attaches to) the TUN device cfg.Name with one queue
// per worker. It needs CAP_NET_ADMIN.
func OpenTUN(cfg TUNConfig) (*TUN, error) {
	c, err := cfg.withDefaults(runtime.NumCPU())
	if err != nil {
		return nil, err
	}
	t := &TUN{name: c.Name}
	for w := 0; w < c.Workers; w++ {
		dev, err := water.New(water.Config{
			DeviceType:             water.TUN,
			PlatformSpecificParams: water.PlatformSpecificParams{Name: c.Name, MultiQueue: true},
		})
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("tun: queue %d of %s: %w", w, c.Name, err)
		}
		q := &tunQueue{dev: dev, batch: c.BatchSize, closed: &t.closed}
		t.queues = append(t.queues, q)
		t.qs = append(t.qs, q)
		sc, ok := dev.ReadWriteCloser.(syscall.Conn)
		if !ok {
			t.Close()
			return nil, fmt.Errorf("tun: queue %d of %s: device file has no raw access", w, c.Name)
		}
		if q.rc, err = sc.SyscallConn(); err != nil {
			t.Close()
			return nil, fmt.Errorf("tun: queue %d of %s: %w", w, c.Name, err)
		}
		q.readFn = q.readSome
		q.writeFn = q.writeSome
	}
	return t, nil
}

// Name returns the device name.
func (t *TUN) Name() string { return t.name }

// Queues implements Engine.
func (t *TUN) Queues() []Queue { return t.qs }

// Stats implements Engine.
func (t *TUN) Stats() Stats {
	var s Stats
	for _, q := range t.queues {
		qs := q.c.snapshot()
		s.add(&qs)
	}
	return s
}

// Close implements Engine: closing the queue files wakes blocked Reads,
// which return ErrClosed. A device that was not persistent disappears with
// its last queue.
func (t *TUN) Close() error {
	var errs []error
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		for _, q := range t.queues {
			if err := q.dev.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// BatchSize implements Queue.
func (q *tunQueue) BatchSize() int { return q.batch }

// readSome runs inside RawConn.Read: it reads packets until the batch is
// full or the device has no more; with none read yet it asks the runtime
// poller to wait.
func (q *tunQueue) readSome(fd uintptr) bool {
	for q.rn < len(q.rpkts) {
		p := &q.rpkts[q.rn]
		if len(p.Buf) <= Headroom {
			q.rerr = fmt.Errorf("%w: tun: packet slot of %d bytes has no room after the headroom", ErrBadConfig, len(p.Buf))
			return true
		}
		m, err := unix.Read(int(fd), p.Buf[Headroom:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return q.rn > 0
		case err != nil:
			q.rerr = err
			return true
		case m >= len(p.Buf)-Headroom:
			q.c.rxTooBig.Add(1) // may have been cut to the slot: drop
			continue
		}
		p.Off, p.Len, p.Iface = Headroom, m, Public
		q.rn++
	}
	return true
}

// Read implements Queue. Every packet read costs one read(2): TUN has no
// batched receive.
func (q *tunQueue) Read(pkts []Packet) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	q.rxMu.Lock()
	defer q.rxMu.Unlock()
	q.rpkts, q.rn, q.rerr = pkts, 0, nil
	err := q.rc.Read(q.readFn)
	n := q.rn
	q.rpkts = nil
	if n > 0 {
		var b uint64
		for i := 0; i < n; i++ {
			b += uint64(pkts[i].Len)
		}
		q.c.rxFrames.Add(uint64(n))
		q.c.rxBytes.Add(b)
		return n, nil
	}
	if err == nil {
		err = q.rerr
	}
	if err != nil && q.closed.Load() {
		return 0, ErrClosed
	}
	return 0, err
}

func (q *tunQueue) writeSome(fd uintptr) bool {
	for q.wi < len(q.wpkts) {
		p := &q.wpkts[q.wi]
		if p.Len <= 0 || p.Off < 0 || p.Off+p.Len > len(p.Buf) || p.Iface >= numIfaces {
			q.wdrop++
			q.wi++
			continue
		}
		_, err := unix.Write(int(fd), p.Buf[p.Off:p.Off+p.Len])
		switch err {
		case nil:
			q.wsent++
			q.wbytes += uint64(p.Len)
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			q.wdrop++ // e.g. EINVAL for a packet that is not IP
		}
		q.wi++
	}
	return true
}

// Write implements Queue: one write(2) per packet (TUN has no batched
// transmit). Iface is ignored: every packet goes to the kernel through the
// TUN device, and the kernel routes it.
func (q *tunQueue) Write(pkts []Packet) (int, error) {
	q.txMu.Lock()
	defer q.txMu.Unlock()
	q.wpkts, q.wi, q.wsent, q.wbytes, q.wdrop = pkts, 0, 0, 0, 0
	err := q.rc.Write(q.writeFn)
	q.wpkts = nil
	q.c.txFrames.Add(uint64(q.wsent))
	q.c.txBytes.Add(q.wbytes)
	q.c.txCalls.Add(uint64(q.wi))
	if q.wdrop != 0 {
		q.c.txDropped.Add(q.wdrop)
	}
	if err != nil && q.closed.Load() {
		return q.wsent, ErrClosed
	}
	return q.wsent, err
}
