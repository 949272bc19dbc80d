package healthcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fakeClock is a Clock that moves only when Advance is called.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	c       chan time.Time
	stopped atomic.Bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop()               { t.stopped.Store(true) }

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) TimerAt(at time.Time) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: at, c: make(chan time.Time, 1)}
	if !at.After(c.now) {
		t.c <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.stopped.Load() {
			return true
		}
		if !t.at.After(c.now) {
			t.c <- c.now
			return true
		}
		return false
	})
}

// script is a fake checker factory: each target returns the results queued
// for it, in order, then its default.
type script struct {
	mu       sync.Mutex
	queue    map[TargetID][]Result
	def      map[TargetID]Result
	hang     map[TargetID]bool // block until the probe's context ends
	calls    map[TargetID]int
	inflight atomic.Int32
	maxSeen  atomic.Int32
}

func newScript() *script {
	return &script{queue: map[TargetID][]Result{}, def: map[TargetID]Result{}, hang: map[TargetID]bool{}, calls: map[TargetID]int{}}
}

func (s *script) push(id TargetID, rs ...Result) {
	s.mu.Lock()
	s.queue[id] = append(s.queue[id], rs...)
	s.mu.Unlock()
}

func (s *script) setHang(id TargetID, hang bool) {
	s.mu.Lock()
	s.hang[id] = hang
	s.mu.Unlock()
}

func (s *script) nCalls(id TargetID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

func (s *script) factory(sp *Spec) (checker, error) { return &scriptChecker{s: s, id: sp.ID}, nil }

type scriptChecker struct {
	s  *script
	id TargetID
}

func (c *scriptChecker) check(ctx context.Context) Result {
	n := c.s.inflight.Add(1)
	defer c.s.inflight.Add(-1)
	for {
		m := c.s.maxSeen.Load()
		if n <= m || c.s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	c.s.mu.Lock()
	c.s.calls[c.id]++
	hang := c.s.hang[c.id]
	var r Result
	if q := c.s.queue[c.id]; len(q) > 0 {
		r, c.s.queue[c.id] = q[0], q[1:]
	} else if d, ok := c.s.def[c.id]; ok {
		r = d
	} else {
		r = okResult("ok")
	}
	c.s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return failResult("timeout after " + "hang")
	}
	return r
}

// recSink records Sink calls as strings.
type recSink struct {
	mu  sync.Mutex
	evs []string
	trs []Transition
}

func (s *recSink) SetHealth(tr Transition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := "down"
	if tr.Up {
		st = "up"
	}
	if tr.Initial {
		st = "initial-" + st
	}
	s.evs = append(s.evs, fmt.Sprintf("%s %s %s", tr.ID.Server, st, tr.Reason))
	s.trs = append(s.trs, tr)
}

func (s *recSink) SetWeight(id TargetID, w int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, fmt.Sprintf("%s weight %d", id.Server, w))
}

// take returns and clears the recorded events.
func (s *recSink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.evs
	s.evs = nil
	return e
}

type harness struct {
	t     *testing.T
	clk   *fakeClock
	sc    *script
	sink  *recSink
	m     *Manager
	hooks chan string
}

func newHarness(t *testing.T, opts ...Option) *harness {
	t.Helper()
	h := &harness{t: t, clk: newFakeClock(), sc: newScript(), sink: &recSink{}, hooks: make(chan string, 1<<16)}
	opts = append([]Option{
		WithClock(h.clk),
		WithJitter(func(time.Duration) time.Duration { return 0 }),
		withCheckers(h.sc.factory),
		withHook(func(s string) { h.hooks <- s }),
	}, opts...)
	h.m = NewManager(zerolog.Nop(), h.sink, opts...)
	t.Cleanup(h.m.Close)
	return h
}

// wait blocks until the scheduler has applied n probe results.
func (h *harness) wait(n int) {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for n > 0 {
		select {
		case s := <-h.hooks:
			if s == "result" {
				n--
			}
		case <-deadline:
			h.t.Fatalf("scheduler did not apply %d more results", n)
		}
	}
}

