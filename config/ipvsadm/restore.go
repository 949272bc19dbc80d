package ipvsadm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ulvs/ulvs/config"
)

// Rule is one line of `ipvsadm -R` input split into words.
type Rule struct {
	Line int      // 1-based line number
	Args []string // the words, "ipvsadm" tokens removed
}

// ReadRules splits -R input as ipvsadm's config_stream_read does: words
// are separated by spaces, tabs and carriage returns, one command per line,
// every word "ipvsadm" is dropped, and lines with no words are skipped.
//
// Deliberate difference: a line whose first word starts with '#' is a
// comment and skipped. ipvsadm 1.31 has no working comment support (its
// '#' test looks at the separator after a word, which is never '#'), so it
// passes such a line to its option parser and stops with "Try `ipvsadm
// -h'..."; accepting comments cannot break input that ipvsadm accepts.
func ReadRules(r io.Reader) ([]Rule, error) {
	var out []Rule
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		var words []string
		for _, w := range strings.FieldsFunc(sc.Text(), func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' }) {
			if w != "ipvsadm" {
				words = append(words, w)
			}
		}
		if len(words) == 0 || strings.HasPrefix(words[0], "#") {
			continue
		}
		out = append(out, Rule{Line: n, Args: words})
	}
	return out, sc.Err()
}

// RuleError is a refused line of -R input.
type RuleError struct {
	Line int
	Err  error // an *Error, with ipvsadm's message and exit code
}

func (e *RuleError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the line's error.
func (e *RuleError) Unwrap() error { return e.Err }

// ExitCode returns the exit status for err: an *Error's Code (also inside
// a *RuleError), 1 for anything else, 0 for nil.
func ExitCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return 1
	}
	return 0
}

