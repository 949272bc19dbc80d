// Package ipvsadm speaks ipvsadm 1.31: it parses its command lines and the
// rules that `ipvsadm -S` writes (and `-R` reads) into typed commands with
// ipvsadm's validation, defaults, error messages and exit codes, and prints
// the table in ipvsadm's listing formats byte for byte from a plain data
// [Snapshot]. It is pure logic: the daemon fills a Snapshot and applies the
// commands; ulvsadm parses, sends and prints.
//
// Everything here was written from a reading of ipvsadm.c, libipvs and
// config_stream.c of ipvsadm 1.31, and checked against the real binary
// (crosscheck_test.go, build tag ipvsadmcrosscheck); the deliberate
// differences are listed in the README section for ipvsadm users and in the
// doc comments below.
//
// The intended flow:
//
//	res := &ipvsadm.NetResolver{}            // names as ipvsadm resolves them
//	cmd, err := (&ipvsadm.Parser{Resolver: res}).Parse(os.Args)
//	// err is an *Error: print Msg to stderr, exit with Code.
//	// CmdList, CmdSave: get a Snapshot from ulvsd, then
//	//   (&ipvsadm.Printer{Resolver: res}).Output(os.Stdout, cmd, snap)
//	// (with -n, the resolver is not used).
//	// Table commands: ulvsd computes next, err := cmd.ApplyTo(current)
//	//   (validated whole; nil on error) and applies config.Diff(current, next).
//	// CmdRestore: Parser.Restore(current, stdin) gives the whole new table.
package ipvsadm

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ulvs/ulvs/config"
)

// Kind is the command of one ipvsadm invocation. The values of CmdAdd to
// CmdZero are ipvsadm's CMD_* numbers.
type Kind int

// Commands. CmdReload and CmdWriteConfig are ulvs's own.
const (
	CmdNone        Kind = iota
	CmdAdd              // -A, --add-service
	CmdEdit             // -E, --edit-service
	CmdDel              // -D, --delete-service
	CmdFlush            // -C, --clear
	CmdList             // -L, -l, --list (and no arguments at all)
	CmdAddDest          // -a, --add-server
	CmdDelDest          // -d, --delete-server
	CmdEditDest         // -e, --edit-server
	CmdTimeout          // --set tcp tcpfin udp
	CmdStartDaemon      // --start-daemon master|backup
	CmdStopDaemon       // --stop-daemon master|backup
	CmdRestore          // -R, --restore
	CmdSave             // -S, --save
	CmdZero             // -Z, --zero
	CmdReload           // --reload (ulvs): re-read the daemon's TOML file
	CmdWriteConfig      // --write-config FILE (ulvs): write the live table as TOML
	CmdHelp             // -h, --help
	CmdVersion          // -v, --version
)

var cmdNames = [...]string{"", "add-service", "edit-service", "delete-service", "flush", "list", "add-server",
	"delete-server", "edit-server", "set", "start-daemon", "stop-daemon", "restore", "save", "zero",
	"reload", "write-config", "help", "version"}

// String returns ipvsadm's name of the command ("add-service").
func (k Kind) String() string {
	if k >= 0 && int(k) < len(cmdNames) {
		return cmdNames[k]
	}
	return fmt.Sprintf("command-%d", int(k))
}

// Option bits, with ipvsadm's OPT_* values; OptSocket and OptJSON are ulvs's.
const (
	OptNumeric uint64 = 1 << iota
	OptConnection
	OptService
	OptScheduler
	OptPersistent
	OptNetmask
	OptServer
	OptForward
	OptWeight
	OptUThreshold
	OptLThreshold
	OptMcast
	OptTimeout
	OptDaemon
	OptStats
	OptRate
	OptThresholds
	OptPersistentConn
	OptNoSort
	OptSyncID
	OptExact
	OptOnePacket
	OptPersistenceEngine
	OptSchedFlags
	OptMcastGroup
	OptMcastPort
	OptMcastTTL
	OptSyncMaxlen
	OptTunInfo
	OptTunType
	OptTunPort
	OptTunNoCsum
	OptTunCsum
	OptTunRemCsum
	OptJSON
	OptWriteFile
)

const numOpt = 34 // ipvsadm's NUMBER_OF_OPT

var optNames = [...]string{"numeric", "connection", "service-address", "scheduler", "persistent", "netmask",
	"real-server", "forwarding-method", "weight", "u-threshold", "l-threshold", "mcast-interface", "timeout",
	"daemon", "stats", "rate", "thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
	"sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen", "tun-info", "tun-type", "tun-port",
	"tun-nocsum", "tun-csum", "tun-remcsum", "json", "write-config"}