// step advances the clock by d and waits for n results.
func (h *harness) step(d time.Duration, n int) {
	h.t.Helper()
	h.clk.Advance(d)
	h.wait(n)
}

// events flushes the sink and returns what it got since the last call.
func (h *harness) events() []string {
	h.m.notes.flush()
	return h.sink.take()
}

func (h *harness) update(specs ...Spec) {
	h.t.Helper()
	if err := h.m.Update(specs); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) status(id TargetID) Status {
	h.t.Helper()
	for _, s := range h.m.Status() {
		if s.ID == id {
			return s
		}
	}
	h.t.Fatalf("no status for %s", id)
	return Status{}
}

func tid(i int) TargetID {
	return TargetID{Service: "tcp/192.0.2.1:80", Server: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 80)}
}

func spec(i int, cfg Config) Spec {
	if cfg.Interval == 0 {
		cfg.Interval = 2 * time.Second
	}
	return Spec{ID: tid(i), Weight: 10, Config: cfg}
}

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func TestHealthObserve(t *testing.T) {
	t0 := time.Unix(0, 0)
	for _, tc := range []struct {
		name       string
		startUp    bool
		rise, fall int
		seq        string // o = ok, x = fail
		want       string // state after each result: U or D
	}{
		{"up: first failure takes it down", true, 2, 3, "x", "D"},
		{"up: then rise successes", true, 2, 3, "xoo", "DDU"},
		{"up: first success, then fall failures", true, 2, 3, "oxxx", "UUUD"},
		{"success resets failures", true, 2, 3, "oxxoxxox", "UUUUUUUU"},
		{"down: first success brings it up", false, 2, 3, "o", "U"},
		{"down: first failure stays down, then rise", false, 3, 1, "xoo xoo o", "DDDDDDU"},
		{"flapping stays down", true, 2, 2, "xoxoxoxo", "DDDDDDDD"},
		{"flapping stays up", true, 2, 2, "oxoxoxox", "UUUUUUUU"},
		{"rise 1 fall 1", true, 1, 1, "oxoxo", "UDUDU"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHealth(tc.startUp, t0, "initial")
			var got strings.Builder
			seq := strings.ReplaceAll(tc.seq, " ", "")
			for i, r := range seq {
				before := h.up
				changed := h.observe(r == 'o', "r", tc.rise, tc.fall, t0.Add(time.Duration(i)))
				if changed != (before != h.up) {
					t.Fatalf("step %d: changed=%v but up %v->%v", i, changed, before, h.up)
				}
				if h.up {
					got.WriteByte('U')
				} else {
					got.WriteByte('D')
				}
			}
			if got.String() != tc.want {
				t.Fatalf("%s: got %s, want %s", seq, got.String(), tc.want)
			}
		})
	}
}

