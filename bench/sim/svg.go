package sim

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// Hand-written SVG charts: a line chart (a value over time, one line per
// scheduler) and a grouped bar chart (one group per category, one bar per
// series). Each has a title, labelled axes with ticks, and a legend.

// palette has 14+ colours that stay distinct side by side.
var palette = []string{
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
	"#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#ce6dbd",
	"#843c39", "#3182bd",
}

func color(i int) string { return palette[i%len(palette)] }

// series is one named line or one bar of each group.
type series struct {
	Name   string
	Values []float64
}

const (
	chartW, chartH = 960, 480
	padL, padR     = 70, 180 // the legend sits at the right
	padT, padB     = 40, 70
)

func esc(s string) string { return html.EscapeString(s) }

func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// niceTicks returns about n round tick values covering [0, hi].
func niceTicks(hi float64, n int) []float64 {
	if !(hi > 0) || math.IsInf(hi, 0) {
		hi = 1
	}
	raw := hi / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := 0.0; v <= hi+step*1e-9; v += step {
		out = append(out, v)
	}
	if out[len(out)-1] < hi {
		out = append(out, out[len(out)-1]+step)
	}
	return out
}

func tickLabel(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 4, 64) + "M"
	case math.Abs(v) >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 4, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

type frame struct {
	w      *bufio.Writer
	yTicks []float64
	yMax   float64
	// log: the y axis is log10 from 10^lo to 10^hi; values at or below
	// 10^lo (zero included) sit on the x axis.
	log    bool
	lo, hi float64
}

func (f *frame) x0() float64 { return padL }
func (f *frame) x1() float64 { return chartW - padR }
func (f *frame) y(v float64) float64 {
	frac := v / f.yMax
	if f.log {
		frac = 0
		if v > 0 {
			frac = math.Max(0, (math.Log10(v)-f.lo)/(f.hi-f.lo))
		}
	}
	return padT + (chartH-padT-padB)*(1-frac)
}

// logRange returns the decades covering the positive values of ss (and
// ref), at most 6 below the top.
func logRange(ss []series, ref float64) (lo, hi float64) {
	mn, mx := math.Inf(1), 0.0
	consider := func(v float64) {
		if v > 0 && !math.IsInf(v, 0) {
			mn, mx = math.Min(mn, v), math.Max(mx, v)
		}
	}
	consider(ref)
	for _, s := range ss {
		for _, v := range s.Values {
			consider(v)
		}
	}
	if mx == 0 {
		return 0, 1
	}
	hi = math.Ceil(math.Log10(mx))
	lo = math.Max(math.Floor(math.Log10(mn)), hi-6)
	if lo >= hi {
		lo = hi - 1
	}
	return lo, hi
}

// open writes the header, title, y axis with grid lines and labels.
func openFrame(w io.Writer, title, xLabel, yLabel string, yHi float64, logY bool, ss []series, ref float64) *frame {
	f := &frame{w: bufio.NewWriter(w), log: logY}
	if logY {
		f.lo, f.hi = logRange(ss, ref)
		for e := f.lo; e <= f.hi; e++ {
			f.yTicks = append(f.yTicks, math.Pow(10, e))
		}
		yLabel += " (log scale)"
	} else {
		f.yTicks = niceTicks(yHi, 6)
		f.yMax = f.yTicks[len(f.yTicks)-1]
	}
	b := f.w
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	fmt.Fprintf(b, `<text x="%d" y="22" font-size="16" text-anchor="middle">%s</text>`+"\n", (padL+chartW-padR)/2, esc(title))
	for _, t := range f.yTicks {
		y := num(f.y(t))
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#ddd"/>`+"\n", num(f.x0()), y, num(f.x1()), y)
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", num(f.x0()-6), y, tickLabel(t))
	}
	fmt.Fprintf(b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="black"/>`+"\n", num(f.x0()), padT, num(f.x0()), chartH-padB)
	fmt.Fprintf(b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="black"/>`+"\n", num(f.x0()), chartH-padB, num(f.x1()), chartH-padB)
	fmt.Fprintf(b, `<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", num((f.x0()+f.x1())/2), chartH-18, esc(xLabel))
	fmt.Fprintf(b, `<text x="18" y="%d" text-anchor="middle" transform="rotate(-90 18 %d)">%s</text>`+"\n", (padT+chartH-padB)/2, (padT+chartH-padB)/2, esc(yLabel))
	return f
}

func (f *frame) legend(names []string) {
	b := f.w
	for i, n := range names {
		y := padT + 8 + 18*i
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", chartW-padR+16, y-6, color(i))
		fmt.Fprintf(b, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", chartW-padR+34, y, esc(n))
	}
}

// hline draws a dashed reference line at v with a label.
func (f *frame) hline(v float64, label string) {
	if (!f.log && v > f.yMax) || (f.log && (v <= 0 || math.Log10(v) > f.hi)) {
		return
	}
	y := num(f.y(v))
	fmt.Fprintf(f.w, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="black" stroke-dasharray="6 4"/>`+"\n", num(f.x0()), y, num(f.x1()), y)
	fmt.Fprintf(f.w, `<text x="%s" y="%s" text-anchor="end" font-size="11">%s</text>`+"\n", num(f.x1()-4), num(f.y(v)-4), esc(label))
}

