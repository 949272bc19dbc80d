package engine

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Benchmarks on a veth lab in a fresh namespace, 64-byte UDP frames over
// many flows. b.N is the number of frames the generator sends; run them
// with a fixed count, e.g.
//
//	go test -run '^$' -bench AFPacket -benchtime 2000000x ./forwarder/engine/
//
// Placement: ULVS_BENCH_GEN_CPU and ULVS_BENCH_ENGINE_CPU pin the generator
// and the engine worker (default 0 and 1 when there are two CPUs; -1 leaves
// a goroutine unpinned). ULVS_BENCH_TXRING=1 makes the engine transmit
// through the TX ring, ULVS_BENCH_GEN_TXRING=1 the generator, and
// ULVS_BENCH_RXV2=1 makes the engine receive on TPACKET_V2 rings. ULVS_BENCH_BLOCK_KB,
// _BLOCKS, _TOV_MS and _BATCH override the ring tunables. ULVS_BENCH_RPS=1 steers the receive softirq of the
// engine's interface to the engine's CPU with RPS.

const benchFlows = 64512

func benchCPU(env string, def int) int {
	if v := os.Getenv(env); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	if runtime.NumCPU() < 2 {
		return -1
	}
	return def
}

// pin locks the goroutine to its thread and the thread to cpu (cpu < 0:
// only lock).
func pin(cpu int) {
	runtime.LockOSThread()
	if cpu < 0 {
		return
	}
	var set unix.CPUSet
	set.Set(cpu)
	unix.SchedSetaffinity(0, &set)
}

// cpuBusyNS returns the busy time of cpu (everything but idle and iowait)
// from /proc/stat, in nanoseconds; cpu < 0 sums every CPU.
func cpuBusyNS(cpu int) int64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	want := "cpu "
	if cpu >= 0 {
		want = fmt.Sprintf("cpu%d ", cpu)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, want) {
			continue
		}
		var busy int64
		for i, fld := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseInt(fld, 10, 64)
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			busy += v
		}
		return busy * (1e9 / 100) // USER_HZ = 100
	}
	return 0
}

func threadCPUNS() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}

// benchFrames builds distinct 64-byte (60 without FCS) UDP frames to the
// VIP from many flows.
func benchFrames(n int) [][]byte {
	fs := make([][]byte, n)
	for i := range fs {
		src := netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%250)})
		fs[i] = ether(0x0800, ipv4(src, netip.MustParseAddr("10.0.0.100"), 17, 0, false, ports(uint16(1024+i%benchFlows), 80, 18)))
	}
	return fs
}

// generate sends n frames on e's queue 0 in batches (sendmmsg), from a
// goroutine pinned to cpu. It returns frames accepted by the kernel and the
// elapsed time.
func generate(e *AFPacket, n, cpu int, stop *atomic.Bool) (int, time.Duration) {
	pin(cpu)
	defer runtime.UnlockOSThread()
	q := e.Queues()[0]
	frames := benchFrames(4096)
	batch := NewBatch(q.BatchSize(), 128)
	start := time.Now()
	sent, k := 0, 0
	for sent < n && !stop.Load() {
		m := min(len(batch), n-sent)
		for i := 0; i < m; i++ {
			f := frames[k%len(frames)]
			k++
			batch[i].Off, batch[i].Len = Headroom, copy(batch[i].Buf[Headroom:], f)
		}
		w, err := q.Write(batch[:m])
		if err != nil {
			break
		}
		sent += w // frames the kernel refused are in the generator's TxDropped
	}
	return sent, time.Since(start)
}

type benchLab struct {
	ns  *testNS
	gen *AFPacket
}

