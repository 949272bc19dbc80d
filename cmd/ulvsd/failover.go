package main

// Failover wiring (issue 7): the failover.Director implementation that
// switches the data path between active and standby, the NAT router
// addresses, and the connection sync daemons in both directions.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/conntrack"
	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/failover"
	"github.com/ulvs/ulvs/failover/connsync"
	"github.com/ulvs/ulvs/failover/garp"
	"github.com/ulvs/ulvs/forwarder"
	"github.com/ulvs/ulvs/web"
)

// syncDaemons are the sync daemons of one ulvsd: at most one master and one
// backup, started by [failover] or by ulvsadm --start-daemon. It feeds the
// data path's sync seam (forwarder.SyncHook) while a master runs, and its
// sink inserts what a backup receives.
type syncDaemons struct {
	dir *forwarder.Director
	ct  *conntrack.Table
	log zerolog.Logger

	mu        sync.Mutex
	master    *connsync.Daemon
	backup    *connsync.Daemon
	masterCfg connsync.DaemonConfig
	backupCfg connsync.DaemonConfig
	managed   bool // [failover] sync = true runs the daemons; ulvsadm may not

	sender   atomic.Pointer[connsync.Sender]
	received atomic.Uint64 // entries delivered to the sink (applied or refused)
	results  [conntrack.NumSyncResults]atomic.Uint64
}

func newSyncDaemons(dir *forwarder.Director, log zerolog.Logger) *syncDaemons {
	return &syncDaemons{dir: dir, ct: dir.Conntrack(), log: log}
}

// SyncConn is the data path's hook (forwarder.SyncHook): one Enqueue per
// selected packet.
func (s *syncDaemons) SyncConn(_ int, c, tmpl *connsync.Conn) {
	if snd := s.sender.Load(); snd != nil {
		snd.EnqueueWithTemplate(c, tmpl)
	}
}

// sink inserts synced connections (connsync.Sink); it runs on the backup
// daemon's goroutine.
type syncSink struct {
	s  *syncDaemons
	se conntrack.SyncEntry
}

func (k *syncSink) SyncConn(c *connsync.Conn) {
	s := k.s
	forwarder.SyncEntry(c, &k.se)
	// While this director forwards, its own entries are authoritative: a
	// late message from the old active (its last batch after a failback)
	// only adds the connections missing here, and closes established ones
	// it saw close (conntrack.SyncEntry.CreateOnly).
	k.se.CreateOnly = !s.dir.Standby()
	r := s.ct.SyncConn(&k.se, s.dir.SyncDest(&k.se), s.dir.Now())
	s.results[r].Add(1)
	// Every delivered entry counts towards a bulk copy's completeness
	// (Config.SyncReceived checks for lost datagrams): an entry refused
	// here (a real server this director does not have) must not hold
	// failback back for ever.
	s.received.Add(1)
}

// ErrSyncDaemon is returned for a start of a daemon that runs already or a
// stop of one that does not.
var ErrSyncDaemon = errors.New("sync daemon")

// startMaster starts the master sync daemon and the data path's hook.
func (s *syncDaemons) startMaster(cfg connsync.DaemonConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.master != nil {
		return fmt.Errorf("%w: master already running", ErrSyncDaemon)
	}
	m, err := connsync.StartMaster(cfg)
	if err != nil {
		return err
	}
	s.master, s.masterCfg = m, cfg
	s.sender.Store(m.Sender())
	s.dir.SetSyncHook(s, 0, 0)
	s.log.Info().Str("daemon", m.Status()).Msg("sync master started")
	return nil
}

// startBackup starts the backup sync daemon.
func (s *syncDaemons) startBackup(cfg connsync.DaemonConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backup != nil {
		return fmt.Errorf("%w: backup already running", ErrSyncDaemon)
	}
	b, err := connsync.StartBackup(cfg, &syncSink{s: s})
	if err != nil {
		return err
	}
	s.backup, s.backupCfg = b, cfg
	s.log.Info().Str("daemon", b.Status()).Msg("sync backup started")
	return nil
}

