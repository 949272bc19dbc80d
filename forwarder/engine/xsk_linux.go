package engine

import (
	"fmt"
	"net"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An AF_XDP socket (XSK) in copy mode: the fast lane of the AF_PACKET
// engine when XDP is enabled (see xdp_linux.go and the package
// documentation). Each socket owns its UMEM: xskRxFrames frames that the
// kernel fills through the fill ring and hands back on the RX ring, and
// xskTxFrames frames Write copies frames into for the TX ring, which come
// back on the completion ring once the kernel has sent them.
const (
	xskFrameSize = 2048 // a UMEM chunk; the kernel puts XDP_PACKET_HEADROOM in front of each frame
	xskRxFrames  = 2048
	xskTxFrames  = 2048
	xskRingSize  = 2048 // every ring: a power of two, and at least the frames that may be in it
	xskDescSize  = 16   // struct xdp_desc: addr u64, len u32, options u32
)

// xskRing is one of the four rings shared with the kernel. This side owns
// one index (the producer of the fill and TX rings, the consumer of the RX
// and completion rings) and keeps it in local; the kernel's index is read
// with an atomic load (acquire), ours published with an atomic store
// (release).
type xskRing struct {
	mem   []byte
	prod  *uint32
	cons  *uint32
	ents  unsafe.Pointer // first entry
	mask  uint32
	local uint32 // our index
}

func (r *xskRing) desc(i uint32) *unix.XDPDesc {
	return (*unix.XDPDesc)(unsafe.Add(r.ents, uintptr(i&r.mask)*xskDescSize))
}

func (r *xskRing) addr(i uint32) *uint64 {
	return (*uint64)(unsafe.Add(r.ents, uintptr(i&r.mask)*8))
}

type xskSock struct {
	fd    int
	iface Iface
	queue int
	umem  []byte
	rx    xskRing
	tx    xskRing
	fill  xskRing
	comp  xskRing
	free  []uint64 // TX frames not in the kernel's hands
	drops uint64   // the kernel's cumulative rx_dropped, as last read
}

// openXSK opens an AF_XDP socket in copy mode bound to queue of ifi, with
// its UMEM and rings. The socket receives nothing until the XDP program's
// XSKMAP points at it.
func openXSK(ifi *net.Interface, iface Iface, queue, batch int) (*xskSock, error) {
	s := &xskSock{fd: -1, iface: iface, queue: queue}
	where := func(op string, err error) error {
		return fmt.Errorf("afpacket: xdp: AF_XDP socket on %s queue %d: %s: %w", ifi.Name, queue, op, err)
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, where("socket", err)
	}
	s.fd = fd
	fail := func(op string, err error) (*xskSock, error) {
		s.close()
		return nil, where(op, err)
	}
	size := (xskRxFrames + xskTxFrames) * xskFrameSize
	s.umem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fail("mmap UMEM", err)
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&s.umem[0]))), Len: uint64(size), Size: xskFrameSize}
	if err := setsockoptRaw(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return fail("XDP_UMEM_REG", err)
	}
	for _, o := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING, unix.XDP_TX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, o, xskRingSize); err != nil {
			return fail(fmt.Sprintf("ring option %d", o), err)
		}
	}
	var off unix.XDPMmapOffsets
	optlen := uint32(unsafe.Sizeof(off))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS, uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&optlen)), 0); errno != 0 {
		return fail("XDP_MMAP_OFFSETS", errno)
	}
	maps := []struct {
		r    *xskRing
		o    unix.XDPRingOffset
		pgo  int64
		esz  uint64
		name string
	}{
		{&s.rx, off.Rx, unix.XDP_PGOFF_RX_RING, xskDescSize, "RX"},
		{&s.tx, off.Tx, unix.XDP_PGOFF_TX_RING, xskDescSize, "TX"},
		{&s.fill, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, 8, "fill"},
		{&s.comp, off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, 8, "completion"},
	}
	for _, m := range maps {
		mem, err := unix.Mmap(fd, m.pgo, int(m.o.Desc+xskRingSize*m.esz), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return fail("mmap "+m.name+" ring", err)
		}
		*m.r = xskRing{
			mem:  mem,
			prod: (*uint32)(unsafe.Pointer(&mem[m.o.Producer])),
			cons: (*uint32)(unsafe.Pointer(&mem[m.o.Consumer])),
			ents: unsafe.Pointer(&mem[m.o.Desc]),
			mask: xskRingSize - 1,
		}
	}
	s.rx.local = atomic.LoadUint32(s.rx.cons)
	s.comp.local = atomic.LoadUint32(s.comp.cons)
	// Every RX frame starts in the fill ring, every TX frame in the free list.
	s.fill.local = atomic.LoadUint32(s.fill.prod)
	for i := uint32(0); i < xskRxFrames; i++ {
		*s.fill.addr(s.fill.local) = uint64(i) * xskFrameSize
		s.fill.local++
	}
	atomic.StoreUint32(s.fill.prod, s.fill.local)
	s.tx.local = atomic.LoadUint32(s.tx.prod)
	s.free = make([]uint64, 0, xskTxFrames)
	for i := uint32(0); i < xskTxFrames; i++ {
		s.free = append(s.free, uint64(xskRxFrames+i)*xskFrameSize)
	}
	// One sendto handles 32 descriptors by default; where the kernel lets
	// it take a whole batch, kick needs one call per batch.
	if batch > 32 {
		_ = unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, batch)
	}
	sa := &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(ifi.Index), QueueID: uint32(queue)}
	if err := unix.Bind(fd, sa); err != nil {
		if err == unix.EINVAL && queue > 0 {
			// The kernel refuses a queue beyond the device's active ones.
			s.close()
			return nil, fmt.Errorf("%w: afpacket: xdp: %s has no receive queue %d: with XDP every interface needs as many receive queues as workers (ethtool -L, or numrxqueues for a veth)", ErrBadConfig, ifi.Name, queue)
		}
		return fail("bind", err)
	}
	return s, nil
}

