package failover

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/failover/ctlmsg"
	"github.com/ulvs/ulvs/failover/garp"
	"github.com/ulvs/ulvs/failover/vrrp"
)

// Director is what the failover node drives; the daemon implements it.
type Director interface {
	// BecomeActive starts answering ARP/NDP for the VIPs and forwarding and
	// adds the NAT router addresses. The node sends the gratuitous ARP/NA
	// burst itself right after (Config.Announce).
	BecomeActive(reason string)
	// BecomeBackup stops answering ARP and forwarding at once and removes
	// the NAT router addresses. It must not block for long.
	BecomeBackup(reason string)
}

// BulkSender streams the whole connection table to the backup at to (its
// address on the sync network) and returns the number of entries sent; see
// connsync.SendBulk. Called on its own goroutine.
type BulkSender func(ctx context.Context, to netip.Addr) (int, error)

// Network is one heartbeat network.
type Network struct {
	Interface string
	// Peer is the peer director's address on this network: adverts are
	// accepted only from it, and control messages go to it.
	Peer netip.Addr
	// Local is our address here (the VRRP primary address); the interface's
	// first address of Peer's family when invalid.
	Local netip.Addr
}

// DefaultControlPort is the UDP port of the authenticated control messages.
const DefaultControlPort = 8849

// Config configures a Node. Its fields mirror the [failover] section.
type Config struct {
	VRID         uint8
	Priority     uint8
	Interval     time.Duration
	Networks     []Network
	VIPs         []netip.Addr // listed in every advert and announced at takeover
	Unicast      bool         // send adverts to the peers instead of the group
	Preempt      bool
	PreemptDelay time.Duration
	Secret       []byte
	RequireSync  bool // failback waits for a bulk copy (sync = true)
	ControlPort  int  // DefaultControlPort when 0
	// SyncInterface names the network (one of Networks) over which bulk
	// copies are streamed; the last network when empty.
	SyncInterface string
	// Announce sends the gratuitous ARP / unsolicited NA burst on every
	// heartbeat interface at takeover: GARPCount rounds over GARPPeriod.
	Announce   bool
	GARPCount  int
	GARPPeriod time.Duration
	// AnnounceInterfaces overrides where the burst goes (default: the
	// heartbeat interfaces).
	AnnounceInterfaces []string
	// SyncReceived, when set, returns the number of connections the
	// backup's sync receiver has delivered so far (a counter). A bulk copy
	// then counts as complete only when at least as many entries as the
	// active announced arrived after the request; otherwise the backup asks
	// again. Nil trusts the bulk-done message.
	SyncReceived func() uint64
}

// Node runs the state machine over real sockets: VRRPv3 on raw sockets on
// every heartbeat network, the control messages over UDP, the announcement
// bursts on AF_PACKET.
type Node struct {
	cfg     Config
	dir     Director
	log     zerolog.Logger
	bulk    BulkSender
	m       *Machine
	state   atomic.Uint32
	synced  atomic.Bool
	netDown atomic.Uint64 // bit i: heartbeat network i down

	adv   []AdvertConn
	ctl   []ControlConn
	ann   []Announcer
	evs   chan Event
	bulkc chan bulkDone

	annCancel context.CancelFunc
	rctx      context.Context
	bulkBusy  bool

	rejectLogged     time.Time
	rejectSuppressed uint64
	last             time.Time // the machine's clock: the latest Step time
	recvAtRequest    uint64    // SyncReceived() when the first pending request went out
	requestPending   bool
	syncDone         bool // to step EvSyncDone after the current actions
	// A bulk-done message overtakes the last datagrams of its copy while
	// the backup's sync receiver still works through its socket buffer:
	// the node then waits for the count to reach the announced number
	// while it still grows (settling), and asks again only once it stalls.
	settling    bool
	settleCount uint32    // entries the active announced
	settleGot   uint64    // received at the last check
	settleMoved time.Time // when the received count last grew
	settleTimer *time.Timer
	wg          sync.WaitGroup
}

// AdvertConn is one heartbeat network's VRRP socket (*vrrp.Conn).
type AdvertConn interface {
	Send(a *vrrp.Advert) error
	// Recv blocks for the next packet; a refused one returns its reason
	// and a nil error; err is set only when the socket fails or is closed.
	Recv(a *vrrp.Advert) (from netip.Addr, r vrrp.Reason, err error)
	Src() netip.Addr
	Close() error
}

// ControlConn is one network's socket for control messages (*net.UDPConn).
type ControlConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error)
	Close() error
}