// The command/option matrix of ipvsadm.c (commands_v_options):
// '+' compulsory, 'x' illegal, '1' exclusive, ' ' optional. Rows are
// CmdAdd..CmdZero; ulvs's two commands take no ipvsadm option.
var matrix = [...]string{
	//  -n -c svc -s -p -M -r fwd -w -x -y mc tot dmn st rt thr pc srt sid ex ops pe -b grp prt ttl sz tinf type tprt nocs csum remc
	CmdAdd:         "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
	CmdEdit:        "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
	CmdDel:         "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdFlush:       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdList:        " 11xxxxxxxxx11       xxxxxxx xxxxx",
	CmdAddDest:     "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
	CmdDelDest:     "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdEditDest:    "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
	CmdTimeout:     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdStartDaemon: "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx",
	CmdStopDaemon:  "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx",
	CmdRestore:     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdSave:        " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdZero:        "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdReload:      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdWriteConfig: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
}

// Format bits for the printers, with ipvsadm's FMT_* values.
type Format uint32

// Listing formats.
const (
	FmtNumeric Format = 1 << iota
	FmtRule
	FmtStats
	FmtRate
	FmtThresholds
	FmtPersistentConn
	FmtNoSort
	FmtExact
	FmtTunInfo
)

// Daemon holds --start-daemon / --stop-daemon and their options.
type Daemon struct {
	State          string // "master" or "backup"
	McastInterface string // default "eth0" on start
	SyncID         int
	SyncMaxlen     int
	McastGroup     netip.Addr
	McastPort      int
	McastTTL       int
}

// Command is one parsed ipvsadm invocation.
type Command struct {
	Kind    Kind
	Options uint64 // Opt* bits given
	// Service is the virtual service named with -t/-u, with the settings
	// of -A/-E filled in with ipvsadm's defaults (an edit is a full
	// replacement: scheduler wlc, no persistence, no flags unless given).
	Service config.VirtualServer
	// Server is the real server of -a/-e/-d, with ipvsadm's defaults
	// (method dr, weight 1, thresholds 0) and the dr/tun port rule applied.
	Server config.RealServer
	// Timeouts are the --set values in seconds; 0 leaves a value unchanged.
	Timeouts [3]int
	Daemon   Daemon
	Format   Format // listing format (-n, --stats, ..., FmtRule for -S)
	Socket   string // --socket PATH (ulvs); "" = the default socket
	JSON     bool   // --json (ulvs): listings as JSON
	File     string // --write-config FILE (ulvs)
	Line     int    // the -R input line it came from; 0 from a command line
}

// HasService reports whether a virtual service was named.
func (c *Command) HasService() bool { return c.Options&OptService != 0 }

// Error is a refused command line: Msg is the exact text ipvsadm writes to
// stderr (without the final newline) and Code its exit status (2 for
// ipvsadm's fail(2, ...), 255 for its popt and usage errors). Unwrap
// returns ErrUsage, or config.ErrUnsupported for what ulvs cannot do.
type Error struct {
	Msg  string
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// ErrUsage is wrapped by every command-line error that ipvsadm would also
// refuse.
var ErrUsage = errors.New("ipvsadm usage error")

func fail(format string, args ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, args...), Code: 2, Err: ErrUsage}
}

func unsupported(what string) *Error {
	return &Error{Msg: "ulvsadm: " + what + " not supported by ulvs in userspace", Code: 2, Err: config.ErrUnsupported}
}

func tryHelp(prog string) *Error {
	return &Error{Msg: fmt.Sprintf("Try `%s -h' or '%s --help' for more information.", prog, prog), Code: 255, Err: ErrUsage}
}

type argKind uint8

const (
	argNone argKind = iota
	argRequired
	argOptional
)

// Tags for options that have no short name (popt's TAG_* values are
// internal; any distinct numbers do).
const (
	tagSet = 128 + iota
	tagStartDaemon
	tagStopDaemon
	tagMcastInterface
	tagTimeout
	tagDaemon
	tagStats
	tagRate
	tagThresholds
	tagPersistentConn
	tagSort
	tagNoSort
	tagPE
	tagSCTP
	tagMcastGroup
	tagMcastPort
	tagMcastTTL
	tagSyncMaxlen
	tagTunInfo
	tagTunType
	tagTunPort
	tagTunNoCsum
	tagTunCsum
	tagTunRemCsum
	tagSyncID
	tagSocket
	tagJSON
	tagReload
	tagWriteConfig
)

type optDef struct {
	long  string
	short byte
	arg   argKind
	tag   int
}

