// Package engine moves packets between the network and the ulvs data path.
//
// # Interface
//
// An Engine has one Queue per worker. A worker owns its Queue and loops:
//
//	pkts := engine.NewBatch(q.BatchSize(), 0) // once, before the loop
//	for {
//		n, err := q.Read(pkts)    // blocks for the first frame, then takes what is ready
//		if err != nil { return }  // ErrClosed after Engine.Close
//		for i := range pkts[:n] {
//			// parse and rewrite pkts[i].Frame() in place; prepend into the
//			// headroom by lowering Off; set Iface to the output interface
//		}
//		q.Write(pkts[:n])         // one system call per interface per batch
//	}
//
// Buffers belong to the caller. Read copies each frame to Buf[Headroom:]
// (Headroom = 128 bytes), so an encapsulation header fits in front of it
// without moving the payload; Write sends Buf[Off:Off+Len] of each slot on
// its Iface, so per-packet start offsets may differ. AF_PACKET frames start
// with the Ethernet header, TUN frames with the IP header. Neither Read nor
// Write allocates (asserted by tests), and queues share nothing, so workers
// never contend inside the engine.
//
// Three engines implement the interface: AFPacket (Linux, Ethernet
// interfaces, all forwarding methods), TUN (Linux, routed L3 networks, NAT
// and TUN methods) and Fake (channels, for tests without privileges).
//
// # AF_PACKET engine
//
// Per worker and per configured interface (public, and private when set)
// the engine opens one receive socket with a memory-mapped TPACKET_V3 ring,
// and one transmit socket. One ring per interface, rather than one socket
// bound to every interface, keeps traffic of unrelated interfaces (loopback,
// management, containers) out of the filter, lets each interface have its
// own fanout group, and costs only a second descriptor in the worker's
// poll(2) set.
//
// Receive ring. A ring is BlockCount blocks of BlockSize bytes (defaults 16
// x 256 KiB = 4 MiB per ring). The kernel packs frames into the current
// block and hands it to userspace when it is full or BlockTimeout (default
// 1 ms) after its first frame. Read walks the ready blocks in order, copies
// each frame once into the caller's slot, and gives a block back to the
// kernel (block_status = TP_STATUS_KERNEL) as soon as its last frame is
// copied, so the ring never waits on the data path. Copying 64 to 1500 bytes
// costs far less than the system calls it saves, gives the data path a
// writable buffer with headroom, and frees ring memory at once, which a
// zero-copy view (valid until the next Read) would not. Read sleeps in
// ppoll(2) only when no block is ready, with PollTimeout (default 100 ms) and
// an eventfd that Close signals, so Close wakes sleeping workers at once and
// then waits for in-flight calls before unmapping the rings. Frames the
// kernel marks outgoing are ignored (PACKET_FANOUT_FLAG_IGNORE_OUTGOING, and the
// packet type is checked again); frames truncated by the ring or larger than
// the caller's slot are dropped and counted (Stats.RxTooBig).
//
// BlockTimeout bounds the latency the ring adds at low rates: a lone packet
// waits up to that long for its block to close (a ping-pong through the
// engine takes about 1.1 ms with the 1 ms default, against about 5 us with
// TPACKET_V2). At high rates blocks fill before the timeout. RxRingV2
// switches to TPACKET_V2 rings, whose 2 KiB slots are handed over one by
// one: no added latency, but a wake-up per packet when the worker keeps up,
// so several times the receive CPU cost per packet of V3 (measured 170-850
// against 25-45 ns of worker-thread time per packet). V3 is the default
// for throughput; V2 suits latency-bound work (request/response at low
// concurrency). A block must hold the largest frame (256 KiB holds
// about 2000 minimum-size frames); more blocks absorb longer stalls of a
// worker before the kernel drops (Stats.KernelDrops; Stats.KernelFreezes
// counts the times every block was held by userspace).
//
// Fanout. With one worker each interface has one receive socket and no
// fanout group (the group's flow hash costs a flow dissection and a SipHash
// per frame, measured at about a sixth of the kernel's receive work for a
// 64-byte frame). With more, all receive sockets of one interface form one
// PACKET_FANOUT group
// in hash mode: the kernel picks the worker from the flow hash, so every
// packet of a flow (per direction) reaches the same worker. The group id is
// allocated by the kernel (PACKET_FANOUT_FLAG_UNIQUEID), so several engines
// in one namespace never collide. The two directions of a NAT connection
// arrive on different interfaces and may reach different workers; the
// connection table is shared for that reason. FanoutDefrag reassembles IPv4
// fragments before hashing (off by default: the flow hash of a fragment
// already ignores ports, so all fragments of an address pair meet on one
// worker, and a reassembled datagram above the MTU could not be sent on).
// FanoutRollover moves packets to another worker when one ring is full, at
// the cost of flow affinity (off).
//
// Filter. A classic BPF program built from a FilterSpec (see there) is
// attached before the socket is bound, so no frame ever lands in a ring
// unfiltered; the kernel copies only ARP, NDP for VIPs, traffic to the VIPs
// (per protocol and port), the NAT return path from the real servers and
// ICMP errors to the director. Everything else costs the kernel a few BPF
// instructions per receive socket and no copy. SetFilter swaps the program
// of every socket at run time with SO_ATTACH_FILTER (atomic per socket, no
// socket is closed and no ring is flushed), which is why the engine never
// sets SO_LOCK_FILTER. Frames already queued were accepted by the previous
// program: the data path classifies every frame anyway.
//
// Transmit. Write groups a batch by interface and sends each group with
// one sendmmsg(2) on the worker's transmit socket for that interface
// (bound with protocol 0, so it never receives). By default the socket
// bypasses the qdisc (PACKET_QDISC_BYPASS), handing frames straight to the
// driver; UseQdisc keeps the qdisc for traffic shaping. Bypassing the qdisc
// also bypasses the taps: tcpdump on the director does not see frames ulvs
// transmits (capture on the receiving host, or set UseQdisc). A full socket buffer
// blocks a Write at most PollTimeout (SO_SNDTIMEO), then the rest of the
// batch is dropped and counted (Stats.TxDropped); a frame the kernel refuses
// is dropped and counted and the batch goes on. With TxRing the transmit
// socket instead has a TPACKET_V2 TX ring (TxRingFrames slots of 2 KiB):
// Write copies frames into free slots, marks them for sending and kicks the
// kernel with one send(2) per interface per batch; a full ring waits up to
// PollTimeout for a slot, then drops. The benchmarks compare both on a veth
// lab (64-byte frames): forwarding costs the worker thread about 525 ns per
// packet with sendmmsg and 570-600 ns with the TX ring, almost all of it in
// the kernel's transmit path and the peer's receive, and a sendmmsg
// generator outruns a TX-ring one (2.1 against 1.95 Mpps): batching already
// amortizes the system call, and tpacket_snd's per-frame work is no
// cheaper than packet_snd's. sendmmsg is therefore the default: also no
// ring memory, no slots held while the peer still owns the skb, and no
// extra failure mode.
//
// The kernel's own stack. AF_PACKET receives a copy: the kernel still
// processes every frame itself afterwards. The receive sockets are taps,
// which run before the tc and netfilter ingress hooks, so a netdev-ingress
// nftables rule that drops the traffic the filter selects (VIP traffic, the
// NAT return path) leaves ulvs's copy intact while the kernel never routes,
// forwards a second time or resets it, and saves the stack's per-packet
// cost (TestAFPacketReceivesBeforeIngressDrop shows it). Without such a rule
// the director must at least not forward (net.ipv4.ip_forward=0) and must
// not own the VIPs.
//
// Counters (Stats): frames and bytes read and written, frames dropped by
// size or on transmit, transmit system calls, polls, and the kernel's
// PACKET_STATISTICS (packets passed by the filter, ring drops, queue
// freezes), accumulated because reading them resets them.
//
// Tunables and defaults: Workers (NumCPU, at most 256), BlockSize
// (256 KiB), BlockCount (16), BlockTimeout (1 ms), RxRingV2 (off),
// BatchSize (64), PollTimeout (100 ms), SendBuffer (4 MiB,
// SO_SNDBUFFORCE), FanoutDefrag (off), FanoutRollover (off), UseQdisc (off:
// bypass), TxRing (off), TxRingFrames (1024).
//
// Limits: Linux only (PACKET_IGNORE_OUTGOING needs 4.20); needs
// CAP_NET_RAW (CAP_NET_ADMIN for SO_SNDBUFFORCE, skipped if refused); frames
// with a VLAN tag stripped by the NIC are delivered without it (the tag is
// not restored); receive checksum offload state is not reported, so
// interfaces must not hand over partial checksums (turn tx checksumming
// off on veths); the filter matches IPv6 ports only without extension
// headers; the filter is a linear list, so its per-packet cost grows with
// the number of VIP addresses and real servers (ErrFilterTooLarge past
// 4096 instructions).
//
// # XDP fast lane (AFPacketConfig.XDP)
//
// An AF_PACKET ring receives a copy: the kernel builds an skb for every
// frame, runs its receive path up to the tap, copies the frame into the
// ring, and then goes on processing (or dropping) the original. With XDP
// set, the engine also attaches an XDP program to each interface (through
// a BPF link, which the kernel removes when the process exits, even on a
// crash) and opens, per worker and interface, an AF_XDP socket bound to
// queue w of the interface, in copy mode (veth and most drivers have no
// zero-copy AF_XDP). The program, assembled in Go with cilium/ebpf,
// redirects to the socket of the queue a frame arrived on:
//
//   - IPv4 without options, unfragmented, TCP/UDP/SCTP to a VIP's protocol
//     and port (or any port for a VIP with port 0);
//   - IPv4 from a real server (FilterSpec.RealServers: the NAT return
//     path), unless it is addressed to one of FilterSpec.DirectorAddrs
//     (health-check replies and the director's own traffic go to the
//     kernel, whose sockets wait for them).
//
// Everything else (ARP, NDP, IPv6, ICMP to a VIP, fragments, options) passes
// to the kernel and reaches the AF_PACKET rings and their classic filter as
// without XDP: the lane's match is a subset of the classic filter's, so the
// data path receives the same frames either way. A frame whose queue has no
// socket falls back to XDP_PASS. SetFilter updates the classic filters
// first, then the lane's hash map (new keys, then stale ones), so the lane
// never takes what the rings would refuse.
//
// Read drains the sockets' RX rings, then the AF_PACKET rings; each frame
// is copied into the caller's slot and its UMEM frame handed back to the
// fill ring at once. Write copies frames into free TX frames of the UMEM,
// queues them on the TX ring and kicks the kernel with sendto(2) once per
// batch (copy mode transmits only when kicked; XDP_MAX_TX_SKB_BUDGET raises
// the kernel's 32 frames per kick to the batch size where the kernel has
// it); sent frames come back on the completion ring. Neither allocates.
// Kernel drops of the sockets (full RX ring, empty fill ring) are added to
// Stats.KernelDrops; frames of the lane never pass a ring's filter, so
// Stats.KernelPackets counts only the AF_PACKET lane.
//
// What it saves: the frame never enters the kernel's stack (no tap, no
// ingress hook, no IP layer: no ingress-drop rule is needed for it), and
// transmission skips the per-message work of sendmmsg. What it does not:
// copy mode still copies each frame in and out of the UMEM, and the kernel
// still builds an skb for every transmitted frame.
//
// Where the receive work runs matters more than what it costs. A veth with
// an XDP program receives in its own NAPI context, which the sending CPU
// schedules; RPS does not apply. With a NIC it is the CPU of the queue's
// interrupt. If that CPU is the worker's, the receive softirq preempts the
// worker and, offered more than the worker can take, spends the CPU on
// frames that then find the socket's ring full (receive livelock).
// Threaded NAPI (echo 1 > /sys/class/net/DEV/threaded) turns that work
// into a kernel thread ("napi/DEV-ID") which can be pinned with taskset and
// given a lower priority than the worker (nice 19): frames the worker
// cannot take then wait in the device's queue and are dropped there, before
// they cost anything. ulvsbench dataplane measures both placements.
//
// Limits: a kernel with CONFIG_XDP_SOCKETS and BPF links for XDP (tested
// on 6.18 only); CAP_NET_ADMIN,
// CAP_NET_RAW and CAP_BPF (or CAP_SYS_ADMIN); one XDP program per
// interface (attaching fails if another is attached); every interface needs
// at least Workers receive queues (a veth has one unless created with
// numrxqueues); the MTU must fit a 2 KiB UMEM frame after the kernel's
// 256-byte XDP headroom (MTU 1774 at most); frames of the lane are not seen
// by tcpdump on the director (XDP runs before the taps; capture on the
// peers); DirectorAddrs are the interfaces' addresses when the engine
// started. Memory: 8 MiB of UMEM per socket.
//
// # TUN engine
//
// For L3-only networks where the VIPs are routed to the director and into
// a TUN device. Each worker has one queue (IFF_MULTI_QUEUE file descriptor,
// via songgao/water); the kernel spreads flows across queues by flow hash.
// Frames are bare IP packets. Read blocks (in the Go runtime poller) for the
// first packet, then reads without blocking until the batch is full or the
// device is empty; Write writes each packet. TUN has no batched system call:
// each packet costs one read(2) or write(2), which bounds its rate well below
// AF_PACKET's. Every packet written goes to the kernel, which routes it:
// Iface is ignored. Limits: no DR (there is no link layer to rewrite, and
// real servers cannot be reached by MAC), so NAT and TUN forwarding only;
// the device MTU must fit the slots (1500 with the default slot room);
// addresses, routes and link state of the device are the caller's to set.
//
// # Fake engine
//
// NewFake builds a channel-backed engine (after wireguard-go's tuntest): a
// test injects frames into a queue with Inject and reads what the data path
// transmitted from Sent. Its Write copies frames, so unlike the real
// engines it allocates.
package engine