func TestManagerRiseFall(t *testing.T) {
	h := newHarness(t)
	id := tid(1)
	s := id.Server.String()
	// The first probe runs at once (jitter 0); its failure takes the
	// server down immediately, as it starts "up" unconfirmed.
	h.sc.push(id, failResult("connection refused"))
	h.update(spec(1, Config{Rise: 2, Fall: 3, Timeout: time.Second}))
	h.wait(1)
	eq(t, "first failure", h.events(), []string{s + " initial-up initial state up", s + " down connection refused"})

	h.sc.push(id, okResult("status 200"), okResult("status 200"))
	h.step(2*time.Second, 1)
	eq(t, "one success", h.events(), nil)
	if st := h.status(id); st.Up || st.Successes != 1 || st.Failures != 0 || !st.LastOK {
		t.Fatalf("after one success: %+v", st)
	}
	h.step(2*time.Second, 1)
	eq(t, "rise", h.events(), []string{s + " up passed 2 consecutive checks: status 200"})

	h.sc.push(id, failResult("status 503"), failResult("status 503"), okResult("status 200"),
		failResult("timeout after 1s"), failResult("timeout after 1s"), failResult("timeout after 1s"))
	for range 5 {
		h.step(2*time.Second, 1)
	}
	eq(t, "interrupted failures", h.events(), nil)
	h.step(2*time.Second, 1)
	eq(t, "fall", h.events(), []string{s + " down timeout after 1s"})
	st := h.status(id)
	if st.Up || st.Failures != 3 || st.Reason != "timeout after 1s" || st.Checks != 9 || st.Failed != 6 ||
		!st.Since.Equal(h.clk.Now()) {
		t.Fatalf("status after fall: %+v", st)
	}
	if st.LastCheck != h.clk.Now() || st.Rise != 2 || st.Fall != 3 || st.OnFailure != ActionRemove {
		t.Fatalf("status after fall: %+v", st)
	}
	// Exactly one probe per interval.
	if n := h.sc.nCalls(id); n != 9 {
		t.Fatalf("%d probes, want 9", n)
	}
	h.clk.Advance(time.Second)
	if n := h.sc.nCalls(id); n != 9 {
		t.Fatalf("probe ran before its interval: %d", n)
	}
}

func TestManagerInitialDownAndTransitionFields(t *testing.T) {
	h := newHarness(t)
	id := tid(2)
	h.update(spec(2, Config{InitialState: "down", OnFailure: ActionQuiesce, Rise: 3}))
	h.step(0, 1)
	h.m.notes.flush()
	h.sink.mu.Lock()
	trs := slices.Clone(h.sink.trs)
	h.sink.mu.Unlock()
	if len(trs) != 2 {
		t.Fatalf("transitions %+v", trs)
	}
	if !trs[0].Initial || trs[0].Up || trs[0].OnFailure != ActionQuiesce {
		t.Fatalf("initial %+v", trs[0])
	}
	if trs[1].Initial || !trs[1].Up || trs[1].Reason != "first check passed: ok" || trs[1].Consecutive != 1 || trs[1].ID != id {
		t.Fatalf("first success %+v", trs[1])
	}
}

func TestManagerFlappingDoesNotMove(t *testing.T) {
	h := newHarness(t)
	id := tid(3)
	s := id.Server.String()
	h.update(spec(3, Config{Rise: 2, Fall: 2}))
	h.sc.push(id, okResult("ok")) // confirm up
	h.step(0, 1)
	for i := range 20 {
		if i%2 == 0 {
			h.sc.push(id, failResult("status 500"))
		} else {
			h.sc.push(id, okResult("ok"))
		}
		h.step(2*time.Second, 1)
	}
	eq(t, "flapping", h.events(), []string{s + " initial-up initial state up"})
}