var optTable = []optDef{
	{"add-service", 'A', argNone, 'A'}, {"edit-service", 'E', argNone, 'E'}, {"delete-service", 'D', argNone, 'D'},
	{"clear", 'C', argNone, 'C'}, {"list", 'L', argNone, 'L'}, {"list", 'l', argNone, 'l'}, {"zero", 'Z', argNone, 'Z'},
	{"add-server", 'a', argNone, 'a'}, {"edit-server", 'e', argNone, 'e'}, {"delete-server", 'd', argNone, 'd'},
	{"set", 0, argNone, tagSet}, {"help", 'h', argNone, 'h'}, {"version", 'v', argNone, 'v'},
	{"restore", 'R', argNone, 'R'}, {"save", 'S', argNone, 'S'},
	{"start-daemon", 0, argRequired, tagStartDaemon}, {"stop-daemon", 0, argRequired, tagStopDaemon},
	{"tcp-service", 't', argRequired, 't'}, {"udp-service", 'u', argRequired, 'u'},
	{"sctp-service", 0, argRequired, tagSCTP}, {"fwmark-service", 'f', argRequired, 'f'},
	{"scheduler", 's', argRequired, 's'}, {"persistent", 'p', argOptional, 'p'},
	{"netmask", 'M', argRequired, 'M'}, {"real-server", 'r', argRequired, 'r'},
	{"masquerading", 'm', argNone, 'm'}, {"ipip", 'i', argNone, 'i'}, {"gatewaying", 'g', argNone, 'g'},
	{"weight", 'w', argRequired, 'w'}, {"u-threshold", 'x', argRequired, 'x'}, {"l-threshold", 'y', argRequired, 'y'},
	{"numeric", 'n', argNone, 'n'}, {"connection", 'c', argNone, 'c'},
	{"mcast-interface", 0, argRequired, tagMcastInterface}, {"syncid", 0, argRequired, tagSyncID},
	{"timeout", 0, argNone, tagTimeout}, {"daemon", 0, argNone, tagDaemon}, {"stats", 0, argNone, tagStats},
	{"rate", 0, argNone, tagRate}, {"thresholds", 0, argNone, tagThresholds},
	{"persistent-conn", 0, argNone, tagPersistentConn}, {"nosort", 0, argNone, tagNoSort},
	{"sort", 0, argNone, tagSort}, {"exact", 'X', argNone, 'X'}, {"ipv6", '6', argNone, '6'},
	{"ops", 'o', argNone, 'o'}, {"pe", 0, argRequired, tagPE}, {"sched-flags", 'b', argRequired, 'b'},
	{"mcast-group", 0, argRequired, tagMcastGroup}, {"mcast-port", 0, argRequired, tagMcastPort},
	{"mcast-ttl", 0, argRequired, tagMcastTTL}, {"sync-maxlen", 0, argRequired, tagSyncMaxlen},
	{"tun-info", 0, argNone, tagTunInfo}, {"tun-type", 0, argRequired, tagTunType},
	{"tun-port", 0, argRequired, tagTunPort}, {"tun-nocsum", 0, argNone, tagTunNoCsum},
	{"tun-csum", 0, argNone, tagTunCsum}, {"tun-remcsum", 0, argNone, tagTunRemCsum},
	// ulvs's own.
	{"json", 0, argNone, tagJSON}, {"reload", 0, argNone, tagReload}, {"write-config", 0, argRequired, tagWriteConfig},
}

// token is one option as popt returns it: its definition, its argument and
// the argv element it came from (what poptBadOption prints).
type token struct {
	def  *optDef
	arg  string
	has  bool
	elem string
	err  string // popt error text, if this is an error token
}

