package connsync

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
)

// Role is a sync daemon's role (ipvsadm --start-daemon master|backup).
type Role uint8

// Roles.
const (
	RoleMaster Role = 1
	RoleBackup Role = 2
)

func (r Role) String() string {
	switch r {
	case RoleMaster:
		return "master"
	case RoleBackup:
		return "backup"
	}
	return "unknown"
}

// DaemonConfig configures a sync daemon; the fields are ipvsadm's
// --mcast-interface, --syncid, --sync-maxlen, --mcast-group, --mcast-port
// and --mcast-ttl.
type DaemonConfig struct {
	Transport TransportConfig
	SyncID    uint8
	MaxLen    int
}

// ErrDaemon wraps sync daemon start errors.
var ErrDaemon = errors.New("connsync: sync daemon")

// Daemon is a running master or backup sync daemon. A director may run one
// of each at once, as the kernel allows.
type Daemon struct {
	role   Role
	cfg    DaemonConfig
	cancel context.CancelFunc
	done   chan struct{}
	sender *Sender
	w      *UDPWriter
	recv   *Receiver
	// backup counters
	msgs    atomic.Uint64
	conns   atomic.Uint64
	reasons [NumReasons]atomic.Uint64
}

// StartMaster opens the master's socket and starts the periodic flush. The
// data path feeds Sender().
func StartMaster(cfg DaemonConfig) (*Daemon, error) {
	cfg.Transport.defaults()
	w, err := DialSender(cfg.Transport)
	if err != nil {
		return nil, fmt.Errorf("%w: master on %s: %w", ErrDaemon, cfg.Transport.Interface, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{role: RoleMaster, cfg: cfg, cancel: cancel, done: make(chan struct{}), w: w,
		sender: NewSender(w, cfg.SyncID, cfg.MaxLen, nil)}
	go func() {
		defer close(d.done)
		d.sender.Run(ctx)
	}()
	return d, nil
}

// StartBackup opens the backup's socket and delivers every valid
// connection to sink (from the daemon's goroutine). Messages with another
// non-zero sync ID are ignored when cfg.SyncID is not 0.
func StartBackup(cfg DaemonConfig, sink Sink) (*Daemon, error) {
	cfg.Transport.defaults()
	r, err := ListenReceiver(cfg.Transport)
	if err != nil {
		return nil, fmt.Errorf("%w: backup on %s: %w", ErrDaemon, cfg.Transport.Interface, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{role: RoleBackup, cfg: cfg, cancel: cancel, done: make(chan struct{}), recv: r}
	go func() {
		defer close(d.done)
		dec := &Decoder{SyncID: cfg.SyncID}
		r.Run(ctx, dec, sink, func(_ netip.AddrPort, res *Result) {
			d.msgs.Add(1)
			d.conns.Add(uint64(res.Conns))
			if res.Reason != OK {
				d.reasons[res.Reason].Add(1)
			}
			for i, n := range res.Entries {
				if n != 0 {
					d.reasons[i].Add(uint64(n))
				}
			}
		})
	}()
	return d, nil
}

// Role is the daemon's role.
func (d *Daemon) Role() Role { return d.role }

// Sender is the master's batching sender (nil for a backup).
func (d *Daemon) Sender() *Sender { return d.sender }

// Stop stops the daemon (a master flushes what it holds) and closes its socket.
func (d *Daemon) Stop() error {
	d.cancel()
	<-d.done
	if d.w != nil {
		return d.w.Close()
	}
	return nil
}

// Status is the daemon's line in `ipvsadm -L --daemon` (ipvsadm 1.31 format).
func (d *Daemon) Status() string {
	maxLen := d.cfg.MaxLen
	if maxLen <= 0 {
		maxLen = DefaultMaxLen
	}
	return fmt.Sprintf("%s sync daemon (mcast=%s, syncid=%d, maxlen=%d, group=%s, port=%d, ttl=%d)",
		d.role, d.cfg.Transport.Interface, d.cfg.SyncID, maxLen, d.cfg.Transport.Group, d.cfg.Transport.Port, d.cfg.Transport.TTL)
}

// BackupStats are a backup daemon's counters.
type BackupStats struct {
	Messages, Conns uint64
	Drops           [NumReasons]uint64 // by Reason (index 0 unused)
}

// Stats returns the backup's counters.
func (d *Daemon) Stats() BackupStats {
	s := BackupStats{Messages: d.msgs.Load(), Conns: d.conns.Load()}
	for i := range d.reasons {
		s.Drops[i] = d.reasons[i].Load()
	}
	return s
}
