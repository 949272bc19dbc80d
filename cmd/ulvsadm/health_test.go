package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/healthcheck"
)

type nopManager struct{}

func (nopManager) Update([]healthcheck.Spec) error { return nil }
func (nopManager) Status() []healthcheck.Status    { return nil }

func TestListHealth(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[director]
public_interface = "eth0"
[[virtual_server]]
protocol = "tcp"
address = "10.0.0.100:80"
scheduler = "rr"
sorry_server = "10.0.1.99:80"
sorry_method = "nat"
[virtual_server.health_check]
type = "http"
  [[virtual_server.real_server]]
  address = "10.0.1.11:80"
  method = "nat"
  weight = 4
  [[virtual_server.real_server]]
  address = "10.0.1.12:80"
  method = "nat"
  weight = 2
[[virtual_server]]
protocol = "udp"
address = "10.0.0.100:53"
scheduler = "wrr"
  [[virtual_server.real_server]]
  address = "10.0.1.21:53"
  method = "nat"
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := &plane{}
	c := control.New(p, "", cfg.Director, zerolog.Nop())
	if err := c.SetHealthManager(nopManager{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	c.SetHealth(healthcheck.Transition{ID: healthcheck.TargetID{Service: "tcp 10.0.0.100:80", Server: netip.MustParseAddrPort("10.0.1.12:80")},
		Reason: "status 503", At: time.Now().Add(-5 * time.Second)})
	sock := filepath.Join(t.TempDir(), "ulvsd.sock")
	l, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.Serve(ctx, l, c.Handler(nil)) }()
	t.Cleanup(func() { cancel(); <-done })
	adm := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := run(append([]string{"--socket", sock}, args...), strings.NewReader(""), &out, &errb)
		return out.String(), errb.String(), code
	}

	out, errs, code := adm("-L", "--health")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"TCP  10.0.0.100:80 rr sorry 10.0.1.99:80 nat\n",
		"  -> 10.0.1.11:80                 4      4         http        up     ",
		"  -> 10.0.1.12:80                 2      removed   http        down   5s       status 503\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-L --health lacks %q:\n%s", want, out)
		}
	}
	// ipvsadm's own listing is unchanged: configured weights, no health.
	out, _, _ = adm("-L", "-n")
	if !strings.Contains(out, "  -> 10.0.1.12:80                 Masq    2      ") || strings.Contains(out, "down") {
		t.Errorf("-L -n shows health or the effective weight:\n%s", out)
	}
	out, _, _ = adm("-L", "--json")
	var s ipvsadm.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	rs := s.Services[0].Servers[1]
	if rs.Health != "down" || rs.Reason != "status 503" || rs.InPool || rs.Weight != 2 || rs.Since.IsZero() {
		t.Errorf("--json server %+v", rs)
	}
	if _, _, code := adm("-S", "--health"); code == 0 {
		t.Error("-S --health accepted")
	}
	// One service named: that one alone, as -L -t/-u lists.
	out, errs, code = adm("-L", "-u", "10.0.0.100:53", "--health")
	if code != 0 || !strings.Contains(out, "UDP  10.0.0.100:53 wrr\n") || !strings.Contains(out, "10.0.1.21:53") || strings.Contains(out, "TCP") {
		t.Errorf("-L -u 10.0.0.100:53 --health: exit %d (%s), want the UDP service alone:\n%s", code, errs, out)
	}
	out, _, _ = adm("-L", "-t", "10.0.0.100:80", "--health")
	if !strings.Contains(out, "TCP  10.0.0.100:80 rr") || strings.Contains(out, "UDP") {
		t.Errorf("-L -t 10.0.0.100:80 --health lists more than that service:\n%s", out)
	}
	out, errs, code = adm("-L", "-t", "10.0.0.100:81", "--health")
	if code != 1 || !strings.Contains(errs, "No such service") || out != "" {
		t.Errorf("-L -t of a missing service with --health: exit %d, stderr %q, stdout %q; want 1 and No such service", code, errs, out)
	}
}
