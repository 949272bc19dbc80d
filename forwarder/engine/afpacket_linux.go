package engine

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// AFPacket is the AF_PACKET engine: per worker, one memory-mapped
// TPACKET_V3 receive ring per interface and one transmit socket per
// interface. See the package documentation.
type AFPacket struct {
	cfg    AFPacketConfig
	ifis   [numIfaces]*net.Interface
	queues []*afpQueue
	qs     []Queue
	fanout [numIfaces]uint16 // fanout group id per interface
	xdp    *xdpLane          // the XDP fast lane, nil when off

	closed atomic.Bool
	mu     sync.Mutex // control plane: SetFilter, Stats (read-and-reset kernel counters), Close
}

var (
	_ Engine       = (*AFPacket)(nil)
	_ FilterSetter = (*AFPacket)(nil)
	_ Queue        = (*afpQueue)(nil)
)

// Offsets inside the ring (include/uapi/linux/if_packet.h).
const (
	bdStatus   = 8  // tpacket_block_desc.hdr.bh1.block_status
	bdNumPkts  = 12 // .num_pkts
	bdFirstPkt = 16 // .offset_to_first_pkt
	bdHdrLen   = 48 // sizeof(struct tpacket_block_desc)
	hNext      = 0  // tpacket3_hdr.tp_next_offset
	hSnaplen   = 12
	hLen       = 16
	hMac       = 24
	hPktType   = 48 + 10 // sockaddr_ll.sll_pkttype, after TPACKET_ALIGN(sizeof(tpacket3_hdr))
	hMin       = 48 + 20

	tpStatusKernel = 0
	tpStatusUser   = 1

	fanoutFlagRollover = unix.PACKET_FANOUT_FLAG_ROLLOVER
	fanoutFlagUniqueID = unix.PACKET_FANOUT_FLAG_UNIQUEID
	fanoutFlagDefrag   = unix.PACKET_FANOUT_FLAG_DEFRAG
)

type rxRing struct {
	fd        int
	iface     Iface
	mem       []byte
	blockSize int
	nblocks   int
	cur       int    // block being read, or next to be read (V2: next slot)
	v2        bool   // TPACKET_V2: nblocks slots of v2SlotSize bytes
	left      uint32 // frames left in block cur; 0 = not inside a block
	off       int    // ring offset of the next frame inside block cur
}

type txSock struct {
	fd   int // -1 when the interface is not configured
	msgs []unix.Mmsghdr
	iovs []unix.Iovec
	// TX ring (TxRing): frames of txFrameSize bytes, head is the next one
	// to fill.
	ring    []byte
	nframes int
	head    int
	pfd     [1]unix.PollFd
}

const (
	txFrameSize = 2048
	txDataOff   = 32 // TPACKET2_HDRLEN - sizeof(struct sockaddr_ll): where the frame starts in a TX slot
	tp2Len      = 4  // tpacket2_hdr.tp_len
)

