package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/control"
)

// plane is a data path that accepts everything and reports fixed counters.
type plane struct{ ops []string }

func (p *plane) Apply(op config.Op) error { p.ops = append(p.ops, op.String()); return nil }
func (p *plane) Zero(*config.Key) error   { return nil }
func (p *plane) Snapshot(s *ipvsadm.Snapshot, conns bool) {
	for i := range s.Services {
		for j := range s.Services[i].Servers {
			s.Services[i].Servers[j].ActiveConns = uint32(j + 1)
		}
	}
}

// daemon serves a control plane on a temporary socket and returns a
// function running ulvsadm against it.
func daemon(t *testing.T) (func(stdin string, args ...string) (string, string, int), *plane) {
	t.Helper()
	p := &plane{}
	c := control.New(p, "", config.New().Director, zerolog.Nop())
	sock := filepath.Join(t.TempDir(), "ulvsd.sock")
	l, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.Serve(ctx, l, c.Handler(nil)) }()
	t.Cleanup(func() { cancel(); <-done })
	return func(stdin string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := run(append([]string{"--socket", sock}, args...), strings.NewReader(stdin), &out, &errb)
		return out.String(), errb.String(), code
	}, p
}

func TestIpvsadmSessionAgainstDaemon(t *testing.T) {
	adm, p := daemon(t)
	for _, args := range [][]string{
		{"-A", "-t", "10.0.0.100:80", "-s", "rr"},
		{"-a", "-t", "10.0.0.100:80", "-r", "10.0.1.11:80", "-m"},
		{"-a", "-t", "10.0.0.100:80", "-r", "10.0.1.12:80", "-m", "-w", "3"},
		{"-A", "-u", "[fd00:10::100]:53"},
		{"-a", "-u", "[fd00:10::100]:53", "-r", "[fd00:10::53]:53", "-g"},
	} {
		if _, stderr, code := adm("", args...); code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, stderr)
		}
	}
	if len(p.ops) != 5 {
		t.Fatalf("data path saw %q", p.ops)
	}
	out, _, code := adm("", "-L", "-n")
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  10.0.0.100:80 rr\n" +
		"  -> 10.0.1.11:80                 Masq    1      1          0         \n" +
		"  -> 10.0.1.12:80                 Masq    3      2          0         \n" +
		"UDP  [fd00:10::100]:53 wlc\n" +
		"  -> [fd00:10::53]:53             Route   1      1          0         \n"
	if code != 0 || out != want {
		t.Fatalf("-L -n exit %d:\n%q\nwant\n%q", code, out, want)
	}
	// -S, -C, -R restores the same table.
	saved, _, _ := adm("", "-S", "-n")
	if _, stderr, code := adm("", "-C"); code != 0 {
		t.Fatal(stderr)
	}
	if out, _, _ := adm("", "-S", "-n"); out != "" {
		t.Fatalf("table not cleared: %q", out)
	}
	if _, stderr, code := adm(saved, "-R"); code != 0 {
		t.Fatalf("-R: %s", stderr)
	}
	if again, _, _ := adm("", "-S", "-n"); again != saved {
		t.Fatalf("-S after -R:\n%s\nwant\n%s", again, saved)
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	adm, p := daemon(t)
	adm("", "-A", "-t", "10.0.0.100:80")
	p.ops = nil
	cases := []struct {
		args []string
		msg  string
		code int
	}{
		// Refused by the command-line parser, before the daemon is asked.
		{[]string{"-A", "-t", "10.0.0.100:80", "-r", "10.0.1.1"}, "Illegal 'real-server' option with the 'add-service' command", 2},
		// Refused by the daemon, with the kernel's message.
		{[]string{"-A", "-t", "10.0.0.100:80"}, "Service already exists", 255},
		{[]string{"-d", "-t", "10.0.0.100:80", "-r", "10.0.1.9:80"}, "No such destination", 255},
		{[]string{"-L", "-t", "10.0.0.99:80"}, "No such service", 1},
	}
	for _, c := range cases {
		_, stderr, code := adm("", c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("%q: exit %d %q, want %d %q", c.args, code, stderr, c.code, c.msg)
		}
	}
	if len(p.ops) != 0 {
		t.Fatalf("refused commands changed the table: %q", p.ops)
	}
	// No daemon at all.
	var out, errb bytes.Buffer
	code := run([]string{"--socket", filepath.Join(t.TempDir(), "none"), "-L", "-n"}, strings.NewReader(""), &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "Is ulvsd running?") {
		t.Fatalf("no daemon: exit %d %q", code, errb.String())
	}
}
