package sim

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulvs/ulvs/scheduler"
)

// quick are flags for a short run of every scheduler.
var quick = []string{"--duration", "30s", "--rate", "300", "--probes", "2000", "--timing", "0"}

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestMainJSON(t *testing.T) {
	code, out, errs := runMain(t, append([]string{"--json"}, quick...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("JSON does not parse: %v", err)
	}
	if len(r.Scheds) != len(scheduler.Names) {
		t.Fatalf("%d schedulers, want %d", len(r.Scheds), len(scheduler.Names))
	}
	for i, s := range r.Scheds {
		if s.Sched != scheduler.Names[i] {
			t.Errorf("result %d is %s, want %s", i, s.Sched, scheduler.Names[i])
		}
		if len(s.Servers) != 8 || len(s.Changes) != 3 || len(s.T) != 30 || s.Scheduled == 0 {
			t.Errorf("%s: %d servers, %d changes, %d samples, %d scheduled", s.Sched, len(s.Servers), len(s.Changes), len(s.T), s.Scheduled)
		}
	}
	// Defaults: server 4 fails at 10s and is back at 15s, server 7 goes to
	// weight 4 at 20s.
	c := r.Scheds[0].Changes
	if c[0].Event != "fail" || c[0].At != 10 || c[1].Event != "return" || c[1].At != 15 || c[2].Event != "reweight" || c[2].At != 20 {
		t.Errorf("changes %+v", c)
	}
	if r.Config.Reweight == nil || r.Config.Reweight.Weight != 4 || r.Config.Fail.Server != 4 {
		t.Errorf("default changes: %+v %+v", r.Config.Fail, r.Config.Reweight)
	}
	if r.Machine != nil {
		t.Errorf("machine reported with --timing 0")
	}
}

func TestMainDeterministic(t *testing.T) {
	args := append([]string{"--json", "--seed", "5"}, quick...)
	_, a, _ := runMain(t, args...)
	_, b, _ := runMain(t, args...)
	if a != b || a == "" {
		t.Fatal("same seed, different output")
	}
	few := append([]string{"--seed", "5", "--scheds", "rr,wlc,lblcr,mh,twos"}, quick...)
	_, ta, _ := runMain(t, few...)
	_, tb, _ := runMain(t, few...)
	if ta != tb {
		t.Fatal("same seed, different table")
	}
	_, c, _ := runMain(t, append([]string{"--json", "--seed", "6", "--scheds", "rr,wlc,lblcr,mh,twos"}, quick...)...)
	if a == c {
		t.Fatal("another seed, same output")
	}
}

func TestMainTable(t *testing.T) {
	code, out, errs := runMain(t, append([]string{"--scheds", "wlc,mh", "--per-server", "--timing", "1000"}, quick[:6]...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"sched", "max-mean", "jain", "remap%:fail", "remap%:return", "remap%:reweight",
		"decisions/s", "ideal", "wlc", "mh", "mean load per server", "4 (cap 4)", "decisions/s measured on:"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestMainSVG(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "charts")
	code, _, errs := runMain(t, append([]string{"--svg", dir, "--scheds", "rr,wlc,mh", "--timing", "1000"}, quick[:6]...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, name := range SVGFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		count, texts := parseSVG(t, name, b)
		if count["svg"] != 1 || count["text"] < 5 || count["line"] < 3 {
			t.Errorf("%s: elements %v", name, count)
		}
		for _, want := range []string{"rr", "wlc", "mh"} {
			if !texts[want] {
				t.Errorf("%s: no label %q (labels %v)", name, want, texts)
			}
		}
		switch name {
		case "load.svg":
			if count["polyline"] != 3 {
				t.Errorf("%s: %d lines, want one per scheduler", name, count["polyline"])
			}
			if !texts["simulated time (s)"] || !texts["max load over servers (log scale)"] {
				t.Errorf("%s: axis labels missing: %v", name, texts)
			}
		case "server-load.svg":
			if count["rect"] < 1+3*8 {
				t.Errorf("%s: %d rects, want a bar per server and scheduler", name, count["rect"])
			}
			if !texts["srv 7 (cap 8)"] {
				t.Errorf("%s: legend lacks servers: %v", name, texts)
			}
		case "disruption.svg":
			if !texts["fail @10s"] || !texts["ideal (must move)"] {
				t.Errorf("%s: legend %v", name, texts)
			}
		case "fairness.svg":
			if !texts["Jain's index"] {
				t.Errorf("%s: axis label missing", name)
			}
		}
	}
}

// parseSVG checks that b is well-formed XML with an <svg> root in the SVG
// namespace and returns its element counts and text contents.
func parseSVG(t *testing.T, name string, b []byte) (map[string]int, map[string]bool) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	count := map[string]int{}
	texts := map[string]bool{}
	depth := 0
	inText := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not well-formed XML: %v", name, err)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			if depth == 0 && (x.Name.Local != "svg" || x.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("%s: root %v, want svg in the SVG namespace", name, x.Name)
			}
			depth++
			count[x.Name.Local]++
			inText = x.Name.Local == "text"
		case xml.EndElement:
			depth--
			inText = false
		case xml.CharData:
			if inText {
				texts[strings.TrimSpace(string(x))] = true
			}
		}
	}
	if depth != 0 {
		t.Fatalf("%s: unbalanced elements", name)
	}
	return count, texts
}

