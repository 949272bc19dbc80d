package failover

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/failover/ctlmsg"
)

const ival = 100 * time.Millisecond

var t0 = time.Unix(1_800_000_000, 0)

type simNode struct {
	name   string
	m      *Machine
	local  []netip.Addr
	hung   bool // takes no steps; with hold, what it receives waits in held
	hold   bool
	held   []Event
	dead   bool
	noBulk bool // does not answer sync requests
	log    []Action
	// times of role changes
	becameMaster []time.Time
	becameBackup []time.Time
}

type delivery struct {
	to *simNode
	ev Event
}

// sim connects nodes over heartbeat networks with zero latency and drives
// them with a fake clock: no sleeps, fully deterministic.
type sim struct {
	t      *testing.T
	now    time.Time
	nodes  []*simNode
	netUp  []bool
	queue  []delivery
	nonce  uint64
	steps  int
	taps   []func(from *simNode, a Action)
	rejmsg []error
}

func newSim(t *testing.T, nets int) *sim {
	s := &sim{t: t, now: t0, netUp: make([]bool, nets)}
	for i := range s.netUp {
		s.netUp[i] = true
	}
	return s
}

func (s *sim) add(name string, prio uint8, host byte, mod func(*MachineConfig)) *simNode {
	n := &simNode{name: name}
	for i := range s.netUp {
		n.local = append(n.local, netip.AddrFrom4([4]byte{10, 0, byte(i), host}))
	}
	cfg := MachineConfig{VRID: 57, Priority: prio, Interval: ival, Local: n.local, Preempt: true, Secret: []byte("shared secret")}
	if mod != nil {
		mod(&cfg)
	}
	m, err := NewMachine(cfg, func() uint64 { s.nonce++; return s.nonce })
	if err != nil {
		s.t.Fatal(err)
	}
	n.m = m
	s.nodes = append(s.nodes, n)
	return n
}

func (s *sim) step(n *simNode, ev Event) {
	s.steps++
	if s.steps > 1_000_000 {
		s.t.Fatal("simulation does not converge")
	}
	acts := n.m.Step(s.now, ev)
	for _, a := range acts {
		n.log = append(n.log, a)
		for _, tap := range s.taps {
			tap(n, a)
		}
		switch a.Kind {
		case ActBecomeMaster:
			n.becameMaster = append(n.becameMaster, s.now)
		case ActBecomeBackup:
			n.becameBackup = append(n.becameBackup, s.now)
		case ActReject:
			s.rejmsg = append(s.rejmsg, a.Err)
		case ActAdvert:
			for net, up := range s.netUp {
				if !up {
					continue
				}
				for _, o := range s.nodes {
					if o != n {
						s.queue = append(s.queue, delivery{o, Event{Kind: EvAdvert, Net: net, From: n.local[net], Priority: a.Priority, IntervalCS: uint16(ival / (10 * time.Millisecond))}})
					}
				}
			}
		case ActControl:
			for net, up := range s.netUp {
				if !up {
					continue
				}
				for _, o := range s.nodes {
					if o != n {
						s.queue = append(s.queue, delivery{o, Event{Kind: EvControl, Net: net, From: n.local[net], Data: append([]byte(nil), a.Data...)}})
					}
				}
			}
		case ActSyncRequest:
			for _, o := range s.nodes {
				if o != n && o.local[a.Net] == a.From && s.netUp[a.Net] {
					s.queue = append(s.queue, delivery{o, Event{Kind: EvControl, Net: a.Net, From: n.local[a.Net], Data: append([]byte(nil), a.Data...)}})
				}
			}
		case ActBulkDone:
			// The runner found the copy complete.
			s.queue = append(s.queue, delivery{n, Event{Kind: EvSyncDone}})
		case ActStartBulk:
			if n.noBulk {
				continue
			}
			msg := n.m.SealBulkDone(s.now, 1234)
			for _, o := range s.nodes {
				if o != n && o.local[a.Net] == a.From && s.netUp[a.Net] {
					s.queue = append(s.queue, delivery{o, Event{Kind: EvControl, Net: a.Net, From: n.local[a.Net], Data: msg}})
				}
			}
		}
	}
}

