package dataplane

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/lab"
	"golang.org/x/sys/unix"
)

// bench is one run: a lab and what was started in it.
type bench struct {
	o     Options
	log   io.Writer
	l     *lab.Lab
	dir   string // scratch directory (configs, logs); removed at the end
	gcpu  int    // generator CPU, -1 unpinned
	dcpu  int    // director CPU, -1 unpinned
	dmac  string // director public MAC
	vip   netip.Addr
	rs    []netip.Addr
	cli   netip.Addr
	frame struct{ vip, plain [][]byte }
}

func newName() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "dpb" + hex.EncodeToString(b)
}

// Run builds the lab, measures every configuration and tears everything
// down, also when ctx is cancelled or a step fails.
func Run(ctx context.Context, o Options, log io.Writer) (rep *Report, err error) {
	o = o.withDefaults()
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	for _, tool := range o.tools() {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrMissingTool, tool)
		}
	}
	if _, err := os.Stat(o.Ulvsd); err != nil {
		return nil, fmt.Errorf("%w: ulvsd binary %s: %v", ErrMissingTool, o.Ulvsd, err)
	}
	b := &bench{o: o, log: log, gcpu: -1, dcpu: -1}
	if runtime.NumCPU() >= 2 {
		b.gcpu, b.dcpu = 0, 1
	}
	rep = &Report{Machine: machine(), Options: o}
	rep.Machine.LoadStart = loadavg()
	if b.dir, err = os.MkdirTemp("", "ulvsbench-dp-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.dir)
	upCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	b.l, err = lab.Up(upCtx, lab.Spec{Name: newName(), Mode: lab.NAT, Servers: o.Servers, NoServers: true})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer func() {
		if derr := b.l.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("lab down: %w", derr))
		}
	}()
	if err := b.prepare(ctx); err != nil {
		return nil, err
	}
	rep.Placement = b.placement()
	if !o.NoPPS {
		if err := b.measurePPS(ctx, rep); err != nil {
			return rep, err
		}
	}
	if !o.NoTCP {
		if err := b.measureTCP(ctx, rep); err != nil {
			return rep, err
		}
	}
	rep.Machine.LoadEnd = loadavg()
	return rep, nil
}

// niced prefixes argv with nice(1) (which execs in place: the PID stays
// the program's).
func (b *bench) niced(argv []string) []string {
	if b.o.Nice == 0 {
		return argv
	}
	return append([]string{"nice", "-n", strconv.Itoa(b.o.Nice)}, argv...)
}

func (b *bench) placement() string {
	if b.gcpu < 0 {
		return "one CPU: generator and director share it"
	}
	return fmt.Sprintf("generator thread pinned to CPU %d; director CPU %d (ulvsd pinned there with taskset, receive softirq steered there with RPS on the director's interfaces); our processes at nice %d", b.gcpu, b.dcpu, b.o.Nice)
}

func (b *bench) host(name string) *lab.Host {
	h, _ := b.l.Plan.Host(name)
	return h
}

func (b *bench) nsPath(host string) string { return lab.NetnsPath(b.host(host).Netns) }

