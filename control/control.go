// Package control is ulvs's control plane: it holds the running
// configuration, applies every change to the data path atomically, and
// serves the control API that ulvsadm and the monitor use.
//
// Every change, whether an ipvsadm command, a restore, a whole new TOML file
// (SIGHUP, ulvsadm --reload) or a call of the API, is made the same way: the
// new configuration is built and validated whole, config.Diff computes the
// operations that turn the running table into it, and only those are applied
// to the data path. Untouched services and real servers keep their
// connections and counters. If the data path refuses an operation half way
// (a resource bound, say), the operations already applied are reverted and
// the running configuration stays as it was.
package control

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/healthcheck"
)

// Dataplane is what the control plane drives: the forwarder's director in
// ulvsd, a fake in tests.
type Dataplane interface {
	// Apply carries out one operation of a config.Diff.
	Apply(op config.Op) error
	// Snapshot fills in the counters, rates and (with conns) the
	// connection table of the services listed in s.
	Snapshot(s *ipvsadm.Snapshot, conns bool)
	// Zero resets the counters of one service, or of all with nil.
	Zero(k *config.Key) error
}

// Control holds the running configuration.
type Control struct {
	mu     sync.Mutex
	cur    *config.Config // the configured table
	eff    *config.Config // the table the data path runs: cur with the health overlay
	health map[healthcheck.TargetID]*hstate
	specs  []healthcheck.Spec // what hm runs
	hm     HealthManager      // nil: no health checks run (every real server is up)
	now    func() time.Time
	dp     Dataplane
	path   string // the TOML file, for Reload
	log    zerolog.Logger
}

// New returns a control plane over dp whose running table is empty and
// whose daemon settings are dir (they change only with a restart). path is
// the configuration file Reload reads ("" for none).
func New(dp Dataplane, path string, dir config.Director, log zerolog.Logger) *Control {
	cur := config.New()
	cur.Director = dir
	return &Control{cur: cur, eff: cur.Clone(), health: map[healthcheck.TargetID]*hstate{}, now: time.Now,
		dp: dp, path: path, log: log}
}

// SetHealthManager makes hm run the health checks of the running table
// and of every later change. Call it once, before the first Apply; hm's
// Sink should be c.
func (c *Control) SetHealthManager(hm HealthManager) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	specs := healthSpecs(c.cur)
	if err := hm.Update(specs); err != nil {
		return err
	}
	c.hm, c.specs = hm, specs
	return nil
}

// Config returns a copy of the running configuration.
func (c *Control) Config() *config.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.Clone()
}

// Start applies the daemon's initial configuration. Its settings that only
// a restart changes ([director], [web]) are taken as they are; the table is
// applied like any other change.
func (c *Control) Start(cfg *config.Config) (config.Changes, error) {
	c.mu.Lock()
	c.cur.Director = cfg.Director
	c.cur.Web = cfg.Web
	c.mu.Unlock()
	return c.Apply(cfg)
}

// ErrPartial wraps the error of a change that failed half way and was
// rolled back.
var ErrPartial = errors.New("change failed and was rolled back")

// Apply makes next the running configuration, changing only what differs.
// next must be valid (config.Parse and ipvsadm's ApplyTo return valid ones);
// it is validated again here. On error nothing has changed.
func (c *Control) Apply(next *config.Config) (config.Changes, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applyLocked(next, "api")
}

