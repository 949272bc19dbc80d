package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/lab"
)

// runDemo builds a lab per forwarding method, starts ulvsd in it, sends
// real HTTP requests through the VIP, prints where they went and the
// director's counters, and tears everything down.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ulvslab demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	requests := fs.Int("requests", 30, "HTTP requests per mode")
	modes := fs.String("modes", "nat,dr,tun", "forwarding methods to show, in order")
	ulvsd := fs.String("ulvsd", "", "path of the ulvsd binary (default: next to ulvslab, then $PATH)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	bin, err := findULVSD(*ulvsd)
	if err != nil {
		fmt.Fprintf(stderr, "ulvslab demo: %v\n", err)
		return 1
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "ulvslab demo: needs root (it builds network namespaces); run: sudo make demo")
		return 1
	}
	start := time.Now()
	for _, m := range strings.Split(*modes, ",") {
		if err := demoMode(lab.Mode(strings.TrimSpace(m)), bin, *requests, stdout); err != nil {
			fmt.Fprintf(stderr, "ulvslab demo: %s: %v\n", m, err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "demo finished in %.1f s; every lab was torn down\n", time.Since(start).Seconds())
	return 0
}

func findULVSD(flagPath string) (string, error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", fmt.Errorf("--ulvsd: %w", err)
		}
		return flagPath, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "ulvsd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("ulvsd")
	if err != nil {
		return "", errors.New("cannot find the ulvsd binary next to ulvslab or in $PATH (make build puts both in ./bin)")
	}
	return p, nil
}

func demoMode(mode lab.Mode, bin string, requests int, w io.Writer) (err error) {
	name := fmt.Sprintf("demo%d", os.Getpid()%100000)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := lab.Up(ctx, lab.Spec{Name: name, Mode: mode, Servers: 3})
	if err != nil {
		return err
	}
	defer func() {
		if derr := l.Down(); derr != nil && err == nil {
			err = derr
		}
	}()
	dir, err := os.MkdirTemp("", "ulvs-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "ulvsd.sock")
	cfgPath := filepath.Join(dir, "ulvsd.toml")
	if err := os.WriteFile(cfgPath, []byte(l.DirectorConfig(lab.DirectorOptions{ControlSocket: sock})), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n=== %s: client1 -> VIP %s:%d -> %d real servers (scheduler rr) ===\n",
		strings.ToUpper(string(mode)), l.Plan.VIP4, l.Plan.HTTPPort, len(l.Plan.RealServers()))
	proc, err := l.Start("dir1", bin, "-config", cfgPath)
	if err != nil {
		return fmt.Errorf("starting ulvsd: %w", err)
	}
	client := control.NewClient(sock)
	if err := waitReady(client, proc); err != nil {
		return err
	}
	hc := l.HTTPClient("client1", 3*time.Second)
	url := fmt.Sprintf("http://%s:%d/", l.Plan.VIP4, l.Plan.HTTPPort)
	got := map[string]int{}
	failed := 0
	for i := 0; i < requests; i++ {
		body, err := get(hc, url)
		if err != nil {
			failed++
			continue
		}
		got[strings.TrimSpace(body)]++
	}
	names := make([]string, 0, len(got))
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "%d requests:", requests)
	for _, n := range names {
		fmt.Fprintf(w, " %s=%d", n, got[n])
	}
	fmt.Fprintf(w, " failed=%d\n\n", failed)
	snap, err := client.Snapshot(false)
	if err != nil {
		return err
	}
	p := &ipvsadm.Printer{}
	fmt.Fprintln(w, "$ ulvsadm -L -n --stats")
	if err := p.List(w, snap, ipvsadm.FmtNumeric|ipvsadm.FmtStats); err != nil {
		return err
	}
	if err := proc.Stop(5 * time.Second); err != nil {
		return fmt.Errorf("stopping ulvsd: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d requests failed", failed, requests)
	}
	return nil
}

// waitReady waits until ulvsd answers on its control socket.
func waitReady(c *control.Client, proc *lab.Process) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-proc.Done():
			return fmt.Errorf("ulvsd exited at start: %v", proc.Wait())
		default:
		}
		if _, err := c.Snapshot(false); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("ulvsd did not open its control socket within 10 s")
}

func get(hc *http.Client, url string) (string, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return string(b), nil
}
