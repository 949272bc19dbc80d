package sim

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ulvs/ulvs/scheduler"
)

const usage = `usage: ulvsbench sched sim [FLAGS]

Runs one synthetic workload (Poisson arrivals, heavy-tailed connection
lengths, real servers of different capacities, a server failing and
returning, a weight change) through each scheduler with the real
scheduler.Pool, in simulated time, and reports per scheduler the load of
each server against its capacity, the largest overload, Jain's fairness
index, the disruption of each pool change and decisions per second.

A server of capacity c serves up to c*U connections at full speed, with
U = rate*mean-len/(load*sum(capacities)); beyond that it shares its slots
(processor sharing), so its connections last longer. Load = connections/slots.

flags:
`

const example = `
example:
  ulvsbench sched sim --scheds rr,wrr,lc,wlc,sed,nq,lblc,lblcr,dh,sh,mh,fo,ovf,twos \
      --capacities 1,1,2,2,4,4,8,8 --rate 2000 --duration 300s --seed 1 --svg out/

exit status: 0 success, 1 the run or an output failed, 2 bad flags.
`

// Main runs `ulvsbench sched sim ARGS...` and returns the exit status:
// 0 on success, 1 when the run or writing its output fails, 2 for bad usage.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ulvsbench sched sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scheds := fs.String("scheds", strings.Join(scheduler.Names, ","), "comma-separated schedulers to compare; NAME+FLAG adds an ipvsadm -b flag (mh+mh-port, sh+sh-port+sh-fallback)")
	servers := fs.Int("servers", 0, "number of real servers (default: the number of --capacities, or 8)")
	caps := fs.String("capacities", "", "comma-separated relative capacities, one per server (default 1,1,2,2,4,4,8,8; all 1 when only --servers is given)")
	weights := fs.String("weights", "", "comma-separated weights, one per server, or \"slots\" for each server's slot count (what ovf's weight means) (default: the capacities)")
	rate := fs.Float64("rate", 2000, "new connections per second (Poisson)")
	meanLen := fs.Duration("mean-len", time.Second, "mean connection length on a server that is not overloaded")
	dist := fs.String("dist", Pareto, "connection length distribution: pareto or lognormal")
	shape := fs.Float64("shape", 0, "Pareto alpha (> 1, default 1.5) or lognormal sigma (> 0, default 1)")
	load := fs.Float64("load", 0.8, "offered load as a share of total capacity (sets the slots per capacity unit)")
	duration := fs.Duration("duration", 300*time.Second, "simulated time")
	sample := fs.Duration("sample", time.Second, "load sampling period (simulated)")
	maxEvents := fs.Int64("max-events", 50_000_000, "bound on simulated events per scheduler")
	seed := fs.Uint64("seed", 1, "PCG seed: same seed, same result")
	clients := fs.Int("clients", 10000, "client source addresses (sh, mh hash them)")
	dsts := fs.Int("dsts", 1000, "destination addresses (dh, lblc, lblcr hash them; 1 = a plain VIP)")
	zipf := fs.Float64("zipf", 0, "client and destination popularity: 0 uniform, or a Zipf exponent > 1 (a few hot clients)")
	probes := fs.Int("probes", 10000, "flow keys of the disruption probe")
	fail := fs.String("fail", "", `server failure "SERVER:AT[:BACK]" (e.g. 4:100s:150s), or "none" (default: server N/2 at duration/3, back at duration/2)`)
	failMode := fs.String("fail-mode", "delete", "delete (the server dies: its connections are reset) or quiesce (weight 0: they finish)")
	reweight := fs.String("reweight", "", `weight change "SERVER:AT:WEIGHT", or "none" (default: the last server to half its weight at 2*duration/3)`)
	timing := fs.Int("timing", 200000, "decisions timed per scheduler for decisions/s (0: no timing, fully deterministic output)")
	window := fs.Int("window", 1024, "open connections kept while timing")
	mhIndex := fs.Int("mh-table-index", 12, "mh table size index 8..17 (12 = 4093 slots)")
	jsonOut := fs.Bool("json", false, "print JSON instead of the table")
	svgDir := fs.String("svg", "", "write SVG charts into this directory")
	perServer := fs.Bool("per-server", false, "also print each server's mean load per scheduler")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), example)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "ulvsbench sched sim: "+format+"\n", a...)
		fmt.Fprint(stderr, "run 'ulvsbench sched sim --help' for the flags\n")
		return 2
	}
	if fs.NArg() != 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg := Config{
		Rate: *rate, MeanLen: *meanLen, Dist: *dist, Shape: *shape, Load: *load,
		Duration: *duration, Sample: *sample, MaxEvents: *maxEvents, Seed: *seed,
		Clients: *clients, Dsts: *dsts, Zipf: *zipf, Probes: *probes, Timing: *timing, Window: *window,
		MHTableIndex: *mhIndex,
	}
	// Zero means "default" in Config; on the command line it is an error.
	for name, v := range map[string]float64{"rate": *rate, "load": *load, "mean-len": float64(*meanLen),
		"duration": float64(*duration), "sample": float64(*sample), "max-events": float64(*maxEvents),
		"clients": float64(*clients), "dsts": float64(*dsts), "probes": float64(*probes), "window": float64(*window)} {
		if !(v > 0) {
			return bad("--%s must be > 0", name)
		}
	}
	if set["shape"] && !(*shape > 0) {
		return bad("--shape must be > 0")
	}
	if *timing < 0 {
		return bad("--timing must be >= 0")
	}
	for _, s := range strings.Split(*scheds, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Scheds = append(cfg.Scheds, s)
		}
	}
	if len(cfg.Scheds) == 0 {
		return bad("--scheds is empty")
	}
	var err error
	switch {
	case *caps != "":
		if cfg.Capacities, err = parseInts(*caps); err != nil {
			return bad("--capacities: %v", err)
		}
		if set["servers"] && *servers != len(cfg.Capacities) {
			return bad("--servers %d but %d capacities", *servers, len(cfg.Capacities))
		}
	case set["servers"]:
		if *servers < 1 || *servers > MaxServers {
			return bad("--servers %d, want 1..%d", *servers, MaxServers)
		}
		cfg.Capacities = make([]int32, *servers)
		for i := range cfg.Capacities {
			cfg.Capacities[i] = 1
		}
	default:
		cfg.Capacities = []int32{1, 1, 2, 2, 4, 4, 8, 8}
	}
	n := len(cfg.Capacities)
	switch *weights {
	case "":
	case "slots":
		if cfg.Weights, err = SlotWeights(cfg); err != nil {
			return bad("%v", err)
		}
	default:
		if cfg.Weights, err = parseInts(*weights); err != nil {
			return bad("--weights: %v", err)
		}
	}
	switch *failMode {
	case "delete", "quiesce":
	default:
		return bad("--fail-mode %q, want delete or quiesce", *failMode)
	}
	switch *fail {
	case "none":
	case "":
		cfg.Fail = &Fail{Server: n / 2, At: *duration / 3, Back: *duration / 2}
	default:
		f, err := parseFail(*fail)
		if err != nil {
			return bad("--fail %q: %v", *fail, err)
		}
		cfg.Fail = f
	}
	if cfg.Fail != nil {
		cfg.Fail.Quiesce = *failMode == "quiesce"
	}
	switch *reweight {
	case "none":
	case "":
		w := int32(1)
		if len(cfg.Weights) == n {
			w = cfg.Weights[n-1]
		} else if n > 0 {
			w = cfg.Capacities[n-1]
		}
		cfg.Reweight = &Reweight{Server: n - 1, At: *duration * 2 / 3, Weight: max(w/2, 1)}
	default:
		r, err := parseReweight(*reweight)
		if err != nil {
			return bad("--reweight %q: %v", *reweight, err)
		}
		cfg.Reweight = r
	}
	res, err := Run(cfg)
	if err != nil {
		if errors.Is(err, ErrConfig) {
			return bad("%v", err)
		}
		fmt.Fprintf(stderr, "ulvsbench sched sim: %v\n", err)
		return 1
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", " ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "ulvsbench sched sim: %v\n", err)
			return 1
		}
	} else if err := WriteTable(stdout, res, *perServer); err != nil {
		fmt.Fprintf(stderr, "ulvsbench sched sim: %v\n", err)
		return 1
	}
	if *svgDir != "" {
		if err := WriteSVG(*svgDir, res); err != nil {
			fmt.Fprintf(stderr, "ulvsbench sched sim: --svg: %v\n", err)
			return 1
		}
	}
	return 0
}

