// Package sim is `ulvsbench sched sim`: a discrete-event simulation that
// runs one synthetic workload through any set of IPVS schedulers, using the
// real scheduler.Pool, and measures how each one spreads load over real
// servers of different capacities, how fair it is, how many flows it moves
// when the pool changes, and how fast it decides.
//
// # The model
//
// Time is simulated (float64 seconds, no sleeping); every random draw comes
// from math/rand/v2 PCG generators seeded with Config.Seed, so that the same
// Config gives the same result (except the wall-clock decision rate).
//
//   - Arrivals: Poisson with Rate new connections per second. Each connection
//     has a client source address drawn uniformly from Clients addresses, a
//     random source port, a destination drawn uniformly from Dsts addresses
//     (dh, lblc and lblcr hash the destination; 1 is a plain single-VIP
//     service) and a length S drawn from a Pareto or lognormal law with mean
//     MeanLen: the time it lasts on a server that is not overloaded.
//     The workload is drawn from its own generator in a fixed order, so
//     every scheduler sees exactly the same connections.
//   - Servers: server i has capacity c_i (relative) and serves up to
//     C_i = c_i*U connections at full speed, where the slots per capacity
//     unit U = Rate*MeanLen / (Load*Σc) make the offered load a fraction Load
//     of the total capacity. With k_i > C_i open connections the server
//     shares its C_i slots among them (processor sharing): each progresses
//     at C_i/k_i of full speed, so an overloaded server's connections last
//     longer and pile up, which the least-connection schedulers see and
//     avoid. A server's load is L_i(t) = k_i(t)/C_i; above 1 it is
//     overloaded.
//   - Every new connection is Schedule'd on the Pool and Bind'ed (active) to
//     the chosen server; it is Unbind'ed when it completes.
//   - Pool changes: a server fails at Fail.At and returns at Fail.Back
//     (deleted from the Pool, its open connections reset; or, with Quiesce,
//     its weight set to 0 and its connections left to finish), and a
//     server's weight changes at Reweight.At (its capacity does not).
//     Pool.Tick runs every simulated second (lblc/lblcr collection).
//
// # The metrics
//
// Loads are sampled every Sample. A server is "in service" while it is in
// the Pool with a weight above 0.
//
//   - MeanLoad (per server): the mean of L_i over the samples where the
//     server is in service. Ideal: every server at Load.
//   - MaxMeanLoad: the largest MeanLoad over the servers.
//   - PeakLoad: the largest L_i(t) over every sample and server: the worst
//     overload seen.
//   - Overloaded: the share of in-service server samples with L_i(t) > 1.
//   - Jain: Jain's fairness index (Σx)²/(n·Σx²) of the capacity-normalised
//     loads x_i = L_i(t) over the n in-service servers, computed per sample
//     and averaged over the samples (1 = perfectly proportional to capacity,
//     1/n = everything on one server).
//   - Slowdown: the mean over completed connections of the time they took
//     divided by S (1 = never slowed by an overloaded server).
//   - Disruption, per pool change (the Maglev paper's measure): a fixed
//     population of Probes flow keys is scheduled just before and just after
//     the change; Remap is the share of keys whose server differs. Each probe
//     decision is Bind'ed and all are Unbind'ed after the probe, so that the
//     least-connection schedulers spread the probe as they would real
//     connections; probing advances rr/wrr cursors and touches lblc/lblcr
//     entries as that many real decisions would. Ideal is the least share
//     that must move for the key shares to follow the new weights: the total
//     variation distance between the weight shares before and after (the
//     failed server's weight share, for a failure). dh, sh and mh map keys
//     to servers; lblc and lblcr remember destinations; every other
//     scheduler ignores the key, so its Remap measures that a client's next
//     connection has no affinity to its last server at all, not the change.
//     Reset is the share of open connections lost when a failed server is
//     deleted (the same for every scheduler that loaded that server alike).
//   - DecisionsPerSec: after the simulation, Timing decisions (Schedule of a
//     probe key, then Bind; the connection scheduled Window decisions
//     earlier is Unbind'ed) are run on the final pool state by one
//     goroutine, and their count is divided by the wall time of the loop;
//     the median of 5 such loops is reported. It is the only number that
//     depends on the machine and on what else runs on it.
package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ulvs/ulvs/scheduler"
)

// ErrConfig is wrapped by every error about a bad Config; the message names
// the field (or command-line flag) at fault.
var ErrConfig = errors.New("bad simulation config")

// Length distributions.
const (
	Pareto    = "pareto"
	Lognormal = "lognormal"
)

