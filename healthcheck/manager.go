package healthcheck

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Sink receives the Manager's decisions. The daemon's service table
// implements it. Calls come from one goroutine, in order, never while the
// Manager holds a lock, so a Sink may take its own locks and may call
// Manager.Status or Manager.Update (it must not call Close).
//
// Policy is the sink's: on a transition to down it removes the real server
// from the scheduler's pool (ActionRemove; existing connections follow
// expire_nodest_conn) or sets its weight to 0 (ActionQuiesce), as
// Transition.OnFailure says; on a transition to up it restores it. A real
// server whose configured weight is 0 must stay at 0: the Manager never
// calls SetWeight for it, but it still reports its health. The sorry server
// of a virtual service is the sink's business too: it takes traffic while no
// real server of Transition.ID.Service is up, which the sink counts from
// these calls (or from Status).
//
// On a reload, Update reports nothing for checks that did not change: a
// sink that rebuilds its table from the configuration must carry each real
// server's health and dynamic weight over from its old table, or re-apply
// Status (Up, Weight) after Update.
type Sink interface {
	// SetHealth reports a transition (or, with Initial set, the starting
	// state of a check just added). Each transition is reported once.
	SetHealth(tr Transition)
	// SetWeight sets a dynamic weight (exec exit codes, feedback).
	SetWeight(id TargetID, weight int)
}

// Transition is a change of a real server's health.
type Transition struct {
	ID          TargetID  `json:"id"`
	Up          bool      `json:"up"`
	Reason      string    `json:"reason"`      // "timeout after 1s", "status 503", "passed 2 consecutive checks: status 200"
	Consecutive int       `json:"consecutive"` // the successes or failures that caused it; 0 when Initial
	Initial     bool      `json:"initial"`     // the starting state of a newly added check, not a transition
	OnFailure   Action    `json:"on_failure"`  // what the sink does while the server is down
	At          time.Time `json:"at"`
}

// Status is a check's state, for `ulvsadm -L --json` and the metrics.
type Status struct {
	ID               TargetID      `json:"id"`
	Type             string        `json:"type"`
	Up               bool          `json:"up"`
	Since            time.Time     `json:"since"`
	Reason           string        `json:"reason"`      // why the current state was entered
	LastOK           bool          `json:"last_ok"`     // the last probe's result
	LastResult       string        `json:"last_result"` // its reason or detail
	LastCheck        time.Time     `json:"last_check"`  // when it completed (zero: never run)
	LastDuration     time.Duration `json:"last_duration_ns"`
	Successes        int           `json:"successes"` // consecutive
	Failures         int           `json:"failures"`  // consecutive
	Rise             int           `json:"rise"`
	Fall             int           `json:"fall"`
	ConfiguredWeight int           `json:"configured_weight"`
	Weight           int           `json:"weight"` // the last weight set by the checks; the configured weight if none
	OnFailure        Action        `json:"on_failure"`
	Checks           uint64        `json:"checks"` // probes completed
	Failed           uint64        `json:"failed"` // probes failed
	CertNotAfter     time.Time     `json:"cert_not_after,omitzero"`
}

// uniformJitter is the default first-run delay: uniform in [0, iv).
func uniformJitter(iv time.Duration) time.Duration {
	if iv <= 0 {
		return 0
	}
	return rand.N(iv)
}

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("healthcheck: manager closed")

// DefaultMaxInFlight bounds the probes running at once.
const DefaultMaxInFlight = 256

// Option configures a Manager.
type Option func(*Manager)

// WithClock replaces the system clock (tests).
func WithClock(c Clock) Option { return func(m *Manager) { m.clock = c } }

// WithMaxInFlight bounds the probes running at once (default 256). Due
// probes beyond it wait in a FIFO queue; their timeout starts when they run.
func WithMaxInFlight(n int) Option {
	return func(m *Manager) {
		if n > 0 {
			m.maxInFlight = n
		}
	}
}

// WithJitter replaces the delay of a check's first probe, which by default
// is uniform in [0, interval).
func WithJitter(f func(interval time.Duration) time.Duration) Option {
	return func(m *Manager) { m.jitter = f }
}

// withCheckers replaces the checker factory (tests).
func withCheckers(f func(*Spec) (checker, error)) Option {
	return func(m *Manager) { m.newChecker = f }
}