type afpQueue struct {
	e       *AFPacket
	rxMu    sync.Mutex // held by Read; Close takes it to know no call is inside the ring
	txMu    sync.Mutex // held by Write; a Read and a Write of one queue may run at once
	rings   []rxRing
	rxfds   []int         // the rings' sockets, for the control plane (read-only until Close)
	pfds    []unix.PollFd // one per ring, then the wake eventfd
	ts      unix.Timespec // poll timeout
	tsArg   unix.Timespec // ppoll(2) writes the time left back: pass a fresh copy each call
	txTsArg unix.Timespec
	wake    int
	next    int
	tx      [numIfaces]txSock
	xsks    []*xskSock          // the XDP fast lane's sockets, one per interface
	xskOut  [numIfaces]*xskSock // the socket Write uses per interface, nil: AF_PACKET
	batch   int
	c       counters
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// OpenAFPacket opens the rings and sockets of cfg. It needs CAP_NET_RAW
// (and CAP_NET_ADMIN for SO_SNDBUFFORCE, which is skipped when refused).
func OpenAFPacket(cfg AFPacketConfig) (*AFPacket, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &AFPacket{cfg: c}
	names := [numIfaces]string{c.Public, c.Private}
	for i, name := range names {
		if name == "" {
			continue
		}
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("%w: afpacket: %s interface %q: %v", ErrBadConfig, Iface(i), name, err)
		}
		e.ifis[i] = ifi
	}
	var filter []unix.SockFilter
	if c.Filter != nil {
		if filter, err = assembleFilter(c.Filter); err != nil {
			return nil, err
		}
	}
	if c.XDP != XDPOff {
		for i, ifi := range e.ifis {
			if ifi == nil {
				continue
			}
			if room := xskFrameSize - unix.XDP_PACKET_HEADROOM; ifi.MTU+18 > room {
				return nil, fmt.Errorf("%w: afpacket: xdp: %s interface %s has MTU %d; an AF_XDP frame holds %d bytes (MTU %d with Ethernet and VLAN headers)", ErrBadConfig, Iface(i), ifi.Name, ifi.MTU, room, room-18)
			}
		}
		if e.xdp, err = openXDPLane(e.ifis, c.XDP, c.Workers); err != nil {
			return nil, err
		}
	}
	for w := 0; w < c.Workers; w++ {
		q, err := e.openQueue(w, filter)
		if q != nil {
			e.queues = append(e.queues, q)
			e.qs = append(e.qs, q)
		}
		if err != nil {
			e.Close()
			return nil, err
		}
	}
	if e.xdp != nil {
		if err := e.xdp.setFilter(c.Filter); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

func assembleFilter(spec *FilterSpec) ([]unix.SockFilter, error) {
	raw, err := spec.Assemble()
	if err != nil {
		return nil, err
	}
	return toSockFilter(raw), nil
}

func toSockFilter(raw []bpf.RawInstruction) []unix.SockFilter {
	f := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		f[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return f
}

func attachFilter(fd int, f []unix.SockFilter) error {
	if len(f) == 0 {
		return nil
	}
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
}

func (e *AFPacket) openQueue(w int, filter []unix.SockFilter) (*afpQueue, error) {
	q := &afpQueue{e: e, batch: e.cfg.BatchSize, wake: -1}
	q.ts = unix.NsecToTimespec(e.cfg.PollTimeout.Nanoseconds())
	for i := range q.tx {
		q.tx[i].fd = -1
	}
	for i, ifi := range e.ifis {
		if ifi == nil {
			continue
		}
		r, err := e.openRing(ifi, Iface(i), w, filter)
		if err != nil {
			q.release()
			return nil, err
		}
		q.rings = append(q.rings, r)
		q.rxfds = append(q.rxfds, r.fd)
		t, err := e.openTx(ifi)
		if err != nil {
			q.release()
			return nil, err
		}
		q.tx[i] = t
		if e.xdp != nil {
			x, err := openXSK(ifi, Iface(i), w, e.cfg.BatchSize)
			if err != nil {
				q.release()
				return nil, err
			}
			q.xsks = append(q.xsks, x)
			q.xskOut[i] = x
			if err := e.xdp.register(Iface(i), w, x.fd); err != nil {
				q.release()
				return nil, err
			}
		}
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		q.release()
		return nil, fmt.Errorf("afpacket: eventfd: %w", err)
	}
	q.wake = wake
	for _, r := range q.rings {
		q.pfds = append(q.pfds, unix.PollFd{Fd: int32(r.fd), Events: unix.POLLIN})
	}
	for _, x := range q.xsks {
		q.pfds = append(q.pfds, unix.PollFd{Fd: int32(x.fd), Events: unix.POLLIN})
	}
	q.pfds = append(q.pfds, unix.PollFd{Fd: int32(wake), Events: unix.POLLIN})
	return q, nil
}

func (e *AFPacket) openRing(ifi *net.Interface, iface Iface, worker int, filter []unix.SockFilter) (r rxRing, err error) {
	r.fd = -1
	c := &e.cfg
	where := func(op string, err error) error {
		return fmt.Errorf("afpacket: %s ring of worker %d on %s: %s: %w", iface, worker, ifi.Name, op, err)
	}
	// Protocol 0: the socket receives nothing until bind, by which time the
	// filter and the ring are in place.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return r, where("socket", err)
	}
	r.fd = fd
	fail := func(op string, err error) (rxRing, error) {
		if r.mem != nil {
			unix.Munmap(r.mem)
		}
		unix.Close(fd)
		return rxRing{fd: -1}, where(op, err)
	}
	if err := attachFilter(fd, filter); err != nil {
		return fail("SO_ATTACH_FILTER", err)
	}
	version := unix.TPACKET_V3
	if c.RxRingV2 {
		version = unix.TPACKET_V2
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, version); err != nil {
		return fail("PACKET_VERSION", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail("PACKET_IGNORE_OUTGOING", err)
	}
	const frameSize = 2048 // nominal in V3 (frames are packed); sets frame_nr
	req := unix.TpacketReq3{
		Block_size:     uint32(c.BlockSize),
		Block_nr:       uint32(c.BlockCount),
		Frame_size:     frameSize,
		Frame_nr:       uint32(c.BlockSize / frameSize * c.BlockCount),
		Retire_blk_tov: uint32(c.BlockTimeout.Milliseconds()),
	}
	if c.RxRingV2 {
		req2 := unix.TpacketReq{Block_size: req.Block_size, Block_nr: req.Block_nr, Frame_size: v2SlotSize, Frame_nr: req.Frame_nr}
		if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req2); err != nil {
			return fail("PACKET_RX_RING (V2)", err)
		}
	} else if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fail("PACKET_RX_RING", err)
	}
	mem, err := unix.Mmap(fd, 0, c.BlockSize*c.BlockCount, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail("mmap", err)
	}
	r.mem, r.blockSize, r.nblocks, r.iface = mem, c.BlockSize, c.BlockCount, iface
	if c.RxRingV2 {
		r.v2, r.blockSize, r.nblocks = true, v2SlotSize, int(req.Frame_nr)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if c.Workers == 1 && !c.FanoutDefrag {
		// One ring per interface: no fanout group, whose flow hash (a full
		// flow dissection and SipHash per frame, about a sixth of the
		// kernel's receive cost here) would choose among one worker.
		return r, nil
	}
	// In a fanout group the group's hook, not the socket's, decides about
	// outgoing frames: PACKET_IGNORE_OUTGOING alone does not apply.
	mode := unix.PACKET_FANOUT_HASH | unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
	if c.FanoutDefrag {
		mode |= fanoutFlagDefrag
	}
	if c.FanoutRollover {
		mode |= fanoutFlagRollover
	}
	if worker == 0 {
		// Let the kernel pick a group id unused in this network namespace.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, (mode|fanoutFlagUniqueID)<<16); err != nil {
			return fail("PACKET_FANOUT (new group)", err)
		}
		v, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
		if err != nil {
			return fail("PACKET_FANOUT (group id)", err)
		}
		e.fanout[iface] = uint16(v)
	} else if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(e.fanout[iface])|mode<<16); err != nil {
		return fail("PACKET_FANOUT (join)", err)
	}
	return r, nil
}

