package dataplane

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
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
)

const usage = `usage: ulvsbench dataplane [--quick] [--json] [--ulvsd PATH] [--duration D] [--reps N]
                           [--flows N] [--servers N] [--tcp-duration D] [--tcp-conns N]
                           [--no-tcp] [--no-scaling] [--profile FILE]

Builds a network-namespace lab and measures, in one run, 64-byte UDP packet
rates through the kernel (plain forwarding, nftables DNAT with conntrack)
and ulvsd (DR, NAT, TUN), TCP requests and connections per second through
the VIP (ulvsd NAT, nftables DNAT, HAProxy mode tcp), and ulvsd's scaling
from 1 to 2 workers. Needs root. Every namespace, nft table and process it
creates is removed at the end, also on error or Ctrl-C.
`

// Main runs `ulvsbench dataplane ARGS` and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dataplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	quick := fs.Bool("quick", false, "short runs (0.5 s windows, 1 run each, 4096 flows): a smoke test, not a measurement")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout (progress goes to stderr)")
	def := Options{}.withDefaults()
	o := Options{}
	fs.StringVar(&o.Ulvsd, "ulvsd", "", "ulvsd `binary` (default: next to this executable, else $PATH)")
	fs.DurationVar(&o.Duration, "duration", def.Duration, "measuring window per run")
	fs.DurationVar(&o.Warmup, "warmup", def.Warmup, "warm-up before each window")
	fs.DurationVar(&o.Idle, "idle", def.Idle, "no-traffic window before each run that measures the background load")
	fs.IntVar(&o.Reps, "reps", def.Reps, "runs per configuration (the median is reported)")
	fs.IntVar(&o.Flows, "flows", def.Flows, "UDP flows (1..64512)")
	fs.IntVar(&o.Servers, "servers", def.Servers, "real servers (2..40)")
	fs.Int64Var(&o.MaxPackets, "max-packets", def.MaxPackets, "bound on packets sent per run")
	fs.DurationVar(&o.TCPDuration, "tcp-duration", def.TCPDuration, "wrk duration per run")
	fs.IntVar(&o.TCPConns, "tcp-conns", def.TCPConns, "wrk connections")
	fs.BoolVar(&o.NoTCP, "no-tcp", false, "skip the TCP (wrk) measurements")
	fs.Int64Var(&o.Rate, "rate", 0, "pace the generator at this many `pps` (0: as fast as it can)")
	fs.StringVar(&o.Timeouts, "timeouts", "", "ulvsd's timeouts as ipvsadm --set takes them: `TCP,TCPFIN,UDP` seconds (default: ulvsd's)")
	fs.BoolVar(&o.IngressDrop, "ingress-drop", false, "while ulvsd runs, drop VIP traffic at the director's netdev ingress (after ulvsd's rings saw it) so the kernel's IP layer skips it")
	fs.BoolVar(&o.NAPIThreads, "napi-threads", false, "in the pinned ulvsd rows without XDP too, receive in threaded-NAPI threads pinned to the director CPU at nice 19 instead of the RPS softirq")
	fs.StringVar(&o.XDP, "xdp", "", "also measure ulvsd DR, NAT and TUN with the XDP fast lane in this `mode` (native or generic)")
	fs.BoolVar(&o.NoPPS, "no-pps", false, "skip the UDP packet-rate measurements (and the scaling)")
	fs.BoolVar(&o.NoScaling, "no-scaling", false, "skip the 1 -> 2 worker scaling")
	fs.IntVar(&o.Nice, "nice", def.Nice, "nice value of the generator, ulvsd, HAProxy, nginx and wrk (-20..19)")
	fs.BoolVar(&o.NoNice, "no-nice", false, "run everything at nice 0")
	fs.StringVar(&o.Profile, "profile", "", "record the director CPU with perf during the ulvsd NAT runs into `file`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ulvsbench dataplane: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *quick {
		q := Quick()
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			o.Duration = q.Duration
		}
		if !set["warmup"] {
			o.Warmup = q.Warmup
		}
		if !set["idle"] {
			o.Idle = q.Idle
		}
		if !set["reps"] {
			o.Reps = q.Reps
		}
		if !set["flows"] {
			o.Flows = q.Flows
		}
		if !set["tcp-duration"] {
			o.TCPDuration = q.TCPDuration
		}
		if !set["tcp-conns"] {
			o.TCPConns = q.TCPConns
		}
		if !set["max-packets"] {
			o.MaxPackets = q.MaxPackets
		}
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "ulvsbench dataplane: %v\n", err)
		return 2
	}
	if o.Ulvsd == "" {
		o.Ulvsd = findUlvsd()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := stdout
	if *asJSON {
		progress = stderr
	}
	rep, err := Run(ctx, o, progress)
	if err != nil {
		fmt.Fprintf(stderr, "ulvsbench dataplane: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "ulvsbench dataplane: %v\n", err)
			return 1
		}
		return 0
	}
	PrintTable(stdout, rep)
	return 0
}