// Fail takes a server out of the pool at At and puts it back at Back.
type Fail struct {
	Server int           `json:"server"` // index into Capacities
	At     time.Duration `json:"at_ns"`
	Back   time.Duration `json:"back_ns"` // 0 or beyond the run: never returns
	// Quiesce sets the weight to 0 instead of deleting the server; its open
	// connections then finish normally instead of being reset.
	Quiesce bool `json:"quiesce"`
}

// Reweight changes a server's weight at At (ipvsadm -e); its capacity stays.
type Reweight struct {
	Server int           `json:"server"`
	At     time.Duration `json:"at_ns"`
	Weight int32         `json:"weight"`
}

// Config is one simulation. The zero value of a field means its default
// where one is given.
type Config struct {
	// Scheds are the schedulers to compare, each a name optionally
	// followed by "+flag" items (ipvsadm -b names): "mh+mh-port",
	// "sh+sh-fallback+sh-port". Default: all 14, scheduler.Names.
	Scheds     []string
	Capacities []int32 // per server, relative; required (>= 1 each)
	Weights    []int32 // per server; nil = Capacities

	Rate     float64       // new connections per second; default 2000
	MeanLen  time.Duration // mean connection length at full speed; default 1s
	Dist     string        // Pareto (default) or Lognormal
	Shape    float64       // Pareto alpha (> 1, default 1.5) or lognormal sigma (> 0, default 1)
	Load     float64       // offered load as a share of total capacity, (0, 10]; default 0.8
	Duration time.Duration // simulated time; default 300s
	Sample   time.Duration // sampling period; default 1s

	MaxEvents int64  // bound on simulated events per scheduler; default 50,000,000
	Seed      uint64 // PCG seed
	Clients   int    // client source addresses; default 10000
	Dsts      int    // destination addresses; default 1000
	// Zipf, when > 1, makes client and destination popularity follow
	// Zipf's law with this exponent (address i drawn with weight
	// 1/(1+i)^Zipf) instead of being uniform. The probe keys stay uniform.
	Zipf   float64
	Probes int // flow keys of the disruption probe; default 10000

	Fail     *Fail     // nil: no failure
	Reweight *Reweight // nil: no weight change

	Timing int // decisions of the rate measurement; 0 = none
	Window int // open connections kept by the rate measurement; default 1024

	MHTableIndex int // scheduler.Options.MHTableIndex; 0 = 12
}

// Limits of a Config.
const (
	MaxServers = 1024
	MaxClients = 1 << 22
	MaxDsts    = 1 << 20
	MaxProbes  = 1 << 20
)

func cfgErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
}

// parseSched splits "name+flag+flag" into the scheduler name and its flags.
func parseSched(s string) (string, scheduler.Flags, error) {
	name, rest, ok := strings.Cut(s, "+")
	if !ok {
		return name, 0, nil
	}
	f, err := scheduler.ParseFlags(strings.Split(rest, "+"))
	return name, f, err
}

