package control

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
)

// fakePlane records the operations applied and can be told to refuse one.
type fakePlane struct {
	applied []string
	failOn  string // refuse the first op whose String contains this
	zeroed  []string
}

func (f *fakePlane) Apply(op config.Op) error {
	s := op.String()
	if f.failOn != "" && strings.Contains(s, f.failOn) {
		f.failOn = ""
		return errors.New("refused by the data path")
	}
	f.applied = append(f.applied, s)
	return nil
}

func (f *fakePlane) Snapshot(s *ipvsadm.Snapshot, conns bool) {
	for i := range s.Services {
		s.Services[i].Stats.Conns = 7
	}
}

func (f *fakePlane) Zero(k *config.Key) error {
	if k == nil {
		f.zeroed = append(f.zeroed, "all")
	} else {
		f.zeroed = append(f.zeroed, k.String())
	}
	return nil
}

const base = `
[director]
public_interface = "eth0"

[[virtual_server]]
protocol = "tcp"
address = "10.0.0.100:80"
scheduler = "rr"
  [[virtual_server.real_server]]
  address = "10.0.1.11:80"
  method = "nat"
  [[virtual_server.real_server]]
  address = "10.0.1.12:80"
  method = "nat"
`

func newControl(t *testing.T, text string) (*Control, *fakePlane, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ulvsd.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakePlane{}
	c := New(fp, path, cfg.Director, zerolog.Nop())
	if _, err := c.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	return c, fp, path
}

func TestCommandsChangeOnlyWhatTheySay(t *testing.T) {
	c, fp, _ := newControl(t, base)
	fp.applied = nil
	if err := c.Command([]string{"ipvsadm", "-e", "-t", "10.0.0.100:80", "-r", "10.0.1.11:80", "-m", "-w", "5"}, nil); err != nil {
		t.Fatal(err)
	}
	if len(fp.applied) != 1 || !strings.HasPrefix(fp.applied[0], "edit-server tcp 10.0.0.100:80 10.0.1.11:80 nat weight 5") {
		t.Fatalf("applied %q, want exactly the one edit", fp.applied)
	}
	cur := c.Config()
	if w := cur.VirtualServers[0].RealServers[cur.VirtualServers[0].Find(mustAP("10.0.1.11:80"))].Weight; w != 5 {
		t.Fatalf("running weight %d, want 5", w)
	}
}

func TestBadCommandLeavesTableUnchanged(t *testing.T) {
	c, fp, _ := newControl(t, base)
	before := config.Marshal(c.Config())
	fp.applied = nil
	for _, argv := range [][]string{
		{"ipvsadm", "-a", "-t", "10.0.0.100:80", "-r", "10.0.1.11:80", "-m"},       // exists
		{"ipvsadm", "-d", "-t", "10.0.0.100:80", "-r", "10.0.1.99:80"},             // no such server
		{"ipvsadm", "-A", "-t", "10.0.0.100:80", "-s", "nosuch"},                   // bad scheduler
		{"ipvsadm", "-e", "-t", "10.0.0.100:80", "-r", "10.0.1.11:80", "-w", "-1"}, // range
	} {
		err := c.Command(argv, nil)
		if err == nil {
			t.Fatalf("%q accepted", argv)
		}
		if ipvsadm.ExitCode(err) == 0 {
			t.Fatalf("%q: error %v has exit code 0", argv, err)
		}
	}
	if len(fp.applied) != 0 {
		t.Fatalf("refused commands reached the data path: %q", fp.applied)
	}
	if after := config.Marshal(c.Config()); string(after) != string(before) {
		t.Fatalf("table changed:\n%s\nwas\n%s", after, before)
	}
}

func TestDataPathRefusalRollsBack(t *testing.T) {
	c, fp, _ := newControl(t, base)
	before := config.Marshal(c.Config())
	fp.applied = nil
	fp.failOn = "10.0.1.14"
	next := c.Config()
	vs := &next.VirtualServers[0]
	vs.RealServers = vs.RealServers[1:] // delete .11
	for _, a := range []string{"10.0.1.13:80", "10.0.1.14:80"} {
		vs.RealServers = append(vs.RealServers, config.RealServer{Address: mustAP(a), Method: config.NAT, Weight: 1})
	}
	next.Normalize()
	_, err := c.Apply(next)
	if !errors.Is(err, ErrPartial) {
		t.Fatalf("Apply = %v, want ErrPartial", err)
	}
	// What was applied before the refusal was undone, in reverse.
	joined := strings.Join(fp.applied, "\n")
	for _, want := range []string{"delete-server tcp 10.0.0.100:80 10.0.1.11:80", "add-server tcp 10.0.0.100:80 10.0.1.13:80",
		"delete-server tcp 10.0.0.100:80 10.0.1.13:80", "add-server tcp 10.0.0.100:80 10.0.1.11:80"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("applied:\n%s\nmissing %q", joined, want)
		}
	}
	if after := config.Marshal(c.Config()); string(after) != string(before) {
		t.Fatalf("running configuration changed after a refused change")
	}
}

