// Package connsync implements connection synchronisation between a pair of
// directors in the message format of the Linux IPVS sync daemon, protocol
// version 1 (ip_vs_sync.c; IPVS-SPEC.md §8), so that the backup director
// holds the active director's connections and established connections
// survive a takeover.
//
// It has three parts:
//
//   - the codec: Encoder builds v1 messages (8-byte header, 36-byte IPv4 and
//     72-byte IPv6 entries, the SEQ_DATA option, 4-byte alignment between
//     entries); Decode parses v1 and, for compatibility, v0 messages, with
//     the kernel's acceptance rules, reporting every drop as a Reason value;
//   - the send rules (ShouldSync) and the Sender that batches entries into
//     messages and flushes them when full or 2 s after first use, without
//     allocating on its steady path;
//   - the transport (Listen/Dial over UDP, multicast 224.0.0.81:8848 with TTL 1
//     and loopback off, or unicast) and the bulk copy a (re)joining backup asks
//     for (a ulvs extension, see Bulk).
package connsync

import (
	"encoding/binary"
	"net/netip"
)

// Connection flags (IPVS-SPEC §3), the values of IP_VS_CONN_F_*.
const (
	FlagMasq     uint32 = 0
	FlagLocal    uint32 = 1
	FlagTunnel   uint32 = 2
	FlagDRoute   uint32 = 3
	FlagBypass   uint32 = 4
	FlagFwdMask  uint32 = 0x7
	FlagSync     uint32 = 0x20
	FlagHashed   uint32 = 0x40
	FlagNoOutput uint32 = 0x80
	FlagInactive uint32 = 0x100
	FlagOutSeq   uint32 = 0x200
	FlagInSeq    uint32 = 0x400
	FlagSeqMask  uint32 = 0x600
	FlagNoCPort  uint32 = 0x800
	FlagTemplate uint32 = 0x1000
	FlagOnePkt   uint32 = 0x2000

	// BackupMask is what a backup keeps of the received flags
	// (IP_VS_CONN_F_BACKUP_MASK); FlagSync is then added.
	BackupMask = FlagFwdMask | FlagNoOutput | FlagInactive | FlagSeqMask | FlagNoCPort | FlagTemplate
)

// Protocol numbers.
const (
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
	ProtoSCTP uint8 = 132
)

// TCP states, numbered as IP_VS_TCP_S_*.
const (
	TCPNone uint16 = iota
	TCPEstablished
	TCPSynSent
	TCPSynRecv
	TCPFinWait
	TCPTimeWait
	TCPClose
	TCPCloseWait
	TCPLastAck
	TCPListen
	TCPSynAck
	tcpNumStates
)

// Wire sizes.
const (
	HeaderLen   = 8  // v1 message header
	HeaderLenV0 = 4  // v0 message header
	EntryLen4   = 36 // v1 IPv4 entry without options
	EntryLen6   = 72 // v1 IPv6 entry without options
	SeqDataLen  = 24 // SEQ_DATA option payload
	EntryLenV0  = 24 // v0 entry without sequence data
	MaxConns    = 255
	PENameMax   = 16 // IP_VS_PENAME_MAXLEN
	PEDataMax   = 255
	// DefaultMaxLen is the master's message limit: MTU capped at 1500, less
	// the IPv4 and UDP headers.
	DefaultMaxLen = 1500 - 28
)

// Option types.
const (
	OptSeqData  uint8 = 1
	OptPEData   uint8 = 2
	OptPEName   uint8 = 3
	OptOptional uint8 = 0x40 // IPVS_OPT_F_PARAM: unknown options with it are skipped
)

// Seq is the TCP sequence adjustment of one direction (struct ip_vs_seq).
type Seq struct {
	Init, Delta, PrevDelta uint32
}

// Conn is one synchronised connection: plain data, no pointers, so that the
// connection table converts to and from it without allocating.
// Addresses of IPv4 connections are IPv4 (not IPv4-mapped) netip.Addrs.
type Conn struct {
	Protocol uint8
	IPv6     bool
	Flags    uint32 // IP_VS_CONN_F_* (HASHED is never sent)
	State    uint16
	CPort    uint16
	VPort    uint16
	DPort    uint16
	Fwmark   uint32
	Timeout  uint32 // seconds; 0 in v0 messages (the receiver uses its state table)
	CAddr    netip.Addr
	VAddr    netip.Addr
	DAddr    netip.Addr
	// HasSeq says InSeq and OutSeq are valid (the SEQ_DATA option, or a v0
	// entry with a SEQ flag).
	HasSeq bool
	InSeq  Seq
	OutSeq Seq

	// Send-side inputs, not on the wire: the connection's inbound packet
	// count and its state before the latest transition (ShouldSync).
	InPkts   uint32
	OldState uint16
}

// EntryLen is the length of c's v1 entry without trailing padding.
func EntryLen(c *Conn) int {
	n := EntryLen4
	if c.IPv6 {
		n = EntryLen6
	}
	if c.HasSeq {
		n += 2 + SeqDataLen
	}
	return n
}

