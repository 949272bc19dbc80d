package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// openIn opens an AF_PACKET engine inside ns and closes it in Cleanup.
func openIn(t testing.TB, ns *testNS, cfg AFPacketConfig) *AFPacket {
	t.Helper()
	var e *AFPacket
	var err error
	ns.do(func() { e, err = OpenAFPacket(cfg) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// reader drains one queue in a goroutine until stop; it records copies of
// the frames it reads.
type reader struct {
	mu     sync.Mutex
	frames [][]byte
	ifaces []Iface
	done   chan error
}

func startReader(q Queue) *reader {
	r := &reader{done: make(chan error, 1)}
	go func() {
		pkts := NewBatch(q.BatchSize(), 0)
		for {
			n, err := q.Read(pkts)
			if err != nil {
				r.done <- err
				return
			}
			r.mu.Lock()
			for i := 0; i < n; i++ {
				r.frames = append(r.frames, bytes.Clone(pkts[i].Frame()))
				r.ifaces = append(r.ifaces, pkts[i].Iface)
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *reader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

func (r *reader) snapshot() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.frames...)
}

// waitFor polls cond until true or the deadline; it reports whether cond
// became true. It is a bound against hanging, not a timing assertion.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

func TestAFPacketFilterReceive(t *testing.T) {
	t.Run("v3", func(t *testing.T) { testFilterReceive(t, false) })
	t.Run("v2", func(t *testing.T) { testFilterReceive(t, true) })
}

func testFilterReceive(t *testing.T, v2 bool) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	vip := netip.MustParseAddr("10.0.0.100")
	rs := netip.MustParseAddr("10.0.1.11")
	spec := &FilterSpec{
		VIPs:        []VIP{{Addr: vip, Protocol: 17, Port: 53}, {Addr: vip6, Protocol: 6, Port: 443}},
		RealServers: []netip.Addr{rs, rs6},
		ARP:         true,
		NDP:         true,
	}
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 1, Filter: spec, RxRingV2: v2})
	gen := ns.rawSock("eb")
	r := startReader(e.Queues()[0])

	accepted := [][]byte{
		udp4("192.0.2.1", "10.0.0.100", 1000, 53),
		arpFrame(),
		udp4("10.0.1.11", "192.0.2.1", 80, 1000),
		ether(0x0800, ipv4(netip.MustParseAddr("192.0.2.1"), vip, 1, 0, false, icmpMsg(8))),
		ether(0x86dd, ipv6(cli6, vip6, 6, ports(40000, 443, 20))),
		ether(0x86dd, ipv6(rs6, cli6, 6, ports(443, 40000, 20))),
		ns6("fe80::1", vip6),
	}
	rejected := [][]byte{
		udp4("192.0.2.1", "10.0.0.100", 1000, 54),
		udp4("192.0.2.1", "10.0.0.99", 1000, 53),
		ether(0x0800, ipv4(netip.MustParseAddr("192.0.2.1"), vip, 6, 0, false, ports(1000, 53, 20))),
		ether(0x88cc, make([]byte, 46)),
		ether(0x86dd, ipv6(cli6, vip6, 6, ports(40000, 80, 20))),
		ether(0x86dd, ipv6(cli6, rs6, 6, ports(40000, 443, 20))),
		ns6("fe80::1", netip.MustParseAddr("2001:db8::99")),
	}
	var want [][]byte
	for i := 0; i < 10; i++ {
		for j := range accepted {
			f := bytes.Clone(accepted[j])
			f[11] = byte(i) // distinct content per frame (last byte of the source MAC)
			gen.send(t, f)
			want = append(want, f)
			g := bytes.Clone(rejected[j])
			g[11] = byte(i)
			gen.send(t, g)
		}
	}
	if !waitFor(5*time.Second, func() bool { return r.count() >= len(want) }) {
		t.Fatalf("received %d frames, want %d", r.count(), len(want))
	}
	// A last accepted frame marks the end: nothing rejected may arrive before it.
	sentinel := udp4("192.0.2.9", "10.0.0.100", 9999, 53)
	gen.send(t, sentinel)
	if !waitFor(5*time.Second, func() bool { return r.count() >= len(want)+1 }) {
		t.Fatal("sentinel not received")
	}
	got := r.snapshot()
	want = append(want, sentinel)
	if len(got) != len(want) {
		t.Fatalf("received %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d:\n got % x\nwant % x", i, got[i], want[i])
		}
	}
	s := e.Stats()
	if s.RxFrames != uint64(len(want)) || s.KernelPackets != uint64(len(want)) || s.KernelDrops != 0 {
		t.Errorf("stats %+v: want RxFrames=KernelPackets=%d, no drops", s, len(want))
	}
	e.Close()
	if err := <-r.done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
}

func TestAFPacketSetFilter(t *testing.T) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	specA := FilterSpec{VIPs: []VIP{{Addr: netip.MustParseAddr("10.0.0.1")}}}
	specB := FilterSpec{VIPs: []VIP{{Addr: netip.MustParseAddr("10.0.0.2")}}}
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 2, Filter: &specA})
	gen := ns.rawSock("eb")
	r0, r1 := startReader(e.Queues()[0]), startReader(e.Queues()[1])
	total := func() int { return r0.count() + r1.count() }
	dsts := func() map[string]int {
		m := map[string]int{}
		for _, r := range []*reader{r0, r1} {
			for _, f := range r.snapshot() {
				m[netip.AddrFrom4([4]byte(f[30:34])).String()]++
			}
		}
		return m
	}
	for i := 0; i < 20; i++ {
		gen.send(t, udp4("192.0.2.1", "10.0.0.2", uint16(1000+i), 1))
		gen.send(t, udp4("192.0.2.1", "10.0.0.1", uint16(1000+i), 1))
	}
	if !waitFor(5*time.Second, func() bool { return total() >= 20 }) {
		t.Fatalf("got %v before the swap", dsts())
	}
	if err := e.SetFilter(specB); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		gen.send(t, udp4("192.0.2.1", "10.0.0.1", uint16(2000+i), 1))
		gen.send(t, udp4("192.0.2.1", "10.0.0.2", uint16(2000+i), 1))
	}
	if !waitFor(5*time.Second, func() bool { return total() >= 40 }) {
		t.Fatalf("got %v after the swap", dsts())
	}
	// Sentinel under the new filter: nothing else may have slipped in.
	gen.send(t, udp4("192.0.2.1", "10.0.0.2", 9999, 1))
	waitFor(5*time.Second, func() bool { return total() >= 41 })
	got := dsts()
	if got["10.0.0.1"] != 20 || got["10.0.0.2"] != 21 || len(got) != 2 {
		t.Fatalf("destinations received %v, want 20 to 10.0.0.1 (old filter) and 21 to 10.0.0.2 (new)", got)
	}
	if err := e.SetFilter(FilterSpec{VIPs: []VIP{{Addr: netip.MustParseAddr("10.0.0.2"), Port: 5}}}); err == nil {
		t.Fatal("SetFilter accepted a port without protocol")
	}
}

