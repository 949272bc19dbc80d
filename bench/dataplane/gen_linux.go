package dataplane

import (
	"encoding/binary"

	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ulvs/ulvs/lab"
)

// frameLen is a minimum Ethernet frame without its FCS: 64 bytes on the wire.
const frameLen = 60

// genBatch is the number of frames one sendmmsg(2) carries.
const genBatch = 64

// flowSpec says what the generator sends: UDP from Src (source ports
// 1024..1024+Flows-1) to each address of Dsts in turn, port DstPort, in
// frames addressed to DstMAC.
type flowSpec struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src            netip.Addr
	Dsts           []netip.Addr
	DstPort        uint16
	Flows          int
}

// buildFrames returns one 60-byte frame per flow, checksums filled.
func buildFrames(s flowSpec) [][]byte {
	out := make([][]byte, s.Flows)
	buf := make([]byte, s.Flows*frameLen)
	src := s.Src.As4()
	for i := range out {
		f := buf[i*frameLen : (i+1)*frameLen : (i+1)*frameLen]
		dst := s.Dsts[i%len(s.Dsts)].As4()
		copy(f[0:6], s.DstMAC)
		copy(f[6:12], s.SrcMAC)
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := f[14:34]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], 46) // 20 + 8 + 18
		binary.BigEndian.PutUint16(ip[4:], uint16(i))
		ip[8] = 64
		ip[9] = 17
		copy(ip[12:16], src[:])
		copy(ip[16:20], dst[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip, 0)))
		udp := f[34:]
		binary.BigEndian.PutUint16(udp[0:], uint16(1024+i))
		binary.BigEndian.PutUint16(udp[2:], s.DstPort)
		binary.BigEndian.PutUint16(udp[4:], 26)
		copy(udp[8:], "ulvsbench dataplan")
		ph := uint32(0)
		ph = sum(src[:], ph)
		ph = sum(dst[:], ph)
		ph += 17 + 26
		c := ^fold(sum(udp, ph))
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(udp[6:], c)
		out[i] = f
	}
	return out
}

func sum(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// generator sends frames on one interface of a lab host through an
// AF_PACKET socket, genBatch frames per sendmmsg(2).
type generator struct {
	fd     int
	frames [][]byte
	iovs   []unix.Iovec
	msgs   []unix.Mmsghdr
	sll    unix.RawSockaddrLinklayer
}

// openGenerator opens the generator's socket inside the host's network
// namespace (the socket stays there whichever thread uses it).
func openGenerator(nsPath, ifname string, frames [][]byte) (*generator, error) {
	g := &generator{fd: -1, frames: frames}
	err := lab.DoInNetns(nsPath, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		g.fd = fd
		g.sll = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_ALL), Ifindex: int32(ifi.Index), Halen: 6}
		copy(g.sll.Addr[:], frames[0][0:6])
		sa := &unix.SockaddrLinklayer{Protocol: 0, Ifindex: ifi.Index}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind %s: %w", ifname, err)
		}
		// Do not queue our own frames back to ourselves.
		_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
		return nil
	})
	if err != nil {
		if g.fd >= 0 {
			unix.Close(g.fd)
		}
		return nil, fmt.Errorf("generator on %s: %w", ifname, err)
	}
	g.iovs = make([]unix.Iovec, genBatch)
	g.msgs = make([]unix.Mmsghdr, genBatch)
	for i := range g.msgs {
		g.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&g.sll))
		g.msgs[i].Hdr.Namelen = uint32(unsafe.Sizeof(g.sll))
		g.msgs[i].Hdr.Iov = &g.iovs[i]
		g.msgs[i].Hdr.Iovlen = 1
	}
	return g, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (g *generator) Close() error { return unix.Close(g.fd) }

// run sends until stop is set, deadline passes or limit frames are sent,
// on a thread pinned to cpu (cpu < 0: unpinned), at rate frames per second
// (0: as fast as it can). sent is updated as it goes.
func (g *generator) run(cpu, nice int, rate int64, deadline time.Time, limit int64, stop *atomic.Bool, sent *atomic.Int64) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin generator to CPU %d: %w", cpu, err)
		}
		defer func() {
			var all unix.CPUSet
			for i := 0; i < runtime.NumCPU(); i++ {
				all.Set(i)
			}
			_ = unix.SchedSetaffinity(0, &all)
		}()
	}
	if nice != 0 {
		tid := unix.Gettid()
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
			return fmt.Errorf("nice %d: %w", nice, err)
		}
		defer unix.Setpriority(unix.PRIO_PROCESS, tid, 0)
	}
	k := 0
	var n int64
	start := time.Now()
	// Paced, the frames go out in small batches every 50 us or so, not in
	// bursts of the full batch: a receiver sees traffic about as evenly
	// spread as real clients send it.
	batch := len(g.msgs)
	if rate > 0 {
		batch = int(min(max(rate/20000, 1), int64(len(g.msgs))))
	}
	for iter := 0; n < limit && !stop.Load(); iter++ {
		if iter%64 == 0 && time.Now().After(deadline) {
			break
		}
		if rate > 0 {
			// Pace against the start, so that late wake-ups are caught up
			// and the average rate is exact: sleep while well ahead, spin
			// the last stretch.
			due := start.Add(time.Duration(n * int64(time.Second) / rate))
			for {
				ahead := time.Until(due)
				if ahead <= 0 || stop.Load() {
					break
				}
				if ahead > 200*time.Microsecond {
					time.Sleep(ahead - 100*time.Microsecond)
				}
			}
		}
		for i := range g.iovs[:batch] {
			f := g.frames[k]
			k++
			if k == len(g.frames) {
				k = 0
			}
			g.iovs[i].Base = &f[0]
			g.iovs[i].SetLen(len(f))
		}
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(g.fd), uintptr(unsafe.Pointer(&g.msgs[0])), uintptr(batch), 0, 0, 0)
		if errno != 0 {
			if errno == unix.EAGAIN || errno == unix.ENOBUFS || errno == unix.EINTR {
				continue
			}
			return fmt.Errorf("sendmmsg: %w", errno)
		}
		n += int64(r)
		sent.Store(n)
	}
	return nil
}
