package dataplane

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulvs/ulvs/lab/labtest"
)

func TestPacketsIn(t *testing.T) {
	out := `table netdev dpbcount {
	chain in {
		type filter hook ingress device "eth0" priority filter; policy accept;
		ip protocol { 4, 17 } counter packets 1234 bytes 74040 drop
		ip protocol 6 counter packets 6 bytes 360
	}
}`
	n, err := packetsIn(out)
	if err != nil || n != 1240 {
		t.Fatalf("packetsIn = %d, %v; want 1240", n, err)
	}
	if _, err := packetsIn("table netdev x { }"); err == nil {
		t.Fatal("no counter: want an error")
	}
	if _, err := packetsIn("counter packets x1 bytes 0"); err == nil {
		t.Fatal("bad number: want an error")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{9, 1, 5}, 5}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// checksum over b (with its checksum field in place) folds to 0xffff when
// the checksum is right.
func ones(b []byte, acc uint32) uint16 { return fold(sum(b, acc)) }

func TestBuildFrames(t *testing.T) {
	dsts := []netip.Addr{netip.MustParseAddr("10.0.1.11"), netip.MustParseAddr("10.0.1.12")}
	src := netip.MustParseAddr("10.0.0.11")
	smac, _ := net.ParseMAC("02:1a:0a:00:00:0b")
	dmac, _ := net.ParseMAC("02:1a:0a:00:00:02")
	fs := buildFrames(flowSpec{SrcMAC: smac, DstMAC: dmac, Src: src, Dsts: dsts, DstPort: 7, Flows: 1000})
	if len(fs) != 1000 {
		t.Fatalf("%d frames, want 1000", len(fs))
	}
	seen := map[uint16]bool{}
	for i, f := range fs {
		if len(f) != frameLen {
			t.Fatalf("frame %d: %d bytes", i, len(f))
		}
		if !bytes.Equal(f[0:6], dmac) || !bytes.Equal(f[6:12], smac) {
			t.Fatalf("frame %d: MACs % x", i, f[0:12])
		}
		if c := ones(f[14:34], 0); c != 0xffff {
			t.Fatalf("frame %d: IPv4 header checksum wrong (%#x)", i, c)
		}
		d := dsts[i%2].As4()
		if !bytes.Equal(f[30:34], d[:]) {
			t.Fatalf("frame %d: dst % x, want %v", i, f[30:34], dsts[i%2])
		}
		s4 := src.As4()
		ph := sum(s4[:], 0)
		ph = sum(d[:], ph)
		ph += 17 + 26
		if c := ones(f[34:], ph); c != 0xffff {
			t.Fatalf("frame %d: UDP checksum wrong (%#x)", i, c)
		}
		sp := binary.BigEndian.Uint16(f[34:])
		if seen[sp] {
			t.Fatalf("frame %d: source port %d repeats: flows are not distinct", i, sp)
		}
		seen[sp] = true
	}
}

func TestMainBadArgs(t *testing.T) {
	for _, args := range [][]string{{"--flows", "70000"}, {"--reps", "-1"}, {"extra"}, {"--nope"}, {"--timeouts", "900,120"}, {"--rate", "-5"}, {"--xdp", "zerocopy"}} {
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code != 2 {
			t.Errorf("Main(%q) = %d, want 2 (stderr %q)", args, code, errb.String())
		}
		if errb.Len() == 0 {
			t.Errorf("Main(%q): nothing on stderr", args)
		}
	}
}

// TestQuickRun runs `ulvsbench dataplane --quick --json` end to end (a few
// seconds of traffic) and checks that the report parses and that every
// configuration moved packets or requests. It asserts no speed.
func TestQuickRun(t *testing.T) {
	labtest.RequireRoot(t)
	for _, tool := range (Options{}).tools() {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing (scripts/test-deps.sh installs it)", tool)
			}
			t.Skipf("skipped: %s is missing (run scripts/test-deps.sh as root; under CI=true this fails)", tool)
		}
	}
	bin := filepath.Join(t.TempDir(), "ulvsd")
	build := exec.Command("go", "build", "-o", bin, "github.com/ulvs/ulvs/cmd/ulvsd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building ulvsd: %v\n%s", err, out)
	}
	var out, errb bytes.Buffer
	code := Main([]string{"--quick", "--json", "--xdp", "native", "--ulvsd", bin}, &out, &errb)
	t.Logf("progress:\n%s", errb.String())
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report does not parse: %v\n%s", err, out.String())
	}
	if rep.Generator.PPS <= 0 {
		t.Errorf("generator ceiling %v pps", rep.Generator.PPS)
	}
	want := []string{"kernel forwarding", "nftables DNAT", "ulvsd DR", "ulvsd NAT", "ulvsd TUN",
		"ulvsd DR, XDP native", "ulvsd NAT, XDP native", "ulvsd TUN, XDP native", "engine floor, XDP native"}
	if len(rep.PPS) != len(want) {
		t.Fatalf("%d packet-rate rows, want %d: %+v", len(rep.PPS), len(want), rep.PPS)
	}
	for i, r := range rep.PPS {
		if r.Name != want[i] {
			t.Errorf("row %d is %q, want %q", i, r.Name, want[i])
		}
		if r.PPS <= 0 || r.NsPerPkt <= 0 || r.RatioNFT <= 0 {
			t.Errorf("%s: pps %v, ns/packet %v, ratio %v: want all > 0", r.Name, r.PPS, r.NsPerPkt, r.RatioNFT)
		}
	}
	if n := len(rep.Scaling); n != 3 && rep.Machine.CPUs >= 2 {
		t.Errorf("%d scaling rows (nftables DNAT unpinned, ulvsd 1 and 2 workers), want 3", n)
	}
	for _, r := range rep.Scaling {
		if r.PPS <= 0 {
			t.Errorf("scaling %s: %v pps", r.Name, r.PPS)
		}
	}
	wantTCP := []string{"ulvsd NAT, rx_ring v3", "ulvsd NAT, rx_ring v2", "ulvsd NAT, XDP native", "nftables DNAT", "HAProxy mode tcp"}
	if len(rep.TCP) != len(wantTCP) {
		t.Fatalf("%d TCP rows, want %d: %+v", len(rep.TCP), len(wantTCP), rep.TCP)
	}
	for i, r := range rep.TCP {
		if r.Name != wantTCP[i] {
			t.Errorf("TCP row %d is %q, want %q", i, r.Name, wantTCP[i])
		}
		if r.RequestsPerSec <= 0 || r.ConnsPerSec <= 0 {
			t.Errorf("%s: %v req/s, %v conn/s: want > 0", r.Name, r.RequestsPerSec, r.ConnsPerSec)
		}
	}
	// The table form prints every row too.
	var tb bytes.Buffer
	PrintTable(&tb, &rep)
	for _, w := range append(append(want, wantTCP...), "generator ceiling") {
		if !strings.Contains(tb.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, tb.String())
		}
	}
	// Nothing left behind: no namespace of the run remains.
	if b, err := exec.Command("ip", "netns", "list").Output(); err == nil && strings.Contains(string(b), "dpb") {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "dpb") {
				t.Errorf("namespace left behind: %s", line)
			}
		}
	}
}
