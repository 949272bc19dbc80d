package failover

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ulvs/ulvs/failover/ctlmsg"
)

// State is a director's failover role.
type State uint8

// States (RFC 5798 §6.4 plus Stopped after a graceful shutdown).
const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateInit:
		return "init"
	case StateBackup:
		return "backup"
	case StateMaster:
		return "master"
	case StateStopped:
		return "stopped"
	}
	return "unknown"
}

// MachineConfig configures the state machine.
type MachineConfig struct {
	VRID     uint8
	Priority uint8         // 1..255; the higher is active
	Interval time.Duration // advertisement interval, 10 ms .. 40.95 s
	// Local holds our primary address on each heartbeat network (index =
	// network number). It breaks priority ties: the higher address wins.
	Local        []netip.Addr
	Preempt      bool
	PreemptDelay time.Duration
	// Secret authenticates stand-down, sync-request and bulk-done messages.
	Secret []byte
	// RequireSync makes a backup wait for a complete bulk copy of the
	// active's connection table before it preempts (failback).
	RequireSync bool
	// SyncRetry is how often a backup repeats its sync request until the
	// bulk copy is complete (default 1 s).
	SyncRetry time.Duration
	// ReplayWindow bounds the age of accepted control messages (default 10 s).
	ReplayWindow time.Duration
}

// Configuration errors.
var (
	ErrPriority = errors.New("failover: priority must be 1..255")
	ErrInterval = errors.New("failover: interval must be 10ms..40.95s")
	ErrNetworks = errors.New("failover: at least one heartbeat network with a local address is needed")
	ErrSecret   = errors.New("failover: secret is required (it authenticates stand-down and sync)")
)

// Validate checks c.
func (c *MachineConfig) Validate() error {
	if c.Priority == 0 {
		return ErrPriority
	}
	if c.Interval < 10*time.Millisecond || c.Interval > 4095*10*time.Millisecond {
		return fmt.Errorf("%w: %v", ErrInterval, c.Interval)
	}
	if len(c.Local) == 0 {
		return ErrNetworks
	}
	for i, a := range c.Local {
		if !a.IsValid() {
			return fmt.Errorf("%w: network %d has no address", ErrNetworks, i)
		}
	}
	if len(c.Secret) == 0 {
		return ErrSecret
	}
	return nil
}

// EventKind says what happened.
type EventKind uint8

// Events.
const (
	EvStart    EventKind = iota + 1
	EvTick               // time passed (call at Deadline)
	EvAdvert             // a VRRP advert from the peer passed the transport's checks
	EvControl            // a control message (ctlmsg) arrived; Data holds it
	EvSyncDone           // the connection table has been synced (bulk copy complete)
	EvShutdown           // graceful shutdown
)

// Event is the input of Step.
type Event struct {
	Kind     EventKind
	Net      int        // heartbeat network it arrived on
	From     netip.Addr // sender's address on that network
	Priority uint8      // EvAdvert
	// IntervalCS is the advert's Max Advertise Interval in centiseconds.
	IntervalCS uint16
	Data       []byte // EvControl
	// At is when the event was received (runners stamp it at the socket);
	// Step ignores it: a runner passes it as Step's now (see Node.Run).
	At time.Time
}

// ActionKind says what the runner must do.
type ActionKind uint8

// Actions.
const (
	// ActAdvert: send a VRRP advert with Priority on every network.
	ActAdvert ActionKind = iota + 1
	// ActBecomeMaster: start answering ARP/NDP and forwarding, add the NAT
	// router addresses, send the gratuitous ARP/NA burst.
	ActBecomeMaster
	// ActBecomeBackup: stop answering ARP and forwarding at once, remove the
	// NAT router addresses.
	ActBecomeBackup
	// ActControl: send Data (a sealed control message) to the peer on every
	// network.
	ActControl
	// ActStartBulk: stream the whole connection table to From (it asked),
	// then send a bulk-done message.
	ActStartBulk
	// ActSyncRequest: send Data (a sealed sync request) to From on Net, and
	// note how many synced entries have arrived so far.
	ActSyncRequest
	// ActBulkDone: the active says its bulk copy of Count entries is
	// complete. The runner checks that about as many arrived since the
	// request and then steps EvSyncDone; otherwise the request is repeated.
	ActBulkDone
	// ActNetworkDown / ActNetworkUp: heartbeats stopped / resumed on Net
	// while they continue on another network (not a failover).
	ActNetworkDown
	ActNetworkUp
	// ActReject: a control message was rejected (Reason says why).
	ActReject
)