func (s *sim) drain() {
	for len(s.queue) > 0 {
		d := s.queue[0]
		s.queue = s.queue[1:]
		if d.to.hung && d.to.hold {
			d.to.held = append(d.to.held, d.ev)
			continue
		}
		if d.to.hung || d.to.dead {
			continue
		}
		s.step(d.to, d.ev)
	}
}

func (s *sim) start(n *simNode) {
	n.dead, n.hung = false, false
	s.step(n, Event{Kind: EvStart})
	s.drain()
}

// run advances the clock to until, firing every deadline on the way.
func (s *sim) run(d time.Duration) {
	until := s.now.Add(d)
	for {
		s.drain()
		var next time.Time
		var who *simNode
		for _, n := range s.nodes {
			if n.hung || n.dead {
				continue
			}
			dl := n.m.Deadline()
			if dl.IsZero() {
				continue
			}
			if who == nil || dl.Before(next) {
				next, who = dl, n
			}
		}
		if who == nil || next.After(until) {
			s.now = until
			return
		}
		if next.After(s.now) {
			s.now = next
		}
		s.step(who, Event{Kind: EvTick})
	}
}

func (s *sim) masters() []*simNode {
	var out []*simNode
	for _, n := range s.nodes {
		if !n.dead && !n.hung && n.m.State() == StateMaster {
			out = append(out, n)
		}
	}
	return out
}

func (s *sim) wantMaster(n *simNode) {
	s.t.Helper()
	ms := s.masters()
	if len(ms) != 1 || ms[0] != n {
		names := []string{}
		for _, m := range ms {
			names = append(names, m.name)
		}
		s.t.Fatalf("at +%v masters %v, want exactly %s", s.now.Sub(t0), names, n.name)
	}
}

func (s *sim) kill(n *simNode) { n.dead = true }

func TestMachineConfigErrors(t *testing.T) {
	good := MachineConfig{VRID: 1, Priority: 100, Interval: ival, Local: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Secret: []byte("s")}
	cases := []struct {
		mod  func(*MachineConfig)
		want error
	}{
		{func(c *MachineConfig) { c.Priority = 0 }, ErrPriority},
		{func(c *MachineConfig) { c.Interval = time.Millisecond }, ErrInterval},
		{func(c *MachineConfig) { c.Interval = time.Minute }, ErrInterval},
		{func(c *MachineConfig) { c.Local = nil }, ErrNetworks},
		{func(c *MachineConfig) { c.Local = []netip.Addr{{}} }, ErrNetworks},
		{func(c *MachineConfig) { c.Secret = nil }, ErrSecret},
	}
	for i, tc := range cases {
		c := good
		tc.mod(&c)
		if _, err := NewMachine(c, nil); !errors.Is(err, tc.want) {
			t.Errorf("case %d: %v, want %v", i, err, tc.want)
		}
	}
	if _, err := NewMachine(good, nil); err != nil {
		t.Fatal(err)
	}
}

func TestTimersFollowRFC(t *testing.T) {
	s := newSim(t, 1)
	a := s.add("a", 100, 1, nil)
	// Skew = (256-100)*100ms/256 = 60.9375ms; MDI = 360.9375ms.
	if a.m.Skew() != 60937500*time.Nanosecond || a.m.MasterDownInterval() != 360937500*time.Nanosecond {
		t.Fatalf("skew %v mdi %v", a.m.Skew(), a.m.MasterDownInterval())
	}
	s.start(a)
	if a.m.State() != StateBackup {
		t.Fatal("must start as backup")
	}
	s.run(360 * time.Millisecond)
	if a.m.State() != StateBackup {
		t.Fatal("took over before the master-down interval")
	}
	s.run(time.Millisecond)
	if a.m.State() != StateMaster || !a.becameMaster[0].Equal(t0.Add(a.m.MasterDownInterval())) {
		t.Fatalf("state %v at %v", a.m.State(), a.becameMaster)
	}
	// A master advertises every interval.
	n := 0
	s.taps = append(s.taps, func(from *simNode, x Action) {
		if x.Kind == ActAdvert {
			n++
		}
	})
	s.run(time.Second)
	if n != 10 {
		t.Fatalf("%d adverts in 1 s, want 10", n)
	}
}