// stop stops the daemons of role (0: both); it reports whether one ran.
func (s *syncDaemons) stop(role connsync.Role) bool {
	ds := s.detach(role)
	s.halt(ds)
	return len(ds) != 0
}

// stopSoon detaches the daemons of role at once (the data path stops
// feeding them, and a start that follows starts new ones) and stops them
// (a master flushes what it holds) on another goroutine.
func (s *syncDaemons) stopSoon(role connsync.Role) {
	if ds := s.detach(role); len(ds) != 0 {
		go s.halt(ds)
	}
}

func (s *syncDaemons) detach(role connsync.Role) []*connsync.Daemon {
	s.mu.Lock()
	var ds []*connsync.Daemon
	if (role == 0 || role == connsync.RoleMaster) && s.master != nil {
		s.dir.SetSyncHook(nil, 0, 0)
		s.sender.Store(nil)
		ds = append(ds, s.master)
		s.master = nil
	}
	if (role == 0 || role == connsync.RoleBackup) && s.backup != nil {
		ds = append(ds, s.backup)
		s.backup = nil
	}
	s.mu.Unlock()
	return ds
}

func (s *syncDaemons) halt(ds []*connsync.Daemon) {
	for _, d := range ds {
		if err := d.Stop(); err != nil {
			s.log.Warn().Err(err).Str("role", d.Role().String()).Msg("stopping sync daemon")
		}
	}
}

// status lists the running daemons as `ipvsadm -L --daemon` does.
func (s *syncDaemons) status() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if s.master != nil {
		out = append(out, s.master.Status())
	}
	if s.backup != nil {
		out = append(out, s.backup.Status())
	}
	return out
}

func (s *syncDaemons) counters() map[string]uint64 {
	m := map[string]uint64{"received": s.received.Load()}
	for i := range s.results {
		m[conntrack.SyncResult(i).String()] = s.results[i].Load()
	}
	s.mu.Lock()
	if s.master != nil {
		st := s.master.Sender().Stats()
		m["sent_messages"], m["sent_entries"], m["send_errors"] = st.Messages, st.Entries, st.Errors
	}
	s.mu.Unlock()
	return m
}

// connSource iterates the connection table for a bulk copy
// (connsync.ConnSource), persistence templates included.
type connSource struct {
	dir *forwarder.Director
}

func (c connSource) RangeConns(fn func(*connsync.Conn) bool) {
	ct := c.dir.Conntrack()
	var sc connsync.Conn
	ct.Range(c.dir.Now(), func(ci *conntrack.ConnInfo) bool {
		forwarder.ConnToSync(&ci.Conn, ct, &sc)
		if ci.Flags&conntrack.FlagTemplate != 0 {
			sc.State = 0
			if ci.Expires > 0 {
				sc.Timeout = uint32((ci.Expires + 999_999_999) / 1_000_000_000) // what is left of it
			}
		}
		return fn(&sc)
	})
}

// failoverRun is a configured [failover]: the node and what it drives.
type failoverRun struct {
	res  *failover.Resolved
	dir  *forwarder.Director
	nat  *failover.NATRouter
	sd   *syncDaemons
	node *failover.Node
	log  zerolog.Logger

	// The NAT router addresses are kernel addresses the real servers'
	// default route points at: they are announced at takeover too, on the
	// private side, or the real servers would send replies to the old
	// active's MAC until their ARP entry goes stale.
	natAnn    *garp.Announcer
	natAddrs  []netip.Addr
	annCancel context.CancelFunc

	// The last transition, for the monitor.
	mu          sync.Mutex
	since       time.Time
	reason      string
	transitions uint64
}

// noteTransition records a role change for the monitor's failover page.
func (f *failoverRun) noteTransition(reason string) {
	f.mu.Lock()
	f.since, f.reason = time.Now(), reason
	f.transitions++
	f.mu.Unlock()
}

// webStatus is the monitor's view of the failover state.
func (f *failoverRun) webStatus() *web.FailoverStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	peers := make([]string, 0, len(f.res.Node.Networks))
	for _, n := range f.res.Node.Networks {
		peers = append(peers, n.Peer.String())
	}
	return &web.FailoverStatus{
		Role:        f.node.State().String(),
		Peer:        strings.Join(peers, ", "),
		Since:       f.since,
		Reason:      f.reason,
		Transitions: f.transitions,
	}
}

