package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/healthcheck"
)

const healthTOML = `[director]
public_interface = "eth0"
health_max_in_flight = 64

[[virtual_server]]
protocol = "tcp"
address = "10.0.0.100:80"
sorry_server = "10.0.1.99"
sorry_method = "nat"

[virtual_server.health_check]
type = "http"
path = "/health"
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2
expect_status = [200, 204]

  [[virtual_server.real_server]]
  address = "10.0.1.11:80"
  method = "nat"

  [[virtual_server.real_server]]
  address = "10.0.1.12:80"
  method = "nat"

  [virtual_server.real_server.health_check]
  interval = "5s"

  [[virtual_server.real_server]]
  address = "10.0.1.13:80"
  method = "nat"

  [virtual_server.real_server.health_check]
  type = "exec"
  program = "/bin/true"
  env = { MODE = "strict" }
`

func TestHealthKeysParse(t *testing.T) {
	c, err := Parse([]byte(healthTOML), "h.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Director.HealthMaxInFlight != 64 {
		t.Errorf("health_max_in_flight = %d", c.Director.HealthMaxInFlight)
	}
	vs := &c.VirtualServers[0]
	if vs.SorryServer != netip.MustParseAddrPort("10.0.1.99:80") || vs.SorryMethod != NAT {
		t.Errorf("sorry = %v %v", vs.SorryServer, vs.SorryMethod)
	}
	hc := vs.HealthCheck
	if hc == nil || hc.Type != "http" || hc.Path != "/health" || hc.Interval != time.Second || hc.Timeout != 500*time.Millisecond ||
		hc.Rise != 2 || hc.Fall != 2 || len(hc.ExpectStatus) != 2 || hc.OnFailure != healthcheck.ActionRemove {
		t.Fatalf("vs check = %+v", hc)
	}
	if got := vs.HealthFor(&vs.RealServers[0]); got != hc {
		t.Errorf("rs0 should inherit the virtual server's check, got %+v", got)
	}
	// Merged override: only the interval differs.
	h1 := vs.HealthFor(&vs.RealServers[1])
	if h1.Type != "http" || h1.Path != "/health" || h1.Interval != 5*time.Second || h1.Fall != 2 {
		t.Errorf("rs1 merged check = %+v", h1)
	}
	// Typed override: replaces the table whole.
	h2 := vs.HealthFor(&vs.RealServers[2])
	if h2.Type != "exec" || h2.Path != "" || h2.Interval != healthcheck.DefaultInterval || h2.Env["MODE"] != "strict" {
		t.Errorf("rs2 typed check = %+v", h2)
	}
}

func TestHealthMarshalRoundTrip(t *testing.T) {
	c, err := Parse([]byte(healthTOML), "h.toml")
	if err != nil {
		t.Fatal(err)
	}
	out := Marshal(c)
	back, err := Parse(out, "marshal.toml")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !Equal(c, back) {
		t.Fatalf("round trip differs:\n%s", out)
	}
	// Equal sees a health-only change, Diff does not touch the data path.
	mod := back.Clone()
	mod.VirtualServers[0].HealthCheck.Fall = 5
	if Equal(c, mod) {
		t.Error("Equal ignores a health_check change")
	}
	if d := Diff(c, mod); len(d.Ops) != 0 {
		t.Errorf("a health-only change made data-path ops: %v", d.Ops)
	}
	mod = back.Clone()
	mod.VirtualServers[0].SorryServer = netip.AddrPort{}
	if Equal(c, mod) {
		t.Error("Equal ignores a sorry_server change")
	}
	// The clone is deep.
	mod = c.Clone()
	mod.VirtualServers[0].RealServers[2].HealthCheck.Env["MODE"] = "x"
	if c.VirtualServers[0].RealServers[2].HealthCheck.Env["MODE"] != "strict" {
		t.Error("Clone shares the env map")
	}
}

func TestHealthKeysRefused(t *testing.T) {
	base := "[director]\npublic_interface = \"eth0\"\n\n[[virtual_server]]\nprotocol = \"tcp\"\naddress = \"10.0.0.100:80\"\n"
	rs := "\n  [[virtual_server.real_server]]\n  address = \"10.0.1.11:80\"\n  method = \"nat\"\n"
	for _, tc := range []struct {
		name, text, want string
	}{
		{"bad type", base + "[virtual_server.health_check]\ntype = \"htp\"\n", "h.toml:8: virtual_server[0].health_check.type: unknown check type"},
		{"key of another type", base + "[virtual_server.health_check]\ntype = \"tcp\"\npath = \"/\"\n", "h.toml:9: virtual_server[0].health_check.path: not used by a \"tcp\" check"},
		{"wrong toml type", base + "[virtual_server.health_check]\nrise = \"two\"\n", "h.toml:8: virtual_server[0].health_check.rise: want an integer"},
		{"bad duration", base + "[virtual_server.health_check]\ninterval = \"soon\"\n", "h.toml:8: virtual_server[0].health_check.interval: \"soon\" is not a duration"},
		{"unknown key", base + "[virtual_server.health_check]\nintervall = \"1s\"\n", "h.toml:8: virtual_server[0].health_check.intervall: unknown key"},
		{"bad on_failure", base + "[virtual_server.health_check]\non_failure = \"drop\"\n", "h.toml:8: virtual_server[0].health_check.on_failure: must be"},
		{"bad override", base + rs + "\n  [virtual_server.real_server.health_check]\n  fall = 0\n  timeout = \"-1s\"\n", "h.toml:14: virtual_server[0].real_server[0].health_check.timeout: -1s is negative"},
		{"sorry is a real server", base + "sorry_server = \"10.0.1.11:80\"\n" + rs, "h.toml:7: virtual_server[0].sorry_server: 10.0.1.11:80 is also a real server"},
		{"sorry method", base + "sorry_server = \"10.0.1.9\"\nsorry_method = \"gre\"\n", "h.toml:8: virtual_server[0].sorry_method: method \"gre\""},
		{"sorry dr port", base + "sorry_server = \"10.0.1.9:8080\"\n", "h.toml:7: virtual_server[0].sorry_server: port 8080 differs"},
		{"nan hysteresis", base + "[virtual_server.health_check]\ntype = \"feedback\"\nhysteresis = nan\n", "h.toml:9: virtual_server[0].health_check.hysteresis: must be in [0, 1) (got NaN)"},
		{"max in flight", "[director]\npublic_interface = \"eth0\"\nhealth_max_in_flight = -1\n", "h.toml:3: director.health_max_in_flight: -1 out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "h.toml")
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnknownKey) {
				t.Errorf("error %v wraps no sentinel", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}