// withHook is called by the scheduling goroutine after it applies a result
// or an update (tests).
func withHook(f func(string)) Option { return func(m *Manager) { m.hook = f } }

// Manager runs health checks and reports their transitions to a Sink.
type Manager struct {
	log         zerolog.Logger
	sink        Sink
	clock       Clock
	maxInFlight int
	jitter      func(time.Duration) time.Duration
	newChecker  func(*Spec) (checker, error)
	hook        func(string)

	updates   chan updateReq
	statusReq chan chan []Status
	results   chan probeResult
	done      chan struct{}
	loopDone  chan struct{}
	closeOnce sync.Once
	probeCtx  context.Context
	cancel    context.CancelFunc
	probes    sync.WaitGroup
	notes     notifier

	// Owned by the scheduling goroutine.
	entries  map[TargetID]*entry
	due      entryHeap
	ready    []*entry
	inflight int
}

type entry struct {
	spec    Spec
	ch      checker
	gen     uint64
	next    time.Time
	hidx    int // index in the heap, -1 when not in it
	queued  bool
	running bool
	removed bool
	cancel  context.CancelFunc
	started time.Time

	h            health
	weight       int
	lastOK       bool
	lastReason   string
	lastCheck    time.Time
	lastDur      time.Duration
	checks       uint64
	failed       uint64
	certNotAfter time.Time
	certWarned   time.Time
}

type updateReq struct {
	specs []builtSpec
	reply chan struct{}
}

type builtSpec struct {
	spec Spec
	ch   checker
}

type probeResult struct {
	e   *entry
	gen uint64
	ch  checker
	res Result
	dur time.Duration
}

// NewManager starts a Manager with no checks; Update gives it some. log
// gets one line per transition.
func NewManager(log zerolog.Logger, sink Sink, opts ...Option) *Manager {
	m := &Manager{
		log:         log,
		sink:        sink,
		clock:       systemClock{},
		maxInFlight: DefaultMaxInFlight,
		jitter:      uniformJitter,
		newChecker:  newChecker,
		updates:     make(chan updateReq),
		statusReq:   make(chan chan []Status),
		done:        make(chan struct{}),
		loopDone:    make(chan struct{}),
		entries:     make(map[TargetID]*entry),
	}
	for _, o := range opts {
		o(m)
	}
	m.results = make(chan probeResult, m.maxInFlight)
	m.probeCtx, m.cancel = context.WithCancel(context.Background())
	m.notes.init(sink, m.done)
	go m.notes.run()
	go m.loop()
	return m
}

// Update makes specs the set of running checks: checks whose TargetID is new
// start (first probe jittered over one interval), checks no longer listed
// stop (an in-flight probe is canceled and its result dropped), checks whose
// spec is unchanged keep running with their state and schedule, and checks
// whose spec changed restart with the new configuration keeping their
// up/down state (consecutive counts reset). The whole set is validated
// first: on any error nothing changes, and the error names each bad check
// and key. Update does not wait for the sink.
func (m *Manager) Update(specs []Spec) error {
	built := make([]builtSpec, 0, len(specs))
	seen := make(map[TargetID]bool, len(specs))
	var errs []error
	for _, s := range specs {
		if seen[s.ID] {
			errs = append(errs, fmt.Errorf("health check of %s: listed twice", s.ID))
			continue
		}
		seen[s.ID] = true
		if !s.ID.Server.IsValid() {
			errs = append(errs, fmt.Errorf("health check of %q: no real server address", s.ID.Service))
			continue
		}
		if err := s.Config.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("health check of %s: %w", s.ID, err))
			continue
		}
		s.Config = s.Config.Normalize()
		ch, err := m.newChecker(&s)
		if err != nil {
			errs = append(errs, fmt.Errorf("health check of %s: %w", s.ID, err))
			continue
		}
		built = append(built, builtSpec{s, ch})
	}
	if len(errs) > 0 {
		closeAll(built)
		return errors.Join(errs...)
	}
	req := updateReq{specs: built, reply: make(chan struct{})}
	select {
	case m.updates <- req:
		<-req.reply
		return nil
	case <-m.done:
		closeAll(built)
		return ErrClosed
	}
}

func closeAll(b []builtSpec) {
	for _, x := range b {
		closeChecker(x.ch)
	}
}

func closeChecker(c checker) {
	if cl, ok := c.(closer); ok {
		cl.close()
	}
}

