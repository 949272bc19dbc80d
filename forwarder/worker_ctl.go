package forwarder

import (
	"github.com/ulvs/ulvs/forwarder/engine"
	"github.com/ulvs/ulvs/forwarder/pkt"
)

// arp answers requests for the VIPs and feeds the neighbour cache.
func (w *worker) arp(bp *engine.Packet, buf []byte) Drop {
	p := &w.p
	var sha [6]byte
	copy(sha[:], buf[p.SLLAOff:p.SLLAOff+6])
	switch p.ARPOp {
	case 2:
		w.d.resolver.Learn(&p.Src, sha)
		return DropNotOurs
	case 1:
		w.d.resolver.Seen(&p.Src, sha)
		if w.d.standby.Load() || !w.d.table.Load().isVIP(&p.Target) {
			return DropNotOurs
		}
		out := w.auxSlot()
		if out == nil {
			return DropTxFailed
		}
		n, pd := pkt.ARPReply(out.Buf[out.Off:], buf, p, w.d.cfg.Ifaces[bp.Iface].MAC)
		if pd != pkt.DropNone {
			return Drop(pd)
		}
		out.Len, out.Iface = n, bp.Iface
		w.tx = append(w.tx, *out)
		bump(&w.st.arpReplies, 1)
		return DropAnswered
	}
	return DropNotOurs
}

// ndp answers neighbour solicitations for IPv6 VIPs and learns from
// advertisements.
func (w *worker) ndp(bp *engine.Packet, buf []byte, tab *svcTable) Drop {
	p := &w.p
	if p.ICMPType == 136 {
		if target, mac, ok := pkt.NeighborAdvertInfo(buf, p); ok {
			w.d.resolver.Learn(&target, mac)
		}
		return DropNotOurs
	}
	if p.Flags&pkt.FlagSLLA != 0 {
		var m [6]byte
		copy(m[:], buf[p.SLLAOff:p.SLLAOff+6])
		w.d.resolver.Seen(&p.Src, m)
	}
	if w.d.standby.Load() || !tab.isVIP(&p.Target) || w.d.cfg.L3 {
		return DropNotOurs
	}
	out := w.auxSlot()
	if out == nil {
		return DropTxFailed
	}
	n, pd := pkt.NeighborAdvert(out.Buf[out.Off:], buf, p, w.d.cfg.Ifaces[bp.Iface].MAC)
	if pd != pkt.DropNone {
		return Drop(pd)
	}
	out.Len, out.Iface = n, bp.Iface
	w.tx = append(w.tx, *out)
	bump(&w.st.ndpReplies, 1)
	return DropAnswered
}

type icmpKind uint8

const (
	icmpPortUnreachable icmpKind = iota
	icmpTimeExceeded
)

// icmpAllowed takes a token from the worker's ICMP budget.
func (w *worker) icmpAllowed() bool {
	if w.now-w.icmpRefill >= 1e9 {
		w.icmpRefill = w.now
		w.icmpTokens = w.d.cfg.ICMPRate
	}
	if w.icmpTokens <= 0 {
		bump(&w.st.drops[DropICMPRateLimited], 1)
		return false
	}
	w.icmpTokens--
	return true
}

// icmpSource is the source address of an ICMP error about p: the VIP when
// the packet was sent to one (the client sees the virtual service answer),
// else the director's address on the public side.
func (w *worker) icmpSource() ([16]byte, bool) {
	p := &w.p
	if w.d.table.Load().isVIP(&p.Dst) {
		return p.Dst, true
	}
	ifc := &w.d.cfg.Ifaces[0]
	if p.Version == 4 {
		return ifc.src4, ifc.has4
	}
	return ifc.src6, ifc.has6
}

func (w *worker) sendICMPError(buf []byte, kind icmpKind) {
	p := &w.p
	var typ, code uint8
	switch {
	case kind == icmpTimeExceeded && p.Version == 4:
		typ, code = pkt.ICMPTimeExceeded, 0
	case kind == icmpTimeExceeded:
		typ, code = pkt.ICMPv6TimeExceeded, 0
	case p.Version == 4:
		typ, code = pkt.ICMPDestUnreach, 3
	default:
		typ, code = pkt.ICMPv6DestUnreach, 4
	}
	w.sendICMP(buf, typ, code, 0)
}

// sendTooBig answers a DF packet that does not fit the tunnel with
// frag-needed (IPv4) or packet-too-big (IPv6) carrying mtu.
func (w *worker) sendTooBig(buf []byte, mtu int) {
	if w.p.Version == 4 {
		w.sendICMP(buf, pkt.ICMPDestUnreach, 4, uint32(mtu))
	} else {
		w.sendICMP(buf, pkt.ICMPv6PacketTooBig, 0, uint32(mtu))
	}
}

func (w *worker) sendICMP(buf []byte, typ, code uint8, info uint32) {
	if src, ok := w.icmpSource(); ok {
		w.sendICMPAbout(buf, &w.p, src, typ, code, info)
	}
}

// sendICMPAbout sends an ICMP error about the packet q (parsed from buf)
// from src to q's source.
func (w *worker) sendICMPAbout(buf []byte, q *pkt.Packet, src [16]byte, typ, code uint8, info uint32) {
	if !w.icmpAllowed() {
		return
	}
	out := w.auxSlot()
	if out == nil {
		return
	}
	l2 := 0
	if !w.d.cfg.L3 {
		l2 = pkt.EthernetLen
	}
	n, pd := pkt.BuildICMPError(out.Buf[out.Off+l2:], buf, q, src, typ, code, info)
	if pd != pkt.DropNone {
		w.nAux--
		return
	}
	out.Len = l2 + n
	dst := q.Src
	if !w.d.cfg.L3 {
		et := uint16(pkt.EtherTypeIPv4)
		if q.Version == 6 {
			et = pkt.EtherTypeIPv6
		}
		out.Buf[out.Off+12], out.Buf[out.Off+13] = byte(et>>8), byte(et)
	}
	if d := w.toL2(out, out.Buf, &dst); d != 0 {
		w.nAux--
		return
	}
	w.tx = append(w.tx, *out)
	bump(&w.st.icmpSent, 1)
}
