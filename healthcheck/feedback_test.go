package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFeedbackWeight(t *testing.T) {
	for _, tc := range []struct {
		conf       int
		util       float64
		minW, maxW int
		want       int
	}{
		{10, 0, 1, 0, 10},
		{10, 0.25, 1, 0, 8}, // 7.5 rounds up
		{10, 0.5, 1, 0, 5},
		{10, 1, 1, 0, 1},   // fully loaded: the floor
		{10, 3, 1, 0, 1},   // overloaded
		{10, 0.9, 3, 0, 3}, // min_weight
		{10, 0, 1, 6, 6},   // max_weight below the configured weight
		{100, 0.33, 1, 0, 67},
	} {
		if got := FeedbackWeight(tc.conf, tc.util, tc.minW, tc.maxW); got != tc.want {
			t.Errorf("FeedbackWeight(%d, %g, %d, %d) = %d, want %d", tc.conf, tc.util, tc.minW, tc.maxW, got, tc.want)
		}
	}
}

// startAgent serves the agent on loopback with a fake /proc/loadavg.
func startAgent(t *testing.T, opts AgentOptions) (netip.AddrPort, string) {
	t.Helper()
	dir := t.TempDir()
	opts.LoadAvgPath = filepath.Join(dir, "loadavg")
	if opts.StateFile == "" {
		opts.StateFile = filepath.Join(dir, "state")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeAgentOn(ctx, ln, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeAgentOn: %v", err)
		}
	})
	return addrOf(ln.Addr()), dir
}

func setFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFeedbackCheckAgainstAgent(t *testing.T) {
	agent, dir := startAgent(t, AgentOptions{CPUs: 4})
	loadavg, state := filepath.Join(dir, "loadavg"), filepath.Join(dir, "state")
	server := netip.AddrPortFrom(agent.Addr(), 80)
	fb := Config{Type: TypeFeedback, ConnectPort: int(agent.Port())}

	// The report itself, as any HTTP client sees it.
	setFile(t, loadavg, "1.00 0.50 0.25 2/345 6789\n")
	resp, err := http.Get("http://" + agent.String() + "/load")
	if err != nil {
		t.Fatal(err)
	}
	var rep AgentReport
	err = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if err != nil || rep != (AgentReport{Load1: 1, Load5: 0.5, Load15: 0.25, CPUs: 4, State: "up"}) {
		t.Fatalf("report %+v, %v", rep, err)
	}

	cases := []probeCase{{"load 1 on 4 CPUs", server, fb, true, `load 1\.00 on 4 CPUs`, 8}}
	runProbes(t, cases)
	setFile(t, loadavg, "6.00 0.50 0.25 2/345 6789\n")
	runProbes(t, []probeCase{{"overloaded", server, fb, true, `load 6\.00 on 4 CPUs`, 1}})
	setFile(t, state, "drain\n")
	runProbes(t, []probeCase{{"drain", server, fb, true, "agent reports drain", 0}})
	setFile(t, state, "down")
	runProbes(t, []probeCase{{"down", server, fb, false, "agent reports down", -1}})
	setFile(t, state, "up")
	setFile(t, loadavg, "garbage")
	runProbes(t, []probeCase{
		{"bad loadavg", server, fb, false, "agent: status 500", -1},
		{"wrong path", server, func() Config { c := fb; c.AgentPath = "/nope"; return c }(), false, "agent: status 404", -1},
		{"agent refused", netip.AddrPortFrom(agent.Addr(), 80), Config{Type: TypeFeedback, ConnectPort: int(closedPort(t, "tcp").Port())}, false, "agent: connection refused", -1},
		{"agent silent", server, Config{Type: TypeFeedback, ConnectAddress: tcpSilent(t).String()}, false, "agent: timeout after 300ms", -1},
	})
}

func TestServeAgentListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = ServeAgent(context.Background(), ln.Addr().String(), AgentOptions{})
	if err == nil {
		t.Fatal("ServeAgent on a port in use returned nil")
	}
}

func TestServeAgentStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	port := closedPort(t, "tcp")
	go func() { done <- ServeAgent(ctx, port.String(), AgentOptions{}) }()
	waitTCP(t, port.String())
	// Real /proc/loadavg.
	r := Probe(context.Background(), Spec{ID: TargetID{"s", netip.AddrPortFrom(port.Addr(), 1)}, Weight: 50,
		Config: Config{Type: TypeFeedback, ConnectPort: int(port.Port()), Timeout: 5 * time.Second}})
	if !r.OK || r.Weight < 1 || r.Weight > 50 {
		t.Fatalf("real agent: %+v", r)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeAgent did not stop")
	}
	if _, err := ReadAgentReport(AgentOptions{LoadAvgPath: "/nonexistent"}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing loadavg: %v", err)
	}
}