func (f *frame) close() error {
	fmt.Fprint(f.w, "</svg>\n")
	return f.w.Flush()
}

func maxOf(ss []series, floor float64) float64 {
	m := floor
	for _, s := range ss {
		for _, v := range s.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				m = math.Max(m, v)
			}
		}
	}
	return m
}

// lineChart draws one polyline per series over the shared x values.
func lineChart(w io.Writer, title, xLabel, yLabel string, x []float64, ss []series, ref float64, refLabel string, logY bool) error {
	f := openFrame(w, title, xLabel, yLabel, maxOf(ss, ref), logY, ss, ref)
	xMax := 1.0
	if len(x) > 0 {
		xMax = x[len(x)-1]
	}
	xt := niceTicks(xMax, 8)
	xMax = xt[len(xt)-1]
	px := func(v float64) float64 { return f.x0() + (f.x1()-f.x0())*v/xMax }
	for _, t := range xt {
		fmt.Fprintf(f.w, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="black"/>`+"\n", num(px(t)), chartH-padB, num(px(t)), chartH-padB+5)
		fmt.Fprintf(f.w, `<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", num(px(t)), chartH-padB+18, tickLabel(t))
	}
	if refLabel != "" {
		f.hline(ref, refLabel)
	}
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.Name
		fmt.Fprintf(f.w, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, color(i))
		for j, v := range s.Values {
			if j >= len(x) {
				break
			}
			fmt.Fprintf(f.w, "%s,%s ", num(px(x[j])), num(f.y(v)))
		}
		fmt.Fprintf(f.w, `"><title>%s</title></polyline>`+"\n", esc(s.Name))
	}
	f.legend(names)
	return f.close()
}

// barChart draws, for each category, one bar per series side by side.
func barChart(w io.Writer, title, yLabel string, cats []string, ss []series, ref float64, refLabel string, logY bool) error {
	return barChartMarks(w, title, yLabel, cats, ss, nil, "", ref, refLabel, logY)
}