func (o Options) validate() error {
	switch {
	case o.Duration < 0 || o.Duration > 10*60e9:
		return fmt.Errorf("%w: --duration %s out of range (0..10m)", ErrUsage, o.Duration)
	case o.Warmup < 0 || o.Warmup > 60e9:
		return fmt.Errorf("%w: --warmup %s out of range (0..1m)", ErrUsage, o.Warmup)
	case o.Idle < 0 || o.Idle > 60e9:
		return fmt.Errorf("%w: --idle %s out of range (0..1m)", ErrUsage, o.Idle)
	case o.Reps < 0 || o.Reps > 100:
		return fmt.Errorf("%w: --reps %d out of range (1..100)", ErrUsage, o.Reps)
	case o.Flows < 0 || o.Flows > 64512:
		return fmt.Errorf("%w: --flows %d out of range (1..64512)", ErrUsage, o.Flows)
	case o.Servers != 0 && (o.Servers < 1 || o.Servers > 40):
		return fmt.Errorf("%w: --servers %d out of range (1..40)", ErrUsage, o.Servers)
	case o.TCPDuration < 0 || o.TCPDuration > 10*60e9:
		return fmt.Errorf("%w: --tcp-duration %s out of range (0..10m)", ErrUsage, o.TCPDuration)
	case o.Timeouts != "" && !timeoutsRE.MatchString(o.Timeouts):
		return fmt.Errorf("%w: --timeouts %q: want TCP,TCPFIN,UDP in seconds, e.g. 900,120,300", ErrUsage, o.Timeouts)
	case o.Rate < 0 || o.Rate > 100_000_000:
		return fmt.Errorf("%w: --rate %d out of range (0..100000000 pps)", ErrUsage, o.Rate)
	case o.XDP != "" && o.XDP != "native" && o.XDP != "generic":
		return fmt.Errorf("%w: --xdp %q: want native or generic", ErrUsage, o.XDP)
	case o.Nice < -20 || o.Nice > 19:
		return fmt.Errorf("%w: --nice %d out of range (-20..19)", ErrUsage, o.Nice)
	case o.TCPConns < 0 || o.TCPConns > 4000:
		return fmt.Errorf("%w: --tcp-conns %d out of range (1..4000)", ErrUsage, o.TCPConns)
	}
	return nil
}

var timeoutsRE = regexp.MustCompile(`^[1-9][0-9]{0,6},[1-9][0-9]{0,6},[1-9][0-9]{0,6}$`)

// findUlvsd looks for ulvsd next to the running executable, then in $PATH.
func findUlvsd() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "ulvsd")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("ulvsd"); err == nil {
		return p
	}
	return "ulvsd"
}

// PrintTable writes the report as aligned text tables.
func PrintTable(w io.Writer, r *Report) {
	m := r.Machine
	fmt.Fprintf(w, "\nmachine: %d CPUs (%s), Linux %s, %s; load average %s at start, %s at end\n", m.CPUs, m.CPUModel, m.Kernel, m.Go, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "placement: %s\n", r.Placement)
	if len(r.PPS) > 0 {
		offered := "generator as fast as it can"
		if r.Options.Rate > 0 {
			offered = fmt.Sprintf("generator paced at %d pps", r.Options.Rate)
		}
		fmt.Fprintf(w, "UDP: 64-byte packets, %d flows, %d runs of %s each (medians); %s\n", r.Options.Flows, r.Options.Reps, r.Options.Duration, offered)
		fmt.Fprintf(w, "generator ceiling: %.0f pps (sent %.0f pps)\n\n", r.Generator.PPS, r.Generator.SentPPS)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "configuration\tpps\tratio to nftables DNAT\tns/packet (director CPU)\tbackground busy\t")
		for _, x := range r.PPS {
			fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.0f\t%.0f%%\t\n", x.Name, x.PPS, x.RatioNFT, x.NsPerPkt, 100*x.Background)
		}
		tw.Flush()
		for _, x := range r.PPS {
			if strings.HasPrefix(x.Name, floorName) {
				fmt.Fprintln(w, "engine floor: ulvsd's engine forwarding each frame to a real server's MAC with no LVS work (no parsing, scheduling or connection table): the I/O cost any director on this engine pays here")
			}
		}
	}
	if len(r.Scaling) > 0 {
		fmt.Fprintln(w, "\nulvsd NAT scaling (unpinned, no RPS; ns/packet of all CPUs, generator included)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "configuration\tpps\tratio to nftables DNAT (unpinned)\tns/packet (all CPUs)\tbackground busy\t")
		for _, x := range r.Scaling {
			fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.0f\t%.0f%%\t\n", x.Name, x.PPS, x.RatioNFT, x.NsPerPkt, 100*x.Background)
		}
		tw.Flush()
	}
	if len(r.TCP) > 0 {
		fmt.Fprintf(w, "\nTCP through the VIP (wrk -t1 -c%d against nginx, unpinned)\n", r.Options.TCPConns)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "configuration\trequests/s (keep-alive)\tconnections/s\t")
		for _, x := range r.TCP {
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t\n", x.Name, x.RequestsPerSec, x.ConnsPerSec)
		}
		tw.Flush()
		for _, x := range r.TCP {
			for _, n := range x.Notes {
				fmt.Fprintf(w, "  %s: wrk %s\n", x.Name, n)
			}
		}
	}
}