func (e *AFPacket) openTx(ifi *net.Interface) (txSock, error) {
	t := txSock{fd: -1}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return t, fmt.Errorf("afpacket: transmit socket on %s: %w", ifi.Name, err)
	}
	fail := func(op string, err error) (txSock, error) {
		unix.Close(fd)
		return txSock{fd: -1}, fmt.Errorf("afpacket: transmit socket on %s: %s: %w", ifi.Name, op, err)
	}
	// Bound with protocol 0: it sends on ifi and never receives.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	if !e.cfg.UseQdisc {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fail("PACKET_QDISC_BYPASS", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, e.cfg.SendBuffer); err != nil {
		// Without CAP_NET_ADMIN: take what wmem_max allows.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, e.cfg.SendBuffer)
	}
	tv := unix.NsecToTimeval(e.cfg.PollTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fail("SO_SNDTIMEO", err)
	}
	if e.cfg.TxRing {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
			return fail("PACKET_VERSION", err)
		}
		// Malformed frames are skipped by the kernel instead of stalling the ring.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1); err != nil {
			return fail("PACKET_LOSS", err)
		}
		n := e.cfg.TxRingFrames
		perBlock := 64 // 128 KiB blocks
		req := unix.TpacketReq{Block_size: txFrameSize * uint32(perBlock), Block_nr: uint32((n + perBlock - 1) / perBlock), Frame_size: txFrameSize}
		req.Frame_nr = req.Block_nr * uint32(perBlock)
		if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
			return fail("PACKET_TX_RING", err)
		}
		ring, err := unix.Mmap(fd, 0, int(req.Block_size*req.Block_nr), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return fail("mmap", err)
		}
		t.ring, t.nframes = ring, int(req.Frame_nr)
		t.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
	}
	t.fd = fd
	t.msgs = make([]unix.Mmsghdr, e.cfg.BatchSize)
	t.iovs = make([]unix.Iovec, e.cfg.BatchSize)
	for i := range t.msgs {
		t.msgs[i].Hdr.Iov = &t.iovs[i]
		t.msgs[i].Hdr.Iovlen = 1
	}
	return t, nil
}