func (k ActionKind) String() string {
	switch k {
	case ActAdvert:
		return "advert"
	case ActBecomeMaster:
		return "become-master"
	case ActBecomeBackup:
		return "become-backup"
	case ActControl:
		return "control"
	case ActStartBulk:
		return "start-bulk"
	case ActSyncRequest:
		return "sync-request"
	case ActBulkDone:
		return "bulk-done"
	case ActNetworkDown:
		return "network-down"
	case ActNetworkUp:
		return "network-up"
	case ActReject:
		return "reject"
	}
	return "unknown"
}

// Action is an output of Step.
type Action struct {
	Kind     ActionKind
	Net      int
	From     netip.Addr
	Priority uint8
	Reason   string
	Data     []byte
	Count    uint32 // ActBulkDone
	Err      error  // ActReject
}

// Machine is the failover state machine of one director: VRRPv3 election
// (RFC 5798 §6.4) over several heartbeat networks, with preempt delay,
// failback gated on connection sync, authenticated stand-down (fencing) and
// priority-0 release on shutdown. It does no I/O and reads no clock: Step
// gets the time and an event and returns the actions to perform, and
// Deadline says when Step must next be called with EvTick. It is not safe
// for concurrent use.
type Machine struct {
	cfg   MachineConfig
	rand  func() uint64
	state State

	masterAdverInt time.Duration // learned from the master's adverts
	adverAt        time.Time     // master: next advert
	masterDownAt   time.Time     // backup: take over then
	backupSince    time.Time

	synced      bool
	nextSyncReq time.Time
	masterAddr  []netip.Addr // per network: current master's address, when known
	lastHeard   []time.Time  // per network
	netDown     []bool
	guard       ctlmsg.Guard
	masterSince time.Time

	acts []Action
}

// NewMachine returns a machine in StateInit. rand supplies nonces for
// control messages (crypto-quality in production).
func NewMachine(cfg MachineConfig, rand func() uint64) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SyncRetry <= 0 {
		cfg.SyncRetry = time.Second
	}
	n := len(cfg.Local)
	m := &Machine{
		cfg: cfg, rand: rand,
		masterAdverInt: cfg.Interval,
		masterAddr:     make([]netip.Addr, n),
		lastHeard:      make([]time.Time, n),
		netDown:        make([]bool, n),
	}
	m.guard.Window = cfg.ReplayWindow
	return m, nil
}

// State is the current role.
func (m *Machine) State() State { return m.state }

// Synced reports whether a bulk copy completed since the machine last
// became backup.
func (m *Machine) Synced() bool { return m.synced }

// NetworkDown reports whether heartbeats are missing on network i.
func (m *Machine) NetworkDown(i int) bool { return m.netDown[i] }

// Skew is Skew_Time for our priority and the current master interval.
func (m *Machine) Skew() time.Duration {
	return time.Duration(256-int(m.cfg.Priority)) * m.masterAdverInt / 256
}

// MasterDownInterval is 3 * Master_Adver_Interval + Skew_Time.
func (m *Machine) MasterDownInterval() time.Duration {
	return 3*m.masterAdverInt + m.Skew()
}

// Deadline is when Step must next be called with EvTick (zero: only on events).
func (m *Machine) Deadline() time.Time {
	switch m.state {
	case StateMaster:
		return m.adverAt
	case StateBackup:
		d := m.masterDownAt
		mdi := m.MasterDownInterval()
		for i, t := range m.lastHeard {
			if !m.netDown[i] && !t.IsZero() {
				if x := t.Add(mdi); x.Before(d) {
					d = x
				}
			}
		}
		return d
	}
	return time.Time{}
}

// Step advances the machine to now and handles ev. The returned slice is
// valid until the next Step.
func (m *Machine) Step(now time.Time, ev Event) []Action {
	m.acts = m.acts[:0]
	switch ev.Kind {
	case EvStart:
		m.start(now)
	case EvAdvert:
		m.timers(now)
		m.advert(now, ev)
	case EvControl:
		m.timers(now)
		m.control(now, ev)
	case EvSyncDone:
		if m.state == StateBackup {
			m.synced = true
		}
		m.timers(now)
	case EvShutdown:
		m.shutdown()
	default:
		m.timers(now)
	}
	return m.acts
}

