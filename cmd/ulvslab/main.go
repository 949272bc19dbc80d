// Command ulvslab builds and tears down network-namespace labs for ulvs:
// clients, directors and real servers joined by bridges, in NAT, DR or TUN
// topology. See the lab package for the topologies and the addressing plan.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ulvs/ulvs/lab"
)

const usage = `usage: ulvslab COMMAND [flags]

commands:
  up    --mode nat|dr|tun [--servers N] [--clients N] [--directors 1|2] [--name P] [--ipv6]
        [--no-servers] [--http-port N] [--udp-echo-port N] [--udp-name-port N]
        build a lab and print its addressing plan
  down  [--name P]          tear a lab down (from its state file, even after a crash)
  exec  [--name P] HOST -- CMD [ARGS...]
                            run a command inside a host's network namespace
  show  [--name P] [--json] print a lab's addressing plan
  list                      list the labs
  demo                      the end-to-end demo: NAT, DR and TUN through ulvsd

Every command takes --state-dir DIR (default /run/ulvs). --name may be
omitted when exactly one lab exists.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "up":
		err = cmdUp(args, stdout)
	case "down":
		err = cmdDown(args, stdout)
	case "exec":
		return cmdExec(args, stderr)
	case "show":
		err = cmdShow(args, stdout)
	case "list":
		err = cmdList(args, stdout)
	case "demo":
		return runDemo(args, stdout, stderr)
	case "serve", "realserver-tun":
		// Hidden: the lab's helper roles (the real servers' built-in
		// server and the TUN decapsulator).
		return lab.RunHelper(append([]string{cmd}, args...))
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "ulvslab: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "ulvslab %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("ulvslab "+name, flag.ContinueOnError)
	stateDir := fs.String("state-dir", "/run/ulvs", "directory of the labs' state files")
	return fs, stateDir
}

func cmdUp(args []string, stdout io.Writer) error {
	fs, stateDir := newFlags("up")
	var spec lab.Spec
	mode := fs.String("mode", "", "forwarding method: nat, dr or tun (required)")
	fs.IntVar(&spec.Servers, "servers", 3, "number of real servers (1..40)")
	fs.IntVar(&spec.Clients, "clients", 1, "number of clients (1..20)")
	fs.IntVar(&spec.Directors, "directors", 1, "number of directors (1 or 2)")
	fs.StringVar(&spec.Name, "name", "", "lab name, the prefix of its namespaces (default: generated)")
	fs.BoolVar(&spec.IPv6, "ipv6", false, "add IPv6 addresses and an IPv6 VIP")
	fs.BoolVar(&spec.NoServers, "no-servers", false, "do not start the built-in servers on the real servers")
	fs.IntVar(&spec.HTTPPort, "http-port", 80, "the built-in server's HTTP port")
	fs.IntVar(&spec.UDPEchoPort, "udp-echo-port", 7, "the built-in server's UDP echo port")
	fs.IntVar(&spec.UDPNamePort, "udp-name-port", 7001, "the built-in server's UDP port that answers its name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	spec.Mode = lab.Mode(*mode)
	spec.StateDir = *stateDir
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, spec)
	if err != nil {
		return err
	}
	printPlan(stdout, &l.Plan)
	fmt.Fprintf(stdout, "\nuse it:\n  ulvslab exec --name %[1]s client1 -- curl http://%[2]s:%[3]d/   # through the VIP, once a director runs\n", l.Plan.Name, l.Plan.VIP4, l.Plan.HTTPPort)
	rs := l.Plan.RealServers()[0]
	fmt.Fprintf(stdout, "  ulvslab exec --name %s %s -- ip addr\n", l.Plan.Name, rs.Name)
	fmt.Fprintf(stdout, "  nsenter --net=%s ...                  # any command in a host\n", lab.NetnsPath(l.Plan.Directors()[0].Netns))
	fmt.Fprintf(stdout, "  ulvslab down --name %s\n", l.Plan.Name)
	return nil
}

func printPlan(w io.Writer, p *lab.Plan) {
	fmt.Fprintf(w, "lab %s: %s, VIP %s", p.Name, strings.ToUpper(string(p.Mode)), p.VIP4)
	if p.VIP6.IsValid() {
		fmt.Fprintf(w, " and %s", p.VIP6)
	}
	fmt.Fprintf(w, ", built-in server: HTTP :%d, UDP echo :%d, UDP name :%d\n", p.HTTPPort, p.UDPEchoPort, p.UDPNamePort)
	for _, n := range p.Nets {
		fmt.Fprintf(w, "net %-8s bridge %s in netns %s, %s", n.Name, n.Bridge, p.Switch, n.Subnet4)
		if n.Subnet6.IsValid() {
			fmt.Fprintf(w, ", %s", n.Subnet6)
		}
		fmt.Fprintln(w)
	}
	if p.Gateway4.IsValid() {
		fmt.Fprintf(w, "real servers' gateway: %s", p.Gateway4)
		if p.Gateway6.IsValid() {
			fmt.Fprintf(w, ", %s", p.Gateway6)
		}
		if len(p.Directors()) > 1 {
			fmt.Fprint(w, " (floating: held by the active director)")
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nHOST\tROLE\tNETNS\tIFACE\tNET\tMAC\tIPV4\tIPV6\tGATEWAY")
	for _, h := range p.Hosts {
		for i, ifc := range h.Ifaces {
			gw := ""
			if i == 0 && h.Gateway4.IsValid() {
				gw = h.Gateway4.String()
			}
			a6 := "-"
			if ifc.Addr6.IsValid() {
				a6 = ifc.Addr6.String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Role, h.Netns, ifc.Name, ifc.Net, ifc.MAC, ifc.Addr4, a6, gw)
		}
	}
	tw.Flush()
}

// pickName returns --name, or the only lab when there is exactly one.
func pickName(name, stateDir string) (string, error) {
	if name != "" {
		return name, nil
	}
	names, err := lab.List(stateDir)
	if err != nil {
		return "", err
	}
	switch len(names) {
	case 0:
		return "", fmt.Errorf("no lab in %s", stateDir)
	case 1:
		return names[0], nil
	}
	return "", fmt.Errorf("several labs (%s): say which with --name", strings.Join(names, ", "))
}

func cmdDown(args []string, stdout io.Writer) error {
	fs, stateDir := newFlags("down")
	name := fs.String("name", "", "lab name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := pickName(*name, *stateDir)
	if err != nil {
		return err
	}
	if err := lab.DownByName(*stateDir, n); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lab %s is down\n", n)
	return nil
}

func cmdShow(args []string, stdout io.Writer) error {
	fs, stateDir := newFlags("show")
	name := fs.String("name", "", "lab name")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := pickName(*name, *stateDir)
	if err != nil {
		return err
	}
	l, err := lab.Load(*stateDir, n)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(l.Plan)
	}
	printPlan(stdout, &l.Plan)
	if ps := l.Processes(); len(ps) > 0 {
		fmt.Fprintln(stdout, "\nprocesses:")
		for _, p := range ps {
			fmt.Fprintf(stdout, "  %-8s pid %-7d %s (log %s)\n", p.Host, p.PID, strings.Join(p.Argv, " "), p.Log)
		}
	}
	return nil
}

func cmdList(args []string, stdout io.Writer) error {
	fs, stateDir := newFlags("list")
	if err := fs.Parse(args); err != nil {
		return err
	}
	names, err := lab.List(*stateDir)
	if err != nil {
		return err
	}
	for _, n := range names {
		l, err := lab.Load(*stateDir, n)
		if err != nil {
			fmt.Fprintf(stdout, "%s\t(unreadable state: %v)\n", n, err)
			continue
		}
		fmt.Fprintf(stdout, "%s\t%s\t%d real servers\tVIP %s\n", n, l.Plan.Mode, len(l.Plan.RealServers()), l.Plan.VIP4)
	}
	return nil
}

func cmdExec(args []string, stderr io.Writer) int {
	fs, stateDir := newFlags("exec")
	name := fs.String("name", "", "lab name")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := fs.Args()
	if len(rest) < 2 {
		fmt.Fprintln(stderr, "ulvslab exec: want HOST -- CMD [ARGS...]")
		return 2
	}
	host, argv := rest[0], rest[1:]
	if argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		fmt.Fprintln(stderr, "ulvslab exec: no command")
		return 2
	}
	n, err := pickName(*name, *stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "ulvslab exec: %v\n", err)
		return 1
	}
	l, err := lab.Load(*stateDir, n)
	if err != nil {
		fmt.Fprintf(stderr, "ulvslab exec: %v\n", err)
		return 1
	}
	if _, ok := l.Plan.Host(host); !ok && host != "switch" {
		var hosts []string
		for _, h := range l.Plan.Hosts {
			hosts = append(hosts, h.Name)
		}
		fmt.Fprintf(stderr, "ulvslab exec: lab %s has no host %q (hosts: %s, switch)\n", n, host, strings.Join(hosts, ", "))
		return 1
	}
	c := l.Exec(context.Background(), host, argv...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := c.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintf(stderr, "ulvslab exec: %v\n", err)
		return 1
	}
	return 0
}