func TestManagerReload(t *testing.T) {
	h := newHarness(t)
	a, b, c := spec(1, Config{Fall: 2}), spec(2, Config{Fall: 2}), spec(3, Config{})
	h.update(a, b)
	h.step(0, 2)
	h.sc.push(a.ID, failResult("status 503"))
	h.step(2*time.Second, 2)
	h.events()
	if st := h.status(a.ID); st.Failures != 1 || !st.Up {
		t.Fatalf("a before reload: %+v", st)
	}

	// The same specs again: nothing restarts, the state and the schedule
	// are kept (the next probe is still due in 2s, not jittered anew).
	h.update(a, b)
	eq(t, "unchanged reload", h.events(), nil)
	h.sc.push(a.ID, failResult("status 503"))
	h.step(2*time.Second, 2)
	eq(t, "state kept across reload", h.events(), []string{a.ID.Server.String() + " down status 503"})

	// b removed, c added, a changed (interval): a keeps "down" but its
	// counts restart; b is never probed again; c starts.
	a2 := a
	a2.Config.Interval = 5 * time.Second
	a2.Config.Rise = 1
	nb := h.sc.nCalls(b.ID)
	h.sc.setHang(a.ID, true) // hold a's next probe to look at its state
	h.update(a2, c)
	eq(t, "reload with changes", h.events(), []string{c.ID.Server.String() + " initial-up initial state up"})
	if st := h.status(a.ID); st.Up || st.Failures != 0 || st.Rise != 1 || st.Checks != 3 {
		t.Fatalf("a after change: %+v", st)
	}
	if len(h.m.Status()) != 2 {
		t.Fatalf("status has %d checks, want 2", len(h.m.Status()))
	}
	h.wait(1) // c's first probe (jitter 0)
	h.sc.setHang(a.ID, false)
	// Changing a again while its probe hangs cancels that probe; the new
	// configuration's probe is scheduled once the canceled one returns.
	a2.Config.Fall = 3
	h.update(a2, c)
	h.wait(2) // the canceled probe (dropped) and the new one
	eq(t, "a up after change", h.events(), []string{a.ID.Server.String() + " up passed 1 consecutive checks: ok"})
	h.step(2*time.Second, 1) // only c: a is now every 5s
	h.step(3*time.Second, 1) // a
	if n := h.sc.nCalls(b.ID); n != nb {
		t.Fatalf("removed check probed: %d -> %d", nb, n)
	}

	// Removed and added back: a new check with its initial state.
	h.update(a2)
	h.update(a2, b)
	eq(t, "re-added", h.events(), []string{b.ID.Server.String() + " initial-up initial state up"})
}

func TestManagerRemoveCancelsHangingProbe(t *testing.T) {
	h := newHarness(t)
	a := spec(1, Config{Timeout: time.Hour, Interval: time.Hour})
	h.sc.setHang(a.ID, true)
	h.update(a)
	h.clk.Advance(0)
	// Wait until the probe is in flight.
	for i := 0; h.sc.inflight.Load() != 1; i++ {
		if i > 1e6 {
			t.Fatal("probe never started")
		}
		runtime.Gosched()
	}
	h.events()
	h.update() // removal cancels the hanging probe: its result is dropped
	h.wait(1)
	if len(h.m.Status()) != 0 {
		t.Fatal("removed check still listed")
	}
	eq(t, "no transition for a removed check", h.events(), nil)
}

func TestManagerHangingCheckDoesNotDelayOthers(t *testing.T) {
	h := newHarness(t)
	slow, fast := spec(1, Config{Timeout: time.Hour}), spec(2, Config{})
	h.sc.setHang(slow.ID, true)
	h.update(slow, fast)
	h.wait(1) // fast completes while slow hangs
	for i := 0; h.sc.nCalls(slow.ID) != 1; i++ {
		if i > 1e6 {
			t.Fatal("slow probe never started")
		}
		runtime.Gosched()
	}
	for range 10 {
		h.step(2*time.Second, 1)
	}
	if n := h.sc.nCalls(fast.ID); n != 11 {
		t.Fatalf("fast check ran %d times, want 11", n)
	}
	if n := h.sc.nCalls(slow.ID); n != 1 {
		t.Fatalf("slow check ran %d times while its probe hung, want 1", n)
	}
	h.m.Close() // cancels the hanging probe and returns
}

func TestManagerBoundsInFlight(t *testing.T) {
	h := newHarness(t, WithMaxInFlight(3))
	var specs []Spec
	for i := range 10 {
		s := spec(i, Config{Timeout: time.Hour})
		specs = append(specs, s)
		h.sc.setHang(s.ID, true)
	}
	h.update(specs...)
	h.clk.Advance(0)
	for i := 0; h.sc.inflight.Load() != 3; i++ {
		if i > 1e6 {
			t.Fatal("probes never started")
		}
		runtime.Gosched()
	}
	// Free one slot: exactly one queued probe takes it.
	h.update(specs[1:]...) // removal cancels probe 0
	h.wait(1)
	for i := 0; h.sc.inflight.Load() != 3; i++ {
		if i > 1e6 {
			t.Fatal("queued probe did not start")
		}
		runtime.Gosched()
	}
	if m := h.sc.maxSeen.Load(); m != 3 {
		t.Fatalf("max in flight %d, want 3", m)
	}
	total := 0
	for _, s := range specs {
		total += h.sc.nCalls(s.ID)
	}
	if total != 4 {
		t.Fatalf("%d probes started, want 4", total)
	}
}

