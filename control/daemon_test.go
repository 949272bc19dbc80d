package control

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ulvs/ulvs/config/ipvsadm"
)

// fakeDaemons records starts and stops like ulvsd's sync daemons.
type fakeDaemons struct {
	mu  sync.Mutex
	run map[string]ipvsadm.Daemon
}

func (f *fakeDaemons) StartDaemon(d ipvsadm.Daemon) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.run[d.State]; ok {
		return fmt.Errorf("%s sync daemon already running", d.State)
	}
	f.run[d.State] = d
	return nil
}

func (f *fakeDaemons) StopDaemon(state string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.run[state]; !ok {
		return errors.New("no " + state + " sync daemon is running")
	}
	delete(f.run, state)
	return nil
}

func (f *fakeDaemons) Daemons() []ipvsadm.DaemonState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ipvsadm.DaemonState
	for _, s := range []string{"master", "backup"} {
		if d, ok := f.run[s]; ok {
			out = append(out, ipvsadm.DaemonState{State: s, McastInterface: d.McastInterface, SyncID: d.SyncID})
		}
	}
	return out
}

func TestDaemonEndpoints(t *testing.T) {
	c, _, _ := newControl(t, base)
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	fd := &fakeDaemons{run: map[string]ipvsadm.Daemon{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, WithDaemons(c.Handler(nil), fd)) }()
	t.Cleanup(func() { cancel(); <-done })

	cl := NewClient(sock)
	if ds, err := cl.Daemons(); err != nil || len(ds) != 0 {
		t.Fatalf("no daemon: %v %v", ds, err)
	}
	cmd, err := ipvsadm.Parse([]string{"ipvsadm", "--start-daemon", "master", "--mcast-interface", "eth1", "--syncid", "7"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.StartDaemon(cmd.Daemon); err != nil {
		t.Fatal(err)
	}
	var re *RemoteError
	if err := cl.StartDaemon(cmd.Daemon); !errors.As(err, &re) || !strings.Contains(re.Msg, "already running") {
		t.Fatalf("second start: %v", err)
	}
	ds, err := cl.Daemons()
	if err != nil || len(ds) != 1 || ds[0].State != "master" || ds[0].McastInterface != "eth1" || ds[0].SyncID != 7 {
		t.Fatalf("daemons %+v %v", ds, err)
	}
	if err := cl.StartDaemon(ipvsadm.Daemon{State: "both"}); !errors.As(err, &re) || !strings.Contains(re.Msg, "master or backup") {
		t.Fatalf("bad state: %v", err)
	}
	if err := cl.StopDaemon("backup"); err == nil {
		t.Fatal("stopping a backup that does not run succeeded")
	}
	if err := cl.StopDaemon("master"); err != nil {
		t.Fatal(err)
	}
	if ds, _ := cl.Daemons(); len(ds) != 0 {
		t.Fatalf("after stop: %+v", ds)
	}
	// The rest of the API still answers through the wrapper.
	if s, err := cl.Snapshot(false); err != nil || len(s.Services) != 1 {
		t.Fatalf("snapshot through WithDaemons: %v", err)
	}
}
