package forwarder

import (
	"context"
	"time"

	"github.com/ulvs/ulvs/conntrack"
	"github.com/ulvs/ulvs/forwarder/engine"
	"github.com/ulvs/ulvs/forwarder/pkt"
	"github.com/ulvs/ulvs/scheduler"
)

// worker moves packets for one engine queue. Everything it touches per
// packet is its own (batches, the decoded packet, counters) except the
// connection table shards, the schedulers' pools and the immutable
// snapshots, so workers never wait for each other on an established flow.
type worker struct {
	d  *Director
	id int
	q  engine.Queue
	st *workerStats

	rx   []engine.Packet // receive batch
	aux  []engine.Packet // frames the director originates (ARP, NDP, ICMP)
	tx   []engine.Packet // what to send this round: rx and aux slots
	nAux int

	p      pkt.Packet
	quoted pkt.Packet // the client packet quoted by an ICMP error about a tunnel packet
	c      conntrack.Conn
	flow   scheduler.Flow
	tun    pkt.Tunnel
	ipid   uint16
	now    int64

	// ICMP rate limit: a token bucket refilled once per second.
	icmpTokens int
	icmpRefill int64

	// Batch prefetch of connection-table entries (see prefetch).
	pfIn, pfOut []scheduler.Flow
	bigTable    bool  // the table outgrew the CPU caches at the last check
	sizeCheck   int64 // when to look at the table's size again
	pfSink      uint64
}

// Prefetching pays off once the connection table no longer fits the CPU
// caches; it is checked every prefetchRecheck, and only batches of at least
// prefetchMinBatch frames are prefetched.
const (
	prefetchMinConns = 16384
	prefetchMinBatch = 8
	prefetchRecheck  = int64(100 * time.Millisecond)
)

func newWorker(d *Director, id int, q engine.Queue) *worker {
	n := q.BatchSize()
	if n <= 0 {
		n = 64
	}
	return &worker{
		d:     d,
		id:    id,
		q:     q,
		st:    d.stats.workers[id],
		rx:    engine.NewBatch(n, 0),
		aux:   engine.NewBatch(n, 256),
		tx:    make([]engine.Packet, 0, 2*n),
		pfIn:  make([]scheduler.Flow, 0, n),
		pfOut: make([]scheduler.Flow, 0, n),
		// Different workers start their IP IDs apart.
		ipid: uint16(id) << 13,
	}
}

func (w *worker) run(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := w.q.Read(w.rx)
		if err != nil {
			return err
		}
		w.round(n)
	}
	return nil
}

// round handles n received packets and transmits the results in one batch.
func (w *worker) round(n int) {
	w.now = w.d.now()
	w.tx = w.tx[:0]
	w.nAux = 0
	if n >= prefetchMinBatch {
		w.prefetch(n)
	}
	for i := 0; i < n; i++ {
		bp := &w.rx[i]
		if d := w.handle(bp); d != 0 {
			w.st.drop(d)
			continue
		}
		w.tx = append(w.tx, *bp)
	}
	if len(w.tx) == 0 {
		return
	}
	sent, _ := w.q.Write(w.tx)
	if sent < len(w.tx) {
		bump(&w.st.drops[DropTxFailed], uint64(len(w.tx)-sent))
	}
	// Slots keep their full buffers; reset the offsets for the next Read.
	for i := 0; i < n; i++ {
		w.rx[i].Off = engine.Headroom
	}
}