func TestUniformJitter(t *testing.T) {
	const iv = 10 * time.Second
	seen := map[time.Duration]bool{}
	firstHalf := 0
	for range 1000 {
		j := uniformJitter(iv)
		if j < 0 || j >= iv {
			t.Fatalf("jitter %s outside [0, %s)", j, iv)
		}
		seen[j] = true
		if j < iv/2 {
			firstHalf++
		}
	}
	// 1000 uniform draws: about 500 in the first half (far outside 350..650
	// has probability < 1e-20), and nearly all distinct.
	if firstHalf < 350 || firstHalf > 650 || len(seen) < 990 {
		t.Fatalf("not uniform: %d in the first half, %d distinct", firstHalf, len(seen))
	}
	if uniformJitter(0) != 0 {
		t.Fatal("jitter of a zero interval")
	}
}

func TestManagerFirstRunsFollowJitter(t *testing.T) {
	// The i-th check added gets a jitter of i*100ms: after 5s exactly the
	// 51 checks with jitter <= 5s have run, each once.
	n := 0
	h := newHarness(t, WithJitter(func(iv time.Duration) time.Duration {
		j := time.Duration(n) * 100 * time.Millisecond
		n++
		return j
	}))
	var specs []Spec
	for i := range 100 {
		specs = append(specs, spec(i, Config{Interval: 10 * time.Second}))
	}
	h.update(specs...)
	h.step(5*time.Second, 51)
	for i, s := range specs {
		want := 0
		if i <= 50 {
			want = 1
		}
		if got := h.sc.nCalls(s.ID); got != want {
			t.Fatalf("check %d ran %d times after 5s, want %d", i, got, want)
		}
	}
	h.step(5*time.Second-100*time.Millisecond, 49)
	for i, s := range specs {
		if got := h.sc.nCalls(s.ID); got != 1 {
			t.Fatalf("check %d ran %d times in its first interval", i, got)
		}
	}
}

func TestManagerDynamicWeights(t *testing.T) {
	h := newHarness(t)
	ex := spec(1, Config{Type: TypeExec, Program: "/bin/true"})
	admin0 := spec(2, Config{Type: TypeExec, Program: "/bin/true"})
	admin0.Weight = 0
	fb := spec(3, Config{Type: TypeFeedback, Hysteresis: 0.2}) // deadband 2 of 10
	w := func(n, d int) Result { r := okResult("w"); r.Weight = n; r.deadband = d; return r }
	h.sc.push(ex.ID, okResult("exit code 0"), w(5, 0), okResult("exit code 0"), w(0, 0))
	h.sc.push(admin0.ID, w(7, 0), w(0, 0))
	h.sc.push(fb.ID, w(9, 2), w(7, 2), w(6, 2), w(10, 2))
	h.update(ex, admin0, fb)
	h.wait(3)
	h.events()
	// 9 is within the deadband of 10; admin weight 0 is never raised.
	if st := h.status(fb.ID); st.Weight != 10 {
		t.Fatalf("feedback weight %d within the deadband applied", st.Weight)
	}
	h.step(2*time.Second, 3)
	s1 := []string{ex.ID.Server.String() + " weight 5", fb.ID.Server.String() + " weight 7"}
	got := h.events()
	slices.Sort(got)
	eq(t, "second", got, s1)
	h.step(2*time.Second, 3)
	eq(t, "third", h.events(), nil) // ex: exit 0 keeps 5; fb: 6 within 2 of 7
	h.step(2*time.Second, 3)
	s3 := []string{ex.ID.Server.String() + " weight 0", fb.ID.Server.String() + " weight 10"}
	got = h.events()
	slices.Sort(got)
	eq(t, "fourth", got, s3)
	if st := h.status(admin0.ID); st.Weight != 0 || !st.Up {
		t.Fatalf("admin weight 0: %+v", st)
	}
	if st := h.status(ex.ID); st.Weight != 0 || st.ConfiguredWeight != 10 {
		t.Fatalf("exec: %+v", st)
	}
}