// Status returns the state of every check, sorted by service and server.
// It returns nil after Close.
func (m *Manager) Status() []Status {
	c := make(chan []Status, 1)
	select {
	case m.statusReq <- c:
		return <-c
	case <-m.done:
		return nil
	}
}

// Close stops every check, cancels the probes in flight and waits for them
// and for the sink goroutine; no Sink call starts after it returns, and
// notes not yet delivered are dropped. Do not call it from a Sink method.
func (m *Manager) Close() {
	m.closeOnce.Do(func() {
		close(m.done)
		m.cancel()
		<-m.loopDone
		m.probes.Wait()
		m.notes.wait()
		for _, e := range m.entries {
			closeChecker(e.ch)
		}
	})
}

func (m *Manager) loop() {
	defer close(m.loopDone)
	var (
		timer   Timer
		timerAt time.Time
	)
	for {
		now := m.clock.Now()
		for len(m.due) > 0 && !m.due[0].next.After(now) {
			e := heap.Pop(&m.due).(*entry)
			e.queued = true
			m.ready = append(m.ready, e)
		}
		for m.inflight < m.maxInFlight && len(m.ready) > 0 {
			e := m.ready[0]
			m.ready[0] = nil
			m.ready = m.ready[1:]
			e.queued = false
			if !e.removed {
				m.start(e, now)
			}
		}
		var tc <-chan time.Time
		if len(m.due) > 0 {
			if timer == nil || !timerAt.Equal(m.due[0].next) {
				if timer != nil {
					timer.Stop()
				}
				timerAt = m.due[0].next
				timer = m.clock.TimerAt(timerAt)
			}
			tc = timer.C()
		} else if timer != nil {
			timer.Stop()
			timer = nil
		}
		select {
		case <-tc:
			timer = nil
		case r := <-m.results:
			m.apply(r)
			m.callHook("result")
		case u := <-m.updates:
			m.reconcile(u.specs)
			close(u.reply)
			m.callHook("update")
		case c := <-m.statusReq:
			c <- m.status()
		case <-m.done:
			if timer != nil {
				timer.Stop()
			}
			return
		}
	}
}

func (m *Manager) callHook(s string) {
	if m.hook != nil {
		m.hook(s)
	}
}

// start runs one probe of e in its own goroutine.
func (m *Manager) start(e *entry, now time.Time) {
	e.running = true
	e.started = now
	m.inflight++
	// The deadline starts now, when the probe gets its slot (not when it
	// became due); cancel also ends it early on removal or Close.
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(m.probeCtx, e.spec.Config.Timeout)
	e.cancel = cancel
	gen, ch, timeout := e.gen, e.ch, e.spec.Config.Timeout
	m.probes.Add(1)
	go func() {
		defer m.probes.Done()
		res := enforceDeadline(ctx, ch.check(ctx), timeout)
		dur := time.Since(t0)
		cancel()
		select {
		case m.results <- probeResult{e: e, gen: gen, ch: ch, res: res, dur: dur}:
		case <-m.done:
		}
	}()
}

// schedule puts e in the heap at t.
func (m *Manager) schedule(e *entry, t time.Time) {
	e.next = t
	if e.hidx >= 0 {
		heap.Fix(&m.due, e.hidx)
	} else {
		heap.Push(&m.due, e)
	}
}

func (m *Manager) unschedule(e *entry) {
	if e.hidx >= 0 {
		heap.Remove(&m.due, e.hidx)
	}
}

func (m *Manager) apply(r probeResult) {
	m.inflight--
	e := r.e
	if r.gen != e.gen || e.removed {
		// A probe of a configuration that has since changed or been removed.
		if r.ch != e.ch || e.removed {
			closeChecker(r.ch)
		}
		if !e.removed && r.gen != e.gen {
			e.running = false
			if e.hidx < 0 && !e.queued {
				m.schedule(e, e.next)
			}
		}
		return
	}
	e.running = false
	e.cancel = nil
	now := m.clock.Now()
	c := &e.spec.Config
	e.checks++
	if !r.res.OK {
		e.failed++
	}
	e.lastOK, e.lastReason, e.lastCheck, e.lastDur = r.res.OK, r.res.Reason, now, r.dur
	if e.h.observe(r.res.OK, r.res.Reason, c.Rise, c.Fall, now) {
		m.transition(e, now)
	}
	if r.res.OK && r.res.Weight >= 0 {
		m.dynamicWeight(e, r.res)
	}
	if !r.res.CertNotAfter.IsZero() {
		e.certNotAfter = r.res.CertNotAfter
		if left := r.res.CertNotAfter.Sub(now); left < c.ExpiryWarning && !e.certWarned.Equal(r.res.CertNotAfter) {
			e.certWarned = r.res.CertNotAfter
			m.log.Warn().Str("service", e.spec.ID.Service).Stringer("server", e.spec.ID.Server).
				Str("check", c.Type).Time("not_after", r.res.CertNotAfter).Str("left", left.Round(time.Second).String()).
				Msg("real server certificate expires soon")
		}
	}
	next := e.started.Add(c.Interval)
	if next.Before(now) {
		next = now
	}
	m.schedule(e, next)
}

