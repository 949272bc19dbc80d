// Package ctlmsg seals and opens the small authenticated control messages
// that two ulvs directors exchange beside VRRP: the stand-down (fencing)
// order, the bulk-sync request of a (re)joining backup and the end-of-bulk
// marker. VRRPv3 itself carries no authentication (RFC 5798 §9), so every
// message that makes a director give up the active role or stream its
// connection table is authenticated here.
//
// Wire format (big-endian, 64 bytes, a ulvs extension carried over UDP):
//
//	0   4  magic "ULVS"
//	4   1  version = 1
//	5   1  type (StandDown, SyncRequest, BulkDone)
//	6   1  virtual_router_id
//	7   1  sender priority
//	8   8  timestamp, Unix nanoseconds of the sender's clock
//	16  8  nonce (random)
//	24  4  argument (BulkDone: number of entries streamed; else 0)
//	28  4  reserved = 0
//	32 32  HMAC-SHA256(secret, bytes 0..31)
//
// Replay protection: a receiver accepts a message only when its timestamp is
// within Window of its own clock (so the directors' clocks must agree to
// within that window: run NTP) and its (timestamp, nonce) pair has not been
// accepted before; accepted pairs are remembered until they fall out of the
// window. A captured message therefore cannot be replayed later than Window,
// nor twice within it.
package ctlmsg

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"
)

// Size is the length of every control message.
const Size = 64

// DefaultWindow is the replay window used when a Guard's Window is zero.
const DefaultWindow = 10 * time.Second

// Type is the kind of a control message.
type Type uint8

// Message types.
const (
	// StandDown orders the receiving active director to become backup at once.
	StandDown Type = 1
	// SyncRequest asks the active director to stream its whole connection
	// table (bulk copy) to the sender.
	SyncRequest Type = 2
	// BulkDone marks the end of a bulk copy; Arg is the number of entries sent.
	BulkDone Type = 3
)

func (t Type) String() string {
	switch t {
	case StandDown:
		return "stand-down"
	case SyncRequest:
		return "sync-request"
	case BulkDone:
		return "bulk-done"
	}
	return "unknown"
}

// Errors returned by Open and Guard.Check.
var (
	ErrShort    = errors.New("ctlmsg: message is not 64 bytes")
	ErrMagic    = errors.New("ctlmsg: bad magic or version")
	ErrMAC      = errors.New("ctlmsg: HMAC mismatch (wrong secret or tampered)")
	ErrStale    = errors.New("ctlmsg: timestamp outside the replay window")
	ErrReplayed = errors.New("ctlmsg: message already accepted (replay)")
	ErrNoSecret = errors.New("ctlmsg: empty secret")
)

// Msg is a decoded control message.
type Msg struct {
	Type     Type
	VRID     uint8
	Priority uint8
	Time     int64 // Unix nanoseconds
	Nonce    uint64
	Arg      uint32
}

// Seal writes m, authenticated with secret, into dst (which must hold Size
// bytes) and returns dst[:Size].
func Seal(dst []byte, secret []byte, m Msg) []byte {
	b := dst[:Size]
	copy(b[0:4], "ULVS")
	b[4] = 1
	b[5] = byte(m.Type)
	b[6] = m.VRID
	b[7] = m.Priority
	binary.BigEndian.PutUint64(b[8:16], uint64(m.Time))
	binary.BigEndian.PutUint64(b[16:24], m.Nonce)
	binary.BigEndian.PutUint32(b[24:28], m.Arg)
	binary.BigEndian.PutUint32(b[28:32], 0)
	h := hmac.New(sha256.New, secret)
	h.Write(b[:32])
	h.Sum(b[32:32])
	return b
}

// Open checks b's format and HMAC and decodes it. It does not check
// freshness: use a Guard for that.
func Open(b []byte, secret []byte) (Msg, error) {
	if len(secret) == 0 {
		return Msg{}, ErrNoSecret
	}
	if len(b) != Size {
		return Msg{}, ErrShort
	}
	if string(b[0:4]) != "ULVS" || b[4] != 1 {
		return Msg{}, ErrMagic
	}
	h := hmac.New(sha256.New, secret)
	h.Write(b[:32])
	var sum [32]byte
	if !hmac.Equal(h.Sum(sum[:0]), b[32:64]) {
		return Msg{}, ErrMAC
	}
	return Msg{
		Type:     Type(b[5]),
		VRID:     b[6],
		Priority: b[7],
		Time:     int64(binary.BigEndian.Uint64(b[8:16])),
		Nonce:    binary.BigEndian.Uint64(b[16:24]),
		Arg:      binary.BigEndian.Uint32(b[24:28]),
	}, nil
}

type seenKey struct {
	t     int64
	nonce uint64
}

// maxSeen bounds the replay cache; an authenticated peer cannot grow it
// beyond this (the oldest half is dropped when full).
const maxSeen = 4096

// Guard rejects stale and replayed messages. The zero value is ready to use
// with DefaultWindow. It is not safe for concurrent use.
type Guard struct {
	Window time.Duration
	seen   map[seenKey]struct{}
}

// Check reports whether m (already opened) is fresh at now and remembers it.
func (g *Guard) Check(now time.Time, m Msg) error {
	w := g.Window
	if w <= 0 {
		w = DefaultWindow
	}
	n := now.UnixNano()
	d := n - m.Time
	if d < 0 {
		d = -d
	}
	if d > int64(w) {
		return ErrStale
	}
	if g.seen == nil {
		g.seen = make(map[seenKey]struct{})
	}
	k := seenKey{m.Time, m.Nonce}
	if _, ok := g.seen[k]; ok {
		return ErrReplayed
	}
	// When full, forget what fell out of the window, then (a flood from a
	// key holder) arbitrary entries down to half.
	if len(g.seen) >= maxSeen {
		for s := range g.seen {
			if d := n - s.t; d > int64(w) || d < -int64(w) {
				delete(g.seen, s)
			}
		}
		for s := range g.seen {
			if len(g.seen) < maxSeen/2 {
				break
			}
			delete(g.seen, s)
		}
	}
	g.seen[k] = struct{}{}
	return nil
}