func setsockoptRaw(fd, opt int, p unsafe.Pointer, n uintptr) error {
	if _, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0); errno != 0 {
		return errno
	}
	return nil
}

func (s *xskSock) close() {
	for _, r := range []*xskRing{&s.rx, &s.tx, &s.fill, &s.comp} {
		if r.mem != nil {
			unix.Munmap(r.mem)
			*r = xskRing{}
		}
	}
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
	if s.umem != nil {
		unix.Munmap(s.umem)
		s.umem = nil
	}
}

// read copies up to len(pkts) received frames into pkts, gives their UMEM
// frames back to the fill ring, and returns how many it copied.
func (s *xskSock) read(pkts []Packet, bytes, tooBig *uint64) int {
	avail := atomic.LoadUint32(s.rx.prod) - s.rx.local
	if avail == 0 {
		return 0
	}
	n := 0
	for ; avail > 0 && n < len(pkts); avail-- {
		d := s.rx.desc(s.rx.local)
		s.rx.local++
		p := &pkts[n]
		if d.Len == 0 || int(d.Len) > len(p.Buf)-Headroom || d.Addr+uint64(d.Len) > uint64(len(s.umem)) {
			*tooBig++
		} else {
			copy(p.Buf[Headroom:], s.umem[d.Addr:d.Addr+uint64(d.Len)])
			p.Off, p.Len, p.Iface = Headroom, int(d.Len), s.iface
			*bytes += uint64(d.Len)
			n++
		}
		*s.fill.addr(s.fill.local) = d.Addr &^ (xskFrameSize - 1)
		s.fill.local++
	}
	atomic.StoreUint32(s.rx.cons, s.rx.local)
	atomic.StoreUint32(s.fill.prod, s.fill.local)
	return n
}

// reclaim takes the frames the kernel has finished sending back into the
// free list.
func (s *xskSock) reclaim() {
	prod := atomic.LoadUint32(s.comp.prod)
	for s.comp.local != prod {
		s.free = append(s.free, *s.comp.addr(s.comp.local)&^(xskFrameSize-1))
		s.comp.local++
	}
	atomic.StoreUint32(s.comp.cons, s.comp.local)
}

// write copies the frames of pkts that leave through s.iface into TX frames,
// hands them to the kernel and kicks it. It returns the frames queued and
// their bytes; frames it could not queue are added to dropped.
func (s *xskSock) write(pkts []Packet, dropped *uint64, calls *uint64) (sent int, bytes uint64) {
	s.reclaim()
	queued := 0
	for i := range pkts {
		p := &pkts[i]
		if p.Iface != s.iface {
			continue
		}
		if p.Len <= 0 || p.Off < 0 || p.Off+p.Len > len(p.Buf) || p.Len > xskFrameSize {
			*dropped++
			continue
		}
		if len(s.free) == 0 {
			if queued > 0 {
				s.kick(calls)
				queued = 0
			}
			s.reclaim()
			if len(s.free) == 0 {
				*dropped++
				continue
			}
		}
		a := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		copy(s.umem[a:a+xskFrameSize], p.Buf[p.Off:p.Off+p.Len])
		d := s.tx.desc(s.tx.local)
		d.Addr, d.Len, d.Options = a, uint32(p.Len), 0
		s.tx.local++
		queued++
		sent++
		bytes += uint64(p.Len)
	}
	if queued > 0 {
		s.kick(calls)
	}
	return sent, bytes
}

// kick publishes the queued descriptors and makes the kernel send them
// (copy mode transmits only from sendto). It returns when the kernel has
// consumed the ring, or after 64 calls that left some (a busy device: they
// go with the next kick). EAGAIN means the per-call budget ran out with
// descriptors left; EBUSY that the device dropped a frame or is busy.
func (s *xskSock) kick(calls *uint64) {
	atomic.StoreUint32(s.tx.prod, s.tx.local)
	for tries := 0; tries < 64; tries++ {
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		*calls++
		switch errno {
		case 0, unix.EINTR, unix.EAGAIN, unix.EBUSY:
		default:
			return
		}
		if atomic.LoadUint32(s.tx.cons) == s.tx.local {
			return
		}
	}
}

// newDrops returns the frames the kernel dropped for this socket since the
// last call (XDP_STATISTICS counts from the socket's start). rx_dropped
// counts every dropped frame, a full RX ring and an empty fill ring
// included; rx_ring_full counts some of the same frames again, so it is
// not added.
func (s *xskSock) newDrops() uint64 {
	st, err := s.stats()
	if err != nil {
		return 0
	}
	n := st.Rx_dropped - s.drops
	s.drops = st.Rx_dropped
	return n
}

// stats returns the kernel's XDP_STATISTICS for the socket.
func (s *xskSock) stats() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	n := uint32(unsafe.Sizeof(st))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_STATISTICS, uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&n)), 0); errno != 0 {
		return st, errno
	}
	return st, nil
}