// normalize fills in defaults and checks every field.
func (c *Config) normalize() error {
	if len(c.Scheds) == 0 {
		c.Scheds = append([]string(nil), scheduler.Names...)
	}
	seen := map[string]bool{}
	for _, s := range c.Scheds {
		name, flags, err := parseSched(s)
		if err == nil {
			_, err = scheduler.New(name, flags, scheduler.Options{})
		}
		if errors.Is(err, scheduler.ErrUnknownScheduler) {
			return cfgErr("scheds: unknown scheduler %q (want some of %s)", name, strings.Join(scheduler.Names, ","))
		}
		if err != nil {
			return cfgErr("scheds: %q: %v", s, err)
		}
		if seen[s] {
			return cfgErr("scheds: %q listed twice", s)
		}
		seen[s] = true
	}
	n := len(c.Capacities)
	if n == 0 || n > MaxServers {
		return cfgErr("capacities: %d servers, want 1..%d", n, MaxServers)
	}
	for i, v := range c.Capacities {
		if v < 1 {
			return cfgErr("capacities: server %d has capacity %d, want >= 1", i, v)
		}
	}
	if c.Weights == nil {
		c.Weights = append([]int32(nil), c.Capacities...)
	}
	if len(c.Weights) != n {
		return cfgErr("weights: %d weights for %d servers", len(c.Weights), n)
	}
	for i, w := range c.Weights {
		if w < 0 {
			return cfgErr("weights: server %d has weight %d, want >= 0", i, w)
		}
	}
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Rate, 2000)
	def(&c.Load, 0.8)
	if c.MeanLen == 0 {
		c.MeanLen = time.Second
	}
	if c.Duration == 0 {
		c.Duration = 300 * time.Second
	}
	if c.Sample == 0 {
		c.Sample = time.Second
	}
	if c.Dist == "" {
		c.Dist = Pareto
	}
	switch c.Dist {
	case Pareto:
		def(&c.Shape, 1.5)
		if !(c.Shape > 1) {
			return cfgErr("shape: Pareto alpha %g, want > 1 (finite mean)", c.Shape)
		}
	case Lognormal:
		def(&c.Shape, 1)
		if !(c.Shape > 0) || c.Shape > 10 {
			return cfgErr("shape: lognormal sigma %g, want in (0, 10]", c.Shape)
		}
	default:
		return cfgErr("dist: %q, want pareto or lognormal", c.Dist)
	}
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		return cfgErr("rate: %g, want > 0", c.Rate)
	}
	if !(c.Load > 0) || c.Load > 10 {
		return cfgErr("load: %g, want in (0, 10]", c.Load)
	}
	if c.MeanLen < 0 || c.Duration < 0 || c.Sample < 0 {
		return cfgErr("mean-len, duration and sample must be > 0")
	}
	if c.Sample > c.Duration {
		return cfgErr("sample: %v longer than duration %v", c.Sample, c.Duration)
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = 50_000_000
	}
	if c.MaxEvents < 0 {
		return cfgErr("max-events: %d, want > 0", c.MaxEvents)
	}
	if c.Clients == 0 {
		c.Clients = 10000
	}
	if c.Dsts == 0 {
		c.Dsts = 1000
	}
	if c.Probes == 0 {
		c.Probes = 10000
	}
	if c.Clients < 1 || c.Clients > MaxClients {
		return cfgErr("clients: %d, want 1..%d", c.Clients, MaxClients)
	}
	if c.Zipf != 0 && !(c.Zipf > 1 && c.Zipf <= 10) {
		return cfgErr("zipf: %g, want 0 (uniform) or an exponent in (1, 10]", c.Zipf)
	}
	if c.Dsts < 1 || c.Dsts > MaxDsts {
		return cfgErr("dsts: %d, want 1..%d", c.Dsts, MaxDsts)
	}
	if c.Probes < 1 || c.Probes > MaxProbes {
		return cfgErr("probes: %d, want 1..%d", c.Probes, MaxProbes)
	}
	if c.Timing < 0 {
		return cfgErr("timing: %d, want >= 0", c.Timing)
	}
	if c.Window == 0 {
		c.Window = 1024
	}
	if c.Window < 1 {
		return cfgErr("window: %d, want >= 1", c.Window)
	}
	if c.Fail != nil {
		if c.Fail.Server < 0 || c.Fail.Server >= n {
			return cfgErr("fail: server %d, want 0..%d", c.Fail.Server, n-1)
		}
		if c.Fail.At < 0 || c.Fail.At > c.Duration {
			return cfgErr("fail: time %v outside the run (0..%v)", c.Fail.At, c.Duration)
		}
		if c.Fail.Back != 0 && c.Fail.Back <= c.Fail.At {
			return cfgErr("fail: return time %v not after failure time %v", c.Fail.Back, c.Fail.At)
		}
	}
	if c.Reweight != nil {
		if c.Reweight.Server < 0 || c.Reweight.Server >= n {
			return cfgErr("reweight: server %d, want 0..%d", c.Reweight.Server, n-1)
		}
		if c.Reweight.At < 0 || c.Reweight.At > c.Duration {
			return cfgErr("reweight: time %v outside the run (0..%v)", c.Reweight.At, c.Duration)
		}
		if c.Reweight.Weight < 0 {
			return cfgErr("reweight: weight %d, want >= 0", c.Reweight.Weight)
		}
	}
	if c.MHTableIndex != 0 && (c.MHTableIndex < 8 || c.MHTableIndex > 17) {
		return cfgErr("mh-table-index: %d, want 8..17", c.MHTableIndex)
	}
	return nil
}

