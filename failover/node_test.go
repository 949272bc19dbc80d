package failover

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/failover/vrrp"
)

// A fake network for Node tests without root: every hub is one heartbeat
// network; members exchange adverts and control messages in process.

type fakeHub struct {
	mu      sync.Mutex
	up      bool
	advs    []*fakeAdv
	ctls    []*fakeCtl
	dropped map[netip.Addr]bool // crashed members: they neither send nor receive
}

func newHub() *fakeHub { return &fakeHub{up: true, dropped: map[netip.Addr]bool{}} }

func (h *fakeHub) setUp(up bool) { h.mu.Lock(); h.up = up; h.mu.Unlock() }
func (h *fakeHub) crash(a netip.Addr, dead bool) {
	h.mu.Lock()
	h.dropped[a] = dead
	h.mu.Unlock()
}

type advPkt struct {
	from netip.Addr
	a    vrrp.Advert
}

type fakeAdv struct {
	hub    *fakeHub
	src    netip.Addr
	in     chan advPkt
	closed chan struct{}
	once   sync.Once
}

func (c *fakeAdv) Send(a *vrrp.Advert) error {
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	if !c.hub.up || c.hub.dropped[c.src] {
		return nil
	}
	for _, m := range c.hub.advs {
		if m != c && !c.hub.dropped[m.src] {
			cp := *a
			cp.Addrs = append([]netip.Addr(nil), a.Addrs...)
			select {
			case m.in <- advPkt{c.src, cp}:
			default:
			}
		}
	}
	return nil
}

func (c *fakeAdv) Recv(a *vrrp.Advert) (netip.Addr, vrrp.Reason, error) {
	select {
	case p := <-c.in:
		a.VRID, a.Priority, a.Interval = p.a.VRID, p.a.Priority, p.a.Interval
		a.Addrs = append(a.Addrs[:0], p.a.Addrs...)
		return p.from, vrrp.OK, nil
	case <-c.closed:
		return netip.Addr{}, vrrp.OK, net.ErrClosed
	}
}

func (c *fakeAdv) Src() netip.Addr { return c.src }
func (c *fakeAdv) Close() error    { c.once.Do(func() { close(c.closed) }); return nil }

type ctlPkt struct {
	from netip.AddrPort
	b    []byte
}

type fakeCtl struct {
	hub    *fakeHub
	src    netip.Addr
	in     chan ctlPkt
	closed chan struct{}
	once   sync.Once
	sent   atomic.Int64
}

func (c *fakeCtl) WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error) {
	c.sent.Add(1)
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	if !c.hub.up || c.hub.dropped[c.src] || c.hub.dropped[to.Addr()] {
		return len(b), nil
	}
	for _, m := range c.hub.ctls {
		if m.src == to.Addr() {
			select {
			case m.in <- ctlPkt{netip.AddrPortFrom(c.src, to.Port()), append([]byte(nil), b...)}:
			default:
			}
		}
	}
	return len(b), nil
}