// Queues implements Engine.
func (e *AFPacket) Queues() []Queue { return e.qs }

// Interface returns the network interface behind i, or nil when i is not
// configured (the director needs its MAC address and MTU).
func (e *AFPacket) Interface(i Iface) *net.Interface {
	if i >= numIfaces {
		return nil
	}
	return e.ifis[i]
}

// FanoutGroups returns the PACKET_FANOUT group id of each interface (0
// with one worker, which needs no fanout group; 0 for
// an interface not configured).
func (e *AFPacket) FanoutGroups() (public, private uint16) {
	return e.fanout[Public], e.fanout[Private]
}

// SetFilter replaces the filter of every receive socket while the engine
// runs: SO_ATTACH_FILTER swaps the program atomically per socket, without
// closing it or dropping what its ring holds. Frames already in the rings
// were accepted by the old filter, so the data path must still classify
// every frame. (ulvs never sets SO_LOCK_FILTER, which would forbid this.)
func (e *AFPacket) SetFilter(spec FilterSpec) error {
	f, err := assembleFilter(&spec)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return ErrClosed
	}
	var errs []error
	for w, q := range e.queues {
		for i, fd := range q.rxfds {
			if err := attachFilter(fd, f); err != nil {
				errs = append(errs, fmt.Errorf("afpacket: worker %d ring %d: SO_ATTACH_FILTER: %w", w, i, err))
			}
		}
	}
	if e.xdp != nil {
		// After the classic filters: the fast lane's match stays a subset
		// of what the rings accept at every moment.
		if err := e.xdp.setFilter(&spec); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stats implements Engine. It also collects (and accumulates) the kernel's
// PACKET_STATISTICS, which reading resets.
func (e *AFPacket) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s Stats
	for _, q := range e.queues {
		if !e.closed.Load() {
			for _, fd := range q.rxfds {
				if ks, err := unix.GetsockoptTpacketStatsV3(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
					q.c.kPackets.Add(uint64(ks.Packets))
					q.c.kDrops.Add(uint64(ks.Drops))
					q.c.kFreezes.Add(uint64(ks.Freeze_q_cnt))
				}
			}
			for _, x := range q.xsks {
				q.c.kDrops.Add(x.newDrops())
			}
		}
		qs := q.c.snapshot()
		s.add(&qs)
	}
	return s
}