// Announcer sends the takeover burst on one interface (*garp.Announcer).
type Announcer interface {
	Announce(ctx context.Context, vips []netip.Addr, count int, period time.Duration) error
	Interface() string
	Close() error
}

var (
	_ AdvertConn  = (*vrrp.Conn)(nil)
	_ ControlConn = (*net.UDPConn)(nil)
	_ Announcer   = (*garp.Announcer)(nil)
)

type bulkDone struct {
	net int
	to  netip.Addr
	n   int
	err error
}

// ErrConfig wraps configuration errors.
var ErrConfig = errors.New("failover: bad configuration")

// NewNode checks cfg and returns a node; Open then Run start it.
func NewNode(cfg Config, dir Director, bulk BulkSender, log zerolog.Logger) (*Node, error) {
	if len(cfg.Networks) == 0 {
		return nil, fmt.Errorf("%w: no heartbeat interfaces", ErrConfig)
	}
	for i, n := range cfg.Networks {
		if n.Interface == "" {
			return nil, fmt.Errorf("%w: network %d has no interface", ErrConfig, i)
		}
		if !n.Peer.IsValid() {
			return nil, fmt.Errorf("%w: interface %s has no peer address", ErrConfig, n.Interface)
		}
	}
	if cfg.ControlPort == 0 {
		cfg.ControlPort = DefaultControlPort
	}
	return &Node{cfg: cfg, dir: dir, bulk: bulk, log: log, evs: make(chan Event, 64), bulkc: make(chan bulkDone, 4)}, nil
}

func cryptoRand() uint64 {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic("failover: crypto/rand failed: " + err.Error()) // never on Linux
	}
	return binary.LittleEndian.Uint64(b[:])
}

// Open opens every socket (in the calling thread's network namespace):
// VRRP raw sockets and control UDP sockets on every heartbeat network, and
// AF_PACKET announcers when Config.Announce is set; then it calls Attach.
func (n *Node) Open() (err error) {
	var (
		adv []AdvertConn
		ctl []ControlConn
		ann []Announcer
	)
	defer func() {
		if err != nil {
			for _, c := range adv {
				c.Close()
			}
			for _, c := range ctl {
				c.Close()
			}
			for _, a := range ann {
				a.Close()
			}
		}
	}()
	for i, nw := range n.cfg.Networks {
		c, err := vrrp.Listen(vrrp.Config{
			Interface: nw.Interface, IPv6: nw.Peer.Is6() && !nw.Peer.Is4In6(), Src: nw.Local,
			Peers: []netip.Addr{nw.Peer}, Unicast: n.cfg.Unicast, VRID: n.cfg.VRID,
		})
		if err != nil {
			return err
		}
		adv = append(adv, c)
		src := c.Src()
		if src.IsLinkLocalUnicast() {
			src = src.WithZone(nw.Interface)
		}
		uc, err := listenControl(nw.Interface, src, n.cfg.ControlPort)
		if err != nil {
			return fmt.Errorf("failover: control socket on network %d (%s): %w", i, nw.Interface, err)
		}
		ctl = append(ctl, uc)
	}
	if n.cfg.Announce {
		ifs := n.cfg.AnnounceInterfaces
		if len(ifs) == 0 {
			for _, nw := range n.cfg.Networks {
				ifs = append(ifs, nw.Interface)
			}
		}
		for _, name := range ifs {
			a, err := garp.NewAnnouncer(name)
			if err != nil {
				return err
			}
			ann = append(ann, a)
		}
	}
	return n.Attach(adv, ctl, ann)
}

// Attach gives the node its sockets, one AdvertConn and one ControlConn
// per configured network (in order), and builds the state machine. Open
// calls it with real sockets; tests pass fakes. The node closes them when
// Run returns.
func (n *Node) Attach(adv []AdvertConn, ctl []ControlConn, ann []Announcer) error {
	if len(adv) != len(n.cfg.Networks) || len(ctl) != len(n.cfg.Networks) {
		return fmt.Errorf("%w: %d networks but %d advert and %d control sockets", ErrConfig, len(n.cfg.Networks), len(adv), len(ctl))
	}
	local := make([]netip.Addr, len(adv))
	for i, c := range adv {
		local[i] = c.Src().WithZone("")
	}
	m, err := NewMachine(MachineConfig{
		VRID: n.cfg.VRID, Priority: n.cfg.Priority, Interval: n.cfg.Interval, Local: local,
		Preempt: n.cfg.Preempt, PreemptDelay: n.cfg.PreemptDelay, Secret: n.cfg.Secret,
		RequireSync: n.cfg.RequireSync,
	}, cryptoRand)
	if err != nil {
		return err
	}
	n.adv, n.ctl, n.ann, n.m = adv, ctl, ann, m
	return nil
}

