package sim

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ulvs/ulvs/scheduler"
)

func TestJain(t *testing.T) {
	for _, tc := range []struct {
		name string
		xs   []float64
		want float64
	}{
		{"equal", []float64{3, 3, 3, 3}, 1},
		{"one has all of 4", []float64{0, 5, 0, 0}, 0.25},
		{"one has all of 8", []float64{0, 0, 0, 0, 0, 0, 0, 2}, 0.125},
		{"1..4", []float64{1, 2, 3, 4}, 100.0 / 120},
		{"two of four", []float64{1, 1, 0, 0}, 0.5},
		{"empty", nil, 0},
		{"all zero", []float64{0, 0}, 0},
	} {
		if got := Jain(tc.xs); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: Jain(%v) = %v, want %v", tc.name, tc.xs, got, tc.want)
		}
	}
}

func TestConnHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var h connHeap
	var ref []float64
	for range 2000 {
		if len(ref) > 0 && r.IntN(3) == 0 {
			slices.Sort(ref)
			got := h.pop().fv
			if got != ref[0] {
				t.Fatalf("pop = %v, want %v", got, ref[0])
			}
			ref = ref[1:]
			continue
		}
		v := r.Float64()
		h.push(conn{fv: v})
		ref = append(ref, v)
	}
}

// small is a quick configuration for the tests.
func small() Config {
	return Config{
		Capacities: []int32{1, 1, 2, 2, 4, 4, 8, 8},
		Rate:       500,
		Duration:   40 * time.Second,
		Seed:       3,
		Probes:     4000,
		Fail:       &Fail{Server: 4, At: 10 * time.Second, Back: 20 * time.Second},
		Reweight:   &Reweight{Server: 7, At: 30 * time.Second, Weight: 4},
	}
}

func byName(t *testing.T, r *Result, name string) *SchedResult {
	t.Helper()
	for i := range r.Scheds {
		if r.Scheds[i].Sched == name {
			return &r.Scheds[i]
		}
	}
	t.Fatalf("no result for %s", name)
	return nil
}

// Disruption when one of n equal servers is removed: mh moves close to the
// 1/n of keys that must move (Maglev); sh and dh rebuild their tables
// round-robin and move most keys; rr ignores the key, so a key's two
// decisions agree only by chance (1/n): it "moves" about 1 - 1/n.
func TestDisruptionOnRemoval(t *testing.T) {
	cfg := Config{
		Scheds:     []string{"rr", "mh", "sh", "dh", "wlc", "lblc"},
		Capacities: []int32{1, 1, 1, 1, 1, 1, 1, 1},
		Rate:       400,
		Duration:   20 * time.Second,
		Seed:       11,
		Probes:     8000,
		Dsts:       8000,
		Fail:       &Fail{Server: 3, At: 10 * time.Second},
	}
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	for _, s := range r.Scheds {
		if len(s.Changes) != 1 || s.Changes[0].Event != "fail" {
			t.Fatalf("%s: changes %+v, want one fail", s.Sched, s.Changes)
		}
		if got := s.Changes[0].Ideal; math.Abs(got-1.0/n) > 1e-12 {
			t.Errorf("%s: ideal %v, want 1/%d", s.Sched, got, n)
		}
	}
	remap := func(name string) float64 { return byName(t, r, name).Changes[0].Remap }
	if m := remap("mh"); m < 1.0/n-0.02 || m > 1.0/n+0.04 {
		t.Errorf("mh remap %.4f, want close to 1/%d (Maglev: minimal disruption)", m, n)
	}
	if m := remap("rr"); math.Abs(m-(1-1.0/n)) > 0.03 {
		t.Errorf("rr remap %.4f, want about 1-1/%d (no key affinity)", m, n)
	}
	for _, name := range []string{"sh", "dh"} {
		if m := remap(name); m < 0.5 {
			t.Errorf("%s remap %.4f, want most keys moved (modulo-style table rebuild)", name, m)
		}
	}
	// lblc keeps each destination on its server unless that server left.
	if m := remap("lblc"); m > 1.0/n+0.05 {
		t.Errorf("lblc remap %.4f, want about the failed server's share", m)
	}
	// The failed server held about 1/n of the open connections under wlc.
	if rs := byName(t, r, "wlc").Changes[0].Reset; rs < 0.5/n || rs > 2.0/n {
		t.Errorf("wlc reset share %.4f, want about 1/%d", rs, n)
	}
}

