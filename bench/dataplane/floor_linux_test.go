package dataplane

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ulvs/ulvs/forwarder/engine"
)

// TestFloorLoop runs the engine floor's loop on a fake engine: every frame
// must leave by the private interface with the director's MAC as source
// and one of the real servers' as destination, the rest of the frame
// untouched; one flow always goes to the same server, the flows spread
// over all of them, and the loop ends when the engine closes.
func TestFloorLoop(t *testing.T) {
	const flows = 256
	cli, _ := net.ParseMAC("02:1a:0a:00:00:02")
	dir, _ := net.ParseMAC("02:1a:0a:00:00:01")
	priv, _ := net.ParseMAC("02:1a:0a:00:01:01")
	macs := []net.HardwareAddr{{2, 0x1a, 10, 0, 1, 11}, {2, 0x1a, 10, 0, 1, 12}, {2, 0x1a, 10, 0, 1, 13}}
	frames := buildFrames(flowSpec{SrcMAC: cli, DstMAC: dir, Src: netip.MustParseAddr("10.0.0.2"),
		Dsts: []netip.Addr{netip.MustParseAddr("10.0.0.100")}, DstPort: 9, Flows: flows})

	f := engine.NewFake(1, 16, 2*flows)
	done := make(chan error, 1)
	go func() { done <- floorLoop(f.Queues()[0], -1, 0, priv, macs) }()
	// Every flow twice, the second round after the first was sent.
	var sent []engine.FakeFrame
	for round := 0; round < 2; round++ {
		for _, fr := range frames {
			if err := f.Inject(0, engine.Public, fr); err != nil {
				t.Fatal(err)
			}
		}
		for len(sent) < (round+1)*flows {
			select {
			case s := <-f.Sent():
				sent = append(sent, s)
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: %d frames sent, want %d", round, len(sent), (round+1)*flows)
			}
		}
	}
	f.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("loop ended with %v, want nil after Close", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("loop still running 5 s after Close")
	}

	perServer := map[string]int{}
	serverOf := map[string]string{} // UDP source port -> server MAC
	for i, s := range sent {
		in := frames[i%flows]
		if s.Iface != engine.Private {
			t.Fatalf("frame %d left by %v, want the private interface", i, s.Iface)
		}
		if !bytes.Equal(s.Frame[6:12], priv) {
			t.Fatalf("frame %d source MAC %x, want %x", i, s.Frame[6:12], priv)
		}
		if !bytes.Equal(s.Frame[12:], in[12:]) {
			t.Fatalf("frame %d changed beyond the Ethernet addresses", i)
		}
		dst := net.HardwareAddr(s.Frame[0:6]).String()
		known := false
		for _, m := range macs {
			known = known || m.String() == dst
		}
		if !known {
			t.Fatalf("frame %d to %s, not a real server", i, dst)
		}
		port := string(in[34:36])
		if prev, ok := serverOf[port]; ok && prev != dst {
			t.Fatalf("flow %d went to %s, then to %s", i%flows, prev, dst)
		}
		serverOf[port] = dst
		if i < flows {
			perServer[dst]++
		}
	}
	for _, m := range macs {
		if n := perServer[m.String()]; n < flows/len(macs)/2 {
			t.Errorf("server %s got %d of %d flows: %v", m, n, flows, perServer)
		}
	}
}