// Close implements Engine. It wakes every queue blocked in Read, waits for
// in-flight Read/Write calls to return, then unmaps the rings and closes the
// sockets. Close is idempotent.
func (e *AFPacket) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Swap(true) {
		return nil
	}
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for _, q := range e.queues {
		if q.wake >= 0 {
			unix.Write(q.wake, one)
		}
	}
	for _, q := range e.queues {
		q.rxMu.Lock()
		q.txMu.Lock()
		q.release()
		q.txMu.Unlock()
		q.rxMu.Unlock()
	}
	if e.xdp != nil {
		e.xdp.close()
	}
	return nil
}

func (q *afpQueue) release() {
	for i := range q.rings {
		r := &q.rings[i]
		if r.mem != nil {
			unix.Munmap(r.mem)
			r.mem = nil
		}
		if r.fd >= 0 {
			unix.Close(r.fd)
			r.fd = -1
		}
	}
	for i := range q.tx {
		if q.tx[i].ring != nil {
			unix.Munmap(q.tx[i].ring)
			q.tx[i].ring = nil
		}
		if q.tx[i].fd >= 0 {
			unix.Close(q.tx[i].fd)
			q.tx[i].fd = -1
		}
	}
	for _, x := range q.xsks {
		x.close()
	}
	q.xsks, q.xskOut = nil, [numIfaces]*xskSock{}
	if q.wake >= 0 {
		unix.Close(q.wake)
		q.wake = -1
	}
}

// BatchSize implements Queue.
func (q *afpQueue) BatchSize() int { return q.batch }

func u32(b []byte, off int) uint32 { return *(*uint32)(unsafe.Pointer(&b[off])) }
func u16(b []byte, off int) uint16 { return *(*uint16)(unsafe.Pointer(&b[off])) }

// Read implements Queue.
func (q *afpQueue) Read(pkts []Packet) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	q.rxMu.Lock()
	defer q.rxMu.Unlock()
	for {
		if q.e.closed.Load() {
			return 0, ErrClosed
		}
		n := 0
		var bytes, tooBig, outgoing uint64
		for _, x := range q.xsks {
			if n == len(pkts) {
				break
			}
			n += x.read(pkts[n:], &bytes, &tooBig)
		}
		nr := len(q.rings)
		for k := 0; k < nr && n < len(pkts); k++ {
			r := &q.rings[(q.next+k)%nr]
			if r.v2 {
				n += q.drainV2(r, pkts[n:], &bytes, &tooBig, &outgoing)
			} else {
				n += q.drain(r, pkts[n:], &bytes, &tooBig, &outgoing)
			}
		}
		q.next++
		if tooBig != 0 {
			q.c.rxTooBig.Add(tooBig)
		}
		if outgoing != 0 {
			q.c.rxOutgoing.Add(outgoing)
		}
		if n > 0 {
			q.c.rxFrames.Add(uint64(n))
			q.c.rxBytes.Add(bytes)
			return n, nil
		}
		q.c.rxPolls.Add(1)
		q.tsArg = q.ts
		if _, err := unix.Ppoll(q.pfds, &q.tsArg, nil); err != nil && err != unix.EINTR {
			return 0, fmt.Errorf("afpacket: poll: %w", err)
		}
	}
}

