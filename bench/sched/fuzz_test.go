package sched

import (
	"io"
	"os"
	"strings"
	"testing"
)

// FuzzReplay: any trace either replays or fails with an error naming a
// line; it never panics, whatever the scheduler.
func FuzzReplay(f *testing.F) {
	golden, _ := os.ReadFile("testdata/wrr-spec.jsonl")
	f.Add(string(golden), uint8(1))
	f.Add(`{"op":"add","server":"[2001:db8::1]:80","weight":3,"upper":2,"lower":1}
{"op":"conn","id":"a","src":"[2001:db8::9]:1","dst":"[2001:db8::2]:80","t":1e3,"proto":"udp"}
{"op":"inactive","id":"a"}
{"op":"del","server":"[2001:db8::1]:80"}
{"op":"close","id":"a"}
{"op":"tick","t":99999}`, uint8(6))
	f.Add(`{"op":"add","server":"10.0.0.1:80","weight":0}`+"\n"+`{"op":"conn","id":"x","src":"1.2.3.4:5","dst":"5.6.7.8:80"}`, uint8(10))
	f.Fuzz(func(t *testing.T, trace string, which uint8) {
		names := []string{"rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf", "twos"}
		cfg := Config{Sched: names[int(which)%len(names)]}
		if which&0x80 != 0 && (cfg.Sched == "sh" || cfg.Sched == "mh") {
			cfg.Flags = []string{cfg.Sched + "-port", cfg.Sched + "-fallback"}
		}
		err := Replay(strings.NewReader(trace), io.Discard, cfg)
		if err != nil && !strings.Contains(err.Error(), "line ") {
			t.Fatalf("error without a line number: %v", err)
		}
	})
}