// lex splits argv (without the program name) as popt does: long options
// (--name, --name=value), clusters of short options (-Ln, -p360), optional
// arguments taken only when the next word does not start with '-', and
// leftover words collected for poptGetArg.
func lex(args []string) (toks []token, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			return toks, rest
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			var def *optDef
			for j := range optTable {
				if optTable[j].long == name {
					def = &optTable[j]
					break
				}
			}
			if def == nil {
				toks = append(toks, token{elem: a, err: "unknown option"})
				return toks, rest
			}
			t := token{def: def, elem: a}
			switch def.arg {
			case argNone:
				if hasVal {
					toks = append(toks, token{elem: a, err: "option does not take an argument"})
					return toks, rest
				}
			case argRequired:
				if hasVal {
					t.arg, t.has = val, true
				} else if i+1 < len(args) {
					i++
					t.arg, t.has = args[i], true
				} else {
					toks = append(toks, token{elem: a, err: "missing argument"})
					return toks, rest
				}
			case argOptional:
				if hasVal {
					t.arg, t.has = val, true
				} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
					i++
					t.arg, t.has = args[i], true
				}
			}
			toks = append(toks, t)
		case len(a) > 1 && a[0] == '-':
			for k := 1; k < len(a); k++ {
				var def *optDef
				for j := range optTable {
					if optTable[j].short == a[k] {
						def = &optTable[j]
						break
					}
				}
				if def == nil {
					toks = append(toks, token{elem: a, err: "unknown option"})
					return toks, rest
				}
				t := token{def: def, elem: a}
				if def.arg != argNone {
					if k+1 < len(a) {
						t.arg, t.has = a[k+1:], true
					} else if i+1 < len(args) && (def.arg == argRequired || !strings.HasPrefix(args[i+1], "-")) {
						i++
						t.arg, t.has = args[i], true
					} else if def.arg == argRequired {
						toks = append(toks, token{elem: a, err: "missing argument"})
						return toks, rest
					}
					toks = append(toks, t)
					break
				}
				toks = append(toks, t)
			}
		default:
			rest = append(rest, a)
		}
	}
	return toks, rest
}

// Parser parses ipvsadm command lines. Its zero value resolves host and
// service names with NoResolver (numeric only); set Resolver to resolve
// names as ipvsadm does.
type Parser struct {
	Resolver Resolver
}

// Parse parses one command line; args[0] is the program name (used in
// ipvsadm's "Try `prog -h'" message). No arguments at all (or only
// --socket) mean -L, as in ipvsadm. The result is a valid Command or an
// *Error with ipvsadm's message and exit code.
func Parse(args []string) (*Command, error) { return (&Parser{}).Parse(args) }

// Parse is the package-level Parse with p's resolver.
func (p *Parser) Parse(args []string) (*Command, error) {
	return p.parse(args, false)
}

// svcState is ipvsadm's ipvs_service_t while options are read.
type svcState struct {
	af6       bool
	proto     config.Protocol
	addr      netip.Addr
	port      uint16
	fwmark    uint32
	sched     string
	persist   bool
	timeout   int
	netmask   uint32 // IPv4: the mask as a big-endian value; IPv6: prefix length
	onePacket bool
	pe        string
}