func TestMainHelp(t *testing.T) {
	code, out, _ := runMain(t, "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, f := range []string{"-scheds", "-capacities", "-weights", "-rate", "-mean-len", "-dist", "-shape", "-load",
		"-duration", "-seed", "-clients", "-dsts", "-fail", "-fail-mode", "-reweight", "-json", "-svg", "-timing", "example:"} {
		if !strings.Contains(out, f) {
			t.Errorf("--help lacks %s", f)
		}
	}
}

func TestMainBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--scheds", "wlc,foo"}, 2, `unknown scheduler "foo"`},
		{[]string{"--scheds", ","}, 2, "--scheds is empty"},
		{[]string{"--scheds", "wlc+sh-port"}, 2, `scheds: "wlc+sh-port"`},
		{[]string{"--scheds", "mh+mh-bogus"}, 2, `unknown scheduler flag: "mh-bogus"`},
		{[]string{"--capacities", "1,x"}, 2, `--capacities: item 2 "x" is not an integer`},
		{[]string{"--capacities", "1,0"}, 2, "server 1 has capacity 0"},
		{[]string{"--servers", "3", "--capacities", "1,2"}, 2, "--servers 3 but 2 capacities"},
		{[]string{"--servers", "0"}, 2, "--servers 0"},
		{[]string{"--weights", "1,2"}, 2, "2 weights for 8 servers"},
		{[]string{"--rate", "0"}, 2, "--rate must be > 0"},
		{[]string{"--duration", "-5s"}, 2, "--duration must be > 0"},
		{[]string{"--dist", "weibull"}, 2, `dist: "weibull"`},
		{[]string{"--shape", "0.5"}, 2, "Pareto alpha 0.5"},
		{[]string{"--load", "20"}, 2, "load: 20"},
		{[]string{"--fail", "9:1s:2s"}, 2, "fail: server 9"},
		{[]string{"--fail", "1:2s:1s"}, 2, "return time 1s not after failure time 2s"},
		{[]string{"--fail", "1"}, 2, "want SERVER:AT[:BACK]"},
		{[]string{"--fail", "1:soon"}, 2, "failure time"},
		{[]string{"--fail-mode", "explode"}, 2, `--fail-mode "explode"`},
		{[]string{"--reweight", "7:1s"}, 2, "want SERVER:AT:WEIGHT"},
		{[]string{"--reweight", "7:1s:-3"}, 2, "reweight: weight -3"},
		{[]string{"--timing", "-1"}, 2, "--timing must be >= 0"},
		{[]string{"--zipf", "0.5"}, 2, "zipf: 0.5"},
		{[]string{"--mh-table-index", "3"}, 2, "mh-table-index: 3"},
		{[]string{"--nosuchflag"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
	} {
		code, out, errs := runMain(t, append(append([]string{}, quick...), tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
		if out != "" {
			t.Errorf("%v: wrote to stdout: %q", tc.args, out)
		}
	}
}

func TestMainSVGDirError(t *testing.T) {
	// A regular file where the directory should be: the run succeeds, the
	// charts cannot be written, exit 1.
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runMain(t, append([]string{"--svg", f, "--scheds", "wlc"}, quick...)...)
	if code != 1 || !strings.Contains(errs, "--svg") {
		t.Errorf("exit %d, stderr %q; want 1 naming --svg", code, errs)
	}
}

func TestSlotWeights(t *testing.T) {
	code, out, errs := runMain(t, append([]string{"--json", "--weights", "slots", "--scheds", "ovf", "--reweight", "none"}, quick...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	// rate 300 * mean 1s / (0.8 * 30) = 12.5 slots per unit.
	want := []int32{13, 13, 25, 25, 50, 50, 100, 100}
	for i, w := range want {
		if r.Config.Weights[i] != w {
			t.Fatalf("weights %v, want %v", r.Config.Weights, want)
		}
	}
	// ovf schedules to a server while its active connections are at most
	// its weight, so no server ever holds more than weight+1: at most
	// 14/12.5 of its slots (the capacity-1 servers).
	if s := r.Scheds[0]; s.PeakLoad > 14/12.5+1e-9 {
		t.Errorf("ovf peak load %v with slot weights", s.PeakLoad)
	}
}
