package web

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"time"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
)

// serviceID names a virtual service in URLs, forms and JSON:
// "tcp-10.0.0.1:80".
func serviceID(p config.Protocol, a netip.AddrPort) string { return p.String() + "-" + a.String() }

func parseServiceID(s string) (config.Protocol, netip.AddrPort, bool) {
	ps, as, ok := strings.Cut(s, "-")
	if !ok {
		return 0, netip.AddrPort{}, false
	}
	p, err := config.ParseProtocol(ps)
	if err != nil {
		return 0, netip.AddrPort{}, false
	}
	a, err := netip.ParseAddrPort(as)
	if err != nil {
		return 0, netip.AddrPort{}, false
	}
	return p, a, true
}

// serverID names a real server of a service: "tcp-10.0.0.1:80/10.0.1.1:80".
func serverID(svc string, rs netip.AddrPort) string { return svc + "/" + rs.String() }

// ServiceView is one virtual service as the pages and /api/overview show it.
type ServiceView struct {
	ID          string          `json:"id"`
	Protocol    string          `json:"protocol"`
	Address     string          `json:"address"`
	Scheduler   string          `json:"scheduler"`
	Persistence uint32          `json:"persistence"`
	Stats       ipvsadm.Stats   `json:"stats"`
	Rate        ipvsadm.Rate    `json:"rate"`
	Active      uint64          `json:"active"`
	Inact       uint64          `json:"inact"`
	Servers     []ServerView    `json:"real_servers"`
	Health      map[string]int  `json:"health"` // count of servers per state
	raw         ipvsadm.Service `json:"-"`
}

// ServerView is one real server.
type ServerView struct {
	ID       string        `json:"id"`
	Address  string        `json:"address"`
	Method   string        `json:"method"`
	Weight   int           `json:"weight"`
	Health   string        `json:"health"` // "not checked" when unknown
	Active   uint32        `json:"active"`
	Inact    uint32        `json:"inact"`
	Stats    ipvsadm.Stats `json:"stats"`
	Rate     ipvsadm.Rate  `json:"rate"`
	Draining bool          `json:"draining,omitempty"`
	// Read from the health overlay when the snapshot has it (see
	// healthOf); zero otherwise.
	Check           string    `json:"check,omitempty"`
	HealthReason    string    `json:"health_reason,omitempty"`
	HealthSince     time.Time `json:"health_since,omitzero"`
	EffectiveWeight *int      `json:"effective_weight,omitempty"`
}

// healthInfo is what the monitor reads of a real server's health beyond
// its state: the health-check overlay's fields of ipvsadm.Server (reason,
// since, check, effective_weight), read by their JSON names so that the
// monitor shows them when the snapshot has them and builds without them.
type healthInfo struct {
	Reason          string    `json:"reason"`
	Since           time.Time `json:"since"`
	Check           string    `json:"check"`
	EffectiveWeight *int      `json:"effective_weight"`
}

func healthOf(rs any) healthInfo {
	var h healthInfo
	if b, err := json.Marshal(rs); err == nil {
		_ = json.Unmarshal(b, &h)
	}
	return h
}

// NotChecked is the health shown for a real server without health checks.
const NotChecked = "not checked"

func (m *Monitor) view(s *ipvsadm.Snapshot) []ServiceView {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ServiceView, 0, len(s.Services))
	for _, svc := range s.Services {
		id := serviceID(svc.Protocol, svc.Address)
		v := ServiceView{ID: id, Protocol: svc.Protocol.String(), Address: svc.Address.String(),
			Scheduler: svc.Scheduler, Persistence: svc.Persistence, Stats: svc.Stats, Rate: svc.Rate,
			Health: map[string]int{}, raw: svc}
		for _, rs := range svc.Servers {
			h := rs.Health
			if h == "" {
				h = NotChecked
			}
			rid := serverID(id, rs.Address)
			hi := healthOf(&rs)
			v.Servers = append(v.Servers, ServerView{ID: rid, Address: rs.Address.String(), Method: rs.Method.String(),
				Weight: rs.Weight, Health: h, Active: rs.ActiveConns, Inact: rs.InactConns, Stats: rs.Stats,
				Rate: rs.Rate, Draining: m.draining[rid], Check: hi.Check, HealthReason: hi.Reason,
				HealthSince: hi.Since, EffectiveWeight: hi.EffectiveWeight})
			v.Active += uint64(rs.ActiveConns)
			v.Inact += uint64(rs.InactConns)
			v.Health[h]++
		}
		out = append(out, v)
	}
	return out
}

// sample is one point of the charts.
type sample struct {
	t   time.Time
	pts map[string]point // by service id and server id
}

type point struct{ active, inact, cps, pps uint64 }

// Series are the chart data of one service or server, oldest first.
type Series struct {
	Conns  []uint64 `json:"conns"` // active + inactive
	Active []uint64 `json:"active"`
	Inact  []uint64 `json:"inact"`
	CPS    []uint64 `json:"cps"`
	PPS    []uint64 `json:"pps"`
}