// prefetch warms the CPU caches for the connection-table lookups of the
// batch before its frames are handled one by one: it parses each frame's
// headers to its flow and has the table load every bucket head, then every
// chain's first entry, as independent loads whose memory latencies overlap
// instead of adding up frame after frame. Only while the table is larger
// than the caches: with a small, hot table it would cost a second parse for
// nothing.
func (w *worker) prefetch(n int) {
	ct := w.d.ct
	if w.now >= w.sizeCheck {
		w.bigTable = ct.Len() >= prefetchMinConns
		w.sizeCheck = w.now + prefetchRecheck
	}
	if !w.bigTable {
		return
	}
	tab := w.d.table.Load()
	in, out := w.pfIn[:0], w.pfOut[:0]
	p := &w.p
	for i := 0; i < n && i < cap(in); i++ {
		bp := &w.rx[i]
		buf := bp.Buf[:bp.Off+bp.Len]
		var pd pkt.Drop
		if w.d.cfg.L3 {
			pd = pkt.ParseIP(buf, bp.Off, p)
		} else {
			pd = pkt.ParseEthernet(buf, bp.Off, p)
		}
		if pd != pkt.DropNone || p.Flags&pkt.FlagPorts == 0 || p.Flags&pkt.FlagICMPError != 0 {
			continue
		}
		f := scheduler.Flow{Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort, Proto: p.Proto, IPv6: !pkt.IsV4(&p.Src)}
		if tab.lookup(p.Proto, &p.Dst, p.DstPort) != nil {
			in = append(in, f)
		} else {
			out = append(out, f)
		}
	}
	w.pfSink ^= ct.PrefetchIn(in) ^ ct.PrefetchOut(out)
	w.pfIn, w.pfOut = in, out
}

// auxSlot returns a free slot for an originated frame, or nil when the
// round has used them all.
func (w *worker) auxSlot() *engine.Packet {
	if w.nAux == len(w.aux) {
		return nil
	}
	s := &w.aux[w.nAux]
	w.nAux++
	s.Off = engine.Headroom
	return s
}

// handle decides what to do with one packet. It returns 0 when bp is to be
// transmitted as it now stands (rewritten in place, Iface set), or the
// reason it was dropped. Frames the director originates in answer (ARP
// replies, ICMP errors) are appended to w.tx directly.
func (w *worker) handle(bp *engine.Packet) Drop {
	buf := bp.Buf[:bp.Off+bp.Len]
	p := &w.p
	var pd pkt.Drop
	if w.d.cfg.L3 {
		pd = pkt.ParseIP(buf, bp.Off, p)
	} else {
		pd = pkt.ParseEthernet(buf, bp.Off, p)
	}
	if pd != pkt.DropNone {
		return Drop(pd)
	}
	if p.EtherType == pkt.EtherTypeARP {
		return w.arp(bp, buf)
	}
	tab := w.d.table.Load()
	if p.Proto == pkt.ProtoICMPv6 && (p.ICMPType == 135 || p.ICMPType == 136) {
		return w.ndp(bp, buf, tab)
	}
	if w.d.standby.Load() {
		return DropStandby
	}
	if p.Flags&pkt.FlagICMPError != 0 {
		return w.icmpError(bp, buf, tab)
	}
	if p.Flags&pkt.FlagPorts == 0 {
		return DropNotOurs
	}
	w.setFlow(p.Proto, &p.Src, &p.Dst, p.SrcPort, p.DstPort)
	if svc := tab.lookup(p.Proto, &p.Dst, p.DstPort); svc != nil {
		return w.inbound(bp, buf, svc)
	}
	return w.outbound(bp, buf)
}

func (w *worker) setFlow(proto uint8, src, dst *[16]byte, sport, dport uint16) {
	f := &w.flow
	f.Src, f.Dst = *src, *dst
	f.SrcPort, f.DstPort = sport, dport
	f.Proto = proto
	f.IPv6 = !pkt.IsV4(src)
}