func TestAFPacketFanout(t *testing.T) {
	t.Run("v3", func(t *testing.T) { testFanout(t, false) })
	t.Run("v2", func(t *testing.T) { testFanout(t, true) })
}

func testFanout(t *testing.T, v2 bool) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 2, RxRingV2: v2, Filter: &FilterSpec{VIPs: []VIP{{Addr: netip.MustParseAddr("10.0.0.100")}}}})
	if g, _ := e.FanoutGroups(); g == 0 {
		t.Log("fanout group id 0 (allowed, but unusual)")
	}
	gen := ns.rawSock("eb")
	r0, r1 := startReader(e.Queues()[0]), startReader(e.Queues()[1])
	const flows, per = 64, 8
	for i := 0; i < per; i++ {
		for f := 0; f < flows; f++ {
			gen.send(t, udp4(fmt.Sprintf("192.0.2.%d", 1+f%8), "10.0.0.100", uint16(10000+f), 80))
		}
	}
	if !waitFor(5*time.Second, func() bool { return r0.count()+r1.count() >= flows*per }) {
		t.Fatalf("received %d+%d, want %d", r0.count(), r1.count(), flows*per)
	}
	where := map[uint16]map[int]int{} // flow (source port) -> worker -> frames
	for w, r := range []*reader{r0, r1} {
		for _, f := range r.snapshot() {
			sp := binary.BigEndian.Uint16(f[34:36])
			if where[sp] == nil {
				where[sp] = map[int]int{}
			}
			where[sp][w]++
		}
	}
	if len(where) != flows {
		t.Fatalf("%d flows seen, want %d", len(where), flows)
	}
	perWorker := [2]int{}
	for sp, m := range where {
		if len(m) != 1 {
			t.Errorf("flow %d split across workers: %v", sp, m)
		}
		for w := range m {
			perWorker[w]++
		}
	}
	if perWorker[0] == 0 || perWorker[1] == 0 {
		t.Fatalf("fanout did not spread: flows per worker %v", perWorker)
	}
	t.Logf("flows per worker: %v", perWorker)
}