// drain copies frames from r into pkts and returns how many. A block goes
// back to the kernel as soon as its last frame is copied.
func (q *afpQueue) drain(r *rxRing, pkts []Packet, bytes, tooBig, outgoing *uint64) int {
	n := 0
	mem := r.mem
	for n < len(pkts) {
		if r.left == 0 {
			base := r.cur * r.blockSize
			st := (*uint32)(unsafe.Pointer(&mem[base+bdStatus]))
			if atomic.LoadUint32(st)&tpStatusUser == 0 {
				return n
			}
			num := u32(mem, base+bdNumPkts)
			first := int(u32(mem, base+bdFirstPkt))
			if num == 0 || first < bdHdrLen || first >= r.blockSize {
				q.releaseBlock(r)
				continue
			}
			r.left, r.off = num, base+first
		}
		h := r.off
		end := r.cur*r.blockSize + r.blockSize
		if h+hMin > end {
			q.releaseBlock(r) // corrupt offsets: give the block back
			continue
		}
		snap := int(u32(mem, h+hSnaplen))
		flen := int(u32(mem, h+hLen))
		mac := int(u16(mem, h+hMac))
		pktType := mem[h+hPktType]
		next := int(u32(mem, h+hNext))
		switch {
		case pktType == unix.PACKET_OUTGOING:
			*outgoing++
		case snap <= 0 || snap != flen || h+mac+snap > end:
			*tooBig++ // empty, or truncated by the ring
		default:
			p := &pkts[n]
			if snap > len(p.Buf)-Headroom {
				*tooBig++
				break
			}
			copy(p.Buf[Headroom:], mem[h+mac:h+mac+snap])
			p.Off, p.Len, p.Iface = Headroom, snap, r.iface
			*bytes += uint64(snap)
			n++
		}
		r.left--
		if r.left == 0 || next == 0 {
			q.releaseBlock(r)
			continue
		}
		r.off += next
	}
	return n
}

// TPACKET_V2 slot layout (struct tpacket2_hdr, then sockaddr_ll at 32).
const (
	v2SlotSize = 2048
	v2Len      = 4
	v2Snaplen  = 8
	v2Mac      = 12
	v2PktType  = 32 + 10
	v2HdrMin   = 32 + 20
)

// drainV2 is drain for a TPACKET_V2 ring: each slot goes back to the
// kernel as soon as its frame is copied.
func (q *afpQueue) drainV2(r *rxRing, pkts []Packet, bytes, tooBig, outgoing *uint64) int {
	n := 0
	mem := r.mem
	for n < len(pkts) {
		h := r.cur * v2SlotSize
		st := (*uint32)(unsafe.Pointer(&mem[h]))
		if atomic.LoadUint32(st)&tpStatusUser == 0 {
			return n
		}
		snap := int(u32(mem, h+v2Snaplen))
		flen := int(u32(mem, h+v2Len))
		mac := int(u16(mem, h+v2Mac))
		switch {
		case mem[h+v2PktType] == unix.PACKET_OUTGOING:
			*outgoing++
		case snap <= 0 || snap != flen || mac < v2HdrMin || mac+snap > v2SlotSize:
			*tooBig++ // empty, or truncated to the slot
		default:
			p := &pkts[n]
			if snap > len(p.Buf)-Headroom {
				*tooBig++
				break
			}
			copy(p.Buf[Headroom:], mem[h+mac:h+mac+snap])
			p.Off, p.Len, p.Iface = Headroom, snap, r.iface
			*bytes += uint64(snap)
			n++
		}
		atomic.StoreUint32(st, tpStatusKernel)
		r.cur++
		if r.cur == r.nblocks {
			r.cur = 0
		}
	}
	return n
}

func (q *afpQueue) releaseBlock(r *rxRing) {
	st := (*uint32)(unsafe.Pointer(&r.mem[r.cur*r.blockSize+bdStatus]))
	atomic.StoreUint32(st, tpStatusKernel)
	r.left = 0
	r.cur++
	if r.cur == r.nblocks {
		r.cur = 0
	}
}

