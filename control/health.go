package control

import (
	"net/netip"
	"time"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/healthcheck"
)

// The health overlay.
//
// The control plane keeps two tables: cur, the configured table (what
// ulvsadm -L, -S and --write-config show, with the admin's weights), and
// eff, the effective table that the data path runs. eff is always
// effective(cur, health):
//
//   - a real server that is down with on_failure = "remove" is absent (the
//     data path deletes it; its connections follow expire_nodest_conn);
//     with "quiesce" it is present with weight 0;
//   - a dynamic weight (exec exit codes 2..255, feedback) replaces the
//     configured weight, except that a configured weight of 0 stays 0;
//   - a virtual server's sorry server is present only while none of its
//     real servers is up (a real server without a check counts as up).
//
// Every change (a command, a reload, a health transition, a dynamic weight)
// recomputes eff and applies config.Diff(old eff, new eff) to the data path
// under the control lock: there is one path into the data plane.

// HealthManager runs the health checks: a *healthcheck.Manager in ulvsd.
type HealthManager interface {
	// Update replaces the set of checks (atomic, validated); unchanged
	// checks keep their state.
	Update(specs []healthcheck.Spec) error
	// Status returns every check's state.
	Status() []healthcheck.Status
}

var _ healthcheck.Sink = (*Control)(nil)

// hstate is the health of one checked real server, as the overlay uses it.
type hstate struct {
	up        bool
	reason    string
	since     time.Time
	check     string             // type
	onFailure healthcheck.Action // what down means
	weight    int                // dynamic weight; -1 = none
	cfgWeight int                // the configured weight the dynamic weight applies to
}

// TargetID names the check of real server rs of virtual service k, as the
// control plane gives it to the health manager.
func TargetID(k config.Key, rs *config.RealServer) healthcheck.TargetID {
	return healthcheck.TargetID{Service: k.String(), Server: rs.Address}
}

// healthSpecs lists the checks that c configures.
func healthSpecs(c *config.Config) []healthcheck.Spec {
	var specs []healthcheck.Spec
	for i := range c.VirtualServers {
		vs := &c.VirtualServers[i]
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			hc := vs.HealthFor(rs)
			if hc == nil {
				continue
			}
			specs = append(specs, healthcheck.Spec{ID: TargetID(vs.Key(), rs), Weight: rs.Weight, Config: *config.CloneHealth(hc)})
		}
	}
	return specs
}

// nextHealth returns the health states for specs: the current state of
// checks that stay, the initial state of new ones. A dynamic weight is
// dropped when the configured weight changes.
func (c *Control) nextHealth(specs []healthcheck.Spec) map[healthcheck.TargetID]*hstate {
	n := make(map[healthcheck.TargetID]*hstate, len(specs))
	now := c.now()
	for i := range specs {
		s := &specs[i]
		hc := s.Config.Normalize()
		if old, ok := c.health[s.ID]; ok {
			cp := *old
			if cp.cfgWeight != s.Weight {
				cp.weight, cp.cfgWeight = -1, s.Weight
			}
			cp.onFailure, cp.check = hc.OnFailure, hc.Type
			if hc.Type == healthcheck.TypeNone && !cp.up {
				cp.up, cp.since, cp.reason = true, now, "no health check"
			}
			n[s.ID] = &cp
			continue
		}
		up := hc.InitialState != "down" || hc.Type == healthcheck.TypeNone
		n[s.ID] = &hstate{up: up, reason: "initial state " + hc.InitialState, since: now, check: hc.Type,
			onFailure: hc.OnFailure, weight: -1, cfgWeight: s.Weight}
	}
	return n
}