func TestPriority255StartsMaster(t *testing.T) {
	s := newSim(t, 1)
	a := s.add("owner", 255, 1, nil)
	s.start(a)
	if a.m.State() != StateMaster {
		t.Fatal("priority 255 must become master at start")
	}
	b := s.add("owner-sync", 255, 2, func(c *MachineConfig) { c.RequireSync = true })
	s.start(b)
	if b.m.State() != StateBackup {
		t.Fatal("priority 255 with require_sync must wait as backup")
	}
}

func TestElectionHigherPriorityWins(t *testing.T) {
	s := newSim(t, 2)
	lo := s.add("lo", 100, 9, nil) // higher address, lower priority
	hi := s.add("hi", 150, 1, nil)
	s.start(lo)
	s.start(hi)
	s.run(2 * time.Second)
	s.wantMaster(hi)
	if len(lo.becameMaster) != 0 {
		t.Fatal("the lower priority was master at some point")
	}
}

func TestElectionTieHigherAddressWins(t *testing.T) {
	s := newSim(t, 2)
	a := s.add("a", 100, 1, nil)
	b := s.add("b", 100, 2, nil)
	s.start(a)
	s.start(b)
	s.run(2 * time.Second)
	// Both time out together and become master; on hearing each other the
	// lower address yields at once.
	s.wantMaster(b)
}

func TestHungPeerFailover(t *testing.T) {
	s := newSim(t, 2)
	a := s.add("a", 150, 1, nil)
	b := s.add("b", 100, 2, nil)
	s.start(a)
	s.start(b)
	s.run(time.Second)
	s.wantMaster(a)
	a.hung = true // stops advertising, process still "there"
	hungAt := s.now
	s.run(time.Second)
	s.wantMaster(b)
	// Took over within 3 intervals + skew of the last advert heard.
	took := b.becameMaster[0].Sub(hungAt)
	if took > b.m.MasterDownInterval() || took < 3*ival {
		t.Fatalf("took over after %v, MDI %v", took, b.m.MasterDownInterval())
	}
	// The hung peer wakes up still believing it is master (what it missed
	// is dropped here) and advertises its higher priority: the new active
	// yields by the VRRP rule, and there is one master at a time.
	a.hung = false
	s.run(10 * time.Millisecond)
	if got := len(s.masters()); got > 1 {
		t.Fatal("two masters after the hung peer woke")
	}
	s.run(2 * time.Second)
	s.wantMaster(a)
}

func TestBothNetworksDownIsFailover(t *testing.T) {
	s := newSim(t, 2)
	a := s.add("a", 150, 1, nil)
	b := s.add("b", 100, 2, nil)
	s.start(a)
	s.start(b)
	s.run(time.Second)
	s.wantMaster(a)
	s.netUp[0], s.netUp[1] = false, false
	s.run(time.Second)
	if b.m.State() != StateMaster {
		t.Fatal("backup did not take over with both networks down")
	}
	// A partition: neither hears the other, both are master. This is the
	// documented limit of any two-node scheme without a third party.
	if len(s.masters()) != 2 {
		t.Fatalf("partition: %d masters", len(s.masters()))
	}
	// Healing: exactly one remains, the higher priority.
	s.netUp[0], s.netUp[1] = true, true
	s.run(time.Second)
	s.wantMaster(a)
}

func TestOneNetworkDownIsNotFailover(t *testing.T) {
	s := newSim(t, 2)
	a := s.add("a", 150, 1, nil)
	b := s.add("b", 100, 2, nil)
	s.start(a)
	s.start(b)
	s.run(time.Second)
	s.netUp[0] = false
	s.run(3 * time.Second)
	s.wantMaster(a)
	if len(b.becameMaster) != 0 {
		t.Fatal("backup took over while the active was heard on network 1")
	}
	if !b.m.NetworkDown(0) || b.m.NetworkDown(1) {
		t.Fatal("network 0 not reported down")
	}
	var down, up int
	for _, x := range b.log {
		if x.Kind == ActNetworkDown && x.Net == 0 {
			down++
		}
		if x.Kind == ActNetworkUp && x.Net == 0 {
			up++
		}
	}
	if down != 1 {
		t.Fatalf("network-down reported %d times", down)
	}
	s.netUp[0] = true
	s.run(time.Second)
	for _, x := range b.log {
		if x.Kind == ActNetworkUp && x.Net == 0 {
			up++
		}
	}
	if up != 1 || b.m.NetworkDown(0) {
		t.Fatal("network-up not reported")
	}
}