func (m *Machine) emit(a Action) { m.acts = append(m.acts, a) }

func (m *Machine) start(now time.Time) {
	if m.state != StateInit {
		return
	}
	// RFC 5798: the address owner (priority 255) becomes master at once. A
	// director that must wait for a delay or for the table sync does not.
	if m.cfg.Priority == 255 && m.cfg.PreemptDelay == 0 && !m.cfg.RequireSync {
		m.becomeMaster(now, "priority 255 at start")
		return
	}
	m.becomeBackup(now, "start")
}

func (m *Machine) becomeMaster(now time.Time, reason string) {
	m.state = StateMaster
	m.masterSince = now
	m.emit(Action{Kind: ActBecomeMaster, Reason: reason})
	m.emit(Action{Kind: ActAdvert, Priority: m.cfg.Priority})
	m.adverAt = now.Add(m.cfg.Interval)
	m.masterAdverInt = m.cfg.Interval
	for i := range m.netDown {
		m.netDown[i] = false
		m.lastHeard[i] = time.Time{}
		m.masterAddr[i] = netip.Addr{}
	}
	// Fence the previous active on every network.
	m.emit(Action{Kind: ActControl, Data: m.seal(now, ctlmsg.StandDown, 0)})
}

func (m *Machine) becomeBackup(now time.Time, reason string) {
	m.state = StateBackup
	m.emit(Action{Kind: ActBecomeBackup, Reason: reason})
	m.backupSince = now
	m.synced = false
	m.nextSyncReq = time.Time{}
	m.masterDownAt = now.Add(m.MasterDownInterval())
}

func (m *Machine) seal(now time.Time, t ctlmsg.Type, arg uint32) []byte {
	b := make([]byte, ctlmsg.Size) // control plane: a few per takeover
	return ctlmsg.Seal(b, m.cfg.Secret, ctlmsg.Msg{
		Type: t, VRID: m.cfg.VRID, Priority: m.cfg.Priority,
		Time: now.UnixNano(), Nonce: m.rand(), Arg: arg,
	})
}

// SealBulkDone returns a sealed bulk-done message carrying the number of
// entries streamed (the runner sends it after ActStartBulk).
func (m *Machine) SealBulkDone(now time.Time, n uint32) []byte {
	return m.seal(now, ctlmsg.BulkDone, n)
}

// timers fires whatever is due at now.
func (m *Machine) timers(now time.Time) {
	switch m.state {
	case StateMaster:
		if !now.Before(m.adverAt) {
			m.emit(Action{Kind: ActAdvert, Priority: m.cfg.Priority})
			m.adverAt = now.Add(m.cfg.Interval)
		}
	case StateBackup:
		mdi := m.MasterDownInterval()
		for i, t := range m.lastHeard {
			if !m.netDown[i] && !t.IsZero() && now.Sub(t) >= mdi && now.Before(m.masterDownAt) {
				// Silent here, heard elsewhere: a broken link, not a dead peer.
				m.netDown[i] = true
				m.emit(Action{Kind: ActNetworkDown, Net: i, Reason: "no adverts on this network while the peer is heard on another"})
			}
		}
		if !now.Before(m.masterDownAt) {
			reason := "no adverts from the active on any network"
			if len(m.lastHeard) == 1 {
				reason = "no adverts from the active"
			}
			m.becomeMaster(now, reason)
		}
	}
}

func (m *Machine) preemptAllowed(now time.Time) bool {
	if !m.cfg.Preempt {
		return false
	}
	if now.Sub(m.backupSince) < m.cfg.PreemptDelay {
		return false
	}
	return !m.cfg.RequireSync || m.synced
}

// better reports whether an advert with priority p from addr on network n
// beats us (RFC 5798 §6.4.3: higher priority, or equal priority and a
// higher primary address).
func (m *Machine) better(p uint8, addr netip.Addr, n int) bool {
	if n < 0 || n >= len(m.cfg.Local) {
		n = 0
	}
	if p != m.cfg.Priority {
		return p > m.cfg.Priority
	}
	return addr.Compare(m.cfg.Local[n]) > 0
}