// inbound handles a client's packet to a virtual service.
func (w *worker) inbound(bp *engine.Packet, buf []byte, svc *Service) Drop {
	p := &w.p
	switch w.d.ct.In(&w.flow, p.TCPFlags, w.now, &w.c) {
	case conntrack.Hit:
	case conntrack.DropNoDest:
		return DropNoDest
	default: // Miss
		r := w.d.ct.Connect(&svc.ct, &w.flow, p.TCPFlags, w.now, svc.pool, &w.c)
		switch r {
		case conntrack.Created:
			bump(&w.st.services[svc.id].conns, 1)
			bump(&w.st.dests[w.c.Dest].conns, 1)
			if w.c.Method == conntrack.MethodMasq {
				w.learnClient(buf)
			}
		case conntrack.Existing:
		case conntrack.NoServer:
			// IPVS answers with port unreachable when no server is left.
			w.sendICMPError(buf, icmpPortUnreachable)
			return DropNoServer
		default:
			return resultDrop(r)
		}
	}
	n := uint64(p.End - p.L3Off)
	ss, ds := &w.st.services[svc.id], &w.st.dests[w.c.Dest]
	bump(&ss.inPkts, 1)
	bump(&ss.inBytes, n)
	bump(&ds.inPkts, 1)
	bump(&ds.inBytes, n)
	w.syncConn(svc, p.TCPFlags) // issue 7: connection sync to the backup (forwarder/sync.go)
	return w.forward(bp, buf)
}

// learnClient records an on-link client's MAC address from its first
// packet, so that the NAT reply does not wait for an ARP exchange. Only
// clients on a connected prefix are learnt (behind a router the frame's
// source is the router's MAC), and only when unknown.
func (w *worker) learnClient(buf []byte) {
	p := &w.p
	if w.d.cfg.L3 || p.L2Off < 0 {
		return
	}
	if _, ok := w.d.neigh.Lookup(&p.Src, w.now); ok {
		return
	}
	if _, hop, ok := w.d.routes.Load().Lookup(&p.Src); !ok || hop != p.Src {
		return
	}
	var mac [6]byte
	copy(mac[:], buf[p.L2Off+6:p.L2Off+12])
	w.d.resolver.Learn(&p.Src, mac)
}

// forward sends a client's packet (or an ICMP error about its connection,
// already translated for NAT) to the connection's real server with its
// method.
func (w *worker) forward(bp *engine.Packet, buf []byte) Drop {
	p, c := &w.p, &w.c
	var pd pkt.Drop
	switch c.Method {
	case conntrack.MethodMasq, conntrack.MethodRoute:
		ifi, mac := 0, [6]byte{}
		if !w.d.cfg.L3 {
			var d Drop
			if ifi, mac, d = w.resolve(&c.DAddr); d != 0 {
				return d
			}
			// The egress MTU rule of IPVS, checked before any rewrite so that
			// the answer quotes the packet as the client sent it.
			switch pd = pkt.CheckMTU(p, w.d.cfg.Ifaces[ifi].MTU); pd {
			case pkt.DropNone:
			case pkt.DropTooBig:
				w.sendTooBig(buf, w.d.cfg.Ifaces[ifi].MTU)
				return Drop(pd)
			default:
				return Drop(pd)
			}
		}
		switch {
		case c.Method == conntrack.MethodRoute && w.d.cfg.L3:
			return Drop(pkt.DropNoL2Header)
		case c.Method == conntrack.MethodRoute:
			pd = pkt.DR(buf, p, mac, w.d.cfg.Ifaces[ifi].MAC)
		case p.Flags&pkt.FlagICMPError == 0:
			if !pkt.L4ChecksumOK(buf, p) {
				return DropBadL4Checksum // IPVS's dnat handlers check it too
			}
			pd = pkt.NATIn(buf, p, c.DAddr, c.DPort)
		default: // an ICMP error already translated by ICMPNATIn
			pd = pkt.DecTTL(buf, p)
		}
		if pd != pkt.DropNone {
			return w.rewriteFailed(buf, pd)
		}
		bp.Off, bp.Len = p.Start(), p.End-p.Start()
		bp.Iface = engine.Iface(ifi)
		if !w.d.cfg.L3 && c.Method == conntrack.MethodMasq {
			pkt.SetMACs(buf, bp.Off, mac, w.d.cfg.Ifaces[ifi].MAC)
		}
		return 0
	case conntrack.MethodTunnel:
		ifi := 0
		if !w.d.cfg.L3 {
			var ok bool
			if ifi, _, ok = w.d.routes.Load().Lookup(&c.DAddr); !ok {
				return DropNoRoute
			}
		}
		if !tunnelFor(&w.tun, &w.d.cfg.Ifaces[ifi], &c.DAddr) {
			return DropNoTunnelSource
		}
		w.ipid++
		start, end, pd := pkt.Encap(buf, p, &w.tun, w.ipid)
		if pd != pkt.DropNone {
			if pd == pkt.DropTooBig {
				w.sendTooBig(buf, w.tun.InnerMTU())
			}
			return w.rewriteFailed(buf, pd)
		}
		bp.Off, bp.Len = start, end-start
		return w.toL2(bp, buf, &c.DAddr)
	}
	return DropNotOurs
}

