package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
)

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "usage"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"demo", "--ulvsd", "/nonexistent/ulvsd"}, 1, "ulvsd"},
		{[]string{"demo", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"up", "--mode", "ipip", "--state-dir", t.TempDir()}, 1, `mode "ipip"`},
		{[]string{"up", "--servers", "2", "--state-dir", t.TempDir()}, 1, "mode is required"},
		{[]string{"down", "--state-dir", t.TempDir()}, 1, "no lab"},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(out.String()+errb.String(), tc.msg) {
			t.Errorf("ulvslab %q: exit %d, output %q; want exit %d and %q", tc.args, code, out.String()+errb.String(), tc.code, tc.msg)
		}
	}
}

func TestUpExecDown(t *testing.T) {
	labtest.RequireRoot(t)
	dir := t.TempDir()
	name := labtest.UniqueName()
	t.Cleanup(func() { lab.DownByName(dir, name) })
	var out, errb bytes.Buffer
	if code := run([]string{"up", "--mode", "tun", "--servers", "2", "--name", name, "--ipv6", "--state-dir", dir}, &out, &errb); code != 0 {
		t.Fatalf("up: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"lab " + name + ": TUN", "rs2", "10.0.0.52/24", "fd00:10::100", "ulvslab down --name " + name} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("up output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"list", "--state-dir", dir}, &out, &errb); code != 0 || !strings.Contains(out.String(), name+"\ttun\t2 real servers") {
		t.Errorf("list: exit %d: %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"show", "--json", "--state-dir", dir}, &out, &errb); code != 0 {
		t.Fatalf("show: exit %d: %s", code, errb.String())
	}
	var p lab.Plan
	if err := json.Unmarshal(out.Bytes(), &p); err != nil || p.Name != name || len(p.RealServers()) != 2 || p.VIP4.String() != "10.0.0.100" {
		t.Fatalf("show --json: %v: %+v", err, p)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"rs1", "--", "true"}, 0},
		{[]string{"rs1", "--", "sh", "-c", "exit 3"}, 3},
		{[]string{"nohost", "--", "true"}, 1},
		{[]string{"rs1"}, 2},
	} {
		args := append([]string{"exec", "--name", name, "--state-dir", dir}, tc.args...)
		if code := run(args, &out, &errb); code != tc.code {
			t.Errorf("exec %q: exit %d, want %d (%s)", tc.args, code, tc.code, errb.String())
		}
	}
	// exec really runs inside the host: rs1's TUN device is visible there.
	if code := run([]string{"exec", "--name", name, "--state-dir", dir, "rs1", "--", "test", "-e", "/proc/sys/net/ipv4/conf/ulvstun0"}, &out, &errb); code != 0 {
		t.Errorf("exec in rs1 does not see ulvstun0 (exit %d)", code)
	}
	l, err := lab.Load(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"down", "--state-dir", dir}, &out, &errb); code != 0 {
		t.Fatalf("down: exit %d: %s", code, errb.String())
	}
	for _, ns := range l.Plan.Namespaces() {
		if _, err := os.Stat(lab.NetnsPath(ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s left after down", ns)
		}
	}
	for _, pr := range l.Processes() {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pr.PID) + "/ns/net"); err == nil {
			t.Errorf("process %d (%s) left after down", pr.PID, pr.Argv)
		}
	}
}