// Write implements Queue: one sendmmsg(2) per interface per batch (of up to
// BatchSize frames).
func (q *afpQueue) Write(pkts []Packet) (int, error) {
	q.txMu.Lock()
	defer q.txMu.Unlock()
	if q.e.closed.Load() {
		return 0, ErrClosed
	}
	sent := 0
	var dropped uint64
	for iface := Iface(0); iface < numIfaces; iface++ {
		if x := q.xskOut[iface]; x != nil {
			var calls uint64
			k, b := x.write(pkts, &dropped, &calls)
			sent += k
			q.c.txBytes.Add(b)
			q.c.txCalls.Add(calls)
			continue
		}
		t := &q.tx[iface]
		if t.ring != nil {
			sent += q.writeRing(t, iface, pkts, &dropped)
			continue
		}
		k := 0
		for i := range pkts {
			p := &pkts[i]
			if p.Iface != iface {
				continue
			}
			if t.fd < 0 || p.Len <= 0 || p.Off < 0 || p.Off+p.Len > len(p.Buf) {
				dropped++
				continue
			}
			t.iovs[k].Base = &p.Buf[p.Off]
			t.iovs[k].SetLen(p.Len)
			k++
			if k == len(t.msgs) {
				sent += q.flush(t, k, &dropped)
				k = 0
			}
		}
		if k > 0 {
			sent += q.flush(t, k, &dropped)
		}
	}
	for i := range pkts {
		if pkts[i].Iface >= numIfaces {
			dropped++
		}
	}
	if dropped != 0 {
		q.c.txDropped.Add(dropped)
	}
	q.c.txFrames.Add(uint64(sent))
	return sent, nil
}

// flush sends the first k prepared messages of t and returns how many the
// kernel took. A frame the kernel refuses (too long, device down) is
// skipped and counted; a full socket buffer after SO_SNDTIMEO drops the
// rest of the batch.
func (q *afpQueue) flush(t *txSock, k int, dropped *uint64) int {
	done, sent := 0, 0
	var bytes uint64
	for done < k {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(t.fd), uintptr(unsafe.Pointer(&t.msgs[done])), uintptr(k-done), 0, 0, 0)
		q.c.txCalls.Add(1)
		if errno != 0 {
			switch errno {
			case unix.EINTR:
				continue
			case unix.EAGAIN, unix.ENOBUFS:
				*dropped += uint64(k - done)
				done = k
			default:
				*dropped++
				done++
			}
			continue
		}
		if r == 0 {
			*dropped += uint64(k - done)
			break
		}
		for i := done; i < done+int(r); i++ {
			bytes += t.iovs[i].Len
		}
		done += int(r)
		sent += int(r)
	}
	q.c.txBytes.Add(bytes)
	return sent
}

// writeRing copies the frames of pkts for iface into the TX ring, marks
// them for sending and kicks the kernel once (send(2) with MSG_DONTWAIT).
// When the ring is full it kicks, waits for a free slot up to PollTimeout,
// and drops what still does not fit.
func (q *afpQueue) writeRing(t *txSock, iface Iface, pkts []Packet, dropped *uint64) int {
	queued := 0
	var bytes uint64
	full := false
	for i := range pkts {
		p := &pkts[i]
		if p.Iface != iface {
			continue
		}
		if p.Len <= 0 || p.Off < 0 || p.Off+p.Len > len(p.Buf) || p.Len > txFrameSize-txDataOff {
			*dropped++
			continue
		}
		if full {
			*dropped++
			continue
		}
		slot := t.ring[t.head*txFrameSize : (t.head+1)*txFrameSize]
		st := (*uint32)(unsafe.Pointer(&slot[0]))
		if atomic.LoadUint32(st) != unix.TP_STATUS_AVAILABLE {
			// Ring full: hand over what is queued and wait for the head slot.
			q.kick(t)
			q.txTsArg = q.ts
			unix.Ppoll(t.pfd[:], &q.txTsArg, nil)
			if atomic.LoadUint32(st) != unix.TP_STATUS_AVAILABLE {
				full = true
				*dropped++
				continue
			}
		}
		copy(slot[txDataOff:], p.Buf[p.Off:p.Off+p.Len])
		*(*uint32)(unsafe.Pointer(&slot[tp2Len])) = uint32(p.Len)
		atomic.StoreUint32(st, unix.TP_STATUS_SEND_REQUEST)
		bytes += uint64(p.Len)
		queued++
		t.head++
		if t.head == t.nframes {
			t.head = 0
		}
	}
	if queued > 0 {
		q.kick(t)
	}
	q.c.txBytes.Add(bytes)
	return queued
}

func (q *afpQueue) kick(t *txSock) {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(t.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		q.c.txCalls.Add(1)
		if errno != unix.EINTR {
			return
		}
	}
}
