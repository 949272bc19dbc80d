package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/ulvs/ulvs/forwarder/engine"
	"github.com/ulvs/ulvs/lab"
)

// The engine floor: ulvsd's packet I/O on this lab with no LVS work.
//
// floorRow opens the same engine ulvsd opens (AF_PACKET with the XDP fast
// lane in b.o.XDP mode, one worker, ulvsd's defaults) on the director's
// interfaces, and runs a loop on a thread pinned to the director CPU that
// does the least a DR director can do: it reads each batch, puts a real
// server's MAC (chosen by a hash of the frame's addresses and ports) and the
// director's own in the Ethernet header, and writes the batch out of the
// private interface. No parsing beyond that, no scheduler, no connection
// table, no counters of its own. What it costs per packet is what any
// forwarder built on this engine pays on this lab before doing anything
// an LVS director does; ulvsd's rows are that plus ulvs's own work.
func (b *bench) floorRow(ctx context.Context) (Row, error) {
	name := floorName + ", XDP " + b.o.XDP
	dir := b.host("dir1")
	pub, _ := dir.Iface("public")
	priv, ok := dir.Iface("private")
	if !ok {
		return Row{Name: name}, errors.New("engine floor: the director has no private interface")
	}
	var rsMACs []net.HardwareAddr
	for _, h := range b.l.Plan.RealServers() {
		rsMACs = append(rsMACs, h.Ifaces[0].HardwareAddr())
	}
	var eng *engine.AFPacket
	err := lab.DoInNetns(b.nsPath("dir1"), func() error {
		var err error
		eng, err = engine.OpenAFPacket(engine.AFPacketConfig{
			Public:  pub.Name,
			Private: priv.Name,
			Workers: 1,
			XDP:     b.o.XDP,
			Filter:  &engine.FilterSpec{VIPs: []engine.VIP{{Addr: b.vip, Protocol: unix.IPPROTO_UDP, Port: uint16(b.l.Plan.UDPEchoPort)}}},
		})
		return err
	})
	if err != nil {
		return Row{Name: name}, fmt.Errorf("engine floor: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- floorLoop(eng.Queues()[0], b.dcpu, b.o.Nice, priv.HardwareAddr(), rsMACs) }()
	defer func() {
		eng.Close()
		if err := <-done; err != nil {
			fmt.Fprintf(b.log, "  engine floor: %v\n", err)
		}
	}()
	if b.dcpu >= 0 && b.o.XDP == engine.XDPNative {
		restore, err := b.threadedNAPI(ctx, false)
		if err != nil {
			return Row{Name: name}, err
		}
		defer restore()
	}
	return b.row(ctx, name, "", b.frame.vip, b.rsCount, b.dirCPUs())
}

// floorLoop forwards every frame q reads to one of macs (see floorRow)
// until the engine is closed. It allocates nothing per packet.
func floorLoop(q engine.Queue, cpu, nice int, src net.HardwareAddr, macs []net.HardwareAddr) error {
	// Never unlocked: the thread ends with the goroutine, so its affinity
	// and nice value are not passed on to other goroutines.
	runtime.LockOSThread()
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin to CPU %d: %w", cpu, err)
		}
	}
	if nice != 0 {
		if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice); err != nil {
			return fmt.Errorf("nice %d: %w", nice, err)
		}
	}
	pkts := engine.NewBatch(q.BatchSize(), 0)
	n := uint32(len(macs))
	for {
		k, err := q.Read(pkts)
		if err != nil {
			if errors.Is(err, engine.ErrClosed) {
				return nil
			}
			return err
		}
		for i := range pkts[:k] {
			p := &pkts[i]
			f := p.Buf[p.Off : p.Off+p.Len]
			if len(f) < 42 {
				continue
			}
			// FNV-1a over the IPv4 addresses and the UDP ports.
			h := uint32(2166136261)
			for _, c := range f[26:38] {
				h = (h ^ uint32(c)) * 16777619
			}
			copy(f[0:6], macs[h%n])
			copy(f[6:12], src)
			p.Iface = engine.Private
		}
		if _, err := q.Write(pkts[:k]); err != nil {
			return err
		}
	}
}