func (c *fakeCtl) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	select {
	case p := <-c.in:
		return copy(b, p.b), p.from, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (c *fakeCtl) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

type fakeAnn struct{ n atomic.Int64 }

func (a *fakeAnn) Announce(context.Context, []netip.Addr, int, time.Duration) error {
	a.n.Add(1)
	return nil
}
func (a *fakeAnn) Interface() string { return "fake" }
func (a *fakeAnn) Close() error      { return nil }

type recDirector struct {
	active, backup atomic.Int64
}

func (d *recDirector) BecomeActive(string) { d.active.Add(1) }
func (d *recDirector) BecomeBackup(string) { d.backup.Add(1) }

type testNode struct {
	*Node
	dir    *recDirector
	ann    *fakeAnn
	ctls   []*fakeCtl
	cancel context.CancelFunc
	done   chan struct{}
}

func startFakeNode(t *testing.T, hubs []*fakeHub, host byte, prio uint8, mod func(*Config), bulk BulkSender) *testNode {
	t.Helper()
	cfg := Config{VRID: 57, Priority: prio, Interval: 100 * time.Millisecond, Preempt: true, Secret: []byte("secret"),
		VIPs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}, Announce: true}
	for i := range hubs {
		peer := byte(1)
		if host == 1 {
			peer = 2
		}
		cfg.Networks = append(cfg.Networks, Network{Interface: "n" + string(rune('0'+i)), Peer: netip.AddrFrom4([4]byte{10, 0, byte(i), peer})})
	}
	if mod != nil {
		mod(&cfg)
	}
	tn := &testNode{dir: &recDirector{}, ann: &fakeAnn{}, done: make(chan struct{})}
	n, err := NewNode(cfg, tn.dir, bulk, zerolog.New(zerolog.NewTestWriter(t)).Level(testLogLevel))
	if err != nil {
		t.Fatal(err)
	}
	var advs []AdvertConn
	var ctls []ControlConn
	for i, h := range hubs {
		src := netip.AddrFrom4([4]byte{10, 0, byte(i), host})
		a := &fakeAdv{hub: h, src: src, in: make(chan advPkt, 64), closed: make(chan struct{})}
		c := &fakeCtl{hub: h, src: src, in: make(chan ctlPkt, 64), closed: make(chan struct{})}
		h.mu.Lock()
		h.advs = append(h.advs, a)
		h.ctls = append(h.ctls, c)
		h.dropped[src] = false
		h.mu.Unlock()
		advs, ctls = append(advs, a), append(ctls, c)
		tn.ctls = append(tn.ctls, c)
	}
	if err := n.Attach(advs, ctls, []Announcer{tn.ann}); err != nil {
		t.Fatal(err)
	}
	tn.Node = n
	ctx, cancel := context.WithCancel(context.Background())
	tn.cancel = cancel
	go func() { defer close(tn.done); n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-tn.done })
	return tn
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNodeOverFakeNetworks(t *testing.T) {
	hubs := []*fakeHub{newHub(), newHub()}
	a := startFakeNode(t, hubs, 1, 150, nil, nil)
	b := startFakeNode(t, hubs, 2, 100, nil, nil)
	eventually(t, "A active, B backup", func() bool { return a.State() == StateMaster && b.State() == StateBackup })
	// The role is published before the director is called and the burst
	// (its own goroutine) starts.
	eventually(t, "takeover calls the director and the announcer", func() bool { return a.ann.n.Load() >= 1 && a.dir.active.Load() >= 1 })

	// Full partition: both active; heal: the VRRP winner stays.
	for _, h := range hubs {
		h.setUp(false)
	}
	eventually(t, "both active in a partition", func() bool { return b.State() == StateMaster })
	for _, h := range hubs {
		h.setUp(true)
	}
	eventually(t, "one active after healing", func() bool { return a.State() == StateMaster && b.State() == StateBackup })

	// One network down: no failover.
	hubs[0].setUp(false)
	time.Sleep(800 * time.Millisecond) // > 2 master-down intervals (about 380 ms)
	if b.State() != StateBackup {
		t.Fatal("B took over with one network up")
	}
	if st := b.Status(); !st.NetworkDown[0] || st.NetworkDown[1] {
		t.Fatalf("B's status %+v: want network 0 down", st)
	}
	hubs[0].setUp(true)
	eventually(t, "network 0 reported up", func() bool { return !b.Status().NetworkDown[0] })

	// Crash A on both networks: B takes over and fences A on every network.
	sent := b.ctls[0].sent.Load() + b.ctls[1].sent.Load()
	for _, h := range hubs {
		h.crash(netip.AddrFrom4([4]byte{10, 0, byte(indexOf(hubs, h)), 1}), true)
	}
	eventually(t, "B active after A crashed", func() bool { return b.State() == StateMaster })
	if d := b.ctls[0].sent.Load() + b.ctls[1].sent.Load() - sent; d < 2 {
		t.Fatalf("B sent %d stand-down messages, want one per network", d)
	}
	// A comes back: it hears B and the pair converges on A (preempt, no delay).
	for _, h := range hubs {
		h.crash(netip.AddrFrom4([4]byte{10, 0, byte(indexOf(hubs, h)), 1}), false)
	}
	eventually(t, "A active again", func() bool { return a.State() == StateMaster && b.State() == StateBackup })

	// Graceful stop of A: priority 0, B active at once; A's director told.
	backups := a.dir.backup.Load()
	a.cancel()
	<-a.done
	if a.dir.backup.Load() <= backups {
		t.Fatal("shutdown did not call BecomeBackup")
	}
	eventually(t, "B active after A's graceful stop", func() bool { return b.State() == StateMaster })
}