func TestAFPacketBatchedTransmit(t *testing.T) {
	t.Run("sendmmsg", func(t *testing.T) { testBatchedTransmit(t, false, false) })
	t.Run("sendmmsg-qdisc", func(t *testing.T) { testBatchedTransmit(t, false, true) })
	t.Run("txring", func(t *testing.T) { testBatchedTransmit(t, true, false) })
	t.Run("txring-qdisc", func(t *testing.T) { testBatchedTransmit(t, true, true) })
}

func testBatchedTransmit(t *testing.T, txRing, qdisc bool) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	ns.veth("ec", "ed")
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Private: "ec", Workers: 2, BatchSize: 32, TxRing: txRing, TxRingFrames: 64, UseQdisc: qdisc})
	capPub, capPriv := ns.rawSock("eb"), ns.rawSock("ed")
	q := e.Queues()[0]
	pkts := NewBatch(80, 0) // more than BatchSize: Write must split
	var want [2][][]byte
	for i := range pkts {
		f := udp4("10.0.0.100", "10.0.1.11", uint16(i), 80)
		p := &pkts[i]
		p.Iface = Iface(i % 2)
		// Vary the start offset, as encapsulation does.
		p.Off = Headroom - (i % 3 * 20)
		p.Len = copy(p.Buf[p.Off:], f)
		want[p.Iface] = append(want[p.Iface], f)
	}
	n, err := q.Write(pkts)
	if err != nil || n != len(pkts) {
		t.Fatalf("Write = %d, %v; want %d", n, err, len(pkts))
	}
	buf := make([]byte, 4096)
	for iface, c := range []*rawSock{capPub, capPriv} {
		var got [][]byte
		for {
			f := c.recv(buf)
			if f == nil {
				break
			}
			got = append(got, bytes.Clone(f))
		}
		if len(got) != len(want[iface]) {
			t.Fatalf("%s: captured %d frames, want %d", Iface(iface), len(got), len(want[iface]))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[iface][i]) {
				t.Fatalf("%s frame %d differs:\n got % x\nwant % x", Iface(iface), i, got[i], want[iface][i])
			}
		}
	}
	s := e.Stats()
	if s.TxFrames != 80 || s.TxDropped != 0 {
		t.Errorf("stats %+v", s)
	}
	// The engine's own receive rings (no filter here) must not get the
	// frames it sent.
	if s.KernelPackets != 0 {
		t.Errorf("receive rings got %d of the engine's own outgoing frames", s.KernelPackets)
	}
	// 80 frames, 40 per interface: with batches of 32, 2 sendmmsg per
	// interface; with the ring, one kick per interface.
	if want := map[bool]uint64{false: 4, true: 2}[txRing]; s.TxCalls != want {
		t.Errorf("TxCalls = %d, want %d (batched)", s.TxCalls, want)
	}
	if txRing {
		// Reuse every slot of the 64-frame rings several times.
		for round := 0; round < 5; round++ {
			if n, err := q.Write(pkts); n != len(pkts) || err != nil {
				t.Fatalf("round %d: Write = %d, %v", round, n, err)
			}
			for _, c := range []*rawSock{capPub, capPriv} {
				for i := 0; i < 40; i++ {
					if f := c.recv(buf); f == nil {
						t.Fatalf("round %d: frame %d missing", round, i)
					}
				}
			}
		}
	}
	// Bad slots are dropped and counted, not sent.
	bad := NewBatch(2, 0)
	bad[0].Len = 0
	bad[1].Iface, bad[1].Len = Iface(7), 60
	if n, _ := q.Write(bad); n != 0 {
		t.Errorf("Write of bad slots sent %d", n)
	}
	if s2 := e.Stats(); s2.TxDropped != 2 {
		t.Errorf("TxDropped = %d, want 2", s2.TxDropped)
	}
}