func TestPriorityZeroShutdown(t *testing.T) {
	s := newSim(t, 1)
	a := s.add("a", 150, 1, nil)
	b := s.add("b", 100, 2, nil)
	s.start(a)
	s.start(b)
	s.run(time.Second)
	s.wantMaster(a)
	s.run(ival / 2) // mid-interval
	s.step(a, Event{Kind: EvShutdown})
	at := s.now
	s.drain()
	if a.m.State() != StateStopped {
		t.Fatal("not stopped")
	}
	var sawZero bool
	for _, x := range a.log {
		if x.Kind == ActAdvert && x.Priority == 0 {
			sawZero = true
		}
	}
	if !sawZero {
		t.Fatal("no priority-0 advert on shutdown")
	}
	s.kill(a)
	s.run(time.Second)
	s.wantMaster(b)
	if took := b.becameMaster[0].Sub(at); took != b.m.Skew() {
		t.Fatalf("took over after %v, want Skew_Time %v", took, b.m.Skew())
	}
}

func TestPreemptWithDelay(t *testing.T) {
	s := newSim(t, 2)
	a := s.add("a", 150, 1, func(c *MachineConfig) { c.PreemptDelay = 5 * time.Second })
	b := s.add("b", 100, 2, nil)
	s.start(b)
	s.run(time.Second)
	s.wantMaster(b)
	s.start(a)
	back := s.now
	s.run(4900 * time.Millisecond)
	s.wantMaster(b) // still within the delay
	s.run(2 * time.Second)
	s.wantMaster(a)
	took := a.becameMaster[0].Sub(back)
	if took < 5*time.Second || took > 5*time.Second+a.m.MasterDownInterval() {
		t.Fatalf("preempted after %v", took)
	}
	// The old active stood down (VRRP and the stand-down message), so at
	// no instant were there two masters after the first advert.
	if len(b.becameBackup) < 2 {
		t.Fatal("b did not become backup")
	}
}

func TestNoPreemptStaysBackup(t *testing.T) {
	s := newSim(t, 2)
	a := s.add("a", 150, 1, func(c *MachineConfig) { c.Preempt = false })
	b := s.add("b", 100, 2, nil)
	s.start(b)
	s.run(time.Second)
	s.start(a)
	s.run(30 * time.Second)
	s.wantMaster(b)
	if len(a.becameMaster) != 0 {
		t.Fatal("preempt=false node took the role")
	}
}

func TestFailbackWaitsForSync(t *testing.T) {
	s := newSim(t, 2)
	a := s.add("a", 150, 1, func(c *MachineConfig) { c.PreemptDelay = time.Second; c.RequireSync = true })
	b := s.add("b", 100, 2, nil)
	b.noBulk = true // the active does not answer yet
	s.start(b)
	s.run(time.Second)
	s.start(a)
	s.run(10 * time.Second)
	s.wantMaster(b) // delay long passed, but no bulk copy
	reqs := 0
	for _, x := range b.log {
		if x.Kind == ActStartBulk {
			reqs++
		}
	}
	if reqs < 9 {
		t.Fatalf("sync requested %d times in 10 s (retry every 1 s)", reqs)
	}
	b.noBulk = false
	syncFrom := s.now
	s.run(2 * time.Second)
	if !a.m.Synced() && a.m.State() != StateMaster {
		t.Fatal("not synced")
	}
	s.wantMaster(a)
	if took := a.becameMaster[0].Sub(syncFrom); took > time.Second+a.m.MasterDownInterval() {
		t.Fatalf("failback %v after sync became possible", took)
	}
}