// newBenchLab builds gen(eb) -> (ea) engine and, for forwarding,
// engine (ec) -> (ed) sink.
func newBenchLab(b *testing.B, forward bool) *benchLab {
	ns := newNS(b)
	ns.veth("ea", "eb")
	if forward {
		ns.veth("ec", "ed")
	}
	if os.Getenv("ULVS_BENCH_RPS") == "1" {
		if cpu := benchCPU("ULVS_BENCH_ENGINE_CPU", 1); cpu >= 0 {
			ns.exec("sh", "-c", fmt.Sprintf("echo %x > /sys/class/net/ea/queues/rx-0/rps_cpus", 1<<cpu))
		}
	}
	// The generator's socket receives nothing (empty filter).
	gen := openIn(b, ns, AFPacketConfig{Public: "eb", Workers: 1, Filter: &FilterSpec{}, TxRing: os.Getenv("ULVS_BENCH_GEN_TXRING") == "1"})
	return &benchLab{ns: ns, gen: gen}
}

func (l *benchLab) rxPackets(dev string) int64 {
	out := l.ns.exec("cat", "/sys/class/net/"+dev+"/statistics/rx_packets")
	v, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	return v
}

// BenchmarkGenerator measures the generator's own ceiling: frames sent into
// the veth with nothing but the kernel receiving them (and dropping them:
// the interface has no address).
func BenchmarkGenerator(b *testing.B) {
	l := newBenchLab(b, false)
	genCPU := benchCPU("ULVS_BENCH_GEN_CPU", 0)
	var stop atomic.Bool
	busy0 := cpuBusyNS(genCPU)
	b.ResetTimer()
	sent, el := generate(l.gen, b.N, genCPU, &stop)
	b.StopTimer()
	busy := cpuBusyNS(genCPU) - busy0
	b.ReportMetric(float64(sent)/el.Seconds(), "pps")
	b.ReportMetric(float64(el.Nanoseconds())/float64(sent), "ns/pkt")
	b.ReportMetric(float64(busy)/float64(sent), "gencpu-ns/pkt")
	b.ReportMetric(0, "ns/op")
	s := l.gen.Stats()
	b.Logf("gen cpu %d: sent %d in %v, tx calls %d, tx dropped %d", genCPU, sent, el, s.TxCalls, s.TxDropped)
}

