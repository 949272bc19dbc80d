package web

import (
	"bufio"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// The metrics, in the Prometheus text format (version 0.0.4). Labels:
// protocol ("tcp", "udp"), vip (the virtual service's address:port),
// real_server (address:port), direction ("in", "out"), reason, state, role.
var metricHelp = []struct{ name, typ, help string }{
	{"ulvs_virtual_service_connections_total", "counter", "Connections scheduled for the virtual service."},
	{"ulvs_virtual_service_packets_total", "counter", "Packets of the virtual service, by direction."},
	{"ulvs_virtual_service_bytes_total", "counter", "Bytes of the virtual service, by direction."},
	{"ulvs_virtual_service_active_connections", "gauge", "Active connections of the virtual service (sum of its real servers)."},
	{"ulvs_virtual_service_inactive_connections", "gauge", "Inactive connections of the virtual service (sum of its real servers)."},
	{"ulvs_real_server_connections_total", "counter", "Connections scheduled to the real server."},
	{"ulvs_real_server_packets_total", "counter", "Packets of the real server, by direction."},
	{"ulvs_real_server_bytes_total", "counter", "Bytes of the real server, by direction."},
	{"ulvs_real_server_active_connections", "gauge", "Active connections of the real server."},
	{"ulvs_real_server_inactive_connections", "gauge", "Inactive connections of the real server."},
	{"ulvs_real_server_weight", "gauge", "Weight of the real server (0 = quiesced)."},
	{"ulvs_real_server_health", "gauge", "Health state of the real server: 1 for its current state (\"not_checked\" without health checks)."},
	{"ulvs_scheduler_decisions_total", "counter", "Scheduling decisions of the virtual service's scheduler that chose the real server."},
	{"ulvs_drops_total", "counter", "Packets the data path dropped, by reason."},
	{"ulvs_engine_ring_drops_total", "counter", "Frames the kernel dropped because the packet ring was full."},
	{"ulvs_engine_ring_freezes_total", "counter", "Times the packet ring's queue froze."},
	{"ulvs_engine_rx_frames_total", "counter", "Frames received by the packet engine."},
	{"ulvs_engine_tx_frames_total", "counter", "Frames sent by the packet engine."},
	{"ulvs_engine_tx_dropped_total", "counter", "Frames the packet engine could not send."},
	{"ulvs_standby", "gauge", "1 while this director is a standby (does not forward)."},
	{"ulvs_failover_role", "gauge", "Failover role of this director: 1 for the current role."},
	{"ulvs_failover_transitions_total", "counter", "Failover state transitions since start."},
	{"ulvs_health_transitions_total", "counter", "Health-check transitions recorded by the monitor since start."},
}

type metricWriter struct {
	w     *bufio.Writer
	lines map[string][]string
}

func (mw *metricWriter) add(name string, value uint64, labels ...string) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			b.WriteString(escapeLabel(labels[i+1]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatUint(value, 10))
	mw.lines[name] = append(mw.lines[name], b.String())
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// metricName turns a free state name into a label value that reads well.
func stateLabel(s string) string {
	if s == "" || s == NotChecked {
		return "not_checked"
	}
	return s
}

func (m *Monitor) metrics(w http.ResponseWriter, r *http.Request) {
	snap := m.o.Control.Snapshot(false)
	st := m.status()
	fo := m.failover()
	m.mu.Lock()
	nEvents := m.nEvents
	m.mu.Unlock()

	mw := &metricWriter{lines: map[string][]string{}}
	for _, svc := range snap.Services {
		p, vip := svc.Protocol.String(), svc.Address.String()
		sl := []string{"protocol", p, "vip", vip}
		lab := func(extra ...string) []string { return append(append([]string(nil), sl...), extra...) }
		mw.add("ulvs_virtual_service_connections_total", svc.Stats.Conns, sl...)
		mw.add("ulvs_virtual_service_packets_total", svc.Stats.InPkts, lab("direction", "in")...)
		mw.add("ulvs_virtual_service_packets_total", svc.Stats.OutPkts, lab("direction", "out")...)
		mw.add("ulvs_virtual_service_bytes_total", svc.Stats.InBytes, lab("direction", "in")...)
		mw.add("ulvs_virtual_service_bytes_total", svc.Stats.OutBytes, lab("direction", "out")...)
		var act, inact uint64
		for _, rs := range svc.Servers {
			act += uint64(rs.ActiveConns)
			inact += uint64(rs.InactConns)
			rl := lab("real_server", rs.Address.String())
			rlab := func(extra ...string) []string { return append(append([]string(nil), rl...), extra...) }
			mw.add("ulvs_real_server_connections_total", rs.Stats.Conns, rl...)
			mw.add("ulvs_real_server_packets_total", rs.Stats.InPkts, rlab("direction", "in")...)
			mw.add("ulvs_real_server_packets_total", rs.Stats.OutPkts, rlab("direction", "out")...)
			mw.add("ulvs_real_server_bytes_total", rs.Stats.InBytes, rlab("direction", "in")...)
			mw.add("ulvs_real_server_bytes_total", rs.Stats.OutBytes, rlab("direction", "out")...)
			mw.add("ulvs_real_server_active_connections", uint64(rs.ActiveConns), rl...)
			mw.add("ulvs_real_server_inactive_connections", uint64(rs.InactConns), rl...)
			mw.add("ulvs_real_server_weight", uint64(max(rs.Weight, 0)), rl...)
			mw.add("ulvs_real_server_health", 1, rlab("state", stateLabel(rs.Health))...)
			mw.add("ulvs_scheduler_decisions_total", rs.Stats.Conns, rl...)
		}
		mw.add("ulvs_virtual_service_active_connections", act, sl...)
		mw.add("ulvs_virtual_service_inactive_connections", inact, sl...)
	}
	reasons := make([]string, 0, len(st.Drops))
	for k := range st.Drops {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, k := range reasons {
		mw.add("ulvs_drops_total", st.Drops[k], "reason", k)
	}
	if st.Engine != nil {
		mw.add("ulvs_engine_ring_drops_total", st.Engine["KernelDrops"])
		mw.add("ulvs_engine_ring_freezes_total", st.Engine["KernelFreezes"])
		mw.add("ulvs_engine_rx_frames_total", st.Engine["RxFrames"])
		mw.add("ulvs_engine_tx_frames_total", st.Engine["TxFrames"])
		mw.add("ulvs_engine_tx_dropped_total", st.Engine["TxDropped"])
	}
	if m.o.Status != nil {
		mw.add("ulvs_standby", b2u(st.Standby))
	}
	if fo != nil {
		mw.add("ulvs_failover_role", 1, "role", stateLabel(fo.Role))
		mw.add("ulvs_failover_transitions_total", fo.Transitions)
	}
	mw.add("ulvs_health_transitions_total", nEvents)

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	bw := bufio.NewWriter(w)
	mw.w = bw
	for _, h := range metricHelp {
		lines := mw.lines[h.name]
		if len(lines) == 0 {
			continue
		}
		bw.WriteString("# HELP " + h.name + " " + h.help + "\n# TYPE " + h.name + " " + h.typ + "\n")
		for _, l := range lines {
			bw.WriteString(l)
			bw.WriteByte('\n')
		}
	}
	_ = bw.Flush()
}
