package ipvsadm

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestOutput(t *testing.T) {
	s := rich()
	s.Timeouts = TimeoutsSeconds{900, 120, 300}
	p := &Printer{}
	run := func(args string) (string, error) {
		cmd, err := Parse(argv(args))
		if err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		var b bytes.Buffer
		err = p.Output(&b, cmd, s)
		return b.String(), err
	}
	check := func(args, want string) {
		t.Helper()
		got, err := run(args)
		if err != nil || got != want {
			t.Errorf("%s: %v\n%s\nwant\n%s", args, err, visible(got), visible(want))
		}
	}
	var b bytes.Buffer
	p.List(&b, s, FmtNumeric|FmtStats)
	check("-L -n --stats", b.String())
	b.Reset()
	p.Save(&b, s, FmtNumeric)
	check("-S -n", b.String())
	b.Reset()
	p.Service(&b, &s.Services[3], FmtNumeric)
	check("-L -n -t 10.0.0.1:80", b.String())
	check("-L --timeout", "Timeout (tcp tcpfin udp): 900 120 300\n")
	check("-L --daemon", "")
	check("-L -n -c", "IPVS connection entries\npro expire state       source             virtual            destination\n")
	if _, err := run("-L -n -t 10.9.9.9:80"); !errors.Is(err, ErrListNoService) || ExitCode(err) != 1 {
		t.Errorf("missing service: %v", err)
	}
	if _, err := run("-A -t 10.9.9.9:80"); err == nil {
		t.Error("-A has output")
	}
	out, err := run("-L -n --json")
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal([]byte(out), &back); err != nil || len(back.Services) != 5 || back.Services[0].Address.String() != "200.0.0.1:80" {
		t.Fatalf("json: %v %+v", err, back.Services)
	}
	out, _ = run("-L --json --timeout")
	if strings.TrimSpace(out) != "{\n  \"timeouts\": {\n    \"tcp\": 900,\n    \"tcpfin\": 120,\n    \"udp\": 300\n  }\n}" {
		t.Errorf("json timeout: %s", out)
	}
	out, _ = run("-L --json -c")
	if strings.TrimSpace(out) != "{\n  \"connections\": []\n}" {
		t.Errorf("json conns: %s", out)
	}
	out, _ = run("-L --json -t 10.0.0.1:80")
	if err := json.Unmarshal([]byte(out), &back); err != nil || len(back.Services) != 1 {
		t.Errorf("json one service: %s", out)
	}
}