func listenControl(ifname string, local netip.Addr, port int) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = bindToDevice(fd, ifname)
		}); err != nil {
			return err
		}
		return serr
	}}
	network := "udp4"
	if local.Is6() {
		network = "udp6"
	}
	pc, err := lc.ListenPacket(context.Background(), network, netip.AddrPortFrom(local, uint16(port)).String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

func (n *Node) closeAll() {
	for _, c := range n.adv {
		c.Close()
	}
	for _, c := range n.ctl {
		c.Close()
	}
	for _, a := range n.ann {
		a.Close()
	}
}

func (n *Node) syncNet() int {
	for i, nw := range n.cfg.Networks {
		if nw.Interface == n.cfg.SyncInterface {
			return i
		}
	}
	return len(n.cfg.Networks) - 1
}

// Status is a snapshot for the control API and metrics.
type Status struct {
	State  State
	Synced bool
	// NetworkDown[i] is true while heartbeats are missing on network i but
	// heard on another (as seen by a backup).
	NetworkDown []bool
}

// Status returns the node's status (safe for concurrent use).
func (n *Node) Status() Status {
	st := Status{State: n.State(), Synced: n.Synced(), NetworkDown: make([]bool, len(n.cfg.Networks))}
	bits := n.netDown.Load()
	for i := range st.NetworkDown {
		st.NetworkDown[i] = i < 64 && bits&(1<<uint(i)) != 0
	}
	return st
}

// Synced reports whether this node, as backup, has received a complete bulk
// copy since it last became backup (safe for concurrent use).
func (n *Node) Synced() bool { return n.synced.Load() }

// State is the current role (safe for concurrent use).
func (n *Node) State() State { return State(n.state.Load()) }

// Run runs the node until ctx ends, then shuts down gracefully (a
// priority-0 advert so that the backup takes over at once) and closes the
// sockets. Open must have succeeded.
func (n *Node) Run(ctx context.Context) error {
	if n.m == nil {
		return errors.New("failover: Run before Open")
	}
	rctx, cancel := context.WithCancel(context.Background())
	n.rctx = rctx
	defer func() {
		cancel()
		n.closeAll()
		n.wg.Wait()
	}()
	for i := range n.adv {
		n.wg.Add(2)
		go n.readAdverts(rctx, i)
		go n.readControl(rctx, i)
	}
	// Events are stepped at the time they were received, and every pending
	// event is stepped before a timer: when this goroutine was starved
	// (GC pause, loaded CPU), adverts that arrived in time must reset the
	// down timer before it is seen to expire, or a backup would take over
	// from a live active.
	n.step(Event{Kind: EvStart})
	drain := func() {
		for {
			select {
			case ev := <-n.evs:
				n.step(ev)
			default:
				return
			}
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	n.settleTimer = time.NewTimer(time.Hour)
	n.settleTimer.Stop()
	defer n.settleTimer.Stop()
	for {
		if d := n.m.Deadline(); !d.IsZero() {
			timer.Reset(time.Until(d))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			n.step(Event{Kind: EvShutdown})
			if n.annCancel != nil {
				n.annCancel()
			}
			return nil
		case ev := <-n.evs:
			n.step(ev)
			drain()
		case b := <-n.bulkc:
			n.bulkBusy = false
			if b.err != nil {
				n.log.Warn().Err(b.err).Stringer("to", b.to).Msg("failover: bulk sync failed")
				continue
			}
			msg := n.m.SealBulkDone(time.Now(), uint32(b.n))
			n.sendControl(b.net, b.to, msg)
			n.log.Info().Stringer("to", b.to).Int("entries", b.n).Msg("failover: bulk sync sent")
		case <-n.settleTimer.C:
			n.settle(time.Now())
		case <-timer.C:
			drain()
			n.step(Event{Kind: EvTick})
		}
	}
}

// settleCheck is how often a settling node looks at its receive counter;
// settleStall is how long the count may stand still below the announced
// number before the copy counts as incomplete (datagrams were lost).
const (
	settleCheck = 50 * time.Millisecond
	settleStall = 750 * time.Millisecond
)

// checkBulk decides on a bulk-done message for count entries: complete,
// or settling while the receiver catches up. A later copy (the answer to a
// repeated request) announces its own count; the entries of both count
// towards it.
func (n *Node) checkBulk(count uint32, now time.Time) {
	n.settleCount = count
	if n.cfg.SyncReceived != nil {
		if got := n.cfg.SyncReceived() - n.recvAtRequest; got < uint64(count) {
			if !n.settling {
				n.settling = true
				n.settleGot, n.settleMoved = got, now
				n.settleTimer.Reset(settleCheck)
			}
			return
		}
	}
	n.settling = false
	n.bulkComplete(count)
	n.syncDone = true
}

// settle runs every settleCheck while a bulk copy is settling.
func (n *Node) settle(now time.Time) {
	if !n.settling {
		return
	}
	got := n.cfg.SyncReceived() - n.recvAtRequest
	switch {
	case got >= uint64(n.settleCount):
		n.settling = false
		n.bulkComplete(n.settleCount)
		n.step(Event{Kind: EvSyncDone})
		return
	case got > n.settleGot:
		n.settleGot, n.settleMoved = got, now
	case now.Sub(n.settleMoved) >= settleStall:
		n.settling = false
		n.requestPending = false
		n.log.Warn().Uint64("received", got).Uint32("sent", n.settleCount).Msg("failover: bulk copy incomplete; asking again")
		return
	}
	n.settleTimer.Reset(settleCheck)
}

// bulkComplete ends a pending request; the caller steps EvSyncDone.
func (n *Node) bulkComplete(count uint32) {
	n.requestPending = false
	n.log.Info().Uint32("entries", count).Msg("failover: bulk copy complete")
}

// step runs the machine on ev at ev's receive time (or now), keeping the
// machine's clock monotonic.
func (n *Node) step(ev Event) {
	now := time.Now()
	if !ev.At.IsZero() && ev.At.Before(now) {
		now = ev.At
	}
	if now.Before(n.last) {
		now = n.last
	}
	n.last = now
	n.apply(n.m.Step(now, ev))
}

func (n *Node) readAdverts(ctx context.Context, i int) {
	defer n.wg.Done()
	a := vrrp.Advert{Addrs: make([]netip.Addr, 0, 16)}
	var drops [vrrp.NumReasons]uint64
	for {
		from, r, err := n.adv[i].Recv(&a)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Error().Err(err).Int("network", i).Msg("failover: advert socket failed")
			}
			return
		}
		if r != vrrp.OK {
			drops[r]++
			if drops[r]&(drops[r]-1) == 0 { // log at 1, 2, 4, 8... (rate limit)
				n.log.Debug().Stringer("reason", r).Stringer("from", from).Uint64("count", drops[r]).Msg("failover: advert dropped")
			}
			continue
		}
		select {
		case n.evs <- Event{Kind: EvAdvert, Net: i, From: from, Priority: a.Priority, IntervalCS: a.Interval, At: time.Now()}:
		case <-ctx.Done():
			return
		}
	}
}

func (n *Node) readControl(ctx context.Context, i int) {
	defer n.wg.Done()
	buf := make([]byte, 512)
	peer := n.cfg.Networks[i].Peer.Unmap().WithZone("")
	for {
		k, from, err := n.ctl[i].ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Error().Err(err).Int("network", i).Msg("failover: control socket failed")
			}
			return
		}
		src := from.Addr().Unmap().WithZone("")
		if src != peer {
			continue // only the configured peer
		}
		select {
		case n.evs <- Event{Kind: EvControl, Net: i, From: src, Data: append([]byte(nil), buf[:k]...), At: time.Now()}:
		case <-ctx.Done():
			return
		}
	}
}