func parseInts(s string) ([]int32, error) {
	var out []int32
	for i, f := range strings.Split(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("item %d %q is not an integer", i+1, f)
		}
		out = append(out, int32(v))
	}
	return out, nil
}

func parseFail(s string) (*Fail, error) {
	p := strings.Split(s, ":")
	if len(p) < 2 || len(p) > 3 {
		return nil, errors.New(`want SERVER:AT[:BACK], e.g. 4:100s:150s`)
	}
	srv, err := strconv.Atoi(p[0])
	if err != nil {
		return nil, fmt.Errorf("server %q is not an index", p[0])
	}
	f := &Fail{Server: srv}
	if f.At, err = time.ParseDuration(p[1]); err != nil {
		return nil, fmt.Errorf("failure time: %v", err)
	}
	if len(p) == 3 {
		if f.Back, err = time.ParseDuration(p[2]); err != nil {
			return nil, fmt.Errorf("return time: %v", err)
		}
		if f.Back <= f.At {
			return nil, fmt.Errorf("return time %v not after failure time %v", f.Back, f.At)
		}
	}
	return f, nil
}

func parseReweight(s string) (*Reweight, error) {
	p := strings.Split(s, ":")
	if len(p) != 3 {
		return nil, errors.New(`want SERVER:AT:WEIGHT, e.g. 7:200s:4`)
	}
	srv, err := strconv.Atoi(p[0])
	if err != nil {
		return nil, fmt.Errorf("server %q is not an index", p[0])
	}
	r := &Reweight{Server: srv}
	if r.At, err = time.ParseDuration(p[1]); err != nil {
		return nil, fmt.Errorf("time: %v", err)
	}
	w, err := strconv.ParseInt(p[2], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("weight %q is not an integer", p[2])
	}
	r.Weight = int32(w)
	return r, nil
}