func (p *Parser) parse(args []string, fromRestore bool) (*Command, error) {
	res := p.Resolver
	if res == nil {
		res = NoResolver{}
	}
	prog := "ipvsadm"
	if len(args) > 0 {
		prog = args[0]
		args = args[1:]
	}
	cmd := &Command{}
	// --socket is ulvs's and may appear anywhere; take it out first.
	var kept []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--socket" || strings.HasPrefix(a, "--socket=") {
			if cmd.Socket != "" {
				return nil, fail("multiple 'socket' options specified")
			}
			if v, ok := strings.CutPrefix(a, "--socket="); ok {
				cmd.Socket = v
			} else if i+1 < len(args) {
				i++
				cmd.Socket = args[i]
			} else {
				return nil, &Error{Msg: "--socket: missing argument", Code: 255, Err: ErrUsage}
			}
			if cmd.Socket == "" {
				return nil, fail("empty --socket path")
			}
			continue
		}
		kept = append(kept, a)
	}
	args = kept
	if len(args) == 0 && !fromRestore {
		cmd.Kind = CmdList
		return cmd, nil
	}
	if len(args) == 1 && args[0] == "--json" {
		cmd.Kind, cmd.JSON, cmd.Options = CmdList, true, OptJSON
		return cmd, nil
	}

	toks, rest := lex(args)
	if len(toks) == 0 || toks[0].err != "" {
		return nil, tryHelp(prog)
	}
	s := svcState{netmask: math.MaxUint32}
	dest := config.RealServer{Method: config.DR, Weight: 1}
	var destAF6, destSet bool
	tunType := "ipip"
	var schedFlagsArg string

	setOpt := func(bit uint64) *Error {
		if cmd.Options&bit != 0 {
			for i := range optNames {
				if uint64(1)<<i == bit {
					return fail("multiple '%s' options specified", optNames[i])
				}
			}
		}
		cmd.Options |= bit
		return nil
	}

	first := toks[0]
	switch first.def.tag {
	case 'A':
		cmd.Kind = CmdAdd
	case 'E':
		cmd.Kind = CmdEdit
	case 'D':
		cmd.Kind = CmdDel
	case 'a':
		cmd.Kind = CmdAddDest
	case 'e':
		cmd.Kind = CmdEditDest
	case 'd':
		cmd.Kind = CmdDelDest
	case 'C':
		cmd.Kind = CmdFlush
	case 'L', 'l':
		cmd.Kind = CmdList
	case 'Z':
		cmd.Kind = CmdZero
	case tagSet:
		cmd.Kind = CmdTimeout
	case 'R':
		cmd.Kind = CmdRestore
	case 'S':
		cmd.Kind = CmdSave
	case tagStartDaemon, tagStopDaemon:
		cmd.Kind = CmdStartDaemon
		if first.def.tag == tagStopDaemon {
			cmd.Kind = CmdStopDaemon
		}
		switch first.arg {
		case "master", "backup":
			cmd.Daemon.State = first.arg
		default:
			if cmd.Kind == CmdStartDaemon {
				return nil, fail("illegal start-daemon parameter specified")
			}
			return nil, fail("illegal start_daemon specified")
		}
	case 'h':
		cmd.Kind = CmdHelp
		return cmd, nil
	case 'v':
		cmd.Kind = CmdVersion
		return cmd, nil
	case tagReload:
		cmd.Kind = CmdReload
	case tagWriteConfig:
		cmd.Kind = CmdWriteConfig
		cmd.File = first.arg
		if cmd.File == "" {
			return nil, fail("empty --write-config file name")
		}
	default:
		return nil, tryHelp(prog)
	}

	for _, t := range toks[1:] {
		if t.err != "" {
			return nil, &Error{Msg: t.elem + ": " + t.err, Code: 255, Err: ErrUsage}
		}
		var e *Error
		switch t.def.tag {
		case 't', 'u', tagSCTP:
			if e = setOpt(OptService); e != nil {
				return nil, e
			}
			switch t.def.tag {
			case 't':
				s.proto = config.TCP
			case 'u':
				s.proto = config.UDP
			default:
				s.proto = config.SCTP
			}
			r := parseService(res, t.arg, s.proto)
			if r.flags&serviceAddr == 0 {
				return nil, fail("illegal virtual server address[:port] specified")
			}
			s.addr, s.af6 = r.addr, r.addr.Is6()
			if s.af6 {
				s.netmask = 128
			}
			if r.flags&servicePort != 0 {
				s.port = r.port
			}
		case 'f':
			if e = setOpt(OptService); e != nil {
				return nil, e
			}
			n, err := strconv.ParseInt(strings.TrimLeft(t.arg, " \t\n"), 10, 64)
			if err != nil || n <= 0 || n > math.MaxUint32 {
				return nil, fail("invalid fwmark value `%s' specified", t.arg)
			}
			s.af6, s.proto, s.fwmark = false, config.TCP, uint32(n)
		case 's':
			if e = setOpt(OptScheduler); e != nil {
				return nil, e
			}
			s.sched = t.arg
			if len(s.sched) > 15 {
				s.sched = s.sched[:15]
			}
		case 'p':
			if e = setOpt(OptPersistent); e != nil {
				return nil, e
			}
			s.persist = true
			s.timeout = int(config.DefaultPersistence / time.Second)
			if t.has {
				n, ok := stringToNumber(t.arg, 1, int(config.MaxTimeout/time.Second))
				if !ok {
					return nil, fail("invalid timeout value `%s' specified", t.arg)
				}
				s.timeout = n
			}
		case 'M':
			if e = setOpt(OptNetmask); e != nil {
				return nil, e
			}
			if !s.af6 {
				a, ok := inetAton(t.arg)
				if !ok {
					if h, err := res.LookupHost(t.arg); err == nil && h.Is4() {
						a, ok = h, true
					}
				}
				if !ok {
					return nil, fail("illegal virtual server persistent mask specified")
				}
				b := a.As4()
				s.netmask = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			} else {
				n := atoi(t.arg)
				if n < 1 || n > 128 {
					return nil, fail("illegal ipv6 netmask specified")
				}
				s.netmask = uint32(n)
			}
		case 'r':
			if e = setOpt(OptServer); e != nil {
				return nil, e
			}
			r := parseService(res, t.arg, s.proto)
			if r.flags&serviceAddr == 0 {
				return nil, fail("illegal real server address[:port] specified")
			}
			destSet = true
			destAF6 = r.addr.Is6()
			port := s.port
			if r.flags&servicePort != 0 {
				port = r.port
			}
			dest.Address = netip.AddrPortFrom(r.addr, port)
		case 'i', 'g', 'm':
			if e = setOpt(OptForward); e != nil {
				return nil, e
			}
			dest.Method = map[int]config.Method{'i': config.TUN, 'g': config.DR, 'm': config.NAT}[t.def.tag]
		case 'w':
			if e = setOpt(OptWeight); e != nil {
				return nil, e
			}
			n, ok := stringToNumber(t.arg, 0, config.MaxWeight)
			if !ok {
				return nil, fail("illegal weight specified")
			}
			dest.Weight = n
		case 'x':
			if e = setOpt(OptUThreshold); e != nil {
				return nil, e
			}
			n, ok := stringToNumber(t.arg, 0, config.MaxThreshold)
			if !ok {
				return nil, fail("illegal u_threshold specified")
			}
			dest.UpperThreshold = uint32(n)
		case 'y':
			if e = setOpt(OptLThreshold); e != nil {
				return nil, e
			}
			n, ok := stringToNumber(t.arg, 0, config.MaxThreshold)
			if !ok {
				return nil, fail("illegal l_threshold specified")
			}
			dest.LowerThreshold = uint32(n)
		case 'c':
			e = setOpt(OptConnection)
		case 'n':
			e = setOpt(OptNumeric)
			cmd.Format |= FmtNumeric
		case tagMcastInterface:
			e = setOpt(OptMcast)
			cmd.Daemon.McastInterface = t.arg
			if len(cmd.Daemon.McastInterface) > 15 {
				cmd.Daemon.McastInterface = cmd.Daemon.McastInterface[:15]
			}
		case tagSyncID:
			if e = setOpt(OptSyncID); e != nil {
				return nil, e
			}
			n, ok := stringToNumber(t.arg, 0, 255)
			if !ok {
				return nil, fail("illegal syncid specified")
			}
			cmd.Daemon.SyncID = n
		case tagTimeout:
			e = setOpt(OptTimeout)
		case tagDaemon:
			e = setOpt(OptDaemon)
		case tagStats:
			e = setOpt(OptStats)
			cmd.Format |= FmtStats
		case tagRate:
			e = setOpt(OptRate)
			cmd.Format |= FmtRate
		case tagThresholds:
			e = setOpt(OptThresholds)
			cmd.Format |= FmtThresholds
		case tagPersistentConn:
			e = setOpt(OptPersistentConn)
			cmd.Format |= FmtPersistentConn
		case tagNoSort:
			e = setOpt(OptNoSort)
			cmd.Format |= FmtNoSort
		case tagSort:
		case 'X':
			e = setOpt(OptExact)
			cmd.Format |= FmtExact
		case '6':
			if s.fwmark == 0 {
				return nil, fail("-6 used before -f\n")
			}
			s.af6, s.netmask = true, 128
		case 'o':
			e = setOpt(OptOnePacket)
			s.onePacket = true
		case tagPE:
			e = setOpt(OptPersistenceEngine)
			s.pe = t.arg
		case 'b':
			e = setOpt(OptSchedFlags)
			schedFlagsArg = t.arg
			if len(schedFlagsArg) > 127 {
				schedFlagsArg = schedFlagsArg[:127]
			}
		case tagMcastGroup:
			if e = setOpt(OptMcastGroup); e != nil {
				return nil, e
			}
			a, err := netip.ParseAddr(t.arg)
			if strings.Contains(t.arg, ":") {
				if err != nil || !a.Is6() || !a.IsMulticast() {
					return nil, fail("invalid IPv6 mcast-group `%s'", t.arg)
				}
			} else {
				var ok bool
				a, ok = inetPton4(t.arg)
				if !ok || !a.IsMulticast() {
					return nil, fail("invalid IPv4 mcast-group `%s'", t.arg)
				}
			}
			cmd.Daemon.McastGroup = a
		case tagMcastPort:
			if e = setOpt(OptMcastPort); e != nil {
				return nil, e
			}
			n, ok := stringToNumber(t.arg, 1, 65535)
			if !ok {
				return nil, fail("illegal mcast-port specified")
			}
			cmd.Daemon.McastPort = n
		case tagMcastTTL:
			if e = setOpt(OptMcastTTL); e != nil {
				return nil, e
			}
			n, ok := stringToNumber(t.arg, 1, 255)
			if !ok {
				return nil, fail("illegal mcast-ttl specified")
			}
			cmd.Daemon.McastTTL = n
		case tagSyncMaxlen:
			if e = setOpt(OptSyncMaxlen); e != nil {
				return nil, e
			}
			n, ok := stringToNumber(t.arg, 1, 65535-20-8)
			if !ok {
				return nil, fail("illegal sync-maxlen specified")
			}
			cmd.Daemon.SyncMaxlen = n
		case tagTunInfo:
			e = setOpt(OptTunInfo)
			cmd.Format |= FmtTunInfo
		case tagTunType:
			if e = setOpt(OptTunType); e != nil {
				return nil, e
			}
			switch t.arg {
			case "ipip", "gue", "gre":
				tunType = t.arg
			default:
				return nil, fail("illegal tunnel type specified")
			}
		case tagTunPort:
			if e = setOpt(OptTunPort); e != nil {
				return nil, e
			}
			if _, ok := stringToNumber(t.arg, 1, 65535); !ok {
				return nil, fail("illegal tunnel port specified")
			}
		case tagTunNoCsum:
			e = setOpt(OptTunNoCsum)
		case tagTunCsum:
			e = setOpt(OptTunCsum)
		case tagTunRemCsum:
			e = setOpt(OptTunRemCsum)
		case tagJSON:
			e = setOpt(OptJSON)
			cmd.JSON = true
		default:
			// A second command, -h or -v after the command: popt returns it
			// and ipvsadm's option switch does not know it.
			return nil, fail("invalid option `%s'", t.elem)
		}
		if e != nil {
			return nil, e
		}
	}

	if cmd.Kind == CmdTimeout {
		if len(rest) < 3 {
			return nil, fail("--set option requires 3 timeout values")
		}
		for i := 0; i < 3; i++ {
			n, ok := stringToNumber(rest[i], 0, int(config.MaxTimeout/time.Second))
			if !ok {
				return nil, fail("invalid timeout value `%s' specified", rest[i])
			}
			cmd.Timeouts[i] = n
		}
		rest = rest[3:]
	}
	if len(rest) > 0 {
		return nil, fail("unexpected argument %s", rest[0])
	}
	var schedBits uint32
	if schedFlagsArg != "" {
		sched := s.sched
		if sched == "" {
			sched = config.DefaultScheduler
		}
		for _, f := range strings.Split(schedFlagsArg, ",") {
			if f == "" {
				continue // strtok skips empty fields
			}
			b, name, err := config.ParseSchedFlags(sched, []string{f})
			if err != nil {
				if strings.Contains(err.Error(), "needs scheduler") {
					return nil, fail("incompatible scheduler flag `%s'", name)
				}
				return nil, fail("invalid scheduler flag `%s'", name)
			}
			schedBits |= b
		}
	}

	// generic_opt_check: the command/option matrix.
	row := matrix[cmd.Kind]
	count, last := 0, 0
	for j := 0; j < numOpt; j++ {
		set := cmd.Options&(1<<j) != 0
		switch {
		case !set && row[j] == '+':
			return nil, fail("You need to supply the '%s' option for the '%s' command", optNames[j], cmd.Kind)
		case set && row[j] == 'x':
			return nil, fail("Illegal '%s' option with the '%s' command", optNames[j], cmd.Kind)
		case set && row[j] == '1':
			count++
			if count > 1 {
				return nil, fail("The option '%s' conflicts with the '%s' option in the '%s' command", optNames[j], optNames[last], cmd.Kind)
			}
			last = j
		}
	}
	if cmd.JSON && cmd.Kind != CmdList {
		return nil, fail("Illegal 'json' option with the '%s' command", cmd.Kind)
	}

	if cmd.Kind == CmdAdd || cmd.Kind == CmdEdit {
		if s.fwmark == 0 && s.port == 0 && !s.persist {
			return nil, fail("Zero port specified for non-persistent service")
		}
		if s.onePacket && s.fwmark == 0 && s.proto != config.UDP {
			return nil, fail("One-Packet Scheduling is only for UDP virtual services")
		}
		if s.sched == "" {
			s.sched = config.DefaultScheduler
		}
	}
	if cmd.Kind == CmdStartDaemon && cmd.Daemon.McastInterface == "" {
		cmd.Daemon.McastInterface = "eth0"
	}
	if cmd.Kind == CmdAddDest || cmd.Kind == CmdEditDest {
		if s.fwmark == 0 && (dest.Method == config.TUN || dest.Method == config.DR) {
			dest.Address = netip.AddrPortFrom(dest.Address.Addr(), s.port)
		}
		if destSet && destAF6 != s.af6 && dest.Method != config.TUN {
			return nil, fail("Different address family is allowed only for tunneling servers")
		}
		if cmd.Options&(OptTunType|OptTunPort|OptTunNoCsum|OptTunCsum|OptTunRemCsum) != 0 && dest.Method != config.TUN {
			return nil, fail("Tunnel options conflict with forward method")
		}
		if e := tunnelOptCheck(tunType, cmd.Options); e != nil {
			return nil, e
		}
	}
	if cmd.Kind == CmdList {
		o := cmd.Options
		if (o&(OptConnection|OptTimeout|OptDaemon) != 0 && o&(OptStats|OptRate|OptThresholds) != 0) ||
			(o&(OptTimeout|OptDaemon) != 0 && o&OptPersistentConn != 0) {
			return nil, fail("options conflicts in the list command")
		}
	}

	// What ipvsadm accepts but ulvs cannot do.
	switch {
	case s.fwmark != 0:
		return nil, unsupported("firewall-mark services (-f) are")
	case s.proto == config.SCTP:
		return nil, unsupported("SCTP services (--sctp-service) are")
	case s.pe != "":
		return nil, unsupported("persistence engines (--pe) are")
	case tunType != "ipip":
		return nil, unsupported("GUE and GRE tunnels (--tun-type " + tunType + ") are")
	}

	cmd.Service = config.VirtualServer{Protocol: s.proto, Address: netip.AddrPortFrom(s.addr, s.port)}
	if cmd.HasService() {
		vs := &cmd.Service
		vs.Scheduler = s.sched
		if s.persist {
			vs.Persistence = time.Duration(s.timeout) * time.Second
		}
		if s.af6 {
			vs.Netmask = int(s.netmask)
		} else {
			bits, ok := maskBits(s.netmask)
			if !ok && s.persist {
				return nil, unsupported(fmt.Sprintf("non-contiguous netmasks (%s) are", maskString(s.netmask)))
			}
			vs.Netmask = bits
		}
		vs.OnePacket = s.onePacket
		vs.SchedFlags = config.SchedFlagNames(vs.Scheduler, schedBits)
		if vs.Scheduler == "" {
			// -D, -a, -L -t...: no settings; keep the zero scheduler.
			vs.SchedFlags = nil
		}
		if !s.persist {
			vs.Netmask = config.DefaultNetmask(vs.Address.Addr())
		}
		if cmd.Kind == CmdAdd || cmd.Kind == CmdEdit {
			if !config.ValidScheduler(vs.Scheduler) {
				// ipvsadm passes the name to the kernel, which answers
				// ENOENT; libipvs prints this.
				return nil, &Error{Msg: "Scheduler or persistence engine not found", Code: 255, Err: config.ErrInvalid}
			}
		}
	}
	cmd.Server = dest
	return cmd, nil
}