// newFailover builds the node of a [failover] table. The director starts
// as standby: it neither answers ARP nor forwards until it is elected.
func newFailover(res *failover.Resolved, dir *forwarder.Director, sd *syncDaemons, privateIface string, log zerolog.Logger) (*failoverRun, error) {
	log = log.With().Str("component", "failover").Logger()
	f := &failoverRun{res: res, dir: dir, sd: sd, log: log}
	if len(res.NATRouter) != 0 {
		f.nat = &failover.NATRouter{Link: privateIface, Prefixes: res.NATRouter}
		if err := f.nat.Down(); err != nil { // left over from a crash
			log.Warn().Err(err).Msg("removing nat_router addresses")
		}
		a, err := garp.NewAnnouncer(privateIface)
		if err != nil {
			return nil, fmt.Errorf("nat_router announcements on %s: %w", privateIface, err)
		}
		f.natAnn = a
		for _, p := range res.NATRouter {
			f.natAddrs = append(f.natAddrs, p.Addr())
		}
	}
	dir.SetStandby(true)
	cfg := res.Node
	var bulk failover.BulkSender
	if res.Sync {
		sd.managed = true
		cfg.SyncReceived = sd.received.Load
		bulk = failover.NewBulkSender(connSource{dir}, res.Transport, res.SyncID, res.SyncMaxLen)
		// Both directors receive: the backup inserts what the active
		// streams, and a former active keeps up to date for failback.
		if err := sd.startBackup(f.daemonConfig()); err != nil {
			return nil, err
		}
	}
	n, err := failover.NewNode(cfg, f, bulk, log)
	if err != nil {
		sd.stop(0)
		return nil, err
	}
	if err := n.Open(); err != nil {
		sd.stop(0)
		return nil, err
	}
	f.node = n
	return f, nil
}

func (f *failoverRun) daemonConfig() connsync.DaemonConfig {
	return connsync.DaemonConfig{Transport: f.res.Transport, SyncID: f.res.SyncID, MaxLen: f.res.SyncMaxLen}
}

// BecomeActive implements failover.Director: forward and answer ARP, hold
// the NAT router addresses, stream connection changes. The node sends the
// gratuitous ARP / NA burst right after.
func (f *failoverRun) BecomeActive(reason string) {
	f.dir.SetStandby(false)
	f.noteTransition("became active: " + reason)
	if f.nat != nil {
		if err := f.nat.Up(); err != nil {
			f.log.Error().Err(err).Msg("adding nat_router addresses")
		}
		if f.annCancel != nil {
			f.annCancel()
		}
		ctx, cancel := context.WithCancel(context.Background())
		f.annCancel = cancel
		count, period := f.res.Node.GARPCount, f.res.Node.GARPPeriod
		if period == 0 {
			period = garp.DefaultPeriod
		}
		go func() {
			if err := f.natAnn.Announce(ctx, f.natAddrs, count, period); err != nil && !errors.Is(err, context.Canceled) {
				f.log.Warn().Err(err).Msg("nat_router announcement burst")
			}
		}()
	}
	if f.res.Sync {
		if err := f.sd.startMaster(f.daemonConfig()); err != nil && !errors.Is(err, ErrSyncDaemon) {
			f.log.Error().Err(err).Msg("starting the sync master")
		}
	}
	f.log.Info().Str("reason", reason).Msg("active")
}

// BecomeBackup implements failover.Director: stop forwarding and ARP
// answers at once, then drop the NAT router addresses and the sync master.
func (f *failoverRun) BecomeBackup(reason string) {
	f.dir.SetStandby(true)
	f.noteTransition("became backup: " + reason)
	if f.annCancel != nil {
		f.annCancel()
		f.annCancel = nil
	}
	if f.nat != nil {
		if err := f.nat.Down(); err != nil {
			f.log.Error().Err(err).Msg("removing nat_router addresses")
		}
	}
	if f.res.Sync {
		f.sd.stopSoon(connsync.RoleMaster) // must not hold up the node
	}
	f.log.Info().Str("reason", reason).Msg("backup")
}