func pct(v float64) string { return strconv.FormatFloat(100*v, 'f', 1, 64) }

// WriteTable prints r as text tables.
func WriteTable(w io.Writer, r *Result, perServer bool) error {
	c := r.Config
	pop := "uniform"
	if c.Zipf != 0 {
		pop = fmt.Sprintf("Zipf %g", c.Zipf)
	}
	fmt.Fprintf(w, "workload: %d servers, capacities %v, weights %v; %g conn/s, %s lengths (shape %g) mean %gs, load %g (%.1f slots per capacity unit); %gs simulated, seed %d; %d clients, %d destinations (%s), %d probe keys\n",
		len(c.Capacities), c.Capacities, c.Weights, c.Rate, c.Dist, c.Shape, c.MeanLen, c.Load, r.SlotsPerUnit, c.Duration, c.Seed, c.Clients, c.Dsts, pop, c.Probes)
	if f := c.Fail; f != nil {
		mode := "deleted (connections reset)"
		if f.Quiesce {
			mode = "quiesced (weight 0)"
		}
		fmt.Fprintf(w, "changes: server %d %s at %v", f.Server, mode, f.At)
		if f.Back > 0 {
			fmt.Fprintf(w, ", back at %v", f.Back)
		}
		fmt.Fprintln(w)
	}
	if rw := c.Reweight; rw != nil {
		fmt.Fprintf(w, "changes: server %d weight -> %d at %v\n", rw.Server, rw.Weight, rw.At)
	}
	if m := r.Machine; m != nil {
		fmt.Fprintf(w, "decisions/s measured on: %s, %d CPUs, %s/%s, %s (%d decisions, %d open connections, one goroutine)\n",
			m.CPU, m.NumCPU, m.GOOS, m.GOARCH, m.GoVersion, c.Timing, c.Window)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	hdr := "sched\tmax-mean\tpeak\tover%\tjain\tjain-min\tslowdown\tunsched\treset%"
	if len(r.Scheds) > 0 {
		for _, ch := range r.Scheds[0].Changes {
			hdr += fmt.Sprintf("\tremap%%:%s", ch.Event)
		}
	}
	if r.Machine != nil {
		hdr += "\tdecisions/s"
	}
	fmt.Fprintln(tw, hdr+"\t")
	for _, s := range r.Scheds {
		reset := 0.0
		for _, ch := range s.Changes {
			reset += ch.Reset
		}
		line := fmt.Sprintf("%s\t%.2f\t%.2f\t%s\t%.3f\t%.3f\t%.2f\t%d\t%s", s.Sched, s.MaxMeanLoad, s.PeakLoad, pct(s.Overloaded),
			s.Jain, s.JainMin, s.Slowdown, s.Unscheduled, pct(reset))
		for _, ch := range s.Changes {
			line += "\t" + pct(ch.Remap)
		}
		if r.Machine != nil {
			line += fmt.Sprintf("\t%.3gM", s.DecisionsPerSec/1e6)
		}
		if s.Truncated {
			line += "\t(truncated at max-events)"
		}
		fmt.Fprintln(tw, line+"\t")
	}
	if len(r.Scheds) > 0 && len(r.Scheds[0].Changes) > 0 {
		line := "ideal\t\t\t\t\t\t\t\t"
		for _, ch := range r.Scheds[0].Changes {
			line += "\t" + pct(ch.Ideal)
		}
		if r.Machine != nil {
			line += "\t"
		}
		fmt.Fprintln(tw, line+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if perServer && len(r.Scheds) > 0 {
		fmt.Fprintln(w, "\nmean load per server (connections / slots):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		hdr := "sched"
		for i, sv := range r.Scheds[0].Servers {
			hdr += fmt.Sprintf("\t%d (cap %d)", i, sv.Capacity)
		}
		fmt.Fprintln(tw, hdr+"\t")
		for _, s := range r.Scheds {
			line := s.Sched
			for _, sv := range s.Servers {
				line += fmt.Sprintf("\t%.2f", sv.MeanLoad)
			}
			fmt.Fprintln(tw, line+"\t")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprint(w, `
max-mean: the highest time-averaged load of a server (load = open connections / slots; 1 = full capacity)
peak: the highest load of any server at any sample; over%: share of server samples with load > 1
jain: Jain's index of the servers' loads, mean over samples (1 = proportional to capacity, 1/n = one server has all); jain-min: the worst sample
slowdown: mean (connection duration / its length at full speed); unsched: connections with no server
reset%: open connections lost when the failed server was deleted
remap%: share of probe flow keys whose server changed across the pool change (Maglev's disruption); ideal: least share that must move
`)
	return nil
}
