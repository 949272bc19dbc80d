package connsync

import (
	"encoding/binary"
	"net/netip"
)

// Reason says why a message, or an entry in it, was dropped. Decoding never
// panics and never builds an error value: malformed input is a Reason that
// the caller counts.
type Reason uint8

// Drop reasons. The Msg* reasons stop the decoding of the message (entries
// already delivered stay delivered, as in the kernel); the Entry* reasons
// skip one entry and go on.
const (
	OK                Reason = iota
	MsgShort                 // shorter than a v0 header
	MsgSizeMismatch          // datagram length != header size
	MsgSyncID                // sync ID filtered out
	MsgTruncated             // an entry runs past the end of the message
	MsgEntryVersion          // an entry's ver_size carries a non-zero version
	MsgBadType               // entry type is neither IPv4 (0) nor IPv6 (bit 0)
	MsgBadOption             // option header or length malformed, or SEQ_DATA/PE_* repeated or oversized
	EntryMandatoryOpt        // unknown mandatory option
	EntryProto               // unsupported protocol
	EntryState               // state out of range for the protocol
	EntryPE                  // persistence engine named (ulvs has none)
	EntryBadLen              // v1 entry length shorter than its fixed part
	NumReasons
)

var reasonNames = [NumReasons]string{
	"ok", "msg_short", "msg_size_mismatch", "msg_syncid", "msg_truncated",
	"msg_entry_version", "msg_bad_type", "msg_bad_option",
	"entry_mandatory_option", "entry_protocol", "entry_state", "entry_pe", "entry_bad_len",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Sink receives decoded connections. c is only valid during the call.
// Flags already carry FlagSync and are masked with BackupMask.
type Sink interface {
	SyncConn(c *Conn)
}

// Result summarises one decoded message.
type Result struct {
	Version uint8  // 0 or 1
	SyncID  uint8  // from the header
	Conns   int    // entries delivered to the sink
	Reason  Reason // OK, or why the rest of the message was dropped
	Entries [NumReasons]uint16
}

// Decoder decodes sync messages. The zero value accepts every sync ID; set
// SyncID to filter as a kernel backup does (0 accepts all).
type Decoder struct {
	SyncID uint8
	c      Conn
}

// Decode parses msg (one UDP payload) and passes each valid connection to
// sink. It follows ip_vs_process_message: the length must equal the header
// size; the sync ID is filtered; the message is v1 only when version == 1,
// reserved == 0 and spare == 0, otherwise v0.
func (d *Decoder) Decode(msg []byte, sink Sink) (r Result) {
	if len(msg) < HeaderLenV0 {
		r.Reason = MsgShort
		return r
	}
	if int(binary.BigEndian.Uint16(msg[2:4])) != len(msg) {
		r.Reason = MsgSizeMismatch
		return r
	}
	r.SyncID = msg[1]
	if d.SyncID != 0 && msg[1] != d.SyncID {
		r.Reason = MsgSyncID
		return r
	}
	if len(msg) >= HeaderLen && msg[5] == 1 && msg[0] == 0 && msg[6] == 0 && msg[7] == 0 {
		r.Version = 1
		d.decodeV1(msg, sink, &r)
		return r
	}
	d.decodeV0(msg, sink, &r)
	return r
}

func (d *Decoder) decodeV1(msg []byte, sink Sink, r *Result) {
	n := int(msg[4])
	off := HeaderLen
	for i := 0; i < n; i++ {
		if off+EntryLen4 > len(msg) {
			r.Reason = MsgTruncated
			return
		}
		vs := binary.BigEndian.Uint16(msg[off+2 : off+4])
		size := int(vs & 0x0fff)
		end := off + size
		if end > len(msg) {
			r.Reason = MsgTruncated
			return
		}
		if vs>>12 != 0 {
			r.Reason = MsgEntryVersion
			return
		}
		if size < EntryLen4 {
			// The kernel would read the fixed part past the entry end; we
			// refuse: a short entry cannot hold its own fields.
			r.Reason = MsgTruncated
			return
		}
		drop, stop := d.entryV1(msg[off:end])
		if stop != OK {
			r.Reason = stop
			return
		}
		if drop != OK {
			r.Entries[drop]++
		} else {
			r.Conns++
			sink.SyncConn(&d.c)
		}
		off += (size + 3) &^ 3
	}
}

// entryV1 decodes one entry e (exactly its ver_size bytes) into d.c.
func (d *Decoder) entryV1(e []byte) (drop, stop Reason) {
	c := &d.c
	*c = Conn{}
	p := 0
	switch {
	case e[0]&1 != 0:
		c.IPv6 = true
		p = EntryLen6
	case e[0] == 0:
		p = EntryLen4
	default:
		return OK, MsgBadType
	}
	if p > len(e) {
		return OK, MsgTruncated
	}
	var seen uint8
	mandatoryUnknown := false
	pe := false
	for p < len(e) {
		if p+2 > len(e) {
			return OK, MsgBadOption
		}
		typ, l := e[p], int(e[p+1])
		p += 2
		if l == 0 || p+l > len(e) {
			return OK, MsgBadOption
		}
		switch typ &^ OptOptional {
		case OptSeqData:
			if l != SeqDataLen || seen&1 != 0 {
				return OK, MsgBadOption
			}
			seen |= 1
			c.HasSeq = true
			c.InSeq = getSeq(e[p:])
			c.OutSeq = getSeq(e[p+12:])
		case OptPEData:
			if l > PEDataMax || seen&2 != 0 {
				return OK, MsgBadOption
			}
			seen |= 2
		case OptPEName:
			if l > PENameMax || seen&4 != 0 {
				return OK, MsgBadOption
			}
			seen |= 4
			pe = true
		default:
			if typ&OptOptional == 0 {
				// The kernel drops the entry at once; the rest of the
				// message is still processed.
				mandatoryUnknown = true
			}
		}
		if mandatoryUnknown {
			return EntryMandatoryOpt, OK
		}
		p += l
	}
	c.Protocol = e[1]
	c.Flags = binary.BigEndian.Uint32(e[4:8])&BackupMask | FlagSync
	c.State = binary.BigEndian.Uint16(e[8:10])
	c.CPort = binary.BigEndian.Uint16(e[10:12])
	c.VPort = binary.BigEndian.Uint16(e[12:14])
	c.DPort = binary.BigEndian.Uint16(e[14:16])
	c.Fwmark = binary.BigEndian.Uint32(e[16:20])
	c.Timeout = binary.BigEndian.Uint32(e[20:24])
	if c.IPv6 {
		c.CAddr = netip.AddrFrom16([16]byte(e[24:40]))
		c.VAddr = netip.AddrFrom16([16]byte(e[40:56]))
		c.DAddr = netip.AddrFrom16([16]byte(e[56:72]))
	} else {
		c.CAddr = netip.AddrFrom4([4]byte(e[24:28]))
		c.VAddr = netip.AddrFrom4([4]byte(e[28:32]))
		c.DAddr = netip.AddrFrom4([4]byte(e[32:36]))
	}
	if r := checkProtoState(c); r != OK {
		return r, OK
	}
	if pe {
		// ip_vs_conn_fill_param_sync drops entries whose persistence
		// engine is not loaded; ulvs has no persistence engines.
		return EntryPE, OK
	}
	return OK, OK
}

// checkProtoState applies the kernel's protocol and state checks; a
// template's state is forced to 0.
func checkProtoState(c *Conn) Reason {
	if c.Flags&FlagTemplate != 0 {
		c.State = 0
		return OK
	}
	var n uint16
	switch c.Protocol {
	case ProtoTCP:
		n = tcpNumStates
	case ProtoUDP:
		n = 1 // IP_VS_UDP_S_NORMAL
	case ProtoSCTP:
		n = 15 // IP_VS_SCTP_S_LAST
	default:
		return EntryProto
	}
	if c.State >= n {
		return EntryState
	}
	return OK
}

// decodeV0 parses the original format: 4-byte header, 24-byte IPv4 entries
// followed by 24 bytes of sequence data when a SEQ flag is set. v0 has no
// timeout: Timeout is 0 and the receiver uses its own table.
func (d *Decoder) decodeV0(msg []byte, sink Sink, r *Result) {
	n := int(msg[0])
	off := HeaderLenV0
	for i := 0; i < n; i++ {
		if off+EntryLenV0 > len(msg) {
			r.Reason = MsgTruncated
			return
		}
		e := msg[off:]
		c := &d.c
		*c = Conn{}
		c.Protocol = e[1]
		c.CPort = binary.BigEndian.Uint16(e[2:4])
		c.VPort = binary.BigEndian.Uint16(e[4:6])
		c.DPort = binary.BigEndian.Uint16(e[6:8])
		c.CAddr = netip.AddrFrom4([4]byte(e[8:12]))
		c.VAddr = netip.AddrFrom4([4]byte(e[12:16]))
		c.DAddr = netip.AddrFrom4([4]byte(e[16:20]))
		c.Flags = (uint32(binary.BigEndian.Uint16(e[20:22])) | FlagSync) &^ FlagHashed
		c.State = binary.BigEndian.Uint16(e[22:24])
		off += EntryLenV0
		if c.Flags&FlagSeqMask != 0 {
			if off+SeqDataLen > len(msg) {
				r.Reason = MsgTruncated
				return
			}
			c.HasSeq = true
			c.InSeq = getSeq(msg[off:])
			c.OutSeq = getSeq(msg[off+12:])
			off += SeqDataLen
		}
		if rs := checkProtoState(c); rs != OK {
			r.Entries[rs]++
			continue
		}
		r.Conns++
		sink.SyncConn(c)
	}
}
