// Package dataplane is `ulvsbench dataplane`: it builds a network-namespace
// lab (client, director, real servers; offloads off), sends 64-byte UDP
// packets over many flows from the client and counts what reaches the real
// servers, for the kernel forwarding plainly, the kernel's nftables DNAT
// with conntrack, and ulvsd in DR, NAT and TUN, all in one run on the same
// topology. It also measures TCP requests and connections per second through
// the VIP with wrk against nginx (ulvsd NAT, nftables DNAT, HAProxy in TCP
// mode) and ulvsd's scaling from one to two workers.
//
// Topology: the lab package's NAT lab (client1 -- br-public -- dir1 --
// br-private -- rs1..rsN). DR and TUN use the same topology: the real servers
// sit on the director's private segment, and the counters count what
// reaches their interfaces, so no real-server set-up is needed for the
// packet rates.
//
// Generator: a thread of this process pinned to CPU 0, sending prebuilt
// frames on an AF_PACKET socket in the client's namespace, 64 per
// sendmmsg(2). Its ceiling is measured first, with the director dropping
// every packet at ingress.
//
// Counting: an nftables netdev ingress rule on each real server's interface
// counts and drops the UDP (or IP-in-IP) packets. CPU cost: the busy time of
// the director's CPU from /proc/stat (user+nice+system+irq+softirq) divided
// by the packets counted in the same window.
package dataplane

import (
	"errors"
	"time"
)

// Errors.
var (
	ErrNotRoot     = errors.New("dataplane: needs root (network namespaces, AF_PACKET, nftables)")
	ErrMissingTool = errors.New("dataplane: missing tool")
	ErrUsage       = errors.New("dataplane: bad arguments")
)

// Options shape a run; the zero value of each field means its default.
type Options struct {
	Ulvsd       string        `json:"ulvsd"`        // path of the ulvsd binary
	Duration    time.Duration `json:"duration"`     // measuring window per run (default 3s)
	Warmup      time.Duration `json:"warmup"`       // before each window (default 1s)
	Idle        time.Duration `json:"idle"`         // no-traffic window before each run, for the background load (default 500ms)
	Reps        int           `json:"reps"`         // runs per configuration, median kept (default 3)
	Flows       int           `json:"flows"`        // UDP flows (source ports), default 64512
	Servers     int           `json:"servers"`      // real servers (default 2)
	MaxPackets  int64         `json:"max_packets"`  // bound on packets per run (default 50M)
	TCPDuration time.Duration `json:"tcp_duration"` // wrk duration per run (default 3s)
	TCPConns    int           `json:"tcp_conns"`    // wrk connections (default 64)
	// Rate paces the generator at this many frames per second (0: as fast
	// as it can). Below every configuration's capacity, the ns/packet
	// column compares the cost of forwarding without overload, where
	// frames dropped for lack of CPU would otherwise be paid for too.
	Rate int64 `json:"rate,omitempty"`
	// Timeouts, when set, is ulvsd's [timeouts] as ipvsadm --set takes
	// them: "TCP,TCPFIN,UDP" in seconds ("" keeps ulvsd's defaults).
	Timeouts string `json:"timeouts,omitempty"`
	// IngressDrop adds, while ulvsd runs, an nftables netdev ingress rule
	// on the director's public interface that drops VIP traffic after
	// ulvsd's AF_PACKET rings have seen it, so the kernel's IP layer
	// never processes it (forwarder/engine documents this set-up).
	IngressDrop bool `json:"ingress_drop,omitempty"`
	// XDP adds rows of ulvsd DR, NAT and TUN with the engine's XDP fast
	// lane in this mode ("native" or "generic"; "" adds none), and a TCP
	// row of ulvsd NAT with it. Pinned native rows run the director's
	// receive in NAPI threads (see NAPIThreads).
	XDP string `json:"xdp,omitempty"`
	// NAPIThreads runs, in the pinned ulvsd rows without XDP too, the
	// director's receive work in threaded-NAPI kernel threads pinned to the
	// director CPU at nice 19 (GRO on, which gives a veth its NAPI
	// context), instead of the RPS softirq.
	NAPIThreads bool   `json:"napi_threads,omitempty"`
	NoTCP       bool   `json:"no_tcp"`
	NoPPS       bool   `json:"no_pps"`
	NoScaling   bool   `json:"no_scaling"`
	Profile     string `json:"profile,omitempty"` // perf record output during ulvsd NAT
	// Nice is the nice value of every process and thread the run starts
	// (generator, ulvsd, HAProxy, nginx, wrk), so that a shared machine's
	// other load disturbs them less; the kernel's softirq work is not
	// subject to it. Default -10; NoNice keeps 0.
	Nice   int  `json:"nice"`
	NoNice bool `json:"no_nice,omitempty"`
}