// History is what /api/overview sends for the charts.
type History struct {
	Times  []int64            `json:"t"` // unix milliseconds
	Series map[string]*Series `json:"series"`
}

// Sample records a chart sample every SampleEvery until ctx ends, notes
// health changes (without HealthFeed) and completes drains.
func (m *Monitor) Sample(ctx context.Context) {
	t := time.NewTicker(m.o.SampleEvery)
	defer t.Stop()
	m.SampleOnce()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.SampleOnce()
		}
	}
}

// SampleOnce takes one sample now.
func (m *Monitor) SampleOnce() {
	snap := m.o.Control.Snapshot(false)
	now := m.now()
	smp := sample{t: now, pts: map[string]point{}}
	var drained []drainDone
	m.mu.Lock()
	seen := map[string]bool{}
	for _, svc := range snap.Services {
		id := serviceID(svc.Protocol, svc.Address)
		var sp point
		sp.cps, sp.pps = svc.Rate.CPS, svc.Rate.InPPS+svc.Rate.OutPPS
		for _, rs := range svc.Servers {
			rid := serverID(id, rs.Address)
			seen[rid] = true
			p := point{uint64(rs.ActiveConns), uint64(rs.InactConns), rs.Rate.CPS, rs.Rate.InPPS + rs.Rate.OutPPS}
			smp.pts[rid] = p
			sp.active += p.active
			sp.inact += p.inact
			if !m.o.HealthFeed {
				if old, ok := m.lastHC[rid]; ok && old != rs.Health {
					e := HealthEvent{Time: now, Service: svc.Protocol.String() + " " + svc.Address.String(),
						RealServer: rs.Address.String(), From: old, To: rs.Health, Reason: "seen by the monitor"}
					if hi := healthOf(&rs); hi.Reason != "" {
						e.Reason = hi.Reason
						if !hi.Since.IsZero() {
							e.Time = hi.Since
						}
					}
					m.addEventLocked(e)
				}
				m.lastHC[rid] = rs.Health
			}
			if m.draining[rid] {
				switch {
				case rs.Weight != 0: // someone set a weight: the drain is off
					delete(m.draining, rid)
				case rs.ActiveConns == 0 && rs.InactConns == 0:
					delete(m.draining, rid)
					drained = append(drained, drainDone{svc.Protocol, svc.Address, rs.Address})
				}
			}
		}
		smp.pts[id] = sp
	}
	for rid := range m.lastHC {
		if !seen[rid] {
			delete(m.lastHC, rid)
		}
	}
	for rid := range m.draining {
		if !seen[rid] {
			delete(m.draining, rid)
		}
	}
	if len(m.hist) >= m.o.History {
		copy(m.hist, m.hist[1:])
		m.hist = m.hist[:len(m.hist)-1]
	}
	m.hist = append(m.hist, smp)
	m.mu.Unlock()
	for _, d := range drained {
		argv := []string{"ulvsadm", "-d", protoFlag(d.proto), d.svc.String(), "-r", d.rs.String()}
		err := m.o.Control.Command(argv, nil)
		ev := m.log.Info()
		if err != nil {
			ev = m.log.Error().Err(err)
		}
		ev.Str("audit", "drained").Str("user", "(drain)").Strs("argv", argv).
			Msg("drained real server has no connections left: removed")
	}
}

type drainDone struct {
	proto   config.Protocol
	svc, rs netip.AddrPort
}

// history returns the chart data of the given ids (all with nil).
func (m *Monitor) history(ids map[string]bool) History {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := History{Times: make([]int64, len(m.hist)), Series: map[string]*Series{}}
	for i, s := range m.hist {
		h.Times[i] = s.t.UnixMilli()
		for id, p := range s.pts {
			if ids != nil && !ids[id] {
				continue
			}
			se := h.Series[id]
			if se == nil {
				// Pad the series of an id that appeared late.
				se = &Series{Conns: make([]uint64, i), Active: make([]uint64, i), Inact: make([]uint64, i), CPS: make([]uint64, i), PPS: make([]uint64, i)}
				h.Series[id] = se
			}
			for len(se.Active) < i {
				se.Conns = append(se.Conns, 0)
				se.Active, se.Inact, se.CPS, se.PPS = append(se.Active, 0), append(se.Inact, 0), append(se.CPS, 0), append(se.PPS, 0)
			}
			se.Conns = append(se.Conns, p.active+p.inact)
			se.Active = append(se.Active, p.active)
			se.Inact = append(se.Inact, p.inact)
			se.CPS = append(se.CPS, p.cps)
			se.PPS = append(se.PPS, p.pps)
		}
	}
	return h
}

func protoFlag(p config.Protocol) string {
	if p == config.UDP {
		return "-u"
	}
	return "-t"
}

func methodFlag(m string) (string, bool) {
	switch m {
	case "nat", "masq", "m":
		return "-m", true
	case "dr", "route", "g":
		return "-g", true
	case "tun", "tunnel", "i":
		return "-i", true
	}
	return "", false
}
