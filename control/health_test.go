package control

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/healthcheck"
)

// tablePlane is a fake data path that keeps the table it was given, so
// tests can read what the scheduler's pool would be.
type tablePlane struct {
	t      *config.Config
	ops    []string
	failOn string
}

func (p *tablePlane) Apply(op config.Op) error {
	if p.failOn != "" && strings.Contains(op.String(), p.failOn) {
		return errors.New("refused by the data path")
	}
	n, err := config.Apply(p.t, []config.Op{op})
	if err != nil {
		return err
	}
	p.t = n
	p.ops = append(p.ops, op.String())
	return nil
}
func (p *tablePlane) Snapshot(*ipvsadm.Snapshot, bool) {}
func (p *tablePlane) Zero(*config.Key) error           { return nil }

// pool returns "addr:weight" of each real server of the first service.
func (p *tablePlane) pool() []string {
	var out []string
	for _, rs := range p.t.VirtualServers[0].RealServers {
		out = append(out, rs.Address.Addr().String()+":"+itoa(rs.Weight))
	}
	slices.Sort(out)
	return out
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

// fakeManager records the specs it runs and can refuse an update.
type fakeManager struct {
	specs []healthcheck.Spec
	fail  bool
	calls int
}

func (m *fakeManager) Update(specs []healthcheck.Spec) error {
	m.calls++
	if m.fail {
		return errors.New("bad check")
	}
	m.specs = specs
	return nil
}
func (m *fakeManager) Status() []healthcheck.Status { return nil }

const healthBase = `
[director]
public_interface = "eth0"

[[virtual_server]]
protocol = "tcp"
address = "10.0.0.100:80"
scheduler = "wrr"
sorry_server = "10.0.1.99:80"
sorry_method = "nat"

[virtual_server.health_check]
type = "tcp"
interval = "1s"
fall = 2

  [[virtual_server.real_server]]
  address = "10.0.1.11:80"
  method = "nat"
  weight = 10

  [[virtual_server.real_server]]
  address = "10.0.1.12:80"
  method = "nat"
  weight = 10

  [virtual_server.real_server.health_check]
  on_failure = "quiesce"

  [[virtual_server.real_server]]
  address = "10.0.1.13:80"
  method = "nat"
  weight = 0
`

func newHealthControl(t *testing.T, text string) (*Control, *tablePlane, *fakeManager, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ulvsd.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tp := &tablePlane{t: config.New()}
	c := New(tp, path, cfg.Director, zerolog.Nop())
	fm := &fakeManager{}
	if err := c.SetHealthManager(fm); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	return c, tp, fm, path
}

var svcKey = config.Key{Protocol: config.TCP, Address: netip.MustParseAddrPort("10.0.0.100:80")}

func tid(addr string) healthcheck.TargetID {
	return healthcheck.TargetID{Service: svcKey.String(), Server: netip.MustParseAddrPort(addr)}
}

func down(addr, reason string) healthcheck.Transition {
	return healthcheck.Transition{ID: tid(addr), Up: false, Reason: reason, At: time.Unix(100, 0)}
}

func up(addr string) healthcheck.Transition {
	return healthcheck.Transition{ID: tid(addr), Up: true, Reason: "passed 2 consecutive checks", At: time.Unix(200, 0)}
}

func wantPool(t *testing.T, tp *tablePlane, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := tp.pool(); !slices.Equal(got, want) {
		t.Fatalf("data path pool %q, want %q", got, want)
	}
}

func TestOverlayStartsWithConfiguredTable(t *testing.T) {
	_, tp, fm, _ := newHealthControl(t, healthBase)
	wantPool(t, tp, "10.0.1.11:10", "10.0.1.12:10", "10.0.1.13:0")
	if len(fm.specs) != 3 {
		t.Fatalf("manager runs %d checks, want 3", len(fm.specs))
	}
	for _, s := range fm.specs {
		if s.ID.Service != "tcp 10.0.0.100:80" || s.Config.Type != "tcp" {
			t.Errorf("spec %+v", s)
		}
		if s.ID.Server.Addr().String() == "10.0.1.12" && s.Config.OnFailure != healthcheck.ActionQuiesce {
			t.Errorf("override lost: %+v", s.Config)
		}
	}
}

func TestOverlayDownRemoveDeletes(t *testing.T) {
	c, tp, _, _ := newHealthControl(t, healthBase)
	tp.ops = nil
	c.SetHealth(down("10.0.1.11:80", "connection refused"))
	wantPool(t, tp, "10.0.1.12:10", "10.0.1.13:0")
	if len(tp.ops) != 1 || !strings.HasPrefix(tp.ops[0], "delete-server tcp 10.0.0.100:80 10.0.1.11:80") {
		t.Fatalf("ops %q, want one delete-server", tp.ops)
	}
	// The configured table is unchanged: -L shows the admin's weight.
	s := c.Snapshot(false)
	srv := s.Services[0].Servers[0]
	if srv.Weight != 10 || srv.Health != "down" || srv.Reason != "connection refused" || srv.InPool || srv.EffectiveWeight != 0 ||
		!srv.Since.Equal(time.Unix(100, 0)) || srv.Check != "tcp" {
		t.Fatalf("snapshot server %+v", srv)
	}
	if cw := c.Config().VirtualServers[0].RealServers[0].Weight; cw != 10 {
		t.Fatalf("configured weight changed to %d", cw)
	}
	c.SetHealth(up("10.0.1.11:80"))
	wantPool(t, tp, "10.0.1.11:10", "10.0.1.12:10", "10.0.1.13:0")
	if s := c.Snapshot(false); s.Services[0].Servers[0].Health != "up" || !s.Services[0].Servers[0].InPool {
		t.Fatalf("after up: %+v", s.Services[0].Servers[0])
	}
}

func TestOverlayDownQuiesceWeightZero(t *testing.T) {
	c, tp, _, _ := newHealthControl(t, healthBase)
	tp.ops = nil
	c.SetHealth(down("10.0.1.12:80", "timeout after 1s"))
	wantPool(t, tp, "10.0.1.11:10", "10.0.1.12:0", "10.0.1.13:0")
	if len(tp.ops) != 1 || !strings.HasPrefix(tp.ops[0], "edit-server tcp 10.0.0.100:80 10.0.1.12:80 nat weight 0") {
		t.Fatalf("ops %q", tp.ops)
	}
	if srv := c.Snapshot(false).Services[0].Servers[1]; srv.Weight != 10 || !srv.InPool || srv.EffectiveWeight != 0 {
		t.Fatalf("snapshot %+v", srv)
	}
}

func TestOverlayAdminWeightZeroSticksAndDynamicWeights(t *testing.T) {
	c, tp, _, _ := newHealthControl(t, healthBase)
	c.SetWeight(tid("10.0.1.13:80"), 7) // configured 0: stays 0
	c.SetWeight(tid("10.0.1.11:80"), 3)
	wantPool(t, tp, "10.0.1.11:3", "10.0.1.12:10", "10.0.1.13:0")
	// A down quiesced server is 0 whatever its dynamic weight.
	c.SetWeight(tid("10.0.1.12:80"), 4)
	c.SetHealth(down("10.0.1.12:80", "status 503"))
	wantPool(t, tp, "10.0.1.11:3", "10.0.1.12:0", "10.0.1.13:0")
	c.SetHealth(up("10.0.1.12:80"))
	wantPool(t, tp, "10.0.1.11:3", "10.0.1.12:4", "10.0.1.13:0")
	// An admin weight change drops the dynamic weight.
	if err := c.Command([]string{"ipvsadm", "-e", "-t", "10.0.0.100:80", "-r", "10.0.1.11:80", "-m", "-w", "20"}, nil); err != nil {
		t.Fatal(err)
	}
	wantPool(t, tp, "10.0.1.11:20", "10.0.1.12:4", "10.0.1.13:0")
	// ... and -e keeps the server's own check.
	if hc := c.Config().VirtualServers[0].RealServers[1].HealthCheck; hc == nil || hc.OnFailure != healthcheck.ActionQuiesce {
		t.Fatalf("-e lost the check override: %+v", hc)
	}
}

func TestOverlaySorryServer(t *testing.T) {
	c, tp, _, _ := newHealthControl(t, healthBase)
	c.SetHealth(down("10.0.1.11:80", "refused"))
	c.SetHealth(down("10.0.1.12:80", "refused"))
	wantPool(t, tp, "10.0.1.12:0", "10.0.1.13:0") // .13 is up (admin weight 0): no sorry server yet
	c.SetHealth(down("10.0.1.13:80", "refused"))
	wantPool(t, tp, "10.0.1.12:0", "10.0.1.99:1")
	if s := c.Snapshot(false).Services[0]; !s.SorryActive || s.SorryServer != "10.0.1.99:80 nat" {
		t.Fatalf("snapshot service sorry %q active %v", s.SorryServer, s.SorryActive)
	}
	// Not in the configured table.
	if n := len(c.Config().VirtualServers[0].RealServers); n != 3 {
		t.Fatalf("configured table has %d real servers", n)
	}
	c.SetHealth(up("10.0.1.11:80"))
	wantPool(t, tp, "10.0.1.11:10", "10.0.1.12:0")
}

func TestOverlayReloadKeepsHealthState(t *testing.T) {
	c, tp, fm, path := newHealthControl(t, healthBase)
	c.SetHealth(down("10.0.1.11:80", "refused"))
	c.SetWeight(tid("10.0.1.12:80"), 5)
	// A reload that changes only a check (interval) and adds a real server.
	next := strings.Replace(healthBase, `interval = "1s"`, `interval = "3s"`, 1) + `
  [[virtual_server.real_server]]
  address = "10.0.1.14:80"
  method = "nat"
  weight = 2
`
	if err := os.WriteFile(path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	tp.ops = nil
	ch, err := c.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Ops) != 1 || !strings.HasPrefix(tp.ops[0], "add-server tcp 10.0.0.100:80 10.0.1.14:80") {
		t.Fatalf("reload ops %q, want only the new server", tp.ops)
	}
	wantPool(t, tp, "10.0.1.12:5", "10.0.1.13:0", "10.0.1.14:2")
	if len(fm.specs) != 4 || fm.specs[0].Config.Interval != 3*time.Second {
		t.Fatalf("manager specs %+v", fm.specs)
	}
	// A health-check-only reload touches nothing in the data path.
	if err := os.WriteFile(path, []byte(strings.Replace(next, "fall = 2", "fall = 4", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	tp.ops = nil
	if _, err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if len(tp.ops) != 0 {
		t.Fatalf("health-only reload applied %q", tp.ops)
	}
	// Removing the check brings the down server back.
	if err := os.WriteFile(path, []byte(strings.Replace(next, "[virtual_server.health_check]\ntype = \"tcp\"\ninterval = \"3s\"\nfall = 2\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	wantPool(t, tp, "10.0.1.11:10", "10.0.1.12:5", "10.0.1.13:0", "10.0.1.14:2")
}

func TestOverlayBadReloadChangesNothing(t *testing.T) {
	c, tp, fm, path := newHealthControl(t, healthBase)
	c.SetHealth(down("10.0.1.11:80", "refused"))
	before := config.Marshal(c.Config())
	specs := fm.specs
	tp.ops = nil
	// A bad file.
	if err := os.WriteFile(path, []byte(strings.Replace(healthBase, `type = "tcp"`, `type = "tcp"`+"\npath = \"/x\"", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := c.Reload()
	if err == nil || !strings.Contains(err.Error(), "ulvsd.toml:14: virtual_server[0].health_check.path") {
		t.Fatalf("reload error %v", err)
	}
	// A good file that the health manager refuses.
	if err := os.WriteFile(path, []byte(strings.Replace(healthBase, `weight = 0`, `weight = 1`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	fm.fail = true
	if _, err := c.Reload(); err == nil {
		t.Fatal("reload accepted although the manager refused")
	}
	fm.fail = false
	// A good file that the data path refuses half way: manager restored.
	tp.failOn = "10.0.1.13"
	if _, err := c.Reload(); !errors.Is(err, ErrPartial) {
		t.Fatalf("err %v, want ErrPartial", err)
	}
	if len(tp.ops) != 0 {
		t.Fatalf("refused reloads reached the data path: %q", tp.ops)
	}
	if string(config.Marshal(c.Config())) != string(before) {
		t.Fatal("configured table changed")
	}
	if !slices.EqualFunc(fm.specs, specs, func(a, b healthcheck.Spec) bool { return a.ID == b.ID && a.Weight == b.Weight }) {
		t.Fatalf("manager specs not restored: %+v", fm.specs)
	}
	wantPool(t, tp, "10.0.1.12:10", "10.0.1.13:0")
	// Health state survived.
	if srv := c.Snapshot(false).Services[0].Servers[0]; srv.Health != "down" {
		t.Fatalf("health lost: %+v", srv)
	}
}

func TestOverlayStaleTransitionIgnored(t *testing.T) {
	c, tp, _, _ := newHealthControl(t, healthBase)
	if err := c.Command([]string{"ipvsadm", "-d", "-t", "10.0.0.100:80", "-r", "10.0.1.11:80"}, nil); err != nil {
		t.Fatal(err)
	}
	tp.ops = nil
	c.SetHealth(down("10.0.1.11:80", "refused"))
	c.SetWeight(tid("10.0.1.11:80"), 3)
	if len(tp.ops) != 0 {
		t.Fatalf("a removed server's transition changed the data path: %q", tp.ops)
	}
	// A server added by ulvsadm inherits the virtual server's check.
	if err := c.Command([]string{"ipvsadm", "-a", "-t", "10.0.0.100:80", "-r", "10.0.1.15:80", "-m"}, nil); err != nil {
		t.Fatal(err)
	}
	c.SetHealth(down("10.0.1.15:80", "refused"))
	wantPool(t, tp, "10.0.1.12:10", "10.0.1.13:0")
}