func TestIdealOfReweightAndReturn(t *testing.T) {
	cfg := small()
	cfg.Scheds = []string{"mh"}
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ch := r.Scheds[0].Changes
	if len(ch) != 3 {
		t.Fatalf("changes %+v", ch)
	}
	// Weights 1,1,2,2,4,4,8,8 (sum 30): server 4 (weight 4) leaves and
	// returns: 4/30 must move each time. Server 7 goes from 8 to 4: its
	// share falls from 8/30 to 4/26.
	want := []float64{4.0 / 30, 4.0 / 30, 8.0/30 - 4.0/26}
	for i, w := range want {
		if math.Abs(ch[i].Ideal-w) > 1e-12 {
			t.Errorf("%s ideal %v, want %v", ch[i].Event, ch[i].Ideal, w)
		}
		if ch[i].Remap < ch[i].Ideal-0.03 || ch[i].Remap > ch[i].Ideal+0.06 {
			t.Errorf("mh %s remap %v, want near ideal %v", ch[i].Event, ch[i].Remap, w)
		}
	}
}

func TestDeterministic(t *testing.T) {
	cfg := small()
	cfg.Rate = 200
	a, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same config and seed gave different results")
	}
	cfg.Seed++
	c, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Scheds, c.Scheds) {
		t.Fatal("another seed gave the same results")
	}
	// Every scheduler saw the same workload (the arrivals do not depend on
	// the decisions).
	for _, s := range a.Scheds {
		if s.Scheduled+s.Unscheduled != a.Scheds[0].Scheduled+a.Scheds[0].Unscheduled {
			t.Errorf("%s: %d arrivals, %s: %d", s.Sched, s.Scheduled+s.Unscheduled, a.Scheds[0].Sched, a.Scheds[0].Scheduled+a.Scheds[0].Unscheduled)
		}
	}
}

// The processor-sharing server obeys Little's law below capacity (mean
// connections = rate * mean length, no slowdown) and slows down above it.
func TestServerModel(t *testing.T) {
	base := Config{
		Scheds: []string{"rr"}, Capacities: []int32{1}, Rate: 1000, Dist: Lognormal, Shape: 0.5,
		Duration: 100 * time.Second, Load: 0.5,
	}
	r, err := Run(base)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Scheds[0]
	if got := s.Servers[0].MeanLoad; math.Abs(got-0.5) > 0.03 {
		t.Errorf("load 0.5: mean load %v, want 0.5 (Little's law)", got)
	}
	if math.Abs(s.Slowdown-1) > 1e-9 || s.Overloaded != 0 {
		t.Errorf("load 0.5: slowdown %v, overloaded %v; want 1 and 0", s.Slowdown, s.Overloaded)
	}
	if math.Abs(s.Jain-1) > 1e-12 {
		t.Errorf("one server: Jain %v, want 1", s.Jain)
	}
	base.Load = 1.5
	r, err = Run(base)
	if err != nil {
		t.Fatal(err)
	}
	s = r.Scheds[0]
	if s.Slowdown < 1.5 || s.PeakLoad <= 1.5 || s.Overloaded < 0.9 {
		t.Errorf("load 1.5: slowdown %v, peak %v, overloaded %v; want an overloaded server", s.Slowdown, s.PeakLoad, s.Overloaded)
	}
}

// Weighted least-connection keeps every server near the offered load;
// plain rr overloads the small servers, which lc then avoids.
func TestLoadAgainstCapacity(t *testing.T) {
	cfg := small()
	cfg.Scheds = []string{"rr", "lc", "wlc", "wrr"}
	cfg.Fail, cfg.Reweight = nil, nil
	// Pareto(1.5) means converge too slowly for a 40-s check of wrr's
	// shares; lognormal(1) lengths are still skewed but settle.
	cfg.Dist = Lognormal
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"wlc", "wrr"} {
		s := byName(t, r, name)
		for i, sv := range s.Servers {
			if math.Abs(sv.MeanLoad-0.8) > 0.15 {
				t.Errorf("%s: server %d mean load %v, want about 0.8", name, i, sv.MeanLoad)
			}
		}
		if s.Jain < 0.95 {
			t.Errorf("%s: Jain %v, want > 0.95", name, s.Jain)
		}
	}
	rr, lc := byName(t, r, "rr"), byName(t, r, "lc")
	if rr.MaxMeanLoad < 2 || rr.Jain > 0.6 {
		t.Errorf("rr: max mean load %v, Jain %v; want the capacity-1 servers overloaded", rr.MaxMeanLoad, rr.Jain)
	}
	if lc.MaxMeanLoad >= rr.MaxMeanLoad || lc.Slowdown >= rr.Slowdown {
		t.Errorf("lc (max mean %v, slowdown %v) not better than rr (%v, %v)", lc.MaxMeanLoad, lc.Slowdown, rr.MaxMeanLoad, rr.Slowdown)
	}
}