func TestReloadAppliesDiffAndRefusesBadFile(t *testing.T) {
	c, fp, path := newControl(t, base)
	fp.applied = nil
	edited := strings.Replace(base, `address = "10.0.1.12:80"`, `address = "10.0.1.13:80"`, 1)
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	ch, err := c.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Ops) != 2 || len(fp.applied) != 2 {
		t.Fatalf("reload applied %q, want one delete and one add", fp.applied)
	}
	// A broken file: refused with file and line, nothing applied.
	fp.applied = nil
	if err := os.WriteFile(path, []byte(edited+"\n[[virtual_server]]\nprotocol = \"sctp\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = c.Reload()
	if err == nil || !strings.Contains(err.Error(), filepath.Base(path)) {
		t.Fatalf("bad file: %v, want an error naming the file", err)
	}
	if len(fp.applied) != 0 {
		t.Fatalf("a bad file changed the table: %q", fp.applied)
	}
}

func TestRestoreAndZero(t *testing.T) {
	c, fp, _ := newControl(t, base)
	rules := "-A -u 10.0.0.100:53 -s wlc\n-a -u 10.0.0.100:53 -r 10.0.1.11:53 -m -w 2\n"
	if err := c.Command([]string{"ipvsadm", "-R"}, []byte(rules)); err != nil {
		t.Fatal(err)
	}
	if len(c.Config().VirtualServers) != 2 {
		t.Fatalf("restore did not add the UDP service")
	}
	if err := c.Command([]string{"ipvsadm", "-Z", "-t", "10.0.0.100:80"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Command([]string{"ipvsadm", "-Z", "-t", "10.0.0.99:80"}, nil); err == nil {
		t.Fatal("zeroing a missing service succeeded")
	}
	if len(fp.zeroed) != 1 || fp.zeroed[0] != "tcp 10.0.0.100:80" {
		t.Fatalf("zeroed %q", fp.zeroed)
	}
}

// TestAPIOverSocket drives the control API through a real unix socket with
// the Client ulvsadm uses.
func TestAPIOverSocket(t *testing.T) {
	c, _, _ := newControl(t, base)
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v, want 0600", fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, c.Handler(nil)) }()
	t.Cleanup(func() { cancel(); <-done })

	cl := NewClient(sock)
	s, err := cl.Snapshot(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Services) != 1 || s.Services[0].Stats.Conns != 7 || len(s.Services[0].Servers) != 2 {
		t.Fatalf("snapshot %+v", s)
	}
	err = cl.Command([]string{"ipvsadm", "-d", "-t", "10.0.0.100:80", "-r", "10.0.1.99:80"}, nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "No such destination" || re.Code == 0 {
		t.Fatalf("remote error %#v", err)
	}
	if err := cl.Command([]string{"ipvsadm", "-D", "-t", "10.0.0.100:80"}, nil); err != nil {
		t.Fatal(err)
	}
	if s, _ := cl.Snapshot(false); len(s.Services) != 0 {
		t.Fatalf("service not deleted: %+v", s.Services)
	}
	toml, err := cl.Config()
	if err != nil || !strings.Contains(string(toml), "public_interface") {
		t.Fatalf("config: %v\n%s", err, toml)
	}
	// A second daemon on the same socket is refused.
	if _, err := Listen(sock); err == nil {
		t.Fatal("Listen took over a socket another server is serving")
	}
	// Nothing listening: the client says so.
	if _, err := NewClient(filepath.Join(t.TempDir(), "none.sock")).Snapshot(false); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("no daemon: %v", err)
	}
	var _ net.Listener = l
}

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// TestStartKeepsRestartOnlySettings: the initial file's [director] is
// running, and a reload that changes it reports a restart and keeps the old
// values in the running configuration.
func TestStartKeepsRestartOnlySettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ulvsd.toml")
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c := New(&fakePlane{}, path, config.Director{}, zerolog.Nop())
	ch, err := c.Start(cfg)
	if err != nil || len(ch.Restart) != 0 {
		t.Fatalf("Start: %v, restart %v: the initial settings must not need a restart", err, ch.Restart)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(base, `"eth0"`, `"eth9"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	ch, err = c.Reload()
	if err != nil || len(ch.Restart) != 1 {
		t.Fatalf("Reload: %v, restart %v", err, ch.Restart)
	}
	if got := c.Config().Director.PublicInterface; got != "eth0" {
		t.Fatalf("running public_interface %q after a reload, want the running eth0", got)
	}
}