// effective returns the table the data path runs: cfg changed by health.
func effective(cfg *config.Config, health map[healthcheck.TargetID]*hstate) *config.Config {
	e := &config.Config{Director: cfg.Director, Timeouts: cfg.Timeouts, Conntrack: cfg.Conntrack,
		VirtualServers: make([]config.VirtualServer, 0, len(cfg.VirtualServers))}
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		ev := *vs
		ev.SchedFlags = append([]string(nil), vs.SchedFlags...)
		ev.HealthCheck, ev.SorryServer = nil, netip.AddrPort{}
		ev.RealServers = make([]config.RealServer, 0, len(vs.RealServers)+1)
		anyUp := false
		for j := range vs.RealServers {
			rs := vs.RealServers[j]
			rs.HealthCheck = nil
			w, in, up := effectiveWeight(vs.Key(), &rs, health)
			anyUp = anyUp || up
			if !in {
				continue
			}
			rs.Weight = w
			ev.RealServers = append(ev.RealServers, rs)
		}
		if sorry, ok := vs.Sorry(); ok && !anyUp {
			ev.RealServers = append(ev.RealServers, sorry)
		}
		e.VirtualServers = append(e.VirtualServers, ev)
	}
	return e
}

// effectiveWeight returns the weight of rs in the data path, whether it is
// in the scheduler's pool at all, and whether it is up.
func effectiveWeight(k config.Key, rs *config.RealServer, health map[healthcheck.TargetID]*hstate) (w int, inPool, up bool) {
	h, checked := health[TargetID(k, rs)]
	switch {
	case !checked:
		return rs.Weight, true, true
	case !h.up && h.onFailure == healthcheck.ActionQuiesce:
		return 0, true, false
	case !h.up:
		return 0, false, false
	case rs.Weight > 0 && h.weight >= 0:
		return h.weight, true, true
	}
	return rs.Weight, true, true
}

// SetHealth applies a health transition (healthcheck.Sink): the real
// server leaves or rejoins the scheduler's pool at once.
func (c *Control) SetHealth(tr healthcheck.Transition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.health[tr.ID]
	if !ok {
		return // a check removed since
	}
	if h.up == tr.Up && tr.Initial {
		return
	}
	h.up, h.reason, h.since = tr.Up, tr.Reason, tr.At
	if tr.At.IsZero() {
		h.since = c.now()
	}
	if tr.OnFailure != "" {
		h.onFailure = tr.OnFailure
	}
	c.reapply("health")
}

// SetWeight applies a dynamic weight (healthcheck.Sink).
func (c *Control) SetWeight(id healthcheck.TargetID, weight int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.health[id]
	if !ok || h.weight == weight {
		return
	}
	h.weight = weight
	c.reapply("weight")
}

// reapply brings the data path to effective(cur, health). A refused
// operation is rolled back and logged; the next change retries.
func (c *Control) reapply(source string) {
	eff := effective(c.cur, c.health)
	ops := config.Diff(c.eff, eff).Ops
	for i, op := range ops {
		if err := c.dp.Apply(op); err != nil {
			c.log.Error().Err(err).Str("source", source).Str("op", op.String()).Msg("data path refused a health change; rolled back")
			c.rollback(ops[:i])
			return
		}
	}
	for _, op := range ops {
		c.log.Info().Str("source", source).Str("op", op.String()).Msg("applied")
	}
	c.eff = eff
}

// fillHealth adds health to a snapshot of the configured table.
func (c *Control) fillHealth(s *ipvsadm.Snapshot) {
	for i := range s.Services {
		svc := &s.Services[i]
		k := config.Key{Protocol: svc.Protocol, Address: svc.Address}
		anyUp := false
		for j := range svc.Servers {
			srv := &svc.Servers[j]
			rs := config.RealServer{Address: srv.Address, Weight: srv.Weight}
			w, in, up := effectiveWeight(k, &rs, c.health)
			anyUp = anyUp || up
			srv.EffectiveWeight, srv.InPool = w, in
			if h, ok := c.health[TargetID(k, &rs)]; ok {
				srv.Health = "down"
				if h.up {
					srv.Health = "up"
				}
				srv.Reason, srv.Since, srv.Check = h.reason, h.since, h.check
			}
			if !in {
				srv.EffectiveWeight = 0
			}
		}
		svc.SorryActive = svc.SorryServer != "" && !anyUp
	}
}

// HealthStatus returns the health manager's view of every check (nil
// without a manager).
func (c *Control) HealthStatus() []healthcheck.Status {
	c.mu.Lock()
	hm := c.hm
	c.mu.Unlock()
	if hm == nil {
		return nil
	}
	return hm.Status()
}