// rewriteFailed answers an expired TTL with time-exceeded and passes the
// reason on.
func (w *worker) rewriteFailed(buf []byte, pd pkt.Drop) Drop {
	if pd == pkt.DropTTLExceeded {
		w.sendICMPError(buf, icmpTimeExceeded)
	}
	return Drop(pd)
}

// outbound handles a packet that is not for a virtual service: a NAT real
// server's reply, matched in the outbound index.
func (w *worker) outbound(bp *engine.Packet, buf []byte) Drop {
	p := &w.p
	if w.d.ct.Out(&w.flow, p.TCPFlags, w.now, &w.c) != conntrack.Hit {
		return DropNotOurs
	}
	if w.c.Method != conntrack.MethodMasq {
		return DropNotOurs
	}
	if !pkt.L4ChecksumOK(buf, p) {
		return DropBadL4Checksum
	}
	if pd := pkt.NATOut(buf, p, w.c.VAddr, w.c.VPort); pd != pkt.DropNone {
		return w.rewriteFailed(buf, pd)
	}
	w.countOut(p.End - p.L3Off)
	bp.Off, bp.Len = p.Start(), p.End-p.Start()
	return w.toL2(bp, buf, &w.c.CAddr)
}

func (w *worker) countOut(n int) {
	if svc := w.d.table.Load().lookup(w.c.Proto, &w.c.VAddr, w.c.VPort); svc != nil {
		ss := &w.st.services[svc.id]
		bump(&ss.outPkts, 1)
		bump(&ss.outBytes, uint64(n))
	}
	ds := &w.st.dests[w.c.Dest]
	bump(&ds.outPkts, 1)
	bump(&ds.outBytes, uint64(n))
}

// icmpError handles an ICMP error that may quote a tracked connection.
func (w *worker) icmpError(bp *engine.Packet, buf []byte, tab *svcTable) Drop {
	p := &w.p
	in := &p.Inner
	if in.Proto == pkt.ProtoIPIP || in.Proto == pkt.ProtoIPv6 {
		return w.tunnelError(buf)
	}
	if p.Flags&pkt.FlagInnerPorts == 0 {
		return DropICMPNoConnection
	}
	// From a client: the quoted packet went VIP -> client, so the client's
	// flow is its reverse.
	w.setFlow(in.Proto, &in.Dst, &in.Src, in.DstPort, in.SrcPort)
	if tab.isVIP(&p.Dst) && w.d.ct.LookupIn(&w.flow, &w.c) {
		if w.c.Method == conntrack.MethodMasq {
			if pd := pkt.ICMPNATIn(buf, p, w.c.DAddr, w.c.DPort); pd != pkt.DropNone {
				return Drop(pd)
			}
		}
		return w.forward(bp, buf)
	}
	// From a NAT real server (or a router on its side): the quoted packet
	// went client -> real server; the outbound key is its reverse.
	if !w.d.ct.LookupOut(&w.flow, &w.c) || w.c.Method != conntrack.MethodMasq {
		return DropICMPNoConnection
	}
	if pd := pkt.ICMPNATOut(buf, p, w.c.VAddr, w.c.VPort); pd != pkt.DropNone {
		return Drop(pd)
	}
	if pd := pkt.DecTTL(buf, p); pd != pkt.DropNone {
		return Drop(pd) // never answer an ICMP error with another
	}
	bp.Off, bp.Len = p.Start(), p.End-p.Start()
	return w.toL2(bp, buf, &w.c.CAddr)
}