func (n *Node) sendControl(net int, to netip.Addr, msg []byte) {
	if net < 0 || net >= len(n.ctl) {
		return
	}
	if to.IsLinkLocalUnicast() && to.Zone() == "" {
		to = to.WithZone(n.cfg.Networks[net].Interface)
	}
	dst := netip.AddrPortFrom(to, uint16(n.cfg.ControlPort))
	if _, err := n.ctl[net].WriteToUDPAddrPort(msg, dst); err != nil {
		n.log.Debug().Err(err).Stringer("to", dst).Msg("failover: control send failed")
	}
}

func (n *Node) advert(prio uint8) {
	a := vrrp.Advert{VRID: n.cfg.VRID, Priority: prio, Interval: uint16(n.cfg.Interval / (10 * time.Millisecond)), Addrs: n.cfg.VIPs}
	for i, c := range n.adv {
		// Each network carries the VIPs of its family only.
		v6 := n.cfg.Networks[i].Peer.Is6() && !n.cfg.Networks[i].Peer.Is4In6()
		a.Addrs = a.Addrs[:0:0]
		for _, v := range n.cfg.VIPs {
			if (v.Is6() && !v.Is4In6()) == v6 {
				a.Addrs = append(a.Addrs, v)
			}
		}
		if err := c.Send(&a); err != nil {
			n.log.Debug().Err(err).Int("network", i).Msg("failover: advert send failed")
		}
	}
}

