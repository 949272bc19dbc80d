package main

import "testing"

// The dispatch reaches each subcommand: --help exits 0, bad usage 2.
func TestDispatch(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"sched", "sim", "--help"}, 0},
		{[]string{"sched", "sim", "--rate", "0"}, 2},
		{[]string{"sched", "sim", "--scheds", "wlc", "--duration", "2s", "--rate", "50", "--probes", "10", "--timing", "0", "--fail", "none", "--reweight", "none"}, 0},
		{[]string{"sched", "replay", "--help"}, 0},
		{[]string{"sched"}, 2},
		{[]string{"nosuch"}, 2},
		{nil, 2},
	} {
		if got := run(tc.args); got != tc.code {
			t.Errorf("run(%q) = %d, want %d", tc.args, got, tc.code)
		}
	}
}