func TestStandDown(t *testing.T) {
	s := newSim(t, 1)
	a := s.add("a", 150, 1, nil)
	s.start(a)
	s.run(time.Second)
	if a.m.State() != StateMaster {
		t.Fatal("setup")
	}
	secret := []byte("shared secret")
	peer := netip.MustParseAddr("10.0.0.2")
	mk := func(sec []byte, at time.Time, nonce uint64, vrid uint8) []byte {
		return ctlmsg.Seal(make([]byte, ctlmsg.Size), sec, ctlmsg.Msg{Type: ctlmsg.StandDown, VRID: vrid, Priority: 100, Time: at.UnixNano(), Nonce: nonce})
	}
	reject := func(data []byte, want error) {
		t.Helper()
		s.rejmsg = nil
		s.step(a, Event{Kind: EvControl, From: peer, Data: data})
		s.drain()
		if a.m.State() != StateMaster {
			t.Fatalf("invalid stand-down obeyed (want %v)", want)
		}
		if len(s.rejmsg) != 1 || (want != nil && !errors.Is(s.rejmsg[0], want)) {
			t.Fatalf("rejections %v, want %v", s.rejmsg, want)
		}
	}
	reject(mk([]byte("wrong secret"), s.now, 1, 57), ctlmsg.ErrMAC)
	bad := mk(secret, s.now, 2, 57)
	bad[10] ^= 1 // tampered timestamp
	reject(bad, ctlmsg.ErrMAC)
	reject(mk(secret, s.now.Add(-11*time.Second), 3, 57), ctlmsg.ErrStale)
	reject(mk(secret, s.now.Add(11*time.Second), 4, 57), ctlmsg.ErrStale)
	reject(mk(secret, s.now, 5, 58), nil) // other VRID
	reject(bad[:40], ctlmsg.ErrShort)

	good := mk(secret, s.now.Add(-time.Second), 6, 57)
	s.step(a, Event{Kind: EvControl, From: peer, Data: good})
	if a.m.State() != StateBackup {
		t.Fatal("valid stand-down not obeyed at once")
	}
	// Nothing stops it from becoming master again if the peer then dies...
	s.run(time.Second)
	if a.m.State() != StateMaster {
		t.Fatal("no takeover after the fencing peer went silent")
	}
	// ...but the same message replayed is refused.
	reject(good, ctlmsg.ErrReplayed)
}

func TestSplitBrainTwoMastersResolve(t *testing.T) {
	for _, tc := range []struct {
		name         string
		pa, pb       uint8
		hostA, hostB byte
		winner       string
	}{
		{"priority", 150, 100, 1, 2, "a"},
		{"tie: higher address", 100, 100, 1, 2, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 2)
			a := s.add("a", tc.pa, tc.hostA, nil)
			b := s.add("b", tc.pb, tc.hostB, nil)
			s.netUp[0], s.netUp[1] = false, false
			s.start(a)
			s.start(b)
			s.run(time.Second)
			if len(s.masters()) != 2 {
				t.Fatal("setup: want two masters in the partition")
			}
			// Heal one network only: they hear each other's adverts.
			s.netUp[1] = true
			s.run(ival + time.Millisecond)
			w := map[string]*simNode{"a": a, "b": b}[tc.winner]
			s.wantMaster(w)
			s.run(5 * time.Second)
			s.wantMaster(w)
		})
	}
}

// TestNeverTwoMastersWhileConnected checks, at every step, that once the two
// nodes have heard each other and the networks stay up, the number of
// masters never exceeds one for longer than one delivery.
func TestNeverTwoMastersWhileConnected(t *testing.T) {
	s := newSim(t, 2)
	a := s.add("a", 150, 1, func(c *MachineConfig) { c.PreemptDelay = 500 * time.Millisecond })
	b := s.add("b", 120, 2, nil)
	violations := 0
	s.taps = append(s.taps, func(*simNode, Action) {})
	s.start(a)
	s.start(b)
	for i := 0; i < 50; i++ {
		s.run(97 * time.Millisecond)
		if len(s.masters()) > 1 {
			violations++
		}
		switch i {
		case 10:
			s.kill(a)
		case 20:
			s.start(a)
		case 35:
			s.step(b, Event{Kind: EvShutdown})
			s.drain()
			s.kill(b)
		}
	}
	if violations != 0 {
		t.Fatalf("%d samples with two masters", violations)
	}
	s.wantMaster(a)
}

func BenchmarkStepAdvert(b *testing.B) {
	m, _ := NewMachine(MachineConfig{VRID: 1, Priority: 100, Interval: ival, Local: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.1.2")}, Secret: []byte("s")}, func() uint64 { return 1 })
	now := t0
	m.Step(now, Event{Kind: EvStart})
	ev := Event{Kind: EvAdvert, From: netip.MustParseAddr("10.0.0.1"), Priority: 150, IntervalCS: 10}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Millisecond)
		ev.Net = i & 1
		m.Step(now, ev)
	}
}