func (m *Manager) transition(e *entry, now time.Time) {
	id, c := e.spec.ID, &e.spec.Config
	tr := Transition{ID: id, Up: e.h.up, Reason: e.h.reason, Consecutive: e.h.consecutive(), OnFailure: c.OnFailure, At: now}
	ev := m.log.Info()
	msg := "real server up"
	if !tr.Up {
		ev, msg = m.log.Warn(), "real server down"
	}
	ev.Str("service", id.Service).Stringer("server", id.Server).Str("check", c.Type).
		Bool("up", tr.Up).Str("reason", tr.Reason).Int("consecutive", tr.Consecutive).
		Str("on_failure", string(c.OnFailure)).Msg(msg)
	m.notes.push(note{id: id, tr: &tr})
}

// dynamicWeight applies a weight a probe asked for, unless the configured
// weight is 0 (administratively quiesced) or the change is within the
// feedback deadband (bounds and 0 always apply).
func (m *Manager) dynamicWeight(e *entry, r Result) {
	if e.spec.Weight == 0 || r.Weight == e.weight {
		return
	}
	diff := r.Weight - e.weight
	if diff < 0 {
		diff = -diff
	}
	c := &e.spec.Config
	maxW := c.MaxWeight
	if maxW == 0 {
		maxW = e.spec.Weight
	}
	atBound := r.Weight == 0 || c.Type == TypeFeedback && (r.Weight == c.MinWeight || r.Weight == maxW)
	if diff < r.deadband && !atBound {
		return
	}
	m.log.Info().Str("service", e.spec.ID.Service).Stringer("server", e.spec.ID.Server).Str("check", c.Type).
		Int("from", e.weight).Int("to", r.Weight).Str("reason", r.Reason).Msg("real server weight changed")
	e.weight = r.Weight
	m.notes.push(note{id: e.spec.ID, weight: r.Weight})
}

func (m *Manager) reconcile(specs []builtSpec) {
	now := m.clock.Now()
	keep := make(map[TargetID]bool, len(specs))
	for _, b := range specs {
		keep[b.spec.ID] = true
		e, ok := m.entries[b.spec.ID]
		switch {
		case !ok:
			m.add(b, now)
		case reflect.DeepEqual(e.spec, b.spec):
			closeChecker(b.ch)
		default:
			m.change(e, b, now)
		}
	}
	var gone map[TargetID]bool
	for id, e := range m.entries {
		if keep[id] {
			continue
		}
		e.removed = true
		m.unschedule(e)
		if e.running {
			e.cancel() // its result closes the checker
		} else {
			closeChecker(e.ch)
		}
		delete(m.entries, id)
		if gone == nil {
			gone = make(map[TargetID]bool)
		}
		gone[id] = true
	}
	if gone != nil {
		m.notes.purge(gone)
	}
}

func (m *Manager) add(b builtSpec, now time.Time) {
	c := &b.spec.Config
	up := c.InitialState != "down"
	reason := "initial state " + c.InitialState
	if c.Type == TypeNone {
		up, reason = true, "no health check"
	}
	e := &entry{spec: b.spec, ch: b.ch, hidx: -1, weight: b.spec.Weight, h: newHealth(up, now, reason)}
	m.entries[b.spec.ID] = e
	m.log.Debug().Str("service", b.spec.ID.Service).Stringer("server", b.spec.ID.Server).Str("check", c.Type).
		Bool("up", up).Msg("health check added")
	m.notes.push(note{id: b.spec.ID, tr: &Transition{ID: b.spec.ID, Up: up, Reason: reason, Initial: true, OnFailure: c.OnFailure, At: now}})
	if c.Type != TypeNone {
		m.schedule(e, now.Add(m.jitter(c.Interval)))
	}
}