// The Pool's counters always equal the simulator's open connections, for
// every scheduler, through a failure (both modes), a return and a reweight.
func TestCountersBalanced(t *testing.T) {
	for _, quiesce := range []bool{false, true} {
		cfg := small()
		cfg.Fail.Quiesce = quiesce
		if err := cfg.normalize(); err != nil {
			t.Fatal(err)
		}
		probes := makeProbes(&cfg)
		for _, name := range scheduler.Names {
			s, err := newSim(&cfg, name, slotsPerUnit(&cfg), probes)
			if err != nil {
				t.Fatal(err)
			}
			s.run()
			open := 0
			for i, sv := range s.srv {
				if a := sv.d.ActiveConns(); int(a) != len(sv.h) {
					t.Errorf("%s quiesce=%v: server %d has %d active, simulator has %d open", name, quiesce, i, a, len(sv.h))
				}
				if sv.d.InactiveConns() != 0 {
					t.Errorf("%s: server %d has inactive connections", name, i)
				}
				open += len(sv.h)
			}
			r := s.res
			if r.Scheduled != r.Completed+r.Reset+int64(open) {
				t.Errorf("%s: scheduled %d != completed %d + reset %d + open %d", name, r.Scheduled, r.Completed, r.Reset, open)
			}
			if quiesce && r.Reset != 0 {
				t.Errorf("%s: quiesce reset %d connections", name, r.Reset)
			}
			if !quiesce && name == "wlc" && r.Reset == 0 {
				t.Errorf("wlc: deleting a loaded server reset nothing")
			}
			if s.pool.Len() != len(cfg.Capacities) {
				t.Errorf("%s: %d servers in the pool at the end, want %d", name, s.pool.Len(), len(cfg.Capacities))
			}
		}
	}
}

func TestMaxEventsBound(t *testing.T) {
	cfg := small()
	cfg.Scheds = []string{"wlc"}
	cfg.MaxEvents = 1000
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Scheds[0]
	if !s.Truncated || s.Events != 1000 || s.SimTime >= cfg.Duration.Seconds() {
		t.Errorf("truncated %v events %d sim time %v; want a run cut at 1000 events", s.Truncated, s.Events, s.SimTime)
	}
}

func TestTiming(t *testing.T) {
	cfg := small()
	cfg.Scheds = []string{"wlc", "mh"}
	cfg.Duration = 5 * time.Second
	cfg.Fail, cfg.Reweight = nil, nil
	cfg.Timing = 20000
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Machine == nil || r.Machine.NumCPU < 1 {
		t.Fatalf("machine %+v", r.Machine)
	}
	for _, s := range r.Scheds {
		if !(s.DecisionsPerSec > 0) {
			t.Errorf("%s: decisions/s %v", s.Sched, s.DecisionsPerSec)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"unknown scheduler", func(c *Config) { c.Scheds = []string{"wlc", "foo"} }},
		{"duplicate scheduler", func(c *Config) { c.Scheds = []string{"wlc", "wlc"} }},
		{"no servers", func(c *Config) { c.Capacities = nil }},
		{"capacity 0", func(c *Config) { c.Capacities = []int32{1, 0} }},
		{"weights length", func(c *Config) { c.Weights = []int32{1} }},
		{"negative weight", func(c *Config) { c.Weights = make([]int32, 8); c.Weights[2] = -1 }},
		{"pareto alpha 1", func(c *Config) { c.Shape = 1 }},
		{"bad dist", func(c *Config) { c.Dist = "weibull" }},
		{"negative rate", func(c *Config) { c.Rate = -1 }},
		{"load too high", func(c *Config) { c.Load = 11 }},
		{"sample > duration", func(c *Config) { c.Sample = time.Hour }},
		{"fail server", func(c *Config) { c.Fail.Server = 8 }},
		{"fail after end", func(c *Config) { c.Fail.At = time.Hour }},
		{"return before fail", func(c *Config) { c.Fail.Back = time.Second }},
		{"reweight server", func(c *Config) { c.Reweight.Server = -1 }},
		{"reweight negative", func(c *Config) { c.Reweight.Weight = -2 }},
		{"mh index", func(c *Config) { c.MHTableIndex = 20 }},
		{"clients", func(c *Config) { c.Clients = MaxClients + 1 }},
	} {
		cfg := small()
		tc.mod(&cfg)
		if _, err := Run(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err %v, want ErrConfig", tc.name, err)
		}
	}
}