// TestHungPeerWakesWithQueuedStandDown: the hung active's socket buffer
// keeps what arrived while it was stuck (the new active's adverts and its
// stand-down). On waking it processes them in order. At no sampled instant
// are there two masters, and the pair settles on the higher priority
// within two master-down intervals.
func TestHungPeerWakesWithQueuedStandDown(t *testing.T) {
	s := newSim(t, 2)
	a := s.add("a", 150, 1, nil)
	b := s.add("b", 100, 2, nil)
	s.start(a)
	s.start(b)
	s.run(time.Second)
	s.wantMaster(a)
	a.hung, a.hold = true, true
	s.run(time.Second)
	s.wantMaster(b)
	if len(a.held) == 0 {
		t.Fatal("nothing queued for the hung node")
	}
	// Wake: deliver the queue first, as a socket read would.
	a.hung = false
	for _, ev := range a.held {
		s.step(a, ev)
		s.drain()
		if len(s.masters()) > 1 {
			// a's stale state may emit one advert before it reads the
			// stand-down; b must not still be master when a is.
			t.Fatalf("two masters while the woken node drains its queue")
		}
	}
	a.held = nil
	for i := 0; i < 20; i++ {
		s.run(37 * time.Millisecond)
		if len(s.masters()) > 1 {
			t.Fatalf("two masters at +%v", s.now.Sub(t0))
		}
	}
	s.run(2 * a.m.MasterDownInterval())
	s.wantMaster(a)
	// The woken node obeyed the stand-down it found in its queue.
	obeyed := false
	for _, x := range a.log {
		if x.Kind == ActBecomeBackup && strings.HasPrefix(x.Reason, "stand-down") {
			obeyed = true
		}
	}
	if !obeyed && len(a.becameBackup) < 2 {
		t.Fatal("the woken active neither obeyed the stand-down nor yielded")
	}
}

func TestStandDownBetweenNewMasters(t *testing.T) {
	// Both became master within one interval: only the VRRP loser obeys.
	mk := func(prio uint8, host byte) *Machine {
		m, err := NewMachine(MachineConfig{VRID: 1, Priority: prio, Interval: ival, Local: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, host})}, Secret: []byte("k")}, func() uint64 { return uint64(host) })
		if err != nil {
			t.Fatal(err)
		}
		m.Step(t0, Event{Kind: EvStart})
		m.Step(t0.Add(time.Second), Event{Kind: EvTick})
		if m.State() != StateMaster {
			t.Fatal("setup")
		}
		return m
	}
	at := t0.Add(time.Second + ival/2)
	sd := func(prio uint8, host byte) Event {
		return Event{Kind: EvControl, From: netip.AddrFrom4([4]byte{10, 0, 0, host}), Data: ctlmsg.Seal(make([]byte, ctlmsg.Size), []byte("k"),
			ctlmsg.Msg{Type: ctlmsg.StandDown, VRID: 1, Priority: prio, Time: at.UnixNano(), Nonce: uint64(host)})}
	}
	hi := mk(150, 1)
	hi.Step(at, sd(100, 2))
	if hi.State() != StateMaster {
		t.Fatal("a new master obeyed a stand-down from a worse one")
	}
	lo := mk(100, 2)
	lo.Step(at, sd(150, 1))
	if lo.State() != StateBackup {
		t.Fatal("a new master ignored a stand-down from a better one")
	}
	// After one interval as master, any valid stand-down is obeyed.
	old := mk(150, 3)
	old.Step(t0.Add(time.Second+ival), sd(100, 4))
	if old.State() != StateBackup {
		t.Fatal("an established master ignored a valid stand-down")
	}
}

func TestEqualPriorityDoesNotPreempt(t *testing.T) {
	s := newSim(t, 1)
	a := s.add("a", 100, 1, nil) // lower address, active first
	s.start(a)
	s.run(time.Second)
	b := s.add("b", 100, 2, nil) // same priority, higher address, preempt on
	s.start(b)
	s.run(10 * time.Second)
	s.wantMaster(a)
	if len(b.becameMaster) != 0 {
		t.Fatal("an equal-priority backup preempted on its higher address")
	}
}
