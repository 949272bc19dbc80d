//go:build linux

package connsync

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ulvs/ulvs/lab"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (network namespaces) and CI=true")
		}
		t.Skip("needs root: network namespaces")
	}
}

func ipcmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
}

// inNS runs fn with the calling goroutine's thread in network namespace
// name; sockets fn opens stay in that namespace.
func inNS(t *testing.T, name string, fn func()) {
	t.Helper()
	if err := lab.RunInNetns(lab.NetnsPath(name), func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

type atomicSink struct {
	n     atomic.Int64
	mu    sync.Mutex
	ports map[uint16]bool
}

func (s *atomicSink) SyncConn(c *Conn) {
	s.n.Add(1)
	s.mu.Lock()
	s.ports[c.CPort] = true
	s.mu.Unlock()
}

func TestNetnsMulticastAndUnicast(t *testing.T) {
	needRoot(t)
	b := make([]byte, 3)
	crand.Read(b)
	sfx := hex.EncodeToString(b)
	nsA, nsB := "ulvscsA"+sfx, "ulvscsB"+sfx
	for _, ns := range []string{nsA, nsB} {
		ipcmd(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	ifA, ifB := "sa"+sfx, "sb"+sfx
	ipcmd(t, "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	ipcmd(t, "-n", nsA, "addr", "add", "10.0.1.1/24", "dev", ifA)
	ipcmd(t, "-n", nsB, "addr", "add", "10.0.1.2/24", "dev", ifB)
	ipcmd(t, "-n", nsA, "link", "set", ifA, "up")
	ipcmd(t, "-n", nsB, "link", "set", ifB, "up")
	// Packets sent before the veth pair has carrier are dropped.
	for _, x := range [][2]string{{nsA, ifA}, {nsB, ifB}} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			out, _ := exec.Command("ip", "-n", x[0], "-o", "link", "show", x[1]).Output()
			if strings.Contains(string(out), "state UP") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never came up: %s", x[1], out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	for _, mode := range []string{"multicast", "unicast"} {
		t.Run(mode, func(t *testing.T) {
			var (
				w      *UDPWriter
				rB, rA *Receiver
				err    error
			)
			port := 18848
			if mode == "unicast" {
				port++
			}
			inNS(t, nsB, func() {
				cfg := TransportConfig{Interface: ifB, Port: port}
				if mode == "unicast" {
					cfg.Peer = netip.MustParseAddr("10.0.1.1")
				}
				rB, err = ListenReceiver(cfg)
			})
			if err != nil {
				t.Fatal(err)
			}
			inNS(t, nsA, func() {
				cfg := TransportConfig{Interface: ifA, Port: port}
				if mode == "unicast" {
					cfg.Peer = netip.MustParseAddr("10.0.1.2")
				}
				if w, err = DialSender(cfg); err != nil {
					return
				}
				// A receiver beside the sender: with loopback off it must
				// not see the master's own multicast.
				rA, err = ListenReceiver(TransportConfig{Interface: ifA, Port: port})
			})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sinkB := &atomicSink{ports: map[uint16]bool{}}
			sinkA := &atomicSink{ports: map[uint16]bool{}}
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); rB.Run(ctx, &Decoder{SyncID: 7}, sinkB, nil) }()
			go func() { defer wg.Done(); rA.Run(ctx, &Decoder{}, sinkA, nil) }()
			defer wg.Wait()
			defer cancel()

			s := NewSender(w, 7, 0, nil)
			c := v4conn
			for i := 0; i < 1000; i++ {
				c.CPort = uint16(i)
				s.Enqueue(&c)
			}
			s.Flush()
			deadline := time.Now().Add(3 * time.Second)
			for sinkB.n.Load() < 1000 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			sinkB.mu.Lock()
			distinct := len(sinkB.ports)
			sinkB.mu.Unlock()
			if n := sinkB.n.Load(); n != 1000 || distinct != 1000 {
				t.Fatalf("backup received %d entries (%d distinct)", n, distinct)
			}
			if st := s.Stats(); st.Entries != 1000 || st.Messages != 25 {
				t.Fatalf("sender stats %+v (40 entries per 1472-byte message)", st)
			}
			if mode == "multicast" {
				if n := sinkA.n.Load(); n != 0 {
					t.Fatalf("the master's own multicast looped back (%d entries)", n)
				}
			}
		})
	}
}

func TestNetnsDaemons(t *testing.T) {
	needRoot(t)
	b := make([]byte, 3)
	crand.Read(b)
	sfx := hex.EncodeToString(b)
	nsA, nsB := "ulvsdmA"+sfx, "ulvsdmB"+sfx
	for _, ns := range []string{nsA, nsB} {
		ipcmd(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	ifA, ifB := "da"+sfx, "db"+sfx
	ipcmd(t, "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	ipcmd(t, "-n", nsA, "addr", "add", "10.0.1.1/24", "dev", ifA)
	ipcmd(t, "-n", nsB, "addr", "add", "10.0.1.2/24", "dev", ifB)
	ipcmd(t, "-n", nsA, "link", "set", ifA, "up")
	ipcmd(t, "-n", nsB, "link", "set", ifB, "up")
	for _, x := range [][2]string{{nsA, ifA}, {nsB, ifB}} {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			out, _ := exec.Command("ip", "-n", x[0], "-o", "link", "show", x[1]).Output()
			if strings.Contains(string(out), "state UP") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no carrier")
			}
		}
	}
	var m, bk, other *Daemon
	var err error
	sink := &atomicSink{ports: map[uint16]bool{}}
	inNS(t, nsB, func() {
		bk, err = StartBackup(DaemonConfig{Transport: TransportConfig{Interface: ifB}, SyncID: 4}, sink)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Stop()
	inNS(t, nsA, func() {
		if m, err = StartMaster(DaemonConfig{Transport: TransportConfig{Interface: ifA}, SyncID: 4}); err != nil {
			return
		}
		other, err = StartMaster(DaemonConfig{Transport: TransportConfig{Interface: ifA}, SyncID: 5})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Status(), "master sync daemon (mcast="+ifA+", syncid=4, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"; got != want {
		t.Fatalf("status %q\nwant   %q", got, want)
	}
	if got := bk.Status(); got != "backup sync daemon (mcast="+ifB+", syncid=4, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" {
		t.Fatalf("status %q", got)
	}
	c := v4conn
	for i := 0; i < 10; i++ {
		c.CPort = uint16(i)
		m.Sender().Enqueue(&c)
		other.Sender().Enqueue(&c) // sync ID 5: the backup ignores it
	}
	other.Stop()
	m.Stop() // flushes
	deadline := time.Now().Add(3 * time.Second)
	for (sink.n.Load() < 10 || bk.Stats().Drops[MsgSyncID] < 1) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := bk.Stats()
	if sink.n.Load() != 10 || st.Conns != 10 || st.Messages != 2 || st.Drops[MsgSyncID] != 1 {
		t.Fatalf("backup got %d conns, stats %+v", sink.n.Load(), st)
	}
}