// benchEngine runs the generator against an engine worker that reads (and,
// with forward, writes every batch out the private interface).
func benchEngine(b *testing.B, forward bool) {
	l := newBenchLab(b, forward)
	cfg := AFPacketConfig{Public: "ea", Workers: 1, Filter: &FilterSpec{VIPs: []VIP{{Addr: netip.MustParseAddr("10.0.0.100"), Protocol: 17, Port: 80}}}}
	if forward {
		cfg.Private = "ec"
	}
	if v, err := strconv.Atoi(os.Getenv("ULVS_BENCH_BLOCK_KB")); err == nil {
		cfg.BlockSize = v << 10
	}
	if v, err := strconv.Atoi(os.Getenv("ULVS_BENCH_BLOCKS")); err == nil {
		cfg.BlockCount = v
	}
	if v, err := strconv.Atoi(os.Getenv("ULVS_BENCH_TOV_MS")); err == nil {
		cfg.BlockTimeout = time.Duration(v) * time.Millisecond
	}
	if v, err := strconv.Atoi(os.Getenv("ULVS_BENCH_BATCH")); err == nil {
		cfg.BatchSize = v
	}
	cfg.TxRing = os.Getenv("ULVS_BENCH_TXRING") == "1"
	cfg.RxRingV2 = os.Getenv("ULVS_BENCH_RXV2") == "1"
	e := openIn(b, l.ns, cfg)
	b.Logf("config: rx v2 %v, txring %v, block %d KiB x %d, timeout %v, batch %d", e.cfg.RxRingV2, e.cfg.TxRing, e.cfg.BlockSize>>10, e.cfg.BlockCount, e.cfg.BlockTimeout, e.cfg.BatchSize)
	genCPU, engCPU := benchCPU("ULVS_BENCH_GEN_CPU", 0), benchCPU("ULVS_BENCH_ENGINE_CPU", 1)
	var stop atomic.Bool
	var received atomic.Int64
	var engNS int64
	var wg sync.WaitGroup
	var lastRx atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		pin(engCPU)
		defer runtime.UnlockOSThread()
		t0 := threadCPUNS()
		q := e.Queues()[0]
		pkts := NewBatch(q.BatchSize(), 0)
		for {
			n, err := q.Read(pkts)
			if err != nil {
				break
			}
			if forward {
				for i := 0; i < n; i++ {
					p := &pkts[i]
					// Stand-in for a DR rewrite: new destination MAC, out the other side.
					copy(p.Buf[p.Off:p.Off+6], testDstMAC[:])
					p.Iface = Private
				}
				q.Write(pkts[:n])
			}
			received.Add(int64(n))
			lastRx.Store(time.Now().UnixNano())
		}
		engNS = threadCPUNS() - t0
	}()
	var sinkBefore int64
	if forward {
		sinkBefore = l.rxPackets("ed")
	}
	busyEng0, busyAll0 := cpuBusyNS(engCPU), cpuBusyNS(-1)
	b.ResetTimer()
	start := time.Now()
	sent, _ := generate(l.gen, b.N, genCPU, &stop)
	// Wait until the engine has drained what it will get.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st := e.Stats()
		if int64(st.KernelDrops)+received.Load() >= int64(sent) {
			break
		}
		if l := lastRx.Load(); l != 0 && time.Since(time.Unix(0, l)) > 300*time.Millisecond {
			break
		}
		time.Sleep(time.Millisecond)
	}
	end := time.Unix(0, lastRx.Load())
	b.StopTimer()
	busyEng, busyAll := cpuBusyNS(engCPU)-busyEng0, cpuBusyNS(-1)-busyAll0
	st := e.Stats()
	e.Close()
	wg.Wait()
	el := end.Sub(start)
	got := received.Load()
	if got == 0 {
		b.Fatalf("engine received nothing (sent %d)", sent)
	}
	b.ReportMetric(float64(got)/el.Seconds(), "rx-pps")
	b.ReportMetric(float64(el.Nanoseconds())/float64(got), "ns/pkt")
	b.ReportMetric(float64(engNS)/float64(got), "thread-cpu-ns/pkt")
	if engCPU >= 0 {
		b.ReportMetric(float64(busyEng)/float64(got), "enginecpu-ns/pkt")
	}
	b.ReportMetric(float64(busyAll)/float64(got), "allcpu-ns/pkt")
	b.ReportMetric(100*float64(st.KernelDrops)/float64(sent), "%ringdrop")
	b.ReportMetric(0, "ns/op")
	if forward {
		delivered := l.rxPackets("ed") - sinkBefore
		b.ReportMetric(float64(delivered)/el.Seconds(), "fwd-pps")
		b.Logf("delivered %d of %d forwarded (tx dropped %d, tx calls %d)", delivered, st.TxFrames, st.TxDropped, st.TxCalls)
	}
	b.Logf("gen cpu %d, engine cpu %d, rps %q: sent %d, received %d, ring drops %d, freezes %d, polls %d, elapsed %v",
		genCPU, engCPU, os.Getenv("ULVS_BENCH_RPS"), sent, got, st.KernelDrops, st.KernelFreezes, st.RxPolls, el)
}

func BenchmarkAFPacketRX(b *testing.B)   { benchEngine(b, false) }
func BenchmarkAFPacketRXTX(b *testing.B) { benchEngine(b, true) }