func (n *Node) apply(acts []Action) {
	defer func() {
		if n.syncDone {
			// Stepped after the loop: Step reuses the action slice.
			n.syncDone = false
			n.step(Event{Kind: EvSyncDone})
		}
		n.synced.Store(n.m.Synced())
	}()
	for _, a := range acts {
		switch a.Kind {
		case ActAdvert:
			n.advert(a.Priority)
		case ActBecomeMaster:
			n.state.Store(uint32(StateMaster))
			n.log.Warn().Str("reason", a.Reason).Msg("failover: becoming active")
			if n.dir != nil {
				n.dir.BecomeActive(a.Reason)
			}
			n.announce()
		case ActBecomeBackup:
			if n.annCancel != nil {
				n.annCancel()
				n.annCancel = nil
			}
			n.state.Store(uint32(n.m.State()))
			n.log.Warn().Str("reason", a.Reason).Msg("failover: becoming backup")
			if n.dir != nil {
				n.dir.BecomeBackup(a.Reason)
			}
		case ActControl:
			if a.From.IsValid() {
				n.sendControl(a.Net, a.From, a.Data)
				continue
			}
			for i, nw := range n.cfg.Networks {
				n.sendControl(i, nw.Peer, a.Data)
			}
		case ActSyncRequest:
			if n.settling {
				continue // the last copy is still arriving
			}
			if !n.requestPending && n.cfg.SyncReceived != nil {
				n.recvAtRequest = n.cfg.SyncReceived()
			}
			n.requestPending = true
			n.sendControl(a.Net, a.From, a.Data)
		case ActBulkDone:
			n.checkBulk(a.Count, time.Now())
		case ActStartBulk:
			if n.bulk == nil {
				n.log.Warn().Stringer("from", a.From).Msg("failover: sync requested but sync is off here")
				continue
			}
			if n.bulkBusy {
				continue // a copy is already streaming; the request was a retry
			}
			n.bulkBusy = true
			// The copy goes over the sync network to the peer there, wherever
			// the (authenticated) request arrived.
			sn := n.syncNet()
			to := n.cfg.Networks[sn].Peer
			n.log.Info().Stringer("to", to).Msg("failover: bulk sync requested")
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				ctx, cancel := context.WithTimeout(n.rctx, 5*time.Minute)
				defer cancel()
				k, err := n.bulk(ctx, to)
				select {
				case n.bulkc <- bulkDone{net: sn, to: to, n: k, err: err}:
				case <-n.rctx.Done():
				}
			}()
		case ActNetworkDown:
			n.netDown.Or(1 << (uint(a.Net) & 63))
			n.log.Error().Int("network", a.Net).Str("interface", n.cfg.Networks[a.Net].Interface).Str("reason", a.Reason).Msg("failover: heartbeat network down (peer still heard on another network; no failover)")
		case ActNetworkUp:
			n.netDown.And(^uint64(1 << (uint(a.Net) & 63)))
			n.log.Warn().Int("network", a.Net).Str("interface", n.cfg.Networks[a.Net].Interface).Msg("failover: heartbeat network up again")
		case ActReject:
			if errors.Is(a.Err, ctlmsg.ErrReplayed) {
				// The same message arrives once per network: expected.
				n.log.Debug().Err(a.Err).Stringer("from", a.From).Int("network", a.Net).Msg("failover: duplicate control message")
				continue
			}
			// Packets trigger this: at most one line per second.
			if now := time.Now(); now.Sub(n.rejectLogged) >= time.Second {
				n.log.Warn().Err(a.Err).Stringer("from", a.From).Int("network", a.Net).Uint64("suppressed", n.rejectSuppressed).Msg("failover: control message rejected")
				n.rejectLogged, n.rejectSuppressed = now, 0
			} else {
				n.rejectSuppressed++
			}
		}
	}
}

func (n *Node) announce() {
	if len(n.ann) == 0 || len(n.cfg.VIPs) == 0 {
		return
	}
	if n.annCancel != nil {
		n.annCancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.annCancel = cancel
	for _, a := range n.ann {
		n.wg.Add(1)
		go func(a Announcer) {
			defer n.wg.Done()
			period := n.cfg.GARPPeriod
			if period == 0 {
				period = garp.DefaultPeriod
			}
			if err := a.Announce(ctx, n.cfg.VIPs, n.cfg.GARPCount, period); err != nil && !errors.Is(err, context.Canceled) {
				n.log.Warn().Err(err).Str("interface", a.Interface()).Msg("failover: announcement burst failed")
			}
		}(a)
	}
}