func (c *Control) applyLocked(next *config.Config, source string) (config.Changes, error) {
	if err := next.Validate(); err != nil {
		return config.Changes{}, err
	}
	ch := config.Diff(c.cur, next)
	if len(ch.Restart) > 0 {
		// Keep the running values of what needs a restart.
		next = next.Clone()
		next.Director = c.cur.Director
		next.Web = c.cur.Web
	}
	specs := healthSpecs(next)
	health := c.nextHealth(specs)
	eff := effective(next, health)
	ops := config.Diff(c.eff, eff).Ops
	if c.hm != nil {
		// Validated and atomic: on error no check has changed.
		if err := c.hm.Update(specs); err != nil {
			return config.Changes{}, err
		}
	}
	for i, op := range ops {
		if err := c.dp.Apply(op); err != nil {
			c.rollback(ops[:i])
			if c.hm != nil {
				if uerr := c.hm.Update(c.specs); uerr != nil {
					c.log.Error().Err(uerr).Msg("rollback: cannot restore the health checks")
				}
			}
			return config.Changes{Ops: ops, Restart: ch.Restart}, fmt.Errorf("%s: %w (%w)", op, err, ErrPartial)
		}
	}
	for _, op := range ops {
		c.log.Info().Str("source", source).Str("op", op.String()).Msg("applied")
	}
	if len(ch.Restart) > 0 {
		c.log.Warn().Strs("keys", ch.Restart).Msg("changed settings take effect after a restart of ulvsd")
	}
	c.cur, c.eff, c.health, c.specs = next, eff, health, specs
	return config.Changes{Ops: ops, Restart: ch.Restart}, nil
}

// rollback reverts the operations already applied of a failed change.
func (c *Control) rollback(done []config.Op) {
	partial, err := config.Apply(c.eff, done)
	if err != nil {
		c.log.Error().Err(err).Msg("rollback: cannot rebuild the partial table")
		return
	}
	for _, op := range config.Diff(partial, c.eff).Ops {
		if err := c.dp.Apply(op); err != nil {
			c.log.Error().Err(err).Str("op", op.String()).Msg("rollback step failed")
		}
	}
}

// Reload re-reads the configuration file and applies the difference. A bad
// file changes nothing; the error says what and where.
func (c *Control) Reload() (config.Changes, error) {
	if c.path == "" {
		return config.Changes{}, errors.New("ulvsd was started without a configuration file")
	}
	next, err := config.Load(c.path)
	if err != nil {
		return config.Changes{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applyLocked(next, "reload")
}

// Command runs one ipvsadm command that changes the table or its counters
// (-A -E -D -C -a -e -d -Z --set). stdin is the input of -R.
func (c *Control) Command(argv []string, stdin []byte) error {
	cmd, err := ipvsadm.Parse(argv)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch cmd.Kind {
	case ipvsadm.CmdZero:
		if cmd.HasService() {
			k := config.Key{Protocol: cmd.Service.Protocol, Address: cmd.Service.Address}
			if c.cur.Find(k) < 0 {
				return ipvsadm.ErrListNoService
			}
			return c.dp.Zero(&k)
		}
		return c.dp.Zero(nil)
	case ipvsadm.CmdRestore:
		next, err := (&ipvsadm.Parser{}).Restore(c.cur, bytes.NewReader(stdin))
		if err != nil {
			return err
		}
		_, err = c.applyLocked(next, "restore")
		return err
	case ipvsadm.CmdReload:
		if c.path == "" {
			return errors.New("ulvsd was started without a configuration file")
		}
		next, err := config.Load(c.path)
		if err != nil {
			return err
		}
		_, err = c.applyLocked(next, "reload")
		return err
	}
	next, err := cmd.ApplyTo(c.cur)
	if err != nil {
		return err
	}
	_, err = c.applyLocked(next, "command")
	return err
}

// Snapshot returns the running table with its counters (and the
// connection table with conns), ready for ipvsadm's printers.
func (c *Control) Snapshot(conns bool) *ipvsadm.Snapshot {
	c.mu.Lock()
	s := ipvsadm.FromConfig(c.cur)
	c.fillHealth(s)
	c.mu.Unlock()
	c.dp.Snapshot(s, conns)
	return s
}

// WriteConfig writes the running table as TOML to path (ulvsadm
// --write-config), atomically: a temporary file renamed into place.
func (c *Control) WriteConfig(path string) error {
	data := config.Marshal(c.Config())
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