func TestAFPacketCloseUnblocks(t *testing.T) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	before := runtime.NumGoroutine()
	var e *AFPacket
	var err error
	ns.do(func() { e, err = OpenAFPacket(AFPacketConfig{Public: "ea", Workers: 2, PollTimeout: time.Hour}) })
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for _, q := range e.Queues() {
		go func() {
			_, err := q.Read(NewBatch(8, 0))
			done <- err
		}()
	}
	// Both readers must be asleep in poll before Close.
	if !waitFor(10*time.Second, func() bool { return e.Stats().RxPolls >= 2 }) {
		t.Fatal("readers never reached poll")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// PollTimeout is an hour: only the eventfd wake-up can return these.
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("Read after Close: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Read still blocked 10s after Close")
		}
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := e.Queues()[0].Write(NewBatch(1, 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if !waitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		t.Fatalf("goroutines: %d before, %d after Close", before, runtime.NumGoroutine())
	}
}

func TestAFPacketConfigErrors(t *testing.T) {
	for _, c := range []AFPacketConfig{
		{},
		{Public: "x", Private: "x"},
		{Public: "x", BlockSize: 5000},
		{Public: "x", BlockTimeout: time.Microsecond},
		{Public: "x", BatchSize: 5000},
		{Public: "x", Workers: -1},
		{Public: "x", Filter: &FilterSpec{VIPs: []VIP{{}}}},
	} {
		if _, err := OpenAFPacket(c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: err %v, want ErrBadConfig", c, err)
		}
	}
	ns := newNS(t)
	var err error
	ns.do(func() { _, err = OpenAFPacket(AFPacketConfig{Public: "nosuchdev0"}) })
	if !errors.Is(err, ErrBadConfig) {
		t.Errorf("missing interface: %v", err)
	}
}

func TestAFPacketZeroAlloc(t *testing.T) {
	t.Run("v3-sendmmsg", func(t *testing.T) { testZeroAlloc(t, false, false) })
	t.Run("v3-txring", func(t *testing.T) { testZeroAlloc(t, true, false) })
	t.Run("v2-sendmmsg", func(t *testing.T) { testZeroAlloc(t, false, true) })
}

func testZeroAlloc(t *testing.T, txRing, v2 bool) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	rx := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 1, RxRingV2: v2})
	tx := openIn(t, ns, AFPacketConfig{Public: "eb", Workers: 1, Filter: &FilterSpec{}, TxRing: txRing})
	rq, tq := rx.Queues()[0], tx.Queues()[0]
	out := NewBatch(16, 0)
	for i := range out {
		out[i].Len = copy(out[i].Buf[Headroom:], udp4("192.0.2.1", "10.0.0.100", uint16(i), 80))
	}
	// A lost frame would block Read forever: bound the test instead.
	guard := time.AfterFunc(time.Minute, func() { rx.Close() })
	defer guard.Stop()
	roundTrips(t, tq, rq, out, 10)
}