// ParseRules reads -R input and parses every line as an ipvsadm command
// line. prog is the program name for messages. A line with -R is refused
// as ipvsadm refuses it (no recursion). Nothing is returned unless every
// line parses.
func (p *Parser) ParseRules(r io.Reader, prog string) ([]*Command, error) {
	rules, err := ReadRules(r)
	if err != nil {
		return nil, err
	}
	var cmds []*Command
	for _, rl := range rules {
		cmd, err := p.parse(append([]string{prog}, rl.Args...), true)
		if err == nil && cmd.Kind == CmdRestore {
			err = tryHelp(prog)
		}
		if err != nil {
			return nil, &RuleError{Line: rl.Line, Err: err}
		}
		cmd.Line = rl.Line
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

// Kernel-side errors, with libipvs's ipvs_strerror texts and ipvsadm's exit
// status 255 (its commands return -1).
func kerr(msg string, sentinel error) *Error { return &Error{Msg: msg, Code: 255, Err: sentinel} }

// Apply changes the table c as the kernel would for one command: -A -E -D
// -C -a -e -d -Z and --set. Other commands (listings, -S, daemons, ulvs's
// own) do not change the table and return an error. Errors carry ipvsadm's
// messages ("Service already exists", "No such destination", ...).
func Apply(c *config.Config, cmd *Command) error {
	key := config.Key{Protocol: cmd.Service.Protocol, Address: cmd.Service.Address}
	i := -1
	if cmd.HasService() {
		i = c.Find(key)
	}
	switch cmd.Kind {
	case CmdAdd, CmdEdit:
		if cmd.Kind == CmdAdd && i >= 0 {
			return kerr("Service already exists", config.ErrServiceExists)
		}
		if cmd.Kind == CmdEdit && i < 0 {
			return kerr("No such service", config.ErrNoService)
		}
		vs := cmd.Service.Clone()
		vs.RealServers = nil
		vs.Normalize()
		if err := vs.Validate(); err != nil {
			return kerr("Invalid operation.  Possibly wrong module version, address not unicast, ...", err)
		}
		if i < 0 {
			c.VirtualServers = append(c.VirtualServers, vs)
		} else {
			old := &c.VirtualServers[i]
			vs.RealServers = old.RealServers
			// ipvsadm -E does not know health checks or sorry servers:
			// keep them.
			vs.HealthCheck, vs.SorryServer, vs.SorryMethod = old.HealthCheck, old.SorryServer, old.SorryMethod
			c.VirtualServers[i] = vs
		}
	case CmdDel:
		if i < 0 {
			return kerr("No such service", config.ErrNoService)
		}
		c.VirtualServers = append(c.VirtualServers[:i], c.VirtualServers[i+1:]...)
	case CmdFlush:
		c.VirtualServers = nil
	case CmdZero:
		if cmd.HasService() && i < 0 {
			return kerr("No such service", config.ErrNoService)
		}
	case CmdAddDest, CmdEditDest, CmdDelDest:
		if i < 0 {
			return kerr("Service not defined", config.ErrNoServiceDef)
		}
		vs := &c.VirtualServers[i]
		j := vs.Find(cmd.Server.Address)
		switch cmd.Kind {
		case CmdAddDest:
			if j >= 0 {
				return kerr("Destination already exists", config.ErrDestExists)
			}
		case CmdEditDest, CmdDelDest:
			if j < 0 {
				return kerr("No such destination", config.ErrNoDest)
			}
		}
		if cmd.Kind == CmdDelDest {
			vs.RealServers = append(vs.RealServers[:j], vs.RealServers[j+1:]...)
			return nil
		}
		if cmd.Server.LowerThreshold > cmd.Server.UpperThreshold {
			// The kernel answers ERANGE; libipvs prints strerror.
			return kerr("Numerical result out of range", config.ErrInvalid)
		}
		if cmd.Kind == CmdAddDest {
			vs.RealServers = append(vs.RealServers, cmd.Server)
		} else {
			hc := vs.RealServers[j].HealthCheck // -e keeps the server's check
			vs.RealServers[j] = cmd.Server
			vs.RealServers[j].HealthCheck = hc
		}
	case CmdTimeout:
		for k, d := range []*time.Duration{&c.Timeouts.TCP, &c.Timeouts.TCPFin, &c.Timeouts.UDP} {
			if cmd.Timeouts[k] != 0 {
				*d = time.Duration(cmd.Timeouts[k]) * time.Second
			}
		}
	default:
		return fmt.Errorf("%w: the '%s' command does not change the table", config.ErrInvalid, cmd.Kind)
	}
	return nil
}

// Restore applies -R input to a copy of base (nil = an empty table with
// default settings) and returns the new table, or nil and the first error
// (a *RuleError naming the line). Unlike ipvsadm, which applies lines one by
// one and stops at the first bad one, nothing is half-applied: the caller
// swaps in the result only on success. Listing lines (-L, -S) are accepted
// and ignored.
func (p *Parser) Restore(base *config.Config, r io.Reader) (*config.Config, error) {
	cmds, err := p.ParseRules(r, "ipvsadm")
	if err != nil {
		return nil, err
	}
	var c *config.Config
	if base == nil {
		c = config.New()
	} else {
		c = base.Clone()
	}
	for _, cmd := range cmds {
		switch cmd.Kind {
		case CmdList, CmdSave, CmdHelp, CmdVersion:
			continue
		case CmdStartDaemon, CmdStopDaemon, CmdReload, CmdWriteConfig:
			return nil, &RuleError{Line: cmd.Line, Err: &Error{Msg: fmt.Sprintf("ulvsadm: the '%s' command is not allowed in -R input", cmd.Kind), Code: 2, Err: config.ErrUnsupported}}
		}
		if err := Apply(c, cmd); err != nil {
			return nil, &RuleError{Line: cmd.Line, Err: err}
		}
	}
	c.Normalize()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// ApplyTo returns a copy of cur with the command applied, normalised and
// validated whole, or nil and the error (cur is never modified). This is
// how a control layer applies one ulvsadm command atomically: compute the
// new table here, then hand config.Diff(cur, new) to the data path.
func (c *Command) ApplyTo(cur *config.Config) (*config.Config, error) {
	n := cur.Clone()
	if n == nil {
		n = config.New()
	}
	if err := Apply(n, c); err != nil {
		return nil, err
	}
	n.Normalize()
	if err := n.Validate(); err != nil {
		return nil, err
	}
	return n, nil
}

// ErrListNoService is what `ipvsadm -L -t ADDR` prints for a service that
// does not exist (libipvs's "No such service"; list_service exits 1).
var ErrListNoService = &Error{Msg: "No such service", Code: 1, Err: config.ErrNoService}

// Find returns the service with key k, or nil.
func (s *Snapshot) Find(k config.Key) *Service {
	for i := range s.Services {
		if s.Services[i].Protocol == k.Protocol && s.Services[i].Address == k.Address {
			return &s.Services[i]
		}
	}
	return nil
}