// BenchmarkTUNLoop measures the TUN engine: each iteration writes a batch
// of 64 packets into the device, the kernel forwards them (to another
// address on the device's subnet) straight back into the device, and the
// engine reads them. One read(2) or write(2) per packet, plus the kernel's
// forwarding: ns/op is per packet.
func BenchmarkTUNLoop(b *testing.B) {
	ns := newNS(b)
	var e *TUN
	var err error
	ns.do(func() { e, err = OpenTUN(TUNConfig{Name: "ulvstunb", Workers: 1}) })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	ns.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	ns.exec("sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0")
	ns.exec("sysctl", "-qw", "net.ipv4.conf.ulvstunb.send_redirects=0")
	ns.exec("ip", "addr", "add", "10.9.2.1/24", "dev", "ulvstunb")
	ns.exec("ip", "link", "set", "ulvstunb", "up")
	q := e.Queues()[0]
	out := NewBatch(64, 0)
	for i := range out {
		ip := ipv4(netip.AddrFrom4([4]byte{10, 9, 2, 2}), netip.AddrFrom4([4]byte{10, 9, 2, 3}), 17, 0, false, ports(uint16(1000+i), 80, 18))
		ip[10], ip[11] = 0, 0
		c := ipChecksum(ip[:20])
		ip[10], ip[11] = byte(c>>8), byte(c)
		out[i].Len = copy(out[i].Buf[Headroom:], ip)
	}
	in := NewBatch(64, 0)
	guard := time.AfterFunc(time.Minute, func() { e.Close() })
	defer guard.Stop()
	pin(benchCPU("ULVS_BENCH_ENGINE_CPU", 1))
	defer runtime.UnlockOSThread()
	t0 := threadCPUNS()
	b.ResetTimer()
	for done := 0; done < b.N; {
		m := min(len(out), b.N-done)
		if n, err := q.Write(out[:m]); err != nil || n != m {
			b.Fatalf("Write = %d, %v", n, err)
		}
		for got := 0; got < m; {
			n, err := q.Read(in)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		done += m
	}
	b.StopTimer()
	b.ReportMetric(float64(threadCPUNS()-t0)/float64(b.N), "thread-cpu-ns/pkt")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pps")
}

// BenchmarkFrameCopy is the cost Read pays per frame for copying it out of
// the ring into the caller's slot (the alternative, zero-copy views, would
// save only this).
func BenchmarkFrameCopy(b *testing.B) {
	for _, size := range []int{60, 590, 1514} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			ring := make([]byte, 1<<20)
			pkts := NewBatch(64, 0)
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				p := &pkts[i&63]
				off := (i * 2048) & (len(ring) - 1)
				copy(p.Buf[Headroom:], ring[off:off+size])
			}
		})
	}
}

// BenchmarkAFPacketPingPong measures the latency the engine adds at a low
// rate: one frame at a time goes from a plain socket on eb into the
// engine on ea, which echoes it back out ea; ns/op is the round trip.
// ULVS_BENCH_* tunables apply (a TPACKET_V3 block waits up to its timeout).
func BenchmarkAFPacketPingPong(b *testing.B) {
	ns := newNS(b)
	ns.veth("ea", "eb")
	cfg := AFPacketConfig{Public: "ea", Workers: 1, Filter: &FilterSpec{VIPs: []VIP{{Addr: netip.MustParseAddr("10.0.0.100")}}}}
	if v, err := strconv.Atoi(os.Getenv("ULVS_BENCH_BLOCK_KB")); err == nil {
		cfg.BlockSize = v << 10
	}
	if v, err := strconv.Atoi(os.Getenv("ULVS_BENCH_TOV_MS")); err == nil {
		cfg.BlockTimeout = time.Duration(v) * time.Millisecond
	}
	cfg.RxRingV2 = os.Getenv("ULVS_BENCH_RXV2") == "1"
	e := openIn(b, ns, cfg)
	peer := ns.rawSock("eb")
	go func() {
		q := e.Queues()[0]
		pkts := NewBatch(q.BatchSize(), 0)
		for {
			n, err := q.Read(pkts)
			if err != nil {
				return
			}
			q.Write(pkts[:n])
		}
	}()
	frame := udp4("192.0.2.1", "10.0.0.100", 1000, 80)
	buf := make([]byte, 2048)
	b.ResetTimer()
	late := 0
	for i := 0; i < b.N; i++ {
		peer.send(b, frame)
		// recv waits 200ms; on a loaded machine allow a few rounds.
		tries := 0
		for peer.recv(buf) == nil {
			if tries++; tries == 25 {
				b.Fatalf("echo %d lost (engine stats %+v)", i, e.Stats())
			}
		}
		if tries > 0 {
			late++
		}
	}
	b.StopTimer()
	if late > 0 {
		b.Logf("%d echoes took more than 200ms", late)
	}
	b.Logf("v2 %v block %d KiB timeout %v", e.cfg.RxRingV2, e.cfg.BlockSize>>10, e.cfg.BlockTimeout)
}