func (m *Machine) advert(now time.Time, ev Event) {
	if ev.Net < 0 || ev.Net >= len(m.lastHeard) {
		return
	}
	interval := time.Duration(ev.IntervalCS) * 10 * time.Millisecond
	if interval == 0 {
		interval = m.cfg.Interval
	}
	switch m.state {
	case StateBackup:
		m.heard(now, ev.Net, ev.From)
		if ev.Priority == 0 {
			// The active is leaving: take over after Skew_Time.
			m.masterDownAt = now.Add(m.Skew())
			return
		}
		if ev.Priority < m.cfg.Priority && m.preemptAllowed(now) {
			// A lower-priority active and preemption allowed: ignore its
			// adverts so that the down timer fires and we take over. An
			// equal priority is accepted whatever the addresses (RFC 5798
			// §6.4.2): the address breaks ties between masters only.
			return
		}
		m.masterAdverInt = interval
		m.masterDownAt = now.Add(m.MasterDownInterval())
		if m.cfg.RequireSync && !m.synced && !now.Before(m.nextSyncReq) {
			m.nextSyncReq = now.Add(m.cfg.SyncRetry)
			m.emit(Action{Kind: ActSyncRequest, Net: ev.Net, From: ev.From, Data: m.seal(now, ctlmsg.SyncRequest, 0)})
		}
	case StateMaster:
		if ev.Priority == 0 {
			// Another master released: assert ourselves at once.
			m.emit(Action{Kind: ActAdvert, Priority: m.cfg.Priority})
			m.adverAt = now.Add(m.cfg.Interval)
			return
		}
		if m.better(ev.Priority, ev.From, ev.Net) {
			m.becomeBackup(now, fmt.Sprintf("heard a better active %v (priority %d)", ev.From, ev.Priority))
			m.masterAdverInt = interval
			m.masterDownAt = now.Add(m.MasterDownInterval())
			m.heard(now, ev.Net, ev.From)
			return
		}
		// A worse master: it yields when it hears us; answer at once so it
		// does not wait a whole interval (two forwarders must not overlap).
		m.emit(Action{Kind: ActAdvert, Priority: m.cfg.Priority})
		m.adverAt = now.Add(m.cfg.Interval)
	}
}

func (m *Machine) heard(now time.Time, n int, from netip.Addr) {
	m.lastHeard[n] = now
	m.masterAddr[n] = from
	if m.netDown[n] {
		m.netDown[n] = false
		m.emit(Action{Kind: ActNetworkUp, Net: n, Reason: "adverts resumed"})
	}
}

func (m *Machine) control(now time.Time, ev Event) {
	msg, err := ctlmsg.Open(ev.Data, m.cfg.Secret)
	if err == nil && msg.VRID != m.cfg.VRID {
		err = fmt.Errorf("failover: control message for VRID %d", msg.VRID)
	}
	if err == nil {
		err = m.guard.Check(now, msg)
	}
	if err != nil {
		m.emit(Action{Kind: ActReject, Net: ev.Net, From: ev.From, Err: err})
		return
	}
	switch msg.Type {
	case ctlmsg.StandDown:
		// An established active obeys at once: it is the old active being
		// fenced (it may still forward while its adverts are lost). When both
		// took over within one interval of each other (a healed partition, a
		// simultaneous start) each gets the other's stand-down; then only the
		// one that loses the VRRP election obeys, so that they do not both
		// stand down.
		if m.state == StateMaster && (now.Sub(m.masterSince) >= m.cfg.Interval || m.better(msg.Priority, ev.From, ev.Net)) {
			m.becomeBackup(now, fmt.Sprintf("stand-down from %v (priority %d)", ev.From, msg.Priority))
		}
	case ctlmsg.SyncRequest:
		if m.state == StateMaster {
			m.emit(Action{Kind: ActStartBulk, Net: ev.Net, From: ev.From})
		}
	case ctlmsg.BulkDone:
		if m.state == StateBackup && !m.synced {
			m.emit(Action{Kind: ActBulkDone, Net: ev.Net, From: ev.From, Count: msg.Arg})
		}
	default:
		m.emit(Action{Kind: ActReject, Net: ev.Net, From: ev.From, Err: ctlmsg.ErrMagic})
	}
}

func (m *Machine) shutdown() {
	if m.state == StateMaster {
		m.emit(Action{Kind: ActAdvert, Priority: 0})
	}
	if m.state != StateStopped {
		m.state = StateStopped
		m.emit(Action{Kind: ActBecomeBackup, Reason: "shutdown"})
	}
}