func indexOf(hubs []*fakeHub, h *fakeHub) int {
	for i, x := range hubs {
		if x == h {
			return i
		}
	}
	return -1
}

func TestNodeBulkSyncGatesFailback(t *testing.T) {
	hubs := []*fakeHub{newHub(), newHub()}
	release := make(chan struct{})
	var (
		bulkTo    atomic.Value
		bulks     atomic.Int64
		deliverOK atomic.Bool
		received  atomic.Uint64 // A's sync receiver counter
	)
	bulk := func(ctx context.Context, to netip.Addr) (int, error) {
		bulkTo.Store(to)
		select {
		case <-release:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		bulks.Add(1)
		if deliverOK.Load() {
			received.Add(42) // the entries reach A's receiver
		}
		return 42, nil
	}
	// 100 ms adverts: A must hear B before its own down timer fires, even
	// on a loaded machine.
	b := startFakeNode(t, hubs, 2, 100, func(c *Config) { c.SyncInterface = "n0" }, bulk)
	eventually(t, "B active alone", func() bool { return b.State() == StateMaster })
	a := startFakeNode(t, hubs, 1, 150, func(c *Config) { c.RequireSync = true; c.SyncReceived = received.Load }, nil)
	eventually(t, "B streams a bulk copy to A", func() bool { return bulkTo.Load() != nil })
	if to := bulkTo.Load().(netip.Addr); to != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("bulk copy sent to %v, want A's address on B's sync network n0", to)
	}
	time.Sleep(800 * time.Millisecond) // > 2 master-down intervals: no preemption yet
	if a.State() != StateBackup || a.Synced() {
		t.Fatal("A preempted before its bulk copy was complete")
	}
	// The copy completes but its datagrams are lost: A must ask again and
	// stay backup.
	close(release)
	eventually(t, "A asks again after an incomplete copy", func() bool { return bulks.Load() >= 2 })
	if a.State() != StateBackup || a.Synced() {
		t.Fatal("A took an incomplete bulk copy as complete")
	}
	deliverOK.Store(true)
	eventually(t, "A synced or active", func() bool { return a.Synced() || a.State() == StateMaster })
	eventually(t, "A active, B backup", func() bool { return a.State() == StateMaster && b.State() == StateBackup })
}

// The bulk-done message overtakes the copy's last datagrams while the
// backup's receiver still works through its socket buffer (seen under
// -race on a loaded machine): the backup must wait for the count to
// arrive, not ask again for ever.
func TestNodeBulkSyncWaitsForSlowReceiver(t *testing.T) {
	hubs := []*fakeHub{newHub(), newHub()}
	var (
		bulks    atomic.Int64
		received atomic.Uint64 // A's sync receiver counter
	)
	const entries = 40
	tctx := t.Context()
	bulk := func(_ context.Context, to netip.Addr) (int, error) {
		bulks.Add(1)
		go func() {
			// The receiver delivers the entries over 1 s, after the
			// bulk-done message went out, slower than settleStall per
			// whole copy but never standing still that long.
			for i := 0; i < entries; i++ {
				select {
				case <-time.After(25 * time.Millisecond):
					received.Add(1)
				case <-tctx.Done():
					return
				}
			}
		}()
		return entries, nil
	}
	b := startFakeNode(t, hubs, 2, 100, func(c *Config) { c.SyncInterface = "n0" }, bulk)
	eventually(t, "B active alone", func() bool { return b.State() == StateMaster })
	a := startFakeNode(t, hubs, 1, 150, func(c *Config) { c.RequireSync = true; c.SyncReceived = received.Load }, nil)
	eventually(t, "A synced or active", func() bool { return a.Synced() || a.State() == StateMaster })
	if n := bulks.Load(); n != 1 {
		t.Fatalf("%d bulk copies before A counted one complete, want 1", n)
	}
	if got := received.Load(); got < entries {
		t.Fatalf("A counted its copy complete after %d of %d entries", got, entries)
	}
	eventually(t, "A active, B backup", func() bool { return a.State() == StateMaster && b.State() == StateBackup })
}

var testLogLevel = zerolog.InfoLevel
