package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/healthcheck"
)

// syncBuf is a bytes.Buffer safe for the agent's logger and the test.
type syncBuf struct {
	ch chan []byte
}

func (s *syncBuf) Write(p []byte) (int, error) {
	select {
	case s.ch <- append([]byte(nil), p...):
	default:
	}
	return len(p), nil
}

func TestAgentSubcommand(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuf{ch: make(chan []byte, 16)}
	done := make(chan int, 1)
	go func() {
		done <- runAgent(ctx, []string{"--listen", "127.0.0.1:0", "--state-file", state}, logs)
	}()
	// The first log line names the address it listens on.
	var addr string
	select {
	case line := <-logs.ch:
		for _, f := range strings.Fields(string(line)) {
			if v, ok := strings.CutPrefix(f, "listen="); ok {
				addr = v
			}
		}
	case code := <-done:
		t.Fatalf("agent exited %d", code)
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not start")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("no listen address in the log: %q", addr)
	}
	get := func() healthcheck.AgentReport {
		t.Helper()
		resp, err := http.Get("http://" + addr + healthcheck.DefaultAgentPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r healthcheck.AgentReport
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := get(); r.State != "up" || r.CPUs < 1 {
		t.Fatalf("report %+v, want state up and cpus >= 1", r)
	}
	if err := os.WriteFile(state, []byte("drain\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := get(); r.State != "drain" {
		t.Fatalf("report %+v, want state drain", r)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("agent exited %d after cancel", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop")
	}
}

func TestAgentUsage(t *testing.T) {
	var errb bytes.Buffer
	if code := runAgent(context.Background(), []string{"extra"}, &errb); code != 2 || !strings.Contains(errb.String(), "unexpected arguments") {
		t.Fatalf("exit %d %q", code, errb.String())
	}
	errb.Reset()
	if code := runAgent(context.Background(), []string{"--listen", "256.0.0.1:1"}, &errb); code != 1 {
		t.Fatalf("bad listen: exit %d %q", code, errb.String())
	}
}