func tunnelOptCheck(tunType string, options uint64) *Error {
	// tunnel_types_v_options: rows ipip, gue, gre; columns tun-port,
	// tun-nocsum, tun-csum, tun-remcsum.
	rows := map[string]string{"ipip": "xxxx", "gue": "+111", "gre": "x11x"}
	cols := []int{30, 31, 32, 33}
	row := rows[tunType]
	count, last := 0, 0
	for j, k := range cols {
		set := options&(1<<k) != 0
		switch {
		case !set && row[j] == '+':
			return fail("You need to supply the '%s' option for the '%s' tunnel type", optNames[k], tunType)
		case set && row[j] == 'x':
			return fail("Illegal '%s' option with the '%s' tunnel type", optNames[k], tunType)
		case set && row[j] == '1':
			count++
			if count > 1 {
				return fail("The option '%s' conflicts with the '%s' option in the '%s' tunnel type", optNames[k], optNames[last], tunType)
			}
			last = k
		}
	}
	return nil
}

func maskBits(m uint32) (int, bool) {
	bits := 0
	for bits < 32 && m&(1<<(31-bits)) != 0 {
		bits++
	}
	return bits, bits == 32 || m<<bits == 0
}

func maskString(m uint32) string {
	return fmt.Sprintf("%d.%d.%d.%d", m>>24, m>>16&0xff, m>>8&0xff, m&0xff)
}

// stringToNumber is ipvsadm's string_to_number: strtol base 10 (leading
// white space and a sign allowed), the whole string consumed, min..max.
func stringToNumber(s string, min, max int) (int, bool) {
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	if t == "" {
		return 0, false
	}
	neg := false
	if t[0] == '+' || t[0] == '-' {
		neg = t[0] == '-'
		t = t[1:]
	}
	if t == "" {
		return 0, false
	}
	var n int64
	for _, c := range t {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<40 {
			n = n*10 + int64(c-'0')
		}
	}
	if neg {
		n = -n
	}
	if n < int64(min) || n > int64(max) {
		return 0, false
	}
	return int(n), true
}

// atoi is C's atoi: leading white space, a sign, then digits up to the
// first non-digit; 0 if none.
func atoi(s string) int {
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if t != "" && (t[0] == '+' || t[0] == '-') {
		neg = t[0] == '-'
		t = t[1:]
	}
	n := 0
	for _, c := range t {
		if c < '0' || c > '9' || n > 1<<30 {
			break
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		return -n
	}
	return n
}