// change replaces e's configuration, keeping its up/down state.
func (m *Manager) change(e *entry, b builtSpec, now time.Time) {
	old := e.spec
	e.gen++
	if e.running {
		e.cancel() // the stale result closes the old checker
	} else {
		closeChecker(e.ch)
	}
	e.spec, e.ch = b.spec, b.ch
	e.h.succ, e.h.fail = 0, 0
	if old.Weight != b.spec.Weight {
		e.weight = b.spec.Weight
	}
	c := &b.spec.Config
	if c.Type == TypeNone {
		m.unschedule(e)
		if !e.h.up {
			e.h.up, e.h.since, e.h.reason = true, now, "no health check"
			m.transition(e, now)
		}
		return
	}
	if old.Config.Type == TypeNone || e.hidx >= 0 || !e.running && !e.queued {
		m.schedule(e, now.Add(m.jitter(c.Interval)))
	} else if e.running {
		// Rescheduled when the canceled probe's result comes back.
		e.next = now.Add(m.jitter(c.Interval))
	}
}

func (m *Manager) status() []Status {
	out := make([]Status, 0, len(m.entries))
	for _, e := range m.entries {
		c := &e.spec.Config
		out = append(out, Status{
			ID: e.spec.ID, Type: c.Type, Up: e.h.up, Since: e.h.since, Reason: e.h.reason,
			LastOK: e.lastOK, LastResult: e.lastReason, LastCheck: e.lastCheck, LastDuration: e.lastDur,
			Successes: e.h.succ, Failures: e.h.fail, Rise: c.Rise, Fall: c.Fall,
			ConfiguredWeight: e.spec.Weight, Weight: e.weight, OnFailure: c.OnFailure,
			Checks: e.checks, Failed: e.failed, CertNotAfter: e.certNotAfter,
		})
	}
	slices.SortFunc(out, func(a, b Status) int {
		if c := strings.Compare(a.ID.Service, b.ID.Service); c != 0 {
			return c
		}
		return a.ID.Server.Compare(b.ID.Server)
	})
	return out
}

// entryHeap orders entries by next due time.
type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.hidx = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.hidx = -1
	*h = old[:len(old)-1]
	return e
}

// note is one Sink call waiting for delivery.
type note struct {
	id      TargetID
	tr      *Transition // SetHealth when set, else SetWeight
	weight  int
	barrier chan struct{} // flush: closed when reached, no Sink call
}

// notifier delivers notes to the Sink from its own goroutine, in order, so
// that the scheduling goroutine never waits for the sink.
type notifier struct {
	sink   Sink
	done   <-chan struct{}
	mu     sync.Mutex
	q      []note
	wake   chan struct{}
	exited chan struct{}
}

func (n *notifier) init(s Sink, done <-chan struct{}) {
	n.sink, n.done = s, done
	n.wake = make(chan struct{}, 1)
	n.exited = make(chan struct{})
}

func (n *notifier) push(x note) {
	n.mu.Lock()
	n.q = append(n.q, x)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// purge drops the undelivered notes of removed checks.
func (n *notifier) purge(gone map[TargetID]bool) {
	n.mu.Lock()
	n.q = slices.DeleteFunc(n.q, func(x note) bool { return gone[x.id] })
	n.mu.Unlock()
}

func (n *notifier) run() {
	defer close(n.exited)
	for {
		select {
		case <-n.wake:
		case <-n.done:
			return
		}
		for {
			select {
			case <-n.done:
				return
			default:
			}
			n.mu.Lock()
			if len(n.q) == 0 {
				n.q = nil
				n.mu.Unlock()
				break
			}
			x := n.q[0]
			n.q = n.q[1:]
			n.mu.Unlock()
			if x.barrier != nil {
				close(x.barrier)
				continue
			}
			if n.sink == nil {
				continue
			}
			if x.tr != nil {
				n.sink.SetHealth(*x.tr)
			} else {
				n.sink.SetWeight(x.id, x.weight)
			}
		}
	}
}

func (n *notifier) wait() { <-n.exited }

// flush returns once every note pushed before it has been delivered (or the
// notifier stopped).
func (n *notifier) flush() {
	b := make(chan struct{})
	n.push(note{barrier: b})
	select {
	case <-b:
	case <-n.exited:
	}
}