// Once the heaps have grown, an arrival (Schedule, Bind, heap push) and a
// completion (heap pop, Unbind) allocate nothing.
func TestStepsDoNotAllocate(t *testing.T) {
	cfg := small()
	cfg.Duration = 5 * time.Second
	cfg.Fail, cfg.Reweight = nil, nil
	if err := cfg.normalize(); err != nil {
		t.Fatal(err)
	}
	probes := makeProbes(&cfg)
	for _, name := range scheduler.Names {
		s, err := newSim(&cfg, name, slotsPerUnit(&cfg), probes)
		if err != nil {
			t.Fatal(err)
		}
		s.run()
		tm := s.res.SimTime
		k := 0
		allocs := testing.AllocsPerRun(500, func() {
			f := &s.probes[k%len(s.probes)]
			k++
			before := s.res.Scheduled
			s.arrive(f, 1, tm)
			if s.res.Scheduled != before {
				_, i := s.tree.min()
				s.complete(i, s.srv[i].nextDone())
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per arrival and completion", name, allocs)
		}
	}
}

// BenchmarkSim measures the simulator itself: ns per simulated event.
func BenchmarkSim(b *testing.B) {
	for _, name := range []string{"wlc", "mh", "lblcr"} {
		b.Run(name, func(b *testing.B) {
			cfg := Config{Scheds: []string{name}, Capacities: []int32{1, 1, 2, 2, 4, 4, 8, 8}, Duration: 10 * time.Second, Seed: 1}
			var events int64
			for b.Loop() {
				r, err := Run(cfg)
				if err != nil {
					b.Fatal(err)
				}
				events += r.Scheds[0].Events
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
		})
	}
}

// Scheduler flags apply: with mh-port, mh hashes the source port too, so
// one client's connections spread over the servers instead of sticking to
// one; with a single client, plain mh puts everything on one server.
func TestSchedFlags(t *testing.T) {
	cfg := Config{
		Scheds:     []string{"mh", "mh+mh-port"},
		Capacities: []int32{1, 1, 1, 1},
		Clients:    1,
		Rate:       200,
		Duration:   20 * time.Second,
		Seed:       2,
	}
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	used := func(s *SchedResult) int {
		n := 0
		for _, sv := range s.Servers {
			if sv.Scheduled > 0 {
				n++
			}
		}
		return n
	}
	if got := used(byName(t, r, "mh")); got != 1 {
		t.Errorf("mh, one client: %d servers used, want 1", got)
	}
	if got := used(byName(t, r, "mh+mh-port")); got != 4 {
		t.Errorf("mh+mh-port, one client: %d servers used, want 4", got)
	}
}

// With Zipf-popular clients, a source hash (sh, mh) pins the hot clients'
// load on their servers, while wlc still balances by load.
func TestZipfClients(t *testing.T) {
	cfg := small()
	cfg.Scheds = []string{"mh", "wlc"}
	cfg.Fail, cfg.Reweight = nil, nil
	cfg.Capacities = []int32{1, 1, 1, 1, 1, 1, 1, 1}
	cfg.Dist = Lognormal
	uniform, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Zipf = 1.2
	skewed, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mhU, mhZ := byName(t, uniform, "mh"), byName(t, skewed, "mh")
	if mhZ.Jain > mhU.Jain-0.1 || mhZ.MaxMeanLoad < 1 {
		t.Errorf("mh: Jain %v (uniform %v), max mean load %v: want hot clients to overload a server", mhZ.Jain, mhU.Jain, mhZ.MaxMeanLoad)
	}
	if w := byName(t, skewed, "wlc"); w.Jain < 0.95 {
		t.Errorf("wlc with Zipf clients: Jain %v, want > 0.95", w.Jain)
	}
}