// sh runs argv in a lab host and returns its combined output.
func (b *bench) sh(ctx context.Context, host string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := b.l.Exec(ctx, host, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), host, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// nft loads a ruleset (nft -f -) in a host.
func (b *bench) nft(ctx context.Context, host, rules string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := b.l.Exec(ctx, host, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %w: %s\nruleset:\n%s", host, err, strings.TrimSpace(string(out)), rules)
	}
	return nil
}

func (b *bench) prepare(ctx context.Context) error {
	p := &b.l.Plan
	dir := b.host("dir1")
	pub, _ := dir.Iface("public")
	b.dmac = pub.MAC
	b.vip = p.VIP4
	cli := b.host("client1")
	b.cli = cli.Addr4()
	for _, h := range p.RealServers() {
		b.rs = append(b.rs, h.Addr4())
		// The counter: every IPv4 UDP or IP-in-IP packet reaching the real
		// server's interface is counted and dropped at ingress (protocol 4 for TUN; ARP and TCP
		// pass).
		ifc := h.Ifaces[0].Name
		if err := b.nft(ctx, h.Name, fmt.Sprintf(`table netdev dpbcount {
  chain in {
    type filter hook ingress device %q priority 0; policy accept;
    ip protocol { 4, 17 } counter drop
  }
}
`, ifc)); err != nil {
			return err
		}
	}
	// The client reaches the VIP and the real servers' net through the
	// director whatever runs there.
	cifc := cli.Ifaces[0].Name
	// wrk opens tens of thousands of connections per second to one
	// address and port, and the side that closes first keeps each in
	// TIME_WAIT for 60 s. Through HAProxy that is often the client, which
	// then runs short of its 28,232 ephemeral ports within a few runs:
	// HAProxy's rows fell from about 20,000 to 600-7,000 new connections
	// per second, from one run to the next, without an error (medians of
	// 3 and of 4 runs: 3,369 and 6,987 without this setting; of 4 runs:
	// 18,615 with it). Reusing TIME_WAIT ports for outgoing connections,
	// as load generators do, keeps the measurement on the director.
	if _, err := b.sh(ctx, "client1", "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"); err != nil {
		return err
	}
	if _, err := b.sh(ctx, "client1", "ip", "neigh", "replace", b.vip.String(), "lladdr", b.dmac, "dev", cifc, "nud", "permanent"); err != nil {
		return err
	}
	priv, _ := dir.Iface("private")
	if _, err := b.sh(ctx, "client1", "ip", "route", "replace", priv.Addr4.Masked().String(), "via", pub.Addr4.Addr().String()); err != nil {
		return err
	}
	// Receive work of the director's interfaces runs on the director CPU.
	if b.dcpu >= 0 {
		mask := strconv.FormatInt(1<<b.dcpu, 16)
		for _, ifc := range dir.Ifaces {
			if _, err := b.sh(ctx, "dir1", "ip", "netns", "exec", dir.Netns, "sh", "-c",
				fmt.Sprintf("echo %s > /sys/class/net/%s/queues/rx-0/rps_cpus", mask, ifc.Name)); err != nil {
				// ip netns exec remounts /sys for the namespace; from
				// inside one it still works. Say so if not.
				return fmt.Errorf("RPS on %s: %w", ifc.Name, err)
			}
		}
	}
	cmac := cli.Ifaces[0].HardwareAddr()
	dmac := pub.HardwareAddr()
	b.frame.vip = buildFrames(flowSpec{SrcMAC: cmac, DstMAC: dmac, Src: b.cli, Dsts: []netip.Addr{b.vip}, DstPort: uint16(p.UDPEchoPort), Flows: b.o.Flows})
	b.frame.plain = buildFrames(flowSpec{SrcMAC: cmac, DstMAC: dmac, Src: b.cli, Dsts: b.rs, DstPort: uint16(p.UDPEchoPort), Flows: b.o.Flows})
	return nil
}

func (b *bench) forwarding(ctx context.Context, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	_, err := b.sh(ctx, "dir1", "sysctl", "-qw", "net.ipv4.ip_forward="+v)
	return err
}

// rsCount sums the real servers' ingress counters.
func (b *bench) rsCount(ctx context.Context) (int64, error) {
	var total int64
	for _, h := range b.l.Plan.RealServers() {
		out, err := b.sh(ctx, h.Name, "nft", "list", "table", "netdev", "dpbcount")
		if err != nil {
			return 0, err
		}
		n, err := packetsIn(out)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", h.Name, err)
		}
		total += n
	}
	return total, nil
}

// packetsIn sums "counter packets N" in nft's listing.
func packetsIn(s string) (int64, error) {
	var total int64
	found := false
	f := strings.Fields(s)
	for i := 0; i+2 < len(f); i++ {
		if f[i] == "counter" && f[i+1] == "packets" {
			n, err := strconv.ParseInt(f[i+2], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("counter %q: %w", f[i+2], err)
			}
			total += n
			found = true
		}
	}
	if !found {
		return 0, errors.New("no counter in the nft listing")
	}
	return total, nil
}

