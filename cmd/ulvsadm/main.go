// Command ulvsadm administers a running ulvsd with ipvsadm's command line
// and output formats, so that LVS users' commands and scripts work
// unchanged. It talks to ulvsd over its control socket (--socket PATH,
// default /run/ulvs/ulvsd.sock).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/control"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one ulvsadm invocation and returns its exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "passwd" {
		return passwd(args[1:], stdin, stdout, stderr) // cmd/ulvsadm/passwd.go
	}
	args, health := cutHealthFlag(args)
	args = append([]string{"ulvsadm"}, args...) // argv, as ipvsadm parses it
	cmd, err := ipvsadm.Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ipvsadm.ExitCode(err)
	}
	if health && (cmd.Kind != ipvsadm.CmdList || cmd.JSON || cmd.Options&ipvsadm.OptConnection != 0) {
		fmt.Fprintln(stderr, "ulvsadm: --health goes with -L (or -l) alone: ulvsadm -L --health")
		return 2
	}
	switch cmd.Kind {
	case ipvsadm.CmdHelp:
		fmt.Fprint(stdout, ipvsadm.Usage("ulvsadm"))
		return 0
	case ipvsadm.CmdVersion:
		fmt.Fprintln(stdout, ipvsadm.VersionString)
		return 0
	}
	c := control.NewClient(cmd.Socket)
	switch cmd.Kind {
	case ipvsadm.CmdList, ipvsadm.CmdSave:
		if health {
			var s *ipvsadm.Snapshot
			if s, err = c.Snapshot(false); err == nil {
				if cmd.HasService() { // -L -t VIP:PORT --health: that service alone
					svc := s.Find(cmd.Service.Key())
					if svc == nil {
						err = ipvsadm.ErrListNoService
						break
					}
					s.Services = []ipvsadm.Service{*svc}
				}
				printHealth(stdout, s, time.Now())
			}
			break
		}
		err = list(c, cmd, stdout)
	case ipvsadm.CmdRestore:
		var in []byte
		if in, err = io.ReadAll(stdin); err == nil {
			err = c.Command(args, in)
		}
	case ipvsadm.CmdReload:
		var r control.ChangeReply
		if r, err = c.Reload(); err == nil {
			for _, op := range r.Ops {
				fmt.Fprintln(stdout, op)
			}
			for _, k := range r.Restart {
				fmt.Fprintf(stderr, "ulvsadm: %s changed; it takes effect when ulvsd restarts\n", k)
			}
		}
	case ipvsadm.CmdWriteConfig:
		var data []byte
		if data, err = c.Config(); err == nil {
			err = writeFile(cmd.File, data)
		}
	case ipvsadm.CmdStartDaemon: // issue 7 (control/daemon.go)
		err = c.StartDaemon(cmd.Daemon)
	case ipvsadm.CmdStopDaemon:
		err = c.StopDaemon(cmd.Daemon.State)
	default:
		err = c.Command(args, nil)
	}
	if err != nil {
		fmt.Fprintln(stderr, message(err))
		return exitCode(err)
	}
	return 0
}

func message(err error) string {
	if errors.Is(err, control.ErrNoDaemon) {
		return fmt.Sprintf("ulvsadm: %v\nIs ulvsd running? (--socket PATH names another control socket)", err)
	}
	return err.Error()
}

func exitCode(err error) int {
	var re *control.RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	return ipvsadm.ExitCode(err)
}

func printer(cmd *ipvsadm.Command) *ipvsadm.Printer {
	p := &ipvsadm.Printer{}
	if cmd.Format&ipvsadm.FmtNumeric == 0 {
		p.Resolver = &ipvsadm.NetResolver{}
	}
	return p
}

// list prints a listing (-L in all its forms, -S) from the daemon's
// snapshot, as ipvsadm would.
func list(c *control.Client, cmd *ipvsadm.Command, w io.Writer) error {
	s, err := c.Snapshot(cmd.Options&ipvsadm.OptConnection != 0)
	if err != nil {
		return err
	}
	if cmd.Options&ipvsadm.OptDaemon != 0 { // issue 7: -L --daemon
		if s.Daemons, err = c.Daemons(); err != nil {
			return err
		}
	}
	return printer(cmd).Output(w, cmd, s)
}

func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