func TestManagerUpdateRejectsBadSpecs(t *testing.T) {
	h := newHarness(t)
	good := spec(1, Config{})
	h.update(good)
	h.events()
	bad := spec(2, Config{Type: TypeHTTP, Expect: "x"})
	err := h.m.Update([]Spec{good, bad, good})
	if err == nil || !strings.Contains(err.Error(), "health_check.expect: not used by a \"http\" check") ||
		!strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("error %v", err)
	}
	if len(h.m.Status()) != 1 {
		t.Fatal("a rejected update changed the checks")
	}
	eq(t, "rejected update", h.events(), nil)
}

func TestManagerNoneCheck(t *testing.T) {
	h := newHarness(t)
	n := spec(1, Config{Type: TypeNone})
	h.update(n)
	h.clk.Advance(time.Hour)
	if c := h.sc.nCalls(n.ID); c != 0 {
		t.Fatalf("none check probed %d times", c)
	}
	if st := h.status(n.ID); !st.Up || st.Reason != "no health check" {
		t.Fatalf("%+v", st)
	}
}

func TestManagerSlowSinkDoesNotBlock(t *testing.T) {
	block := make(chan struct{})
	sink := &blockingSink{block: block}
	clk := newFakeClock()
	sc := newScript()
	hooks := make(chan string, 100)
	m := NewManager(zerolog.Nop(), sink, WithClock(clk), WithJitter(func(time.Duration) time.Duration { return 0 }),
		withCheckers(sc.factory), withHook(func(s string) { hooks <- s }))
	a := spec(1, Config{Rise: 1, Fall: 1})
	sc.push(a.ID, failResult("x"), okResult("y"), failResult("z"))
	if err := m.Update([]Spec{a}); err != nil { // the sink blocks on the initial note
		t.Fatal(err)
	}
	for i := range 3 {
		if i > 0 {
			clk.Advance(2 * time.Second)
		}
		for s := <-hooks; s != "result"; s = <-hooks {
		}
	}
	if st := m.Status(); len(st) != 1 || st[0].Checks != 3 {
		t.Fatalf("checks did not proceed while the sink blocked: %+v", st)
	}
	close(block)
	m.notes.flush()
	m.Close()
	if got := sink.n.Load(); got != 4 {
		t.Fatalf("sink got %d calls, want 4", got)
	}
}

type blockingSink struct {
	block chan struct{}
	n     atomic.Int32
}

func (s *blockingSink) SetHealth(Transition)    { <-s.block; s.n.Add(1) }
func (s *blockingSink) SetWeight(TargetID, int) { <-s.block; s.n.Add(1) }

func TestStatusJSON(t *testing.T) {
	h := newHarness(t)
	h.sc.push(tid(1), failResult("status 503"))
	h.update(spec(1, Config{Type: TypeHTTP}))
	h.wait(1)
	b, err := json.Marshal(h.m.Status())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"id":{"service":"tcp/192.0.2.1:80","server":"10.0.0.1:80"}`, `"type":"http"`, `"up":false`,
		`"reason":"status 503"`, `"last_ok":false`, `"failures":1`, `"configured_weight":10`, `"on_failure":"remove"`, `"checks":1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status JSON lacks %s:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "cert_not_after") {
		t.Errorf("zero cert expiry not omitted: %s", b)
	}
}