// Machine describes where the decision rate was measured.
type Machine struct {
	CPU       string `json:"cpu"`
	NumCPU    int    `json:"num_cpu"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
}

func machine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(), CPU: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// Result is a whole simulation: the normalised config and one SchedResult
// per scheduler, in Config.Scheds order.
type Result struct {
	Config       ConfigOut     `json:"config"`
	SlotsPerUnit float64       `json:"slots_per_unit"`
	Machine      *Machine      `json:"machine,omitempty"` // set when Timing > 0
	Scheds       []SchedResult `json:"scheds"`
}

// ConfigOut is the normalised Config as reported (times in seconds).
type ConfigOut struct {
	Scheds     []string  `json:"scheds"`
	Capacities []int32   `json:"capacities"`
	Weights    []int32   `json:"weights"`
	Rate       float64   `json:"rate"`
	MeanLen    float64   `json:"mean_len_s"`
	Dist       string    `json:"dist"`
	Shape      float64   `json:"shape"`
	Load       float64   `json:"load"`
	Duration   float64   `json:"duration_s"`
	Sample     float64   `json:"sample_s"`
	MaxEvents  int64     `json:"max_events"`
	Seed       uint64    `json:"seed"`
	Clients    int       `json:"clients"`
	Dsts       int       `json:"dsts"`
	Zipf       float64   `json:"zipf,omitempty"`
	Probes     int       `json:"probes"`
	Fail       *Fail     `json:"fail,omitempty"`
	Reweight   *Reweight `json:"reweight,omitempty"`
	Timing     int       `json:"timing"`
	Window     int       `json:"window"`
}

// SchedResult is one scheduler's run.
type SchedResult struct {
	Sched       string  `json:"sched"`
	Events      int64   `json:"events"`
	Truncated   bool    `json:"truncated"` // stopped by MaxEvents
	SimTime     float64 `json:"sim_time_s"`
	Scheduled   int64   `json:"scheduled"`
	Unscheduled int64   `json:"unscheduled"` // Schedule returned nil
	Completed   int64   `json:"completed"`
	Reset       int64   `json:"reset"` // lost with a failed server

	Servers     []ServerResult `json:"servers"`
	MaxMeanLoad float64        `json:"max_mean_load"`
	PeakLoad    float64        `json:"peak_load"`
	PeakServer  int            `json:"peak_server"`
	PeakAt      float64        `json:"peak_at_s"`
	Overloaded  float64        `json:"overloaded"`
	Jain        float64        `json:"jain"`
	JainMin     float64        `json:"jain_min"`
	Slowdown    float64        `json:"slowdown"`
	Changes     []Change       `json:"changes"`

	DecisionsPerSec float64 `json:"decisions_per_s,omitempty"`

	// Time series, one point per sample.
	T        []float64 `json:"t_s"`
	MaxLoadT []float64 `json:"max_load"` // max over servers of L_i(t)
	JainT    []float64 `json:"jain_t"`   // NaN-free: 0 where no server was loaded
}

// ServerResult is one real server in one scheduler's run.
type ServerResult struct {
	Addr      string  `json:"addr"`
	Capacity  int32   `json:"capacity"`
	Weight    int32   `json:"weight"` // initial
	Slots     float64 `json:"slots"`
	Scheduled int64   `json:"scheduled"`
	MeanLoad  float64 `json:"mean_load"`
	PeakLoad  float64 `json:"peak_load"`
}

// Change is one pool change and its disruption.
type Change struct {
	Event string  `json:"event"` // fail, return, reweight
	At    float64 `json:"at_s"`
	Remap float64 `json:"remap"` // share of probe keys that changed server
	Ideal float64 `json:"ideal"` // least share that must move
	Reset float64 `json:"reset"` // share of open connections reset
}

// conn is an open connection: it finishes when its server's virtual time
// reaches fv.
type conn struct {
	fv, start, size float64
}

type connHeap []conn

// push and pop keep a binary min-heap on fv (typed, so that nothing is
// boxed per connection).
func (h *connHeap) push(c conn) {
	*h = append(*h, c)
	a := *h
	for j := len(a) - 1; j > 0; {
		p := (j - 1) / 2
		if a[p].fv <= a[j].fv {
			break
		}
		a[p], a[j] = a[j], a[p]
		j = p
	}
}

func (h *connHeap) pop() conn {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for j := 0; ; {
		l := 2*j + 1
		if l >= n {
			break
		}
		if r := l + 1; r < n && a[r].fv < a[l].fv {
			l = r
		}
		if a[j].fv <= a[l].fv {
			break
		}
		a[j], a[l] = a[l], a[j]
		j = l
	}
	*h = a
	return top
}

// server is a real server under processor sharing over its slots. v is its
// virtual time: the work done so far for each of its connections; it grows
// at min(1, slots/k) per second.
type server struct {
	d        *scheduler.Dest
	slots    float64
	weight   int32 // current, as the Pool has it
	want     int32 // configured: the weight to return with
	inPool   bool
	v, last  float64
	h        connHeap
	loadSum  float64
	loadN    int
	peak     float64
	schedule int64
}

func (s *server) speed() float64 {
	k := float64(len(s.h))
	if k <= s.slots {
		return 1
	}
	return s.slots / k
}

func (s *server) advance(t float64) {
	if len(s.h) > 0 && t > s.last {
		s.v += (t - s.last) * s.speed()
	}
	s.last = t
}

func (s *server) nextDone() float64 {
	if len(s.h) == 0 {
		return math.Inf(1)
	}
	return s.last + math.Max(0, s.h[0].fv-s.v)/s.speed()
}

// minTree is a tournament tree of the servers' next completion times.
type minTree struct {
	size int
	t    []float64
	i    []int32
}

func newMinTree(n int) *minTree {
	size := 1
	for size < n {
		size *= 2
	}
	m := &minTree{size: size, t: make([]float64, 2*size), i: make([]int32, 2*size)}
	for j := range m.t {
		m.t[j] = math.Inf(1)
	}
	for j := range size {
		m.i[size+j] = int32(j)
	}
	for j := size - 1; j >= 1; j-- {
		m.i[j] = m.i[2*j]
	}
	return m
}

func (m *minTree) set(j int, v float64) {
	k := m.size + j
	m.t[k] = v
	for k > 1 {
		k /= 2
		a, b := 2*k, 2*k+1
		if m.t[b] < m.t[a] {
			a = b
		}
		m.t[k], m.i[k] = m.t[a], m.i[a]
	}
}

func (m *minTree) min() (float64, int) { return m.t[1], int(m.i[1]) }

// Workload stream numbers of the PCG generators.
const (
	streamWork  = 1
	streamTwos  = 2
	streamProbe = 3
	// streamShuffle+k shuffles the probe of the k-th pool change.
	streamShuffle = 16
)

// Run simulates cfg for every scheduler of cfg.Scheds.
func Run(cfg Config) (*Result, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	unit := slotsPerUnit(&cfg)
	res := &Result{Config: cfg.out(), SlotsPerUnit: unit}
	if cfg.Timing > 0 {
		m := machine()
		res.Machine = &m
	}
	probes := makeProbes(&cfg)
	for _, name := range cfg.Scheds {
		r, err := runOne(&cfg, name, unit, probes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		res.Scheds = append(res.Scheds, *r)
	}
	return res, nil
}

// slotsPerUnit is U = Rate*MeanLen / (Load*Σc) of a normalised Config.
func slotsPerUnit(c *Config) float64 {
	var sum float64
	for _, v := range c.Capacities {
		sum += float64(v)
	}
	return c.Rate * c.MeanLen.Seconds() / (c.Load * sum)
}

// SlotWeights returns weights equal to each server's slots (rounded, at
// least 1): the weights that make ovf's "active <= weight" rule mean
// "not over capacity". It fills in cfg's defaults first.
func SlotWeights(cfg Config) ([]int32, error) {
	cfg.Weights = nil
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	u := slotsPerUnit(&cfg)
	out := make([]int32, len(cfg.Capacities))
	for i, c := range cfg.Capacities {
		w := math.Round(float64(c) * u)
		if w > math.MaxInt32 {
			return nil, cfgErr("weights: slots of server %d (%g) exceed the weight range", i, w)
		}
		out[i] = int32(max(w, 1))
	}
	return out, nil
}

func (c *Config) out() ConfigOut {
	return ConfigOut{
		Scheds: c.Scheds, Capacities: c.Capacities, Weights: c.Weights,
		Rate: c.Rate, MeanLen: c.MeanLen.Seconds(), Dist: c.Dist, Shape: c.Shape,
		Load: c.Load, Duration: c.Duration.Seconds(), Sample: c.Sample.Seconds(),
		MaxEvents: c.MaxEvents, Seed: c.Seed, Clients: c.Clients, Dsts: c.Dsts, Zipf: c.Zipf,
		Probes: c.Probes, Fail: c.Fail, Reweight: c.Reweight, Timing: c.Timing, Window: c.Window,
	}
}

// addr4 returns the IPv4 address base+i in the 16-byte Flow form.
func addr4(base uint32, i int) [16]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], base+uint32(i))
	return netip.AddrFrom4(b).As16()
}

const (
	clientBase = 10<<24 | 1<<16   // 10.1.0.0
	dstBase    = 172<<24 | 16<<16 // 172.16.0.0
	serverBase = 192<<24 | 168<<16
)

// picker draws address indexes: uniform over n, or Zipf-distributed.
type picker struct {
	r *rand.Rand
	n int
	z *rand.Zipf // nil: uniform
}

func newPicker(r *rand.Rand, n int, zipf float64) picker {
	p := picker{r: r, n: n}
	if zipf > 1 && n > 1 {
		p.z = rand.NewZipf(r, zipf, 1, uint64(n-1))
	}
	return p
}

func (p picker) draw() int {
	if p.z != nil {
		return int(p.z.Uint64())
	}
	return p.r.IntN(p.n)
}

// drawFlow draws a flow: client, source port, destination.
func drawFlow(r *rand.Rand, clients, dsts picker) scheduler.Flow {
	return scheduler.Flow{
		Src:     addr4(clientBase, clients.draw()),
		Dst:     addr4(dstBase, dsts.draw()),
		SrcPort: uint16(1024 + r.IntN(65536-1024)),
		DstPort: 80,
		Proto:   6,
	}
}

func makeProbes(c *Config) []scheduler.Flow {
	r := rand.New(rand.NewPCG(c.Seed, streamProbe))
	out := make([]scheduler.Flow, c.Probes)
	for i := range out {
		out[i] = drawFlow(r, newPicker(r, c.Clients, 0), newPicker(r, c.Dsts, 0))
	}
	return out
}

// drawLen draws a connection length with mean m.
func drawLen(r *rand.Rand, c *Config, m float64) float64 {
	switch c.Dist {
	case Lognormal:
		s := c.Shape
		return math.Exp(math.Log(m) - s*s/2 + s*r.NormFloat64())
	default:
		a := c.Shape
		xm := m * (a - 1) / a
		return xm / math.Pow(1-r.Float64(), 1/a) // 1-U in (0, 1]
	}
}

type sim struct {
	cfg     *Config
	pool    *scheduler.Pool
	srv     []*server
	tree    *minTree
	probes  []scheduler.Flow
	probeTo []int // scratch: server index per probe key, -1 = none
	res     *SchedResult
	failed  bool // the Fail server is out

	slowSum  float64
	jainSum  float64
	jainN    int
	overN    int
	samplesN int
}

func ns(t float64) int64 { return int64(math.Round(t * 1e9)) }

func runOne(cfg *Config, name string, unit float64, probes []scheduler.Flow) (*SchedResult, error) {
	s, err := newSim(cfg, name, unit, probes)
	if err != nil {
		return nil, err
	}
	s.run()
	if cfg.Timing > 0 {
		s.res.DecisionsPerSec = s.measure()
	}
	return s.res, nil
}

// newSim builds scheduler name's Pool with every server in it.
func newSim(cfg *Config, name string, unit float64, probes []scheduler.Flow) (*sim, error) {
	twos := rand.New(rand.NewPCG(cfg.Seed, streamTwos))
	sched, flags, err := parseSched(name)
	if err != nil {
		return nil, err
	}
	pool, err := scheduler.New(sched, flags, scheduler.Options{MHTableIndex: cfg.MHTableIndex, Rand: twos.Uint32})
	if err != nil {
		return nil, err
	}
	n := len(cfg.Capacities)
	s := &sim{cfg: cfg, pool: pool, tree: newMinTree(n), probes: probes, probeTo: make([]int, len(probes)),
		res: &SchedResult{Sched: name, JainMin: math.Inf(1)}}
	for i := range n {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], serverBase+uint32(i)+1)
		d := scheduler.NewDest(netip.AddrPortFrom(netip.AddrFrom4(b), 80), cfg.Weights[i], 0, 0)
		d.Opaque.Store(uint64(i))
		s.srv = append(s.srv, &server{d: d, slots: float64(cfg.Capacities[i]) * unit, weight: cfg.Weights[i], want: cfg.Weights[i], inPool: true})
	}
	// Add in reverse so that the list (newest first) is in server order.
	for i := n - 1; i >= 0; i-- {
		if err := pool.Add(s.srv[i].d); err != nil {
			return nil, err
		}
	}
	return s, nil
}

type ctlEvent struct {
	at   float64
	kind string
}

func (s *sim) run() {
	cfg := s.cfg
	work := rand.New(rand.NewPCG(cfg.Seed, streamWork))
	clients, dsts := newPicker(work, cfg.Clients, cfg.Zipf), newPicker(work, cfg.Dsts, cfg.Zipf)
	mean := cfg.MeanLen.Seconds()
	end := cfg.Duration.Seconds()
	sample := cfg.Sample.Seconds()
	var ctl []ctlEvent
	if f := cfg.Fail; f != nil {
		ctl = append(ctl, ctlEvent{f.At.Seconds(), "fail"})
		if f.Back > f.At && f.Back <= cfg.Duration {
			ctl = append(ctl, ctlEvent{f.Back.Seconds(), "return"})
		}
	}
	if r := cfg.Reweight; r != nil {
		ctl = append(ctl, ctlEvent{r.At.Seconds(), "reweight"})
	}
	// Stable order by time (at most three events).
	for i := 1; i < len(ctl); i++ {
		for j := i; j > 0 && ctl[j].at < ctl[j-1].at; j-- {
			ctl[j], ctl[j-1] = ctl[j-1], ctl[j]
		}
	}
	res := s.res
	t := 0.0
	nextArr := work.ExpFloat64() / cfg.Rate
	sampleNo := 1
	nextSample := sample
	nextTick := 1.0
	for {
		if res.Events >= cfg.MaxEvents {
			res.Truncated = true
			break
		}
		nextCtl := math.Inf(1)
		if len(ctl) > 0 {
			nextCtl = ctl[0].at
		}
		tc, si := s.tree.min()
		// The earliest event; ties in this fixed order.
		next := math.Min(math.Min(nextCtl, nextSample), math.Min(math.Min(nextTick, tc), nextArr))
		if next > end {
			t = end
			break
		}
		t = next
		res.Events++
		switch next {
		case nextCtl:
			s.control(ctl[0], t)
			ctl = ctl[1:]
		case nextSample:
			s.sample(t)
			sampleNo++
			nextSample = float64(sampleNo) * sample
		case nextTick:
			s.pool.Tick(ns(t))
			nextTick++
		case tc:
			s.complete(si, t)
		default:
			size := drawLen(work, cfg, mean)
			f := drawFlow(work, clients, dsts)
			s.arrive(&f, size, t)
			nextArr = t + work.ExpFloat64()/cfg.Rate
		}
	}
	res.SimTime = t
	s.finish()
}

func (s *sim) arrive(f *scheduler.Flow, size, t float64) {
	d := s.pool.Schedule(f, ns(t))
	if d == nil {
		s.res.Unscheduled++
		return
	}
	s.res.Scheduled++
	i := int(d.Opaque.Load())
	sv := s.srv[i]
	sv.schedule++
	sv.advance(t)
	sv.h.push(conn{fv: sv.v + size, start: t, size: size})
	d.Bind(false, true)
	s.tree.set(i, sv.nextDone())
}

func (s *sim) complete(i int, t float64) {
	sv := s.srv[i]
	sv.advance(t)
	c := sv.h.pop()
	sv.d.Unbind(false, true)
	s.res.Completed++
	s.slowSum += (t - c.start) / c.size
	s.tree.set(i, sv.nextDone())
}

func (s *sim) sample(t float64) {
	var sx, sx2 float64
	n := 0
	maxL := 0.0
	for i, sv := range s.srv {
		sv.advance(t)
		l := float64(len(sv.h)) / sv.slots
		if l > maxL {
			maxL = l
		}
		if l > sv.peak {
			sv.peak = l
		}
		if l > s.res.PeakLoad {
			s.res.PeakLoad, s.res.PeakServer, s.res.PeakAt = l, i, t
		}
		if !sv.inPool || sv.weight == 0 {
			continue
		}
		sv.loadSum += l
		sv.loadN++
		s.samplesN++
		if l > 1 {
			s.overN++
		}
		sx += l
		sx2 += l * l
		n++
	}
	j := Jain2(sx, sx2, n)
	if n > 0 && sx2 > 0 {
		s.jainSum += j
		s.jainN++
		s.res.JainMin = math.Min(s.res.JainMin, j)
	}
	s.res.T = append(s.res.T, t)
	s.res.MaxLoadT = append(s.res.MaxLoadT, maxL)
	s.res.JainT = append(s.res.JainT, j)
}

// probe schedules every probe key (binding each decision) into to and
// unbinds them all again.
func (s *sim) probe(t float64, to []int) { s.probeOrder(t, to, nil) }

// probeOrder is probe visiting the keys in the order of perm (nil: in order).
func (s *sim) probeOrder(t float64, to []int, perm []int) {
	now := ns(t)
	for j := range s.probes {
		k := j
		if perm != nil {
			k = perm[j]
		}
		d := s.pool.Schedule(&s.probes[k], now)
		if d == nil {
			to[k] = -1
			continue
		}
		d.Bind(false, true)
		to[k] = int(d.Opaque.Load())
	}
	for _, i := range to {
		if i >= 0 {
			s.srv[i].d.Unbind(false, true)
		}
	}
}

// shares returns the weight share of each server in service.
func (s *sim) shares() []float64 {
	out := make([]float64, len(s.srv))
	var sum float64
	for i, sv := range s.srv {
		if sv.inPool {
			out[i] = float64(sv.weight)
			sum += out[i]
		}
	}
	for i := range out {
		if sum > 0 {
			out[i] /= sum
		}
	}
	return out
}

func (s *sim) control(ev ctlEvent, t float64) {
	before := make([]int, len(s.probes))
	s.probe(t, before)
	w0 := s.shares()
	ch := Change{Event: ev.kind, At: t}
	var open int
	for _, sv := range s.srv {
		open += len(sv.h)
	}
	switch ev.kind {
	case "fail":
		s.failed = true
		f := s.cfg.Fail
		sv := s.srv[f.Server]
		if f.Quiesce {
			sv.weight = 0
			s.must(s.pool.Edit(sv.d, 0, 0, 0))
		} else {
			sv.advance(t)
			lost := len(sv.h)
			for range lost {
				sv.d.Unbind(false, true)
			}
			sv.h = sv.h[:0]
			s.tree.set(f.Server, sv.nextDone())
			s.res.Reset += int64(lost)
			if open > 0 {
				ch.Reset = float64(lost) / float64(open)
			}
			sv.inPool = false
			s.must(s.pool.Delete(sv.d))
		}
	case "return":
		s.failed = false
		f := s.cfg.Fail
		sv := s.srv[f.Server]
		sv.weight = sv.want
		if f.Quiesce {
			s.must(s.pool.Edit(sv.d, sv.weight, 0, 0))
		} else {
			sv.inPool = true
			sv.advance(t)
			s.must(s.pool.AddWith(sv.d, sv.weight, 0, 0))
		}
	case "reweight":
		r := s.cfg.Reweight
		sv := s.srv[r.Server]
		sv.want = r.Weight
		// A failed or quiesced server takes its new weight when it returns.
		if f := s.cfg.Fail; f == nil || f.Server != r.Server || !s.failed {
			sv.weight = r.Weight
			s.must(s.pool.Edit(sv.d, r.Weight, 0, 0))
		}
	}
	w1 := s.shares()
	for i := range w0 {
		ch.Ideal += math.Max(0, w0[i]-w1[i])
	}
	// The second pass visits the keys in a shuffled order, so that a
	// scheduler that ignores the key maps them as two independent series
	// of decisions would (its remap is then 1 - sum of squared shares)
	// instead of repeating its cycle when the probe count happens to be a
	// multiple of it. Key-mapping schedulers do not care about the order.
	perm := rand.New(rand.NewPCG(s.cfg.Seed, streamShuffle+uint64(len(s.res.Changes)))).Perm(len(s.probes))
	after := s.probeTo
	s.probeOrder(t, after, perm)
	moved := 0
	for k := range before {
		if before[k] != after[k] {
			moved++
		}
	}
	ch.Remap = float64(moved) / float64(len(before))
	s.res.Changes = append(s.res.Changes, ch)
}

// must panics on a Pool error: the simulator only makes changes that are
// valid by construction, so an error is a bug.
func (s *sim) must(err error) {
	if err != nil {
		panic(fmt.Sprintf("sim: pool change failed: %v", err))
	}
}

func (s *sim) finish() {
	r := s.res
	for i, sv := range s.srv {
		out := ServerResult{
			Addr: sv.d.AddrPort().String(), Capacity: s.cfg.Capacities[i], Weight: s.cfg.Weights[i],
			Slots: sv.slots, Scheduled: sv.schedule, PeakLoad: sv.peak,
		}
		if sv.loadN > 0 {
			out.MeanLoad = sv.loadSum / float64(sv.loadN)
		}
		r.MaxMeanLoad = math.Max(r.MaxMeanLoad, out.MeanLoad)
		r.Servers = append(r.Servers, out)
	}
	if r.Completed > 0 {
		r.Slowdown = s.slowSum / float64(r.Completed)
	}
	if s.samplesN > 0 {
		r.Overloaded = float64(s.overN) / float64(s.samplesN)
	}
	if s.jainN > 0 {
		r.Jain = s.jainSum / float64(s.jainN)
	} else {
		r.JainMin = 0
	}
}

// timingRounds is how many times the decision-rate loop runs; the median
// rate is reported.
const timingRounds = 5

// measure runs the decision-rate loop timingRounds times and returns the
// median decisions per second.
func (s *sim) measure() float64 {
	rates := make([]float64, timingRounds)
	for i := range rates {
		rates[i] = s.measureOnce()
	}
	slices.Sort(rates)
	return rates[len(rates)/2]
}

func (s *sim) measureOnce() float64 {
	m, w := s.cfg.Timing, s.cfg.Window
	ring := make([]*scheduler.Dest, w)
	now := ns(s.res.SimTime)
	start := time.Now()
	for k := range m {
		d := s.pool.Schedule(&s.probes[k%len(s.probes)], now)
		if d != nil {
			d.Bind(false, true)
		}
		slot := k % w
		if old := ring[slot]; old != nil {
			old.Unbind(false, true)
		}
		ring[slot] = d
	}
	el := time.Since(start)
	for _, d := range ring {
		if d != nil {
			d.Unbind(false, true)
		}
	}
	if el <= 0 {
		return 0
	}
	return float64(m) / el.Seconds()
}

// Jain returns Jain's fairness index (Σx)²/(n·Σx²) of xs: 1 when all are
// equal, 1/n when one holds everything. It returns 0 for an empty or
// all-zero vector.
func Jain(xs []float64) float64 {
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	return Jain2(s, s2, len(xs))
}

// Jain2 is Jain's index from the sum, the sum of squares and the count.
func Jain2(sum, sumSq float64, n int) float64 {
	if n == 0 || sumSq == 0 {
		return 0
	}
	return sum * sum / (float64(n) * sumSq)
}