// barChartMarks is barChart with, for each bar, a black mark across it at
// marks[series].Values[category] (named markName in the legend).
func barChartMarks(w io.Writer, title, yLabel string, cats []string, ss, marks []series, markName string, ref float64, refLabel string, logY bool) error {
	f := openFrame(w, title, "", yLabel, maxOf(ss, ref), logY, ss, ref)
	gw := (f.x1() - f.x0()) / float64(max(len(cats), 1))
	bw := gw * 0.8 / float64(max(len(ss), 1))
	for c, name := range cats {
		gx := f.x0() + gw*float64(c) + gw*0.1
		fmt.Fprintf(f.w, `<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", num(gx+gw*0.4), chartH-padB+18, esc(name))
		for i, s := range ss {
			if c >= len(s.Values) {
				continue
			}
			v := s.Values[c]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				v = 0
			}
			y := f.y(v)
			fmt.Fprintf(f.w, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				num(gx+bw*float64(i)), num(y), num(math.Max(bw-1, 1)), num(float64(chartH-padB)-y), color(i),
				esc(name), esc(s.Name), strconv.FormatFloat(s.Values[c], 'g', 4, 64))
			if i < len(marks) && c < len(marks[i].Values) {
				my := num(f.y(marks[i].Values[c]))
				fmt.Fprintf(f.w, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="black" stroke-width="2"/>`+"\n",
					num(gx+bw*float64(i)-1), my, num(gx+bw*float64(i+1)), my)
			}
		}
	}
	if refLabel != "" {
		f.hline(ref, refLabel)
	}
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.Name
	}
	if len(ss) > 1 {
		f.legend(names)
	}
	if markName != "" {
		y := padT + 8 + 18*len(names)
		fmt.Fprintf(f.w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black" stroke-width="2"/>`+"\n", chartW-padR+16, y, chartW-padR+28, y)
		fmt.Fprintf(f.w, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", chartW-padR+34, y, esc(markName))
	}
	return f.close()
}

// SVGFiles are the charts WriteSVG writes, in order.
var SVGFiles = []string{"load.svg", "server-load.svg", "fairness.svg", "disruption.svg", "decisions.svg"}

// WriteSVG writes the charts of r into dir (created if missing):
//
//	load.svg         the most loaded server's load L(t) over time, one line per scheduler
//	server-load.svg  each server's mean load, per scheduler
//	fairness.svg     Jain's index (mean over samples), per scheduler
//	disruption.svg   Remap of each pool change, per scheduler, and its ideal
//	decisions.svg    decisions per second, per scheduler (only with timing)
func WriteSVG(dir string, r *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, draw func(io.Writer) error) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := draw(f); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		return f.Close()
	}
	var names []string
	for _, s := range r.Scheds {
		names = append(names, s.Sched)
	}
	one := func(v func(*SchedResult) float64, name string) []series {
		s := series{Name: name}
		for i := range r.Scheds {
			s.Values = append(s.Values, v(&r.Scheds[i]))
		}
		return []series{s}
	}
	var t []float64
	var lines []series
	for _, s := range r.Scheds {
		if len(s.T) > len(t) {
			t = s.T
		}
		lines = append(lines, series{Name: s.Sched, Values: s.MaxLoadT})
	}
	err := write("load.svg", func(w io.Writer) error {
		return lineChart(w, "Most loaded server over time (connections / slots)", "simulated time (s)",
			"max load over servers", t, lines, 1, "capacity (load 1)", true)
	})
	if err != nil {
		return err
	}
	var perServer []series
	if len(r.Scheds) > 0 {
		for i, sv := range r.Scheds[0].Servers {
			s := series{Name: fmt.Sprintf("srv %d (cap %d)", i, sv.Capacity)}
			for _, sr := range r.Scheds {
				s.Values = append(s.Values, sr.Servers[i].MeanLoad)
			}
			perServer = append(perServer, s)
		}
	}
	err = write("server-load.svg", func(w io.Writer) error {
		return barChart(w, "Mean load of each server (connections / slots)", "mean load", names, perServer,
			r.Config.Load, fmt.Sprintf("offered load %g", r.Config.Load), true)
	})
	if err != nil {
		return err
	}
	err = write("fairness.svg", func(w io.Writer) error {
		return barChart(w, "Jain's fairness index of capacity-normalised load (mean over samples)", "Jain's index",
			names, one(func(s *SchedResult) float64 { return s.Jain }, "jain"), 1, "1 = proportional to capacity", false)
	})
	if err != nil {
		return err
	}
	var dis, marks []series
	if len(r.Scheds) > 0 {
		for c, ch := range r.Scheds[0].Changes {
			s := series{Name: fmt.Sprintf("%s @%gs", ch.Event, ch.At)}
			for _, sr := range r.Scheds {
				s.Values = append(s.Values, sr.Changes[c].Remap)
			}
			dis = append(dis, s)
		}
		// The ideal is the same for every scheduler: a mark on each bar.
		for _, ch := range r.Scheds[0].Changes {
			s := series{Name: "ideal " + ch.Event}
			for range r.Scheds {
				s.Values = append(s.Values, ch.Ideal)
			}
			marks = append(marks, s)
		}
	}
	err = write("disruption.svg", func(w io.Writer) error {
		return barChartMarks(w, "Disruption: share of probe flow keys that change server", "share of keys remapped",
			names, dis, marks, "ideal (must move)", 0, "", false)
	})
	if err != nil {
		return err
	}
	return write("decisions.svg", func(w io.Writer) error {
		title := "Decisions per second (Schedule + Bind + Unbind, one goroutine)"
		if r.Machine != nil {
			title += " on " + r.Machine.CPU
		}
		return barChart(w, title, "decisions / s", names, one(func(s *SchedResult) float64 { return s.DecisionsPerSec }, "decisions/s"), 0, "", false)
	})
}
