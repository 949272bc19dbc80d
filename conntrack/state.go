package conntrack

import "fmt"

// Settings are the IPVS sysctls the connection table obeys (IPVS-SPEC §9).
type Settings struct {
	// ConnReuseMode: 0 disables the special handling of a SYN that hits an
	// old connection; bit 1 (default) expires an uncontrolled TIME_WAIT or
	// CLOSE connection and reschedules; bit 2 also FIN_WAIT with NOOUTPUT.
	ConnReuseMode int
	// ExpireNodestConn: traffic for a deleted real server expires the
	// connection and is rescheduled (a SYN to a weight-0 server too).
	// Default false: such traffic is dropped.
	ExpireNodestConn bool
	// ExpireQuiescentTemplate: a persistence template whose server has
	// weight 0 is no longer reused.
	ExpireQuiescentTemplate bool
	// SloppyTCP: any non-RST TCP segment may start a connection.
	SloppyTCP bool
}

// DefaultSettings returns IPVS's defaults.
func DefaultSettings() Settings { return Settings{ConnReuseMode: 1} }

// SetSettings replaces the sysctl-like settings atomically.
func (t *Table) SetSettings(s Settings) error {
	if s.ConnReuseMode < 0 || s.ConnReuseMode > 3 {
		return fmt.Errorf("conntrack: conn_reuse_mode %d: %w (0..3)", s.ConnReuseMode, ErrRange)
	}
	t.settings.Store(&s)
	return nil
}

// Settings returns the current settings.
func (t *Table) Settings() Settings { return *t.settings.Load() }

// MaxTimeout is the largest timeout, in seconds, that SetTimeouts accepts
// (ipvsadm's limit, 31 days).
const MaxTimeout = 2678400

// default timeouts in seconds (IPVS-SPEC §4), by TCP state, then UDP.
var defaultTimeouts = [numTCPStates + 1]uint32{
	StateNone:        2,
	StateEstablished: 900,
	StateSynSent:     120,
	StateSynRecv:     60,
	StateFinWait:     120,
	StateTimeWait:    120,
	StateClose:       10,
	StateCloseWait:   60,
	StateLastAck:     30,
	StateListen:      120,
	StateSynAck:      120,
	numTCPStates:     300, // UDP
}

const udpSlot = numTCPStates

func (t *Table) initTimeouts() {
	for i, v := range defaultTimeouts {
		t.timeouts[i].Store(v * tickHz)
	}
}

// SetTimeouts sets the ESTABLISHED, FIN_WAIT and UDP timeouts in seconds,
// like `ipvsadm --set tcp tcpfin udp`: 0 leaves a value unchanged; negative
// or larger than MaxTimeout is an error and changes nothing. Existing
// connections pick the new value up at their next packet.
func (t *Table) SetTimeouts(tcp, tcpfin, udp int) error {
	for _, v := range [...]struct {
		name string
		v    int
	}{{"tcp", tcp}, {"tcpfin", tcpfin}, {"udp", udp}} {
		if v.v < 0 || v.v > MaxTimeout {
			return fmt.Errorf("conntrack: --set %s %d: %w (0..%d)", v.name, v.v, ErrRange, MaxTimeout)
		}
	}
	if tcp != 0 {
		t.timeouts[StateEstablished].Store(uint32(tcp) * tickHz)
	}
	if tcpfin != 0 {
		t.timeouts[StateFinWait].Store(uint32(tcpfin) * tickHz)
	}
	if udp != 0 {
		t.timeouts[udpSlot].Store(uint32(udp) * tickHz)
	}
	return nil
}

// Timeouts returns the ESTABLISHED, FIN_WAIT and UDP timeouts in seconds
// (`ipvsadm -L --timeout`).
func (t *Table) Timeouts() (tcp, tcpfin, udp int) {
	return int(t.timeouts[StateEstablished].Load() / tickHz),
		int(t.timeouts[StateFinWait].Load() / tickHz),
		int(t.timeouts[udpSlot].Load() / tickHz)
}

// StateTimeout returns the timeout in seconds of a TCP state (or of UDP
// when proto is not TCP).
func (t *Table) StateTimeout(proto uint8, s State) int {
	if proto != ProtoTCP {
		return int(t.timeouts[udpSlot].Load() / tickHz)
	}
	if s >= numTCPStates {
		return 0
	}
	return int(t.timeouts[s].Load() / tickHz)
}

// TCP state tables (IPVS-SPEC §4, tcp_states): [table][event][old state].
const (
	tblIn = iota
	tblOut
	tblInOnly
)

const (
	evSyn = iota
	evFin
	evAck
	evRst
)

const (
	sNO = StateNone
	sES = StateEstablished
	sSS = StateSynSent
	sSR = StateSynRecv
	sFW = StateFinWait
	sTW = StateTimeWait
	sCL = StateClose
	sCW = StateCloseWait
	sLA = StateLastAck
	sLI = StateListen
	sSA = StateSynAck
)

var tcpStates = [3][4][numTCPStates]State{
	tblIn: {
		evSyn: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		evFin: {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW},
		evAck: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		evRst: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR},
	},
	tblOut: {
		evSyn: {sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR},
		evFin: {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
		evAck: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
		evRst: {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
	},
	tblInOnly: {
		evSyn: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		evFin: {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW},
		evAck: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		evRst: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
	},
}

// tcpEvent returns the event of a segment: the first flag set in the order
// RST, SYN, FIN, ACK, or -1 for none.
func tcpEvent(flags uint8) int {
	switch {
	case flags&TCPRst != 0:
		return evRst
	case flags&TCPSyn != 0:
		return evSyn
	case flags&TCPFin != 0:
		return evFin
	case flags&TCPAck != 0:
		return evAck
	}
	return -1
}

// NextTCPState is the pure TCP transition of IPVS: the state a connection in
// old moves to on a segment with flags, seen in the input direction
// (output=false) or output (true), with NOOUTPUT still set (noOutput).
// An output segment always uses the OUT table (it clears NOOUTPUT).
func NextTCPState(old State, flags uint8, output, noOutput bool) State {
	ev := tcpEvent(flags)
	if ev < 0 || old >= numTCPStates {
		return StateClose
	}
	tbl := tblIn
	switch {
	case output:
		tbl = tblOut
	case noOutput:
		tbl = tblInOnly
	}
	return tcpStates[tbl][ev][old]
}
