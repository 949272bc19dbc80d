package healthcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// AgentReport is what the load-feedback agent answers to GET /load, as JSON.
// The protocol is one HTTP/1.1 GET per probe; any client (curl) can read it.
//
//	{"load1":0.52,"load5":0.40,"load15":0.31,"cpus":2,"state":"up"}
type AgentReport struct {
	Load1  float64 `json:"load1"`  // 1-minute load average (/proc/loadavg)
	Load5  float64 `json:"load5"`  // 5-minute load average
	Load15 float64 `json:"load15"` // 15-minute load average
	CPUs   int     `json:"cpus"`   // CPUs the agent may run on
	// State is "up", "drain" (healthy, weight 0: no new connections) or
	// "down" (the check fails), set by the admin in the agent's state file.
	State string `json:"state"`
}

// Utilization is load1 per CPU, the figure the director scales by.
func (r *AgentReport) Utilization() float64 {
	cpus := max(r.CPUs, 1)
	return max(r.Load1, 0) / float64(cpus)
}

// FeedbackWeight is the weight a feedback check asks for: the configured
// weight scaled by the idle share (1 - utilization), rounded, and bounded by
// [minW, maxW]. maxW 0 means the configured weight.
func FeedbackWeight(configured int, util float64, minW, maxW int) int {
	if maxW == 0 {
		maxW = configured
	}
	w := int(math.Round(float64(configured) * (1 - min(util, 1))))
	return min(max(w, minW), maxW)
}

// feedbackChecker polls the agent on the real server and turns its load into
// a weight.
type feedbackChecker struct {
	client     *http.Client
	transport  *http.Transport
	url        string
	configured int
	minW, maxW int
	deadband   int
	timeout    time.Duration
}

func newFeedbackChecker(s *Spec) *feedbackChecker {
	c := &s.Config
	addr := s.ID.Server.Addr()
	port := uint16(DefaultAgentPort)
	if c.ConnectAddress != "" {
		a, p, _ := parseConnectAddress(c.ConnectAddress)
		addr = a
		if p != 0 {
			port = p
		}
	}
	if c.ConnectPort != 0 {
		port = uint16(c.ConnectPort)
	}
	target := netip.AddrPortFrom(addr, port).String()
	var d net.Dialer
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", target)
		},
	}
	db := int(math.Round(c.Hysteresis * float64(s.Weight)))
	return &feedbackChecker{
		client:    &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		transport: tr, url: "http://" + target + c.AgentPath,
		configured: s.Weight, minW: c.MinWeight, maxW: c.MaxWeight, deadband: max(db, 1), timeout: c.Timeout,
	}
}

func (f *feedbackChecker) close() { f.transport.CloseIdleConnections() }

func (f *feedbackChecker) check(ctx context.Context) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return failResult(err.Error())
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return failResult("agent: " + Describe(err, f.timeout, false))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return failResult(fmt.Sprintf("agent: status %d", resp.StatusCode))
	}
	var rep AgentReport
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&rep); err != nil {
		return failResult("agent: bad report: " + Describe(ctxErr(ctx, err), f.timeout, false))
	}
	switch rep.State {
	case "", "up":
	case "drain":
		r := okResult("agent reports drain")
		r.Weight, r.deadband = 0, 0
		return r
	case "down":
		return failResult("agent reports down")
	default:
		return failResult(fmt.Sprintf("agent: unknown state %q", rep.State))
	}
	u := rep.Utilization()
	r := okResult(fmt.Sprintf("load %.2f on %d CPUs", rep.Load1, rep.CPUs))
	r.Weight = FeedbackWeight(f.configured, u, f.minW, f.maxW)
	r.deadband = f.deadband
	return r
}

// AgentOptions tunes ServeAgent. The zero value serves /load from
// /proc/loadavg with no state file.
type AgentOptions struct {
	// Path is the HTTP path of the report; default "/load".
	Path string
	// StateFile, when set, is read on every request; its first word
	// ("up", "drain" or "down") becomes the reported state. A missing file
	// means "up".
	StateFile string
	// LoadAvgPath replaces /proc/loadavg (tests).
	LoadAvgPath string
	// CPUs replaces the CPU count (default runtime.NumCPU, which follows
	// the agent's CPU affinity).
	CPUs int
}

// ErrBadLoadAvg is returned (wrapped) when /proc/loadavg cannot be parsed.
var ErrBadLoadAvg = errors.New("bad loadavg")

// ReadAgentReport builds the report the agent serves.
func ReadAgentReport(opts AgentOptions) (AgentReport, error) {
	path := opts.LoadAvgPath
	if path == "" {
		path = "/proc/loadavg"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return AgentReport{}, err
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return AgentReport{}, fmt.Errorf("%w: %s: %q", ErrBadLoadAvg, path, b)
	}
	var l [3]float64
	for i := range l {
		if l[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return AgentReport{}, fmt.Errorf("%w: %s: %v", ErrBadLoadAvg, path, err)
		}
	}
	rep := AgentReport{Load1: l[0], Load5: l[1], Load15: l[2], CPUs: opts.CPUs, State: "up"}
	if rep.CPUs <= 0 {
		rep.CPUs = runtime.NumCPU()
	}
	if opts.StateFile != "" {
		sb, err := os.ReadFile(opts.StateFile)
		switch {
		case err == nil:
			if w := strings.Fields(string(sb)); len(w) > 0 {
				rep.State = strings.ToLower(w[0])
			}
		case !errors.Is(err, os.ErrNotExist):
			return AgentReport{}, err
		}
	}
	return rep, nil
}

// AgentHandler serves the agent's report on opts.Path.
func AgentHandler(opts AgentOptions) http.Handler {
	path := opts.Path
	if path == "" {
		path = DefaultAgentPath
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rep, err := ReadAgentReport(opts)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var buf bytes.Buffer
		json.NewEncoder(&buf).Encode(rep)
		w.Header().Set("Content-Type", "application/json")
		w.Write(buf.Bytes())
	})
}

// ServeAgent runs the load-feedback agent (`ulvs-realserver agent`) on
// listen (e.g. ":7777") until ctx is done. It returns nil after a clean
// shutdown, or the listen error.
func ServeAgent(ctx context.Context, listen string, opts AgentOptions) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	return ServeAgentOn(ctx, ln, opts)
}

// ServeAgentOn is ServeAgent on a listener the caller opened; it closes ln.
func ServeAgentOn(ctx context.Context, ln net.Listener, opts AgentOptions) error {
	srv := &http.Server{Handler: AgentHandler(opts), ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	err := srv.Serve(ln)
	cancel()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