// sample is one measurement window.
type sample struct {
	pps, nsPerPkt, sentPPS, bg float64
}

// counterFn reads the packets counted so far for the configuration.
type counterFn func(context.Context) (int64, error)

// onePPS runs the generator for warm-up plus the measuring window and
// returns the received rate in the window and the busy nanoseconds of the
// measured CPUs per received packet.
func (b *bench) onePPS(ctx context.Context, frames [][]byte, count counterFn, cpus []int) (sample, error) {
	bg, err := b.background(ctx, cpus, quietWait)
	if err != nil {
		return sample{}, err
	}
	g, err := openGenerator(b.nsPath("client1"), b.host("client1").Ifaces[0].Name, frames)
	if err != nil {
		return sample{}, err
	}
	defer g.Close()
	var stop atomic.Bool
	var sent atomic.Int64
	total := b.o.Warmup + b.o.Duration
	deadline := time.Now().Add(total + 2*time.Second) // the safety bound; stop ends it sooner
	done := make(chan error, 1)
	go func() { done <- g.run(b.gcpu, b.o.Nice, b.o.Rate, deadline, b.o.MaxPackets, &stop, &sent) }()
	defer func() {
		stop.Store(true)
		<-done
	}()
	select {
	case <-time.After(b.o.Warmup):
	case <-ctx.Done():
		return sample{}, ctx.Err()
	case err := <-done:
		done <- err
		return sample{}, fmt.Errorf("generator stopped during warm-up: %v", err)
	}
	// Reading the counters runs nft in the real servers' namespaces, which
	// takes milliseconds: time, busy time and sent packets are sampled on
	// both sides of each read and averaged, so the window matches the
	// counter's.
	snap := func() (int64, snapshot, error) {
		a := snapshot{t: time.Now(), busy: busyNS(cpus), sent: sent.Load()}
		c, err := count(ctx)
		z := snapshot{t: time.Now(), busy: busyNS(cpus), sent: sent.Load()}
		return c, mid(a, z), err
	}
	c0, m0, err := snap()
	if err != nil {
		return sample{}, err
	}
	select {
	case <-time.After(b.o.Duration):
	case <-ctx.Done():
		return sample{}, ctx.Err()
	}
	c1, m1, err := snap()
	if err != nil {
		return sample{}, err
	}
	t0, t1 := m0.t, m1.t
	s0, s1 := m0.sent, m1.sent
	busy0, busy1 := m0.busy, m1.busy
	dt := t1.Sub(t0).Seconds()
	n := c1 - c0
	s := sample{pps: float64(n) / dt, sentPPS: float64(s1-s0) / dt, bg: bg}
	if n > 0 {
		s.nsPerPkt = float64(busy1-busy0) / float64(n)
	}
	return s, nil
}

// Background load: a run starts only when the measured CPUs are quiet.
const (
	quietBusy = 0.5              // busier than this with no traffic: wait
	quietWait = 20 * time.Second // for at most this long
)

