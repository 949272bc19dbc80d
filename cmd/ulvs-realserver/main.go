// Command ulvs-realserver prepares a host to be a real server behind an
// ulvs (or LVS) director.
//
//	ulvs-realserver dr  --vip ADDR [--vip ADDR]... [--dev lo] [--undo]
//	ulvs-realserver tun --vip ADDR [--vip ADDR]... [--dev ulvstun0] [--undo]
//	ulvs-realserver agent [--listen ADDR] [--state-file FILE] [--path /load]
//
// dr puts each VIP on a non-ARPing device and sets arp_ignore=1 and
// arp_announce=2; --undo reverses exactly what it changed. tun receives
// IP-in-IP (protocols 4 and 41), decapsulates it in userspace and injects
// the inner packets through a TUN device holding the VIPs, until SIGTERM or
// SIGINT; --undo restores what a crashed run left behind. agent serves the
// load report of the director's feedback health check (GET /load: load
// averages, CPUs, and the state "up", "drain" or "down" read from the
// state file) until SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/ulvs/ulvs/healthcheck"
	"github.com/ulvs/ulvs/realserver"
)

const usage = `usage:
  ulvs-realserver dr  --vip ADDR [--vip ADDR]... [--dev DEVICE] [--undo] [--state-dir DIR]
  ulvs-realserver tun --vip ADDR [--vip ADDR]... [--dev DEVICE] [--undo] [--state-dir DIR]
  ulvs-realserver agent [--listen ADDR] [--state-file FILE] [--path PATH]
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

type vipFlag []netip.Addr

func (v *vipFlag) String() string { return fmt.Sprint([]netip.Addr(*v)) }
func (v *vipFlag) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(part))
		if err != nil {
			// Accept ADDR/32 and ADDR/128, the prefix lengths ulvs uses.
			p, perr := netip.ParsePrefix(strings.TrimSpace(part))
			if perr != nil || p.Bits() != p.Addr().BitLen() {
				return fmt.Errorf("not an IP address (or a /32 or /128): %q", part)
			}
			a = p.Addr()
		}
		*v = append(*v, a.Unmap())
	}
	return nil
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	mode := args[0]
	if mode == "agent" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return runAgent(ctx, args[1:], stderr)
	}
	if mode != "dr" && mode != "tun" {
		if mode == "-h" || mode == "--help" || mode == "help" {
			fmt.Fprint(stderr, usage)
			return 0
		}
		fmt.Fprintf(stderr, "ulvs-realserver: unknown command %q\n%s", mode, usage)
		return 2
	}
	fs := flag.NewFlagSet("ulvs-realserver "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var vips vipFlag
	fs.Var(&vips, "vip", "virtual address (repeatable, or comma-separated)")
	dev := fs.String("dev", "", "device that holds the VIPs (dr: lo; tun: ulvstun0)")
	undo := fs.Bool("undo", false, "reverse what a previous run changed")
	stateDir := fs.String("state-dir", realserver.DefaultStateDir, "where changes are recorded for --undo")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ulvs-realserver %s: unexpected arguments %q\n", mode, fs.Args())
		return 2
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.RFC3339, NoColor: !isTerminal(stderr)}).With().Timestamp().Str("cmd", "ulvs-realserver "+mode).Logger()
	if len(vips) == 0 && !*undo {
		log.Error().Msg("--vip is required")
		return 2
	}
	var err error
	switch {
	case mode == "dr" && *undo:
		err = realserver.UndoDR(realserver.DRConfig{VIPs: vips, Device: *dev, StateDir: *stateDir})
		if err == nil {
			log.Info().Msg("DR set-up undone")
		}
	case mode == "dr":
		var changed bool
		changed, err = realserver.SetupDR(realserver.DRConfig{VIPs: vips, Device: *dev, StateDir: *stateDir})
		if err == nil {
			log.Info().Bool("changed", changed).Str("vips", vips.String()).Msg("DR set-up done (arp_ignore=1, arp_announce=2, VIPs on a non-ARPing device)")
		}
	case mode == "tun" && *undo:
		err = realserver.UndoTUN(realserver.TUNConfig{VIPs: vips, Device: *dev, StateDir: *stateDir})
		if err == nil {
			log.Info().Msg("TUN set-up undone")
		}
	default:
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		var t *realserver.Tunnel
		t, err = realserver.NewTunnel(realserver.TUNConfig{VIPs: vips, Device: *dev, StateDir: *stateDir}, log)
		if err == nil {
			err = t.Run(ctx) // logs the counters as it stops
		}
	}
	if err != nil {
		log.Error().Err(err).Msg("failed")
		return 1
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// runAgent serves healthcheck.ServeAgent until ctx ends.
func runAgent(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ulvs-realserver agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", fmt.Sprintf(":%d", healthcheck.DefaultAgentPort), "address to serve the load report on")
	stateFile := fs.String("state-file", "", "file whose first word (up, drain or down) is the reported state; missing = up")
	path := fs.String("path", healthcheck.DefaultAgentPath, "HTTP path of the report (the check's agent_path)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ulvs-realserver agent: unexpected arguments %q\n", fs.Args())
		return 2
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.RFC3339, NoColor: !isTerminal(stderr)}).With().Timestamp().Str("cmd", "ulvs-realserver agent").Logger()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error().Err(err).Msg("failed")
		return 1
	}
	log.Info().Str("listen", ln.Addr().String()).Str("path", *path).Str("state_file", *stateFile).Msg("serving the load report")
	if err := healthcheck.ServeAgentOn(ctx, ln, healthcheck.AgentOptions{Path: *path, StateFile: *stateFile}); err != nil {
		log.Error().Err(err).Msg("failed")
		return 1
	}
	return 0
}