// run runs the node until ctx ends (then it sends priority 0 and stops).
func (f *failoverRun) run(ctx context.Context) {
	if err := f.node.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		f.log.Error().Err(err).Msg("failover node stopped")
	}
	f.dir.SetStandby(true)
	if f.nat != nil {
		_ = f.nat.Down()
	}
}

func (f *failoverRun) status() map[string]any {
	st := f.node.Status()
	return map[string]any{"state": st.State.String(), "synced": st.Synced, "network_down": st.NetworkDown}
}

// startFailover sets up the sync daemons and, with [failover], the node
// (called from start; names are the public and private interfaces).
func (d *daemon) startFailover(names []string) error {
	d.sd = newSyncDaemons(d.dir, d.log)
	res, err := d.cfg.ResolveFailover()
	if err != nil || res == nil {
		return err
	}
	fo, err := newFailover(res, d.dir, d.sd, names[len(names)-1], d.log)
	if err != nil {
		return fmt.Errorf("[failover]: %w", err)
	}
	d.fo = fo
	return nil
}

func (d *daemon) syncStatus() map[string]any {
	m := map[string]any{"daemons": d.sd.status(), "counters": d.sd.counters()}
	if d.fo != nil {
		m["failover"] = d.fo.status()
	}
	return m
}

// ErrManaged refuses ulvsadm --start-daemon / --stop-daemon while
// [failover] sync = true runs the daemons itself.
var ErrManaged = errors.New("the sync daemons are run by [failover] (sync = true); change the configuration instead")

// StartDaemon implements control.SyncDaemons (ulvsadm --start-daemon).
func (s *syncDaemons) StartDaemon(d ipvsadm.Daemon) error {
	if s.managed {
		return ErrManaged
	}
	cfg := connsync.DaemonConfig{
		Transport: connsync.TransportConfig{Interface: d.McastInterface, Group: d.McastGroup, Port: d.McastPort, TTL: d.McastTTL},
		SyncID:    uint8(d.SyncID),
		MaxLen:    d.SyncMaxlen,
	}
	if d.SyncID < 0 || d.SyncID > 255 {
		return fmt.Errorf("%w: syncid %d out of range 0..255", ErrSyncDaemon, d.SyncID)
	}
	if d.State == "master" {
		return s.startMaster(cfg)
	}
	return s.startBackup(cfg)
}

// StopDaemon implements control.SyncDaemons (ulvsadm --stop-daemon).
func (s *syncDaemons) StopDaemon(state string) error {
	if s.managed {
		return ErrManaged
	}
	role := connsync.RoleBackup
	if state == "master" {
		role = connsync.RoleMaster
	}
	if !s.stop(role) {
		return fmt.Errorf("%w: no %s sync daemon is running", ErrSyncDaemon, state)
	}
	return nil
}

// Daemons implements control.SyncDaemons (ulvsadm -L --daemon).
func (s *syncDaemons) Daemons() []ipvsadm.DaemonState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ipvsadm.DaemonState
	add := func(state string, c connsync.DaemonConfig) {
		t := c.Transport
		if t.Port == 0 {
			t.Port = connsync.DefaultPort
		}
		if !t.Group.IsValid() {
			t.Group = connsync.DefaultGroup
		}
		if t.TTL == 0 {
			t.TTL = 1
		}
		ml := c.MaxLen
		if ml <= 0 {
			ml = connsync.DefaultMaxLen
		}
		out = append(out, ipvsadm.DaemonState{State: state, McastInterface: t.Interface, SyncID: int(c.SyncID),
			SyncMaxlen: ml, McastGroup: t.Group, McastPort: t.Port, McastTTL: t.TTL})
	}
	if s.master != nil {
		add("master", s.masterCfg)
	}
	if s.backup != nil {
		add("backup", s.backupCfg)
	}
	return out
}

var _ control.SyncDaemons = (*syncDaemons)(nil)