// Encoder builds one v1 sync message in a buffer it owns. Add appends
// entries until the message is full; Bytes returns the message to send;
// Reset starts a new one. It never allocates after NewEncoder.
type Encoder struct {
	buf    []byte
	maxLen int
	n      int
}

// NewEncoder returns an Encoder for messages of at most maxLen bytes
// (DefaultMaxLen when maxLen <= 0) carrying syncID.
func NewEncoder(syncID uint8, maxLen int) *Encoder {
	if maxLen <= 0 {
		maxLen = DefaultMaxLen
	}
	if maxLen > 65535 {
		maxLen = 65535
	}
	e := &Encoder{buf: make([]byte, HeaderLen, maxLen), maxLen: maxLen}
	e.buf[1] = syncID
	e.Reset()
	return e
}

// Reset empties the message (keeping the sync ID).
func (e *Encoder) Reset() {
	id := e.buf[1]
	e.buf = e.buf[:HeaderLen]
	clear(e.buf)
	e.buf[1] = id
	e.buf[5] = 1 // version
	e.n = 0
	binary.BigEndian.PutUint16(e.buf[2:4], HeaderLen)
}

// Count is the number of entries in the message.
func (e *Encoder) Count() int { return e.n }

// Len is the current message length.
func (e *Encoder) Len() int { return len(e.buf) }

// Bytes returns the message built so far. It is valid until the next Add or Reset.
func (e *Encoder) Bytes() []byte { return e.buf }

// Fits reports whether c fits in the message.
func (e *Encoder) Fits(c *Conn) bool {
	pad := (4 - len(e.buf)&3) & 3
	return e.n < MaxConns && len(e.buf)+pad+EntryLen(c) <= e.maxLen
}

// Add appends c and reports true, or reports false (and changes nothing)
// when the message is full. Padding to 4 bytes is written before each entry
// that follows an unaligned one, as the kernel does, and counted in size.
func (e *Encoder) Add(c *Conn) bool {
	if !e.Fits(c) {
		return false
	}
	for len(e.buf)&3 != 0 {
		e.buf = append(e.buf, 0)
	}
	e.buf = AppendEntry(e.buf, c)
	e.n++
	e.buf[4] = byte(e.n)
	binary.BigEndian.PutUint16(e.buf[2:4], uint16(len(e.buf)))
	return true
}

// AppendEntry appends c's v1 entry (with its options, without padding) to b.
func AppendEntry(b []byte, c *Conn) []byte {
	n := EntryLen(c)
	off := len(b)
	if cap(b)-off < n {
		b = append(b, make([]byte, n)...)
	} else {
		b = b[:off+n]
		clear(b[off:])
	}
	e := b[off:]
	if c.IPv6 {
		e[0] = 1
	}
	e[1] = c.Protocol
	binary.BigEndian.PutUint16(e[2:4], uint16(n)&0x0fff) // version 0 in the top bits
	binary.BigEndian.PutUint32(e[4:8], c.Flags&^FlagHashed)
	binary.BigEndian.PutUint16(e[8:10], c.State)
	binary.BigEndian.PutUint16(e[10:12], c.CPort)
	binary.BigEndian.PutUint16(e[12:14], c.VPort)
	binary.BigEndian.PutUint16(e[14:16], c.DPort)
	binary.BigEndian.PutUint32(e[16:20], c.Fwmark)
	binary.BigEndian.PutUint32(e[20:24], c.Timeout)
	p := 24
	if c.IPv6 {
		a := c.CAddr.As16()
		copy(e[p:], a[:])
		a = c.VAddr.As16()
		copy(e[p+16:], a[:])
		a = c.DAddr.As16()
		copy(e[p+32:], a[:])
		p += 48
	} else {
		a := as4(c.CAddr)
		copy(e[p:], a[:])
		a = as4(c.VAddr)
		copy(e[p+4:], a[:])
		a = as4(c.DAddr)
		copy(e[p+8:], a[:])
		p += 12
	}
	if c.HasSeq {
		e[p] = OptSeqData
		e[p+1] = SeqDataLen
		putSeq(e[p+2:], c.InSeq)
		putSeq(e[p+14:], c.OutSeq)
	}
	return b
}

func as4(a netip.Addr) [4]byte {
	if a.Is4() || a.Is4In6() {
		return a.Unmap().As4()
	}
	return [4]byte{}
}

func putSeq(b []byte, s Seq) {
	binary.BigEndian.PutUint32(b[0:4], s.Init)
	binary.BigEndian.PutUint32(b[4:8], s.Delta)
	binary.BigEndian.PutUint32(b[8:12], s.PrevDelta)
}

func getSeq(b []byte) Seq {
	return Seq{
		Init:      binary.BigEndian.Uint32(b[0:4]),
		Delta:     binary.BigEndian.Uint32(b[4:8]),
		PrevDelta: binary.BigEndian.Uint32(b[8:12]),
	}
}