// roundTrips writes out on tq and reads the frames back from rq, first
// warm times, then under testing.AllocsPerRun: every frame must come back
// whole and in order, and the steady state must not allocate.
func roundTrips(t *testing.T, tq, rq Queue, out []Packet, warm int) {
	t.Helper()
	in := NewBatch(2*len(out), 0)
	loop := func() {
		if n, err := tq.Write(out); err != nil || n != len(out) {
			t.Fatalf("Write %d %v", n, err)
		}
		for got := 0; got < len(out); {
			n, err := rq.Read(in[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
		for i := range out {
			if !bytes.Equal(in[i].Frame(), out[i].Frame()) {
				t.Fatalf("frame %d: got % x want % x", i, in[i].Frame(), out[i].Frame())
			}
		}
	}
	for i := 0; i < warm; i++ {
		loop()
	}
	if a := testing.AllocsPerRun(50, loop); a != 0 {
		t.Fatalf("steady-state Write+Read allocates %.1f times per batch", a)
	}
}

// An idle Read sleeps in poll for PollTimeout each round; it must not spin
// (ppoll writes the time left back into its timeout argument, which once
// made every poll after the first return at once).
func TestAFPacketIdleReadSleeps(t *testing.T) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 1, PollTimeout: 20 * time.Millisecond, Filter: &FilterSpec{}})
	done := make(chan error, 1)
	go func() {
		_, err := e.Queues()[0].Read(NewBatch(4, 0))
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	e.Close()
	<-done
	// About 15 rounds of 20ms; a spinning reader makes hundreds of thousands.
	if p := e.Stats().RxPolls; p > 100 {
		t.Fatalf("idle Read polled %d times in 300ms with a 20ms timeout", p)
	}
}

// A Write from another goroutine must not wait for a Read sleeping in poll.
func TestAFPacketWriteWhileReadBlocks(t *testing.T) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 1, PollTimeout: time.Hour, Filter: &FilterSpec{}})
	capture := ns.rawSock("eb")
	q := e.Queues()[0]
	readDone := make(chan error, 1)
	go func() {
		_, err := q.Read(NewBatch(4, 0))
		readDone <- err
	}()
	if !waitFor(10*time.Second, func() bool { return e.Stats().RxPolls >= 1 }) {
		t.Fatal("reader never reached poll")
	}
	pkts := NewBatch(1, 0)
	frame := udp4("10.0.0.100", "192.0.2.1", 80, 1000)
	pkts[0].Len = copy(pkts[0].Buf[Headroom:], frame)
	wrote := make(chan int, 1)
	go func() {
		n, _ := q.Write(pkts)
		wrote <- n
	}()
	select {
	case n := <-wrote:
		if n != 1 {
			t.Fatalf("Write = %d", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Write blocked behind a Read in poll")
	}
	if f := capture.recv(make([]byte, 2048)); !bytes.Equal(f, frame) {
		t.Fatalf("captured % x", f)
	}
	e.Close()
	if err := <-readDone; !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// One worker receives on both interfaces and tags each frame with the
// interface it came from.
func TestAFPacketTwoInterfaces(t *testing.T) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	ns.veth("ec", "ed")
	vip, rs := netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("10.0.1.11")
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Private: "ec", Workers: 1,
		Filter: &FilterSpec{VIPs: []VIP{{Addr: vip, Protocol: 17, Port: 80}}, RealServers: []netip.Addr{rs}}})
	if e.Interface(Public).Name != "ea" || e.Interface(Private).Name != "ec" || e.Interface(Iface(9)) != nil {
		t.Fatalf("Interface() = %v %v", e.Interface(Public), e.Interface(Private))
	}
	pub, priv := ns.rawSock("eb"), ns.rawSock("ed")
	r := startReader(e.Queues()[0])
	for i := 0; i < 50; i++ {
		pub.send(t, udp4("192.0.2.1", "10.0.0.100", uint16(1000+i), 80)) // client -> VIP
		priv.send(t, udp4("10.0.1.11", "192.0.2.1", 80, uint16(1000+i))) // NAT return
		priv.send(t, udp4("10.0.1.12", "192.0.2.1", 80, uint16(1000+i))) // not a real server: filtered
	}
	if !waitFor(5*time.Second, func() bool { return r.count() >= 100 }) {
		t.Fatalf("received %d, want 100", r.count())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var n [2]int
	for i, f := range r.frames {
		src := netip.AddrFrom4([4]byte(f[26:30]))
		want := Public
		if src == rs {
			want = Private
		} else if src != netip.MustParseAddr("192.0.2.1") {
			t.Fatalf("frame from %v got through the filter", src)
		}
		if r.ifaces[i] != want {
			t.Fatalf("frame from %v tagged %v, want %v", src, r.ifaces[i], want)
		}
		n[want]++
	}
	if n[Public] != 50 || n[Private] != 50 {
		t.Fatalf("per interface %v, want 50/50", n)
	}
}

// The receive sockets are taps, which the kernel runs before the ingress
// hooks: a netdev-ingress nftables drop of VIP traffic keeps the kernel's own
// stack away from it (no second forwarding, no RST) while the engine still
// receives every frame.
func TestAFPacketReceivesBeforeIngressDrop(t *testing.T) {
	ns := newNS(t)
	ns.veth("ea", "eb")
	ns.exec("nft", "add table netdev ulvstest")
	ns.exec("nft", "add chain netdev ulvstest in { type filter hook ingress device ea priority 0 ; }")
	ns.exec("nft", "add rule netdev ulvstest in ip daddr 10.0.0.100 counter drop")
	e := openIn(t, ns, AFPacketConfig{Public: "ea", Workers: 1, Filter: &FilterSpec{VIPs: []VIP{{Addr: netip.MustParseAddr("10.0.0.100")}}}})
	gen := ns.rawSock("eb")
	r := startReader(e.Queues()[0])
	for i := 0; i < 20; i++ {
		gen.send(t, udp4("192.0.2.1", "10.0.0.100", uint16(i), 80))
	}
	if !waitFor(5*time.Second, func() bool { return r.count() >= 20 }) {
		t.Fatalf("engine received %d of 20 frames dropped at ingress", r.count())
	}
	if out := ns.exec("nft", "list chain netdev ulvstest in"); !strings.Contains(out, "packets 20 ") {
		t.Fatalf("ingress rule did not see the 20 frames:\n%s", out)
	}
}
