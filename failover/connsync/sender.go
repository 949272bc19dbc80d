package connsync

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Default send thresholds (sysctl sync_threshold = "3 50") and flush delay.
const (
	DefaultThreshold = 3
	DefaultPeriod    = 50
	FlushAfter       = 2 * time.Second
)

// ShouldSync applies the master's send rules (IPVS-SPEC §8) to c, whose
// InPkts has just been incremented and whose State/OldState reflect the
// packet just handled. It is pure, allocation-free and lock-free, so the
// data path calls it on every packet and calls Sender.Enqueue only when it
// reports true:
//
//   - templates are not sent on their own (they go with their children);
//   - TCP is sent only in ES, FW, CL, CW and TW; entering FW, CL, CW or TW
//     sends at once;
//   - otherwise a connection is sent when InPkts % period == threshold.
func ShouldSync(c *Conn, threshold, period uint32) bool {
	if c.Flags&FlagTemplate != 0 {
		return false
	}
	if c.Protocol == ProtoTCP {
		switch c.State {
		case TCPEstablished:
		case TCPFinWait, TCPClose, TCPCloseWait, TCPTimeWait:
			if c.State != c.OldState {
				return true
			}
		default:
			return false
		}
	}
	if period == 0 {
		return c.InPkts == threshold
	}
	return c.InPkts%period == threshold
}

// Writer sends one sync message (one UDP datagram).
type Writer interface {
	WriteSync(msg []byte) error
}

// ConnSource is the active side's connection table, iterated for a bulk copy.
// fn's argument is only valid during the call; returning false stops.
type ConnSource interface {
	RangeConns(fn func(c *Conn) bool)
}

// Sender batches connections into v1 messages and writes them. A message is
// written when the next entry does not fit (or it holds 255 entries) and by
// Tick 2 s after its first entry. Enqueue, Flush and Tick are safe for
// concurrent use; the lock is held only while copying one entry (about
// 40 ns), and Enqueue is called only for the packets ShouldSync selects, so
// the data path does not take it per packet. One Sender per worker removes
// even that contention. The steady path does not allocate.
type Sender struct {
	mu    sync.Mutex
	enc   *Encoder
	first time.Time // time of the first entry in enc; zero when empty
	w     Writer
	now   func() time.Time

	sent     atomic.Uint64 // messages written
	entries  atomic.Uint64 // entries written
	errors   atomic.Uint64 // write errors (the message is lost)
	enqueued atomic.Uint64
}

// SenderStats are a Sender's counters.
type SenderStats struct {
	Messages, Entries, Errors, Enqueued uint64
}

// NewSender returns a Sender writing to w messages of at most maxLen bytes
// (DefaultMaxLen when <= 0) with syncID. now is the clock (time.Now when nil).
func NewSender(w Writer, syncID uint8, maxLen int, now func() time.Time) *Sender {
	if now == nil {
		now = time.Now
	}
	return &Sender{enc: NewEncoder(syncID, maxLen), w: w, now: now}
}

// Enqueue adds c to the current message, writing the message first if c
// does not fit. A connection with a controlling template should be followed
// by the template (EnqueueWithTemplate).
func (s *Sender) Enqueue(c *Conn) {
	s.mu.Lock()
	s.addLocked(c)
	s.mu.Unlock()
}

// EnqueueWithTemplate adds c and then its persistence template t (the
// kernel sends templates with their children).
func (s *Sender) EnqueueWithTemplate(c, t *Conn) {
	s.mu.Lock()
	s.addLocked(c)
	if t != nil {
		s.addLocked(t)
	}
	s.mu.Unlock()
}

func (s *Sender) addLocked(c *Conn) {
	s.enqueued.Add(1)
	if !s.enc.Add(c) {
		s.flushLocked()
		s.enc.Add(c)
	}
	if s.enc.Count() == 1 {
		s.first = s.now()
	}
}

// Flush writes the current message, if any.
func (s *Sender) Flush() {
	s.mu.Lock()
	s.flushLocked()
	s.mu.Unlock()
}

func (s *Sender) flushLocked() {
	if s.enc.Count() == 0 {
		return
	}
	if err := s.w.WriteSync(s.enc.Bytes()); err != nil {
		s.errors.Add(1)
	} else {
		s.sent.Add(1)
		s.entries.Add(uint64(s.enc.Count()))
	}
	s.enc.Reset()
	s.first = time.Time{}
}

// Tick writes the current message if its first entry is FlushAfter old.
// Call it periodically (Run does, every 100 ms).
func (s *Sender) Tick(now time.Time) {
	s.mu.Lock()
	if s.enc.Count() > 0 && now.Sub(s.first) >= FlushAfter {
		s.flushLocked()
	}
	s.mu.Unlock()
}

// Stats returns the counters.
func (s *Sender) Stats() SenderStats {
	return SenderStats{s.sent.Load(), s.entries.Load(), s.errors.Load(), s.enqueued.Load()}
}

// SendBulk streams every connection of src to w in v1 messages of at most
// maxLen bytes, templates included, and returns the number of entries
// written. It is the active side of the bulk copy (see Bulk).
func SendBulk(src ConnSource, w Writer, syncID uint8, maxLen int) (int, error) {
	enc := NewEncoder(syncID, maxLen)
	n := 0
	var err error
	flush := func() {
		if enc.Count() == 0 || err != nil {
			return
		}
		if e := w.WriteSync(enc.Bytes()); e != nil {
			err = e
			return
		}
		n += enc.Count()
		enc.Reset()
	}
	src.RangeConns(func(c *Conn) bool {
		if !enc.Add(c) {
			flush()
			if err != nil {
				return false
			}
			enc.Add(c)
		}
		return true
	})
	flush()
	return n, err
}

// Run calls Tick every 100 ms until ctx ends, then flushes.
func (s *Sender) Run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Flush()
			return
		case now := <-t.C:
			s.Tick(now)
		}
	}
}

// PacedWriter pauses for Pause after every Every messages, so that a bulk
// copy of a large table does not overrun the backup's socket buffer (UDP has
// no flow control). The defaults, 64 messages then 2 ms, cap a bulk copy at
// about 45 MB/s (1.2 million entries per second).
type PacedWriter struct {
	W     Writer
	Every int
	Pause time.Duration
	Ctx   context.Context
	n     int
}

// WriteSync writes msg, pausing when due. It returns ctx's error if ctx ends.
func (p *PacedWriter) WriteSync(msg []byte) error {
	every, pause := p.Every, p.Pause
	if every <= 0 {
		every = 64
	}
	if pause <= 0 {
		pause = 2 * time.Millisecond
	}
	if err := p.W.WriteSync(msg); err != nil {
		return err
	}
	p.n++
	if p.n%every == 0 {
		ctx := p.Ctx
		if ctx == nil {
			ctx = context.Background()
		}
		t := time.NewTimer(pause)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