// tunnelError handles an ICMP error about one of the director's own
// IP-in-IP packets, as IPVS does: a frag-needed (packet-too-big) is answered
// to the client with the tunnel's MTU when the client's packet had DF (or is
// IPv6), so the client lowers its segment size; other errors are relayed to
// the client with the same type and code. The error itself goes no further.
func (w *worker) tunnelError(buf []byte) Drop {
	p, q := &w.p, &w.quoted
	if pd := pkt.ParseTunnelError(buf, p, q); pd != pkt.DropNone {
		return Drop(pd)
	}
	w.setFlow(q.Proto, &q.Src, &q.Dst, q.SrcPort, q.DstPort)
	if !w.d.ct.LookupIn(&w.flow, &w.c) || w.c.Method != conntrack.MethodTunnel {
		return DropICMPNoConnection
	}
	outer4 := p.Version == 4
	tooBig := (outer4 && p.ICMPType == pkt.ICMPDestUnreach && p.ICMPCode == 4) ||
		(!outer4 && p.ICMPType == pkt.ICMPv6PacketTooBig)
	switch {
	case tooBig:
		hdr := 40
		mtu := int(p.ICMPInfo)
		if outer4 {
			hdr, mtu = 20, int(p.ICMPInfo&0xffff)
		}
		if mtu -= hdr; mtu <= 88 {
			return DropICMPNoConnection // a bogus MTU: IPVS ignores it too
		}
		if q.Version == 4 && q.Flags&pkt.FlagDF == 0 {
			return DropAnswered // the client lets routers fragment; nothing to tell
		}
		typ, code := uint8(pkt.ICMPDestUnreach), uint8(4)
		if q.Version == 6 {
			typ, code = pkt.ICMPv6PacketTooBig, 0
		}
		w.sendICMPAbout(buf, q, q.Dst, typ, code, uint32(mtu))
	case (q.Version == 4) == outer4:
		w.sendICMPAbout(buf, q, q.Dst, p.ICMPType, p.ICMPCode, p.ICMPInfo)
	default:
		return DropICMPNoConnection // no type mapping between ICMP and ICMPv6
	}
	return DropAnswered
}

// toL2 routes the frame bp (already rewritten, Off and Len set) to dst: it
// picks the interface, resolves the next hop's MAC and writes the Ethernet
// addresses. An L3 engine hands the packet back to the kernel, which
// routes it.
func (w *worker) toL2(bp *engine.Packet, buf []byte, dst *[16]byte) Drop {
	if w.d.cfg.L3 {
		bp.Iface = engine.Public
		return 0
	}
	ifi, mac, d := w.resolve(dst)
	if d != 0 {
		return d
	}
	pkt.SetMACs(buf, bp.Off, mac, w.d.cfg.Ifaces[ifi].MAC)
	bp.Iface = engine.Iface(ifi)
	return 0
}

// resolve returns the interface and next-hop MAC for dst. An unresolved
// next hop is handed to the resolver and the packet dropped; the next one
// passes once the answer is in.
func (w *worker) resolve(dst *[16]byte) (int, [6]byte, Drop) {
	ifi, hop, ok := w.d.routes.Load().Lookup(dst)
	if !ok {
		return 0, [6]byte{}, DropNoRoute
	}
	mac, ok := w.d.neigh.Lookup(&hop, w.now)
	if !ok {
		w.d.resolver.Want(&hop)
		return 0, mac, DropNoNeighbour
	}
	return ifi, mac, 0
}