// Quick returns options for a short run (the end-to-end test).
func Quick() Options {
	return Options{Duration: 500 * time.Millisecond, Warmup: 300 * time.Millisecond, Idle: 200 * time.Millisecond, Reps: 1, Flows: 4096,
		TCPDuration: time.Second, TCPConns: 16, MaxPackets: 5_000_000}
}

func (o Options) withDefaults() Options {
	if o.Duration <= 0 {
		o.Duration = 3 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = time.Second
	}
	if o.Idle <= 0 {
		o.Idle = 500 * time.Millisecond
	}
	if o.Reps <= 0 {
		o.Reps = 3
	}
	if o.Flows <= 0 {
		o.Flows = 64512
	}
	if o.Servers <= 0 {
		o.Servers = 2
	}
	if o.MaxPackets <= 0 {
		o.MaxPackets = 50_000_000
	}
	if o.TCPDuration <= 0 {
		o.TCPDuration = 3 * time.Second
	}
	if o.NoNice {
		o.Nice = 0
	} else if o.Nice == 0 {
		o.Nice = -10
	}
	if o.TCPConns <= 0 {
		o.TCPConns = 64
	}
	return o
}

func (o Options) tools() []string {
	t := []string{"nsenter", "ip", "nft", "taskset", "sysctl", "nice"}
	if !o.NoTCP {
		t = append(t, "nginx", "wrk", "haproxy", "curl")
	}
	if o.Profile != "" {
		t = append(t, "perf")
	}
	return t
}

// Machine describes where a run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

// Row is one packet-rate configuration: medians over the runs.
type Row struct {
	Name      string    `json:"name"`
	Placement string    `json:"placement"`
	PPS       float64   `json:"pps"`        // packets per second counted at the real servers
	SentPPS   float64   `json:"sent_pps"`   // packets per second the generator sent
	NsPerPkt  float64   `json:"ns_per_pkt"` // busy ns of the measured CPU(s) per counted packet
	RatioNFT  float64   `json:"ratio_nft"`  // PPS / nftables DNAT's PPS (0 when not computed)
	Runs      []float64 `json:"runs_pps"`   // every run's PPS
	// Background is the share of the measured CPUs' time busy with no
	// traffic just before each run (median): other load on the machine,
	// which ns/packet includes. Above a few percent, redo the run.
	Background float64 `json:"background_busy"`
}

// floorName starts the name of the engine-floor row (see floorRow).
const floorName = "engine floor"

// TCPRow is one TCP configuration: medians over the runs.
type TCPRow struct {
	Name           string   `json:"name"`
	RequestsPerSec float64  `json:"requests_per_sec"` // keep-alive
	ConnsPerSec    float64  `json:"conns_per_sec"`    // Connection: close, one connection per request
	Notes          []string `json:"notes,omitempty"`  // wrk's error lines
}

// Report is a run's result, printed as a table or as JSON.
type Report struct {
	Machine   Machine  `json:"machine"`
	Options   Options  `json:"options"`
	Placement string   `json:"placement"`
	Generator Row      `json:"generator"`
	PPS       []Row    `json:"pps"`
	Scaling   []Row    `json:"scaling,omitempty"`
	TCP       []TCPRow `json:"tcp,omitempty"`
}