// background returns how busy the measured CPUs are with no traffic (other
// users of a shared machine), as a share of the CPUs' time, over an Idle
// window. While that share is above quietBusy it measures again, for up to
// wait: a run measured on a CPU that something else holds says more
// about that load than about the director (the NAPI threads of the XDP
// rows, at nice 19, get almost nothing then).
func (b *bench) background(ctx context.Context, cpus []int, wait time.Duration) (float64, error) {
	ncpu := len(cpus)
	if ncpu == 0 {
		ncpu = runtime.NumCPU()
	}
	deadline := time.Now().Add(wait)
	for said := false; ; said = true {
		t0, b0 := time.Now(), busyNS(cpus)
		select {
		case <-time.After(b.o.Idle):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		bg := float64(busyNS(cpus)-b0) / float64(time.Since(t0).Nanoseconds()) / float64(ncpu)
		if bg <= quietBusy || time.Now().After(deadline) {
			return bg, nil
		}
		if !said {
			fmt.Fprintf(b.log, "  (the measured CPUs are %.0f%% busy with no traffic: waiting up to %s for them to quiet down)\n", 100*bg, wait)
		}
	}
}

type snapshot struct {
	t          time.Time
	busy, sent int64
}

func mid(a, z snapshot) snapshot {
	return snapshot{t: a.t.Add(z.t.Sub(a.t) / 2), busy: (a.busy + z.busy) / 2, sent: (a.sent + z.sent) / 2}
}

// row measures one configuration Reps times and keeps the medians.
func (b *bench) row(ctx context.Context, name, placement string, frames [][]byte, count counterFn, cpus []int) (Row, error) {
	r := Row{Name: name, Placement: placement}
	var pps, ns, sent, bg []float64
	for i := 0; i < b.o.Reps; i++ {
		s, err := b.onePPS(ctx, frames, count, cpus)
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
		pps = append(pps, s.pps)
		ns = append(ns, s.nsPerPkt)
		sent = append(sent, s.sentPPS)
		bg = append(bg, s.bg)
		r.Runs = append(r.Runs, s.pps)
	}
	r.PPS, r.NsPerPkt, r.SentPPS, r.Background = median(pps), median(ns), median(sent), median(bg)
	fmt.Fprintf(b.log, "  %-28s %10.0f pps  %6.0f ns/pkt  (sent %.0f pps; idle-time busy %.0f%%; runs %s)\n", name, r.PPS, r.NsPerPkt, r.SentPPS, 100*r.Background, fmtRuns(r.Runs))
	return r, nil
}

func fmtRuns(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strings.Join(s, " ")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) dirCPUs() []int {
	if b.dcpu < 0 {
		return nil // every CPU
	}
	return []int{b.dcpu}
}

func (b *bench) measurePPS(ctx context.Context, rep *Report) error {
	pinned := "pinned"
	if b.dcpu < 0 {
		pinned = "one CPU"
	}
	fmt.Fprintf(b.log, "UDP 64-byte packets, %d flows, %s x %d runs (warm-up %s)\n", b.o.Flows, b.o.Duration, b.o.Reps, b.o.Warmup)

	// The generator's ceiling: the director drops everything at ingress.
	dirIfc := b.host("dir1").Ifaces[0].Name
	if err := b.nft(ctx, "dir1", fmt.Sprintf(`table netdev dpbgen {
  chain in {
    type filter hook ingress device %q priority 0; policy accept;
    ip protocol udp counter drop
  }
}
`, dirIfc)); err != nil {
		return err
	}
	dirCount := func(ctx context.Context) (int64, error) {
		out, err := b.sh(ctx, "dir1", "nft", "list", "table", "netdev", "dpbgen")
		if err != nil {
			return 0, err
		}
		return packetsIn(out)
	}
	g, err := b.row(ctx, "generator ceiling", pinned, b.frame.vip, dirCount, b.dirCPUs())
	if err != nil {
		return err
	}
	rep.Generator = g
	if _, err := b.sh(ctx, "dir1", "nft", "delete", "table", "netdev", "dpbgen"); err != nil {
		return err
	}

	// Kernel, plain forwarding to the real servers' own addresses.
	if err := b.forwarding(ctx, true); err != nil {
		return err
	}
	r, err := b.row(ctx, "kernel forwarding", pinned, b.frame.plain, b.rsCount, b.dirCPUs())
	if err != nil {
		return err
	}
	rep.PPS = append(rep.PPS, r)

	// Kernel, nftables DNAT with conntrack, to the VIP.
	if err := b.nft(ctx, "dir1", b.dnatRules()); err != nil {
		return err
	}
	r, err = b.row(ctx, "nftables DNAT", pinned, b.frame.vip, b.rsCount, b.dirCPUs())
	if err != nil {
		return err
	}
	rep.PPS = append(rep.PPS, r)
	if _, err := b.sh(ctx, "dir1", "nft", "delete", "table", "ip", "dpbnat"); err != nil {
		return err
	}
	if err := b.forwarding(ctx, false); err != nil {
		return err
	}

	// ulvsd, each method, one worker pinned to the director CPU.
	for _, m := range []string{"dr", "nat", "tun"} {
		r, err := b.ulvsdRow(ctx, m, 1, b.dcpu, b.o.Profile != "" && m == "nat" && b.o.XDP == "", "")
		if err != nil {
			return err
		}
		r.Placement = pinned
		rep.PPS = append(rep.PPS, r)
	}
	// The same with the XDP fast lane, when asked for.
	if b.o.XDP != "" {
		for _, m := range []string{"dr", "nat", "tun"} {
			r, err := b.ulvsdRow(ctx, m, 1, b.dcpu, b.o.Profile != "" && m == "nat", b.o.XDP)
			if err != nil {
				return err
			}
			r.Placement = pinned
			rep.PPS = append(rep.PPS, r)
		}
		r, err := b.floorRow(ctx)
		if err != nil {
			return err
		}
		r.Placement = pinned
		rep.PPS = append(rep.PPS, r)
	}
	var nft float64
	for _, r := range rep.PPS {
		if r.Name == "nftables DNAT" {
			nft = r.PPS
		}
	}
	for i := range rep.PPS {
		if nft > 0 {
			rep.PPS[i].RatioNFT = rep.PPS[i].PPS / nft
		}
	}

	// Scaling: one and two workers, nothing pinned (two workers need both
	// CPUs), so the ns/packet is of every CPU, the generator's included.
	if runtime.NumCPU() >= 2 && !b.o.NoScaling {
		fmt.Fprintln(b.log, "unpinned, no RPS (CPU time of all CPUs): nftables DNAT, then ulvsd NAT with 1 and 2 workers")
		if err := b.rps(ctx, false); err != nil {
			return err
		}
		saved := b.gcpu
		b.gcpu = -1
		// The kernel's DNAT in the same placement, for the ratio.
		if err := b.forwarding(ctx, true); err != nil {
			return err
		}
		if err := b.nft(ctx, "dir1", b.dnatRules()); err != nil {
			return err
		}
		r, err := b.row(ctx, "nftables DNAT, unpinned", "unpinned", b.frame.vip, b.rsCount, nil)
		if err != nil {
			return err
		}
		r.Placement = "unpinned"
		rep.Scaling = append(rep.Scaling, r)
		if _, err := b.sh(ctx, "dir1", "nft", "delete", "table", "ip", "dpbnat"); err != nil {
			return err
		}
		if err := b.forwarding(ctx, false); err != nil {
			return err
		}
		for _, w := range []int{1, 2} {
			r, err := b.ulvsdRow(ctx, "nat", w, -1, false, "")
			if err != nil {
				b.gcpu = saved
				return err
			}
			r.Placement = "unpinned"
			rep.Scaling = append(rep.Scaling, r)
		}
		b.gcpu = saved
		for i := range rep.Scaling {
			if nft := rep.Scaling[0].PPS; nft > 0 {
				rep.Scaling[i].RatioNFT = rep.Scaling[i].PPS / nft
			}
		}
		if err := b.rps(ctx, true); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) rps(ctx context.Context, on bool) error {
	if b.dcpu < 0 {
		return nil
	}
	mask := "0"
	if on {
		mask = strconv.FormatInt(1<<b.dcpu, 16)
	}
	dir := b.host("dir1")
	for _, ifc := range dir.Ifaces {
		if _, err := b.sh(ctx, "dir1", "ip", "netns", "exec", dir.Netns, "sh", "-c",
			fmt.Sprintf("echo %s > /sys/class/net/%s/queues/rx-0/rps_cpus", mask, ifc.Name)); err != nil {
			return fmt.Errorf("RPS on %s: %w", ifc.Name, err)
		}
	}
	return nil
}

// napiNice is the nice value of the director's NAPI threads (see
// threadedNAPI): the lowest priority, so the receive work yields to ulvsd.
const napiNice = 19

// threadedNAPI moves the receive work of the director's interfaces into
// NAPI kernel threads pinned to the director CPU at nice napiNice, and
// returns the func that undoes it.
//
// Why: in the kernel rows the director's whole work runs in the receive
// softirq, steered to the director CPU with RPS. ulvsd splits it between
// that receive path and its worker; at overload the softirq, which always
// comes first, takes the CPU and the worker starves (receive livelock:
// frames are received only to be dropped at the full ring). Threaded NAPI
// makes the receive work an ordinary thread; at the lowest priority it
// runs when the worker has nothing to do, so frames the worker cannot take
// wait in the veth queue and are dropped by the sender before they cost
// the director anything. A veth with an XDP program also receives in its
// own NAPI context, scheduled and run on the sending CPU (the generator's)
// where RPS does not apply; the pinned thread keeps that work on the
// director CPU too. A veth has a NAPI context only with an XDP program or
// GRO on: gro turns GRO on for the rows without XDP (and off again).
func (b *bench) threadedNAPI(ctx context.Context, gro bool) (func(), error) {
	if b.dcpu < 0 {
		return func() {}, nil
	}
	dir := b.host("dir1")
	set := func(ctx context.Context, on bool) error {
		v, g := 0, "off"
		if on {
			v, g = 1, "on"
		}
		for _, ifc := range dir.Ifaces {
			if gro {
				if _, err := b.sh(ctx, "dir1", "ethtool", "-K", ifc.Name, "gro", g); err != nil {
					return err
				}
			}
			// ip netns exec mounts the namespace's own /sys.
			if _, err := b.sh(ctx, "dir1", "ip", "netns", "exec", dir.Netns, "sh", "-c", fmt.Sprintf("echo %d > /sys/class/net/%s/threaded", v, ifc.Name)); err != nil {
				return fmt.Errorf("threaded NAPI on %s: %w", ifc.Name, err)
			}
		}
		return nil
	}
	var names []string
	for _, ifc := range dir.Ifaces {
		names = append(names, ifc.Name)
	}
	if err := set(ctx, true); err != nil {
		return nil, err
	}
	restore := func() { set(context.WithoutCancel(ctx), false) }
	// Every NAPI thread named after the director's interfaces (they may
	// predate this call: a veth keeps them across an XDP detach and attach;
	// no other namespace of this lab runs threaded NAPI), once every
	// interface has one: the kernel starts them as it switches each
	// device, and an interface whose thread is missed keeps its receive
	// work wherever the scheduler puts the thread, the generator's CPU
	// included, uncounted.
	var threads map[int]string
	for deadline := time.Now().Add(2 * time.Second); ; {
		threads = napiThreads(names)
		have := map[string]bool{}
		for _, n := range threads {
			have[n] = true
		}
		var missing []string
		for _, n := range names {
			if !have[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			restore()
			return nil, fmt.Errorf("threaded NAPI: no NAPI thread appeared within 2 s for %s", strings.Join(missing, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for pid := range threads {
		if out, err := exec.CommandContext(ctx, "taskset", "-pc", strconv.Itoa(b.dcpu), strconv.Itoa(pid)).CombinedOutput(); err != nil {
			restore()
			return nil, fmt.Errorf("pinning NAPI thread %d: %v: %s", pid, err, out)
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, pid, napiNice); err != nil {
			restore()
			return nil, fmt.Errorf("nice of NAPI thread %d: %w", pid, err)
		}
	}
	return restore, nil
}

// napiThreads returns the PIDs of the kernel's threaded-NAPI threads of
// the named interfaces ("napi/<device>-<id>", cut to 15 characters), each
// with its interface's name.
func napiThreads(ifaces []string) map[int]string {
	m := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(c))
		for _, n := range ifaces {
			if p := "napi/" + n + "-"; strings.HasPrefix(comm, p) || strings.HasPrefix(p, comm) && len(comm) >= 15 {
				m[pid] = n
			}
		}
	}
	return m
}

func (b *bench) dnatMap() string {
	var m []string
	for i, a := range b.rs {
		m = append(m, fmt.Sprintf("%d : %s", i, a))
	}
	return fmt.Sprintf("numgen random mod %d map { %s }", len(b.rs), strings.Join(m, ", "))
}

func (b *bench) dnatRules() string {
	p := &b.l.Plan
	return fmt.Sprintf(`table ip dpbnat {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr %s udp dport %d dnat to %s
    ip daddr %s tcp dport %d dnat to %s
  }
}
`, b.vip, p.UDPEchoPort, b.dnatMap(), b.vip, p.HTTPPort, b.dnatMap())
}

// startUlvsd starts ulvsd with the method, workers, receive ring (""
// keeps ulvsd's default rx_ring) and XDP fast lane ("": off), pinned to cpu
// (cpu < 0: not pinned), and waits for its control socket.
func (b *bench) startUlvsd(ctx context.Context, method string, workers, cpu int, ring, xdp string) (*lab.Process, error) {
	sock := b.ulvsdSock(method, workers, ring, xdp)
	extra := "log_level = \"warn\"\n"
	if ring != "" {
		extra += fmt.Sprintf("rx_ring = %q\n", ring)
	}
	if xdp != "" {
		extra += fmt.Sprintf("xdp = %q\n", xdp)
	}
	if t := strings.Split(b.o.Timeouts, ","); len(t) == 3 {
		extra += fmt.Sprintf("\n[timeouts]\ntcp = %s\ntcpfin = %s\nudp = %s\n", t[0], t[1], t[2])
	}
	cfg := b.l.DirectorConfig(lab.DirectorOptions{Workers: workers, ControlSocket: sock, UDP: true, Extra: extra})
	cfg = strings.ReplaceAll(cfg, `method = "nat"`, fmt.Sprintf("method = %q", method))
	path := strings.TrimSuffix(sock, ".sock") + ".toml"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	argv := []string{b.o.Ulvsd, "-config", path}
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}
	pr, err := b.l.Start("dir1", b.niced(argv)...)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return pr, nil
		}
		select {
		case <-pr.Done():
			out, _ := pr.Output()
			return nil, fmt.Errorf("ulvsd (%s, %d workers) exited: %s", method, workers, strings.TrimSpace(string(out)))
		case <-ctx.Done():
			_ = pr.Stop(3 * time.Second)
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = pr.Stop(3 * time.Second)
			return nil, fmt.Errorf("ulvsd (%s) did not open its control socket within 10 s", method)
		}
	}
}

func (b *bench) ulvsdRow(ctx context.Context, method string, workers, cpu int, profile bool, xdp string) (Row, error) {
	name := fmt.Sprintf("ulvsd %s", strings.ToUpper(method))
	if cpu < 0 {
		name = fmt.Sprintf("ulvsd %s, %d worker(s)", strings.ToUpper(method), workers)
	}
	if xdp != "" {
		name += ", XDP " + xdp
	}
	pr, err := b.startUlvsd(ctx, method, workers, cpu, "", xdp)
	if err != nil {
		return Row{Name: name}, err
	}
	defer pr.Stop(3 * time.Second)
	// The XDP lane's native mode needs the pinned NAPI threads to keep
	// the receive work on the director CPU; NAPIThreads asks for them in
	// the AF_PACKET rows too.
	if cpu >= 0 && (xdp == "native" || b.o.NAPIThreads && xdp == "") {
		restore, err := b.threadedNAPI(ctx, xdp == "")
		if err != nil {
			return Row{Name: name}, err
		}
		defer restore()
	}
	if b.o.IngressDrop {
		ifc := b.host("dir1").Ifaces[0].Name
		if err := b.nft(ctx, "dir1", fmt.Sprintf(`table netdev dpbvip {
  chain in {
    type filter hook ingress device %q priority 0; policy accept;
    ip daddr %s drop
  }
}
`, ifc, b.vip)); err != nil {
			return Row{Name: name}, err
		}
		defer b.sh(context.WithoutCancel(ctx), "dir1", "nft", "delete", "table", "netdev", "dpbvip")
	}
	var stopProf func() error
	if profile {
		stopProf, err = b.startProfile(ctx, pr.PID)
		if err != nil {
			return Row{Name: name}, err
		}
	}
	r, err := b.row(ctx, name, "", b.frame.vip, b.rsCount, b.dirCPUs())
	b.engineLine(method, workers, xdp)
	if stopProf != nil {
		if perr := stopProf(); perr != nil && err == nil {
			fmt.Fprintf(b.log, "  profile: %v\n", perr)
		}
	}
	if err == nil && r.PPS == 0 {
		out, _ := pr.Output()
		fmt.Fprintf(b.log, "  ulvsd log: %s\n", tail(string(out), 2000))
	}
	return r, err
}

// ulvsdSock is the control socket of the ulvsd startUlvsd starts with these
// settings (and the stem of its configuration file).
func (b *bench) ulvsdSock(method string, workers int, ring, xdp string) string {
	return filepath.Join(b.dir, fmt.Sprintf("ulvsd-%s-%d%s%s.sock", method, workers, ring, xdp))
}

// engineLine prints how ulvsd's engine batched during the row: frames per
// wake-up of its worker (a Read that had to wait in poll), per transmit
// system call, and the kernel's drops at its rings.
func (b *bench) engineLine(method string, workers int, xdp string) {
	sock := b.ulvsdSock(method, workers, "", xdp)
	var st struct {
		Engine map[string]uint64 `json:"engine"`
	}
	if err := control.NewClient(sock).Status(&st); err != nil {
		fmt.Fprintf(b.log, "  engine: %v\n", err)
		return
	}
	e := st.Engine
	per := func(a, b uint64) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	fmt.Fprintf(b.log, "  engine: %d frames read, %.1f per wake-up, %.1f per transmit call, %d dropped at the rings\n",
		e["RxFrames"], per(e["RxFrames"], e["RxPolls"]), per(e["TxFrames"], e["TxCalls"]), e["KernelDrops"])
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// startProfile records the director CPU (or ulvsd's PID when not pinned)
// with perf's software clock, call graphs on, into Options.Profile; the
// returned function stops it and writes the report next to it.
func (b *bench) startProfile(ctx context.Context, pid int) (func() error, error) {
	target := []string{"-p", strconv.Itoa(pid)}
	if b.dcpu >= 0 {
		target = []string{"-a", "-C", strconv.Itoa(b.dcpu)}
	}
	args := append([]string{"record", "-e", "cpu-clock", "-F", "2000", "-g", "-o", b.o.Profile}, target...)
	cmd := exec.Command("perf", args...)
	logf, err := os.Create(b.o.Profile + ".log")
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("perf record: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	return func() error {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		fmt.Fprintf(b.log, "  profile of ulvsd NAT written to %s (perf report -i %s)\n", b.o.Profile, b.o.Profile)
		return nil
	}, nil
}

// busyNS returns a reading of the CPUs' busy time in nanoseconds, for
// differences only: elapsed time times the number of CPUs, less their idle,
// iowait and steal time from /proc/stat. Not the sum of the busy fields:
// this kernel accounts those by sampling at the 250 Hz tick, and a tickless
// CPU that wakes for bursts shorter than a tick goes uncounted, so at low
// load they read far too low (about 10 times at 150,000 pps here); idle
// time is measured exactly.
func busyNS(cpus []int) int64 {
	now := time.Since(busyEpoch).Nanoseconds()
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	want := map[string]bool{}
	if len(cpus) == 0 {
		want["cpu"] = true
	}
	for _, c := range cpus {
		want["cpu"+strconv.Itoa(c)] = true
	}
	ncpu := len(cpus)
	if ncpu == 0 {
		ncpu = runtime.NumCPU()
	}
	var idle int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 9 || !want[fs[0]] {
			continue
		}
		for _, i := range []int{4, 5, 8} { // idle, iowait, steal
			v, _ := strconv.ParseInt(fs[i], 10, 64)
			idle += v
		}
	}
	return now*int64(ncpu) - idle*(1e9/100) // USER_HZ
}

// busyEpoch is the origin of busyNS's elapsed time (monotonic).
var busyEpoch = time.Now()

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.IndexByte(line, ':'); i >= 0 {
					m.CPUModel = strings.TrimSpace(line[i+1:])
				}
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Go = runtime.Version()
	return m
}
