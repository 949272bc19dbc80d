package ipvsadm

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/ulvs/ulvs/config"
)

// Output writes what ipvsadm prints for a listing command (-L/-l in all
// its forms, -S) from a snapshot, choosing the listing as ipvsadm does:
// -c the connections, -t/-u one service (ErrListNoService if it does not
// exist), --timeout, --daemon, else the whole table. With --json (ulvs) it
// writes the same selection as JSON instead. Other commands print nothing
// and return an error.
func (p *Printer) Output(w io.Writer, cmd *Command, s *Snapshot) error {
	switch cmd.Kind {
	case CmdSave:
		return p.Save(w, s, cmd.Format)
	case CmdList:
	default:
		return fmt.Errorf("%w: the '%s' command has no listing", config.ErrInvalid, cmd.Kind)
	}
	o := cmd.Options
	var svc *Service
	if o&OptService != 0 && o&OptConnection == 0 {
		svc = s.Find(cmd.Service.Key())
		if svc == nil {
			return ErrListNoService
		}
	}
	if cmd.JSON {
		var v any
		switch {
		case o&OptConnection != 0:
			v = struct {
				Conns []Conn `json:"connections"`
			}{nonNil(s.Conns)}
		case svc != nil:
			one := *s
			one.Services, one.Conns, one.Daemons = []Service{*svc}, nil, nil
			v = &one
		case o&OptTimeout != 0:
			v = struct {
				Timeouts TimeoutsSeconds `json:"timeouts"`
			}{s.Timeouts}
		case o&OptDaemon != 0:
			v = struct {
				Daemons []DaemonState `json:"daemons"`
			}{nonNil(s.Daemons)}
		default:
			all := *s
			all.Conns = nil
			if cmd.Format&FmtNoSort == 0 {
				all.Services = SortedServices(all.Services)
				for i := range all.Services {
					all.Services[i].Servers = SortedServers(all.Services[i].Servers)
				}
			}
			v = &all
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	switch {
	case o&OptConnection != 0:
		return p.Conns(w, s.Conns, cmd.Format)
	case svc != nil:
		return p.Service(w, svc, cmd.Format)
	case o&OptTimeout != 0:
		return p.Timeout(w, s.Timeouts)
	case o&OptDaemon != 0:
		return p.Daemon(w, s.Daemons)
	}
	return p.List(w, s, cmd.Format)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
