package conntrack

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Config sizes a Table. Zero fields take defaults.
type Config struct {
	// MaxConns is the hard bound on entries, templates included
	// (default 1<<20). It is rounded up to a multiple of the shard count;
	// Cap reports the exact bound.
	MaxConns int
	// Shards is the number of lock shards, a power of two (default: the
	// smallest power of two >= 64*GOMAXPROCS, at most 4096, reduced so that
	// each shard holds at least 256 entries).
	Shards int
	// MaxDests bounds the real servers that may be registered (default 65535).
	MaxDests int
	// Seed keys the flow hash; 0 picks a random one.
	Seed uint64
}

const (
	nilIdx     = ^uint32(0)
	chunkMax   = 1024 // entries per slab chunk
	tickHz     = 64   // coarse clock: 1/64 s
	tickNs     = 1_000_000_000 / tickHz
	slotShift  = 5   // wheel slot = 32 ticks = 0.5 s
	wheelSize  = 512 // slots: 256 s horizon; later expiries are refiled
	wheelMask  = wheelSize - 1
	headMarker = 0x8000_0000 // wprev of a slot's first entry: marker|slot
	maxShards  = 1 << 16
)

// ticks converts a time in nanoseconds to the table's coarse clock.
func ticks(now int64) uint32 { return uint32(uint64(now) / tickNs) }

// ctl word layout (entry.ctl): everything a packet may change, so that one
// compare-and-swap applies a state transition, refreshes the expiry and
// detects a concurrent free.
const (
	ctlGenShift   = 32
	ctlStateShift = 48
	ctlLive       = 1 << 52
	ctlNoOutput   = 1 << 53
	ctlInactive   = 1 << 54
	ctlAssured    = 1 << 55
	ctlExpMask    = 0xffff_ffff
)

func ctlGen(c uint64) uint16              { return uint16(c >> ctlGenShift) }
func ctlState(c uint64) State             { return State(c>>ctlStateShift) & 0xf }
func ctlExpiry(c uint64) uint32           { return uint32(c) }
func ctlWith(c uint64, exp uint32) uint64 { return c&^ctlExpMask | uint64(exp) }
func ctlSetState(c uint64, s State) uint64 {
	return c&^(0xf<<ctlStateShift) | uint64(s)<<ctlStateShift
}

// ports word layout (entry.ports).
const (
	afClient6 = 1 << 56 // client side is IPv6
	afDest6   = 1 << 57 // real server is IPv6
	rekeyed   = 1 << 58 // invalidated template (listed with ports 65535)
)

// info word layout (entry.info): dest id in the low 32 bits, static IPVS
// flags (method, TEMPLATE, ONE_PACKET) above.
func infoDest(i uint64) DestID         { return DestID(uint32(i)) }
func infoFlags(i uint64) uint32        { return uint32(i >> 32) }
func mkInfo(d DestID, f uint32) uint64 { return uint64(d) | uint64(f)<<32 }

// An entry is one connection or template, stored in two parts so that a
// lookup touches one cache line: hotEntry (64 bytes, 64-byte aligned) holds
// what a lookup compares and the chain links; coldEntry (48 bytes) the
// rest. Neither holds a pointer, so a slab of them costs the garbage
// collector nothing. Every field read by lock-free readers is atomic; the
// wheel links are touched only under the shard lock.
type hotEntry struct {
	ctl     atomic.Uint64
	caddr   [2]atomic.Uint64
	vaddr   [2]atomic.Uint64
	ports   atomic.Uint64 // cport | vport<<16 | dport<<32 | proto<<48 | af bits
	info    atomic.Uint64
	nextIn  atomic.Uint32 // local index, inbound chain
	nextOut atomic.Uint32 // local index, outbound chain
}

type coldEntry struct {
	daddr   [2]atomic.Uint64
	control atomic.Uint32 // global index + 1 of the controlling template
	nctl    atomic.Int32  // connections this template controls
	inPkts  atomic.Uint32
	timeout atomic.Uint32 // ticks; templates only (others use the state table)
	fwmark  atomic.Uint32
	filed   atomic.Uint32 // wheel slot (absolute) the entry is filed under
	wnext   uint32        // wheel or free-list link, under the shard lock
	wprev   uint32
}

// entry is a handle on both parts of one slot; fields of either part are
// reached directly (e.ctl, e.daddr).
type entry struct {
	*hotEntry
	*coldEntry
}

// EntrySize is the size of one slab entry (both parts) in bytes.
const EntrySize = int(unsafe.Sizeof(hotEntry{}) + unsafe.Sizeof(coldEntry{}))

type chunk struct {
	hot  []hotEntry
	cold []coldEntry
}

func newChunk(n uint32) *chunk {
	return &chunk{hot: make([]hotEntry, n), cold: make([]coldEntry, n)}
}

type shard struct {
	mu  sync.Mutex
	seq atomic.Uint64 // bumped on every link/unlink, validates lock-free misses

	inB, outB []atomic.Uint32 // bucket heads (local indexes)
	chunks    []atomic.Pointer[chunk]

	// under mu
	free      uint32        // free-list head (local index)
	allocated atomic.Uint32 // entries handed out from chunks so far (read lock-free by Range)
	used      atomic.Int32  // live entries; changed under mu, read lock-free by Len
	templates int
	wheel     [wheelSize]uint32
	wheelNext uint32 // absolute slot number processed next
	wheelInit bool
	created   uint64
	refused   uint64
	expired   uint64

	_ [64]byte // keep neighbouring shards' locks off this cache line
}

// Table is the connection table. All methods are safe for concurrent use.
type Table struct {
	shards     []shard
	shardShift uint // 64 - log2(shards)
	bmask      uint64
	perShard   uint32
	localBits  uint
	chunkSize  uint32
	chunkShift uint
	seed       [3]uint64

	timeouts [numTCPStates + 1]atomic.Uint32 // ticks; index numTCPStates = UDP
	settings atomic.Pointer[Settings]

	dests destRegistry
}

// New returns an empty table sized by cfg.
func New(cfg Config) (*Table, error) {
	if cfg.MaxConns < 0 || cfg.Shards < 0 || cfg.MaxDests < 0 {
		return nil, fmt.Errorf("conntrack: negative size in config %+v: %w", cfg, ErrRange)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 1 << 20
	}
	if cfg.MaxConns > 1<<30 {
		return nil, fmt.Errorf("conntrack: MaxConns %d: %w (at most 1<<30)", cfg.MaxConns, ErrRange)
	}
	if cfg.Shards == 0 {
		n := 64 * runtime.GOMAXPROCS(0)
		if n > 4096 {
			n = 4096
		}
		cfg.Shards = 1 << bits.Len(uint(n-1))
		// Keep at least 256 entries per shard, so that a small table is
		// not full in one shard long before the others.
		for cfg.Shards > 1 && cfg.Shards*256 > cfg.MaxConns {
			cfg.Shards >>= 1
		}
	}
	if cfg.Shards&(cfg.Shards-1) != 0 || cfg.Shards > maxShards {
		return nil, fmt.Errorf("conntrack: Shards %d: %w (a power of two up to %d)", cfg.Shards, ErrRange, maxShards)
	}
	if cfg.MaxDests == 0 {
		cfg.MaxDests = 65535
	}
	t := &Table{}
	t.dests.init(cfg.MaxDests)
	per := (cfg.MaxConns + cfg.Shards - 1) / cfg.Shards
	t.perShard = uint32(per)
	t.localBits = uint(bits.Len32(uint32(per - 1)))
	if per == 1 {
		t.localBits = 1
	}
	if t.localBits+uint(bits.Len(uint(cfg.Shards-1))) > 31 {
		return nil, fmt.Errorf("conntrack: MaxConns %d with %d shards: %w", cfg.MaxConns, cfg.Shards, ErrRange)
	}
	nb := 1 << bits.Len32(uint32(per-1)) // load factor <= 1
	if nb < 4 {
		nb = 4
	}
	t.bmask = uint64(nb - 1)
	cs := chunkMax
	if per < cs {
		cs = 1 << bits.Len32(uint32(per-1))
	}
	t.chunkSize = uint32(cs)
	t.chunkShift = uint(bits.TrailingZeros32(uint32(cs)))
	nchunks := (per + cs - 1) / cs
	sb := uint(bits.TrailingZeros(uint(cfg.Shards)))
	t.shardShift = 64 - sb
	if sb == 0 {
		t.shardShift = 64
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64() | 1
	}
	t.seed = [3]uint64{seed ^ 0xa0761d6478bd642f, seed*0xe7037ed1a0b428db + 1, bits.RotateLeft64(seed, 29) ^ 0x8ebc6af09c88c6e3}

	t.shards = make([]shard, cfg.Shards)
	for i := range t.shards {
		s := &t.shards[i]
		s.inB = make([]atomic.Uint32, nb)
		s.outB = make([]atomic.Uint32, nb)
		for j := range s.inB {
			s.inB[j].Store(nilIdx)
			s.outB[j].Store(nilIdx)
		}
		s.chunks = make([]atomic.Pointer[chunk], nchunks)
		s.free = nilIdx
		for j := range s.wheel {
			s.wheel[j] = nilIdx
		}
	}
	t.initTimeouts()
	st := DefaultSettings()
	t.settings.Store(&st)
	return t, nil
}

// Cap returns the hard bound on entries.
func (t *Table) Cap() int { return int(t.perShard) * len(t.shards) }

// Shards returns the number of lock shards.
func (t *Table) Shards() int { return len(t.shards) }

// --- hashing ---------------------------------------------------------------

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash hashes the client side of a flow (address, port, protocol, family).
// Both directions of a connection hash the same way, so both of its index
// links live in one shard under one lock. Templates hash their masked
// client address with port 0.
func (t *Table) hash(a0, a1 uint64, port uint16, proto uint8, v6 bool) uint64 {
	m := uint64(port) | uint64(proto)<<16
	if v6 {
		m |= 1 << 24
	}
	return mix(a0^t.seed[0], a1^t.seed[1]) ^ mix(m^t.seed[2], 0x9e3779b97f4a7c15)
}

func (t *Table) shardOf(h uint64) uint32 {
	if t.shardShift == 64 {
		return 0
	}
	return uint32(h >> t.shardShift)
}

func addrWords(a *[16]byte) (uint64, uint64) {
	return binary.LittleEndian.Uint64(a[0:8]), binary.LittleEndian.Uint64(a[8:16])
}

func wordsAddr(w0, w1 uint64) (a [16]byte) {
	binary.LittleEndian.PutUint64(a[0:8], w0)
	binary.LittleEndian.PutUint64(a[8:16], w1)
	return a
}

// --- slab ------------------------------------------------------------------

func (t *Table) global(si, li uint32) uint32 { return si<<t.localBits | li }

func (t *Table) split(g uint32) (si, li uint32) {
	return g >> t.localBits, g & (1<<t.localBits - 1)
}

func (t *Table) at(s *shard, li uint32) entry {
	c := s.chunks[li>>t.chunkShift].Load()
	i := li & (t.chunkSize - 1)
	return entry{&c.hot[i], &c.cold[i]}
}

// setAddrs stores a new entry's addresses and ports: the client and virtual
// sides from its inbound key k, and the real server's address and port
// (dest6: the real server is IPv6, which may differ from the client side
// with tunnels).
func (e entry) setAddrs(k *lkey, daddr *[16]byte, dport uint16, dest6 bool) {
	e.caddr[0].Store(k.a0)
	e.caddr[1].Store(k.a1)
	e.vaddr[0].Store(k.b0)
	e.vaddr[1].Store(k.b1)
	d0, d1 := addrWords(daddr)
	e.daddr[0].Store(d0)
	e.daddr[1].Store(d1)
	pw := k.pw | uint64(dport)<<32
	if dest6 {
		pw |= afDest6
	}
	e.ports.Store(pw)
}

// entryG returns the entry of a global index.
func (t *Table) entryG(g uint32) entry {
	si, li := t.split(g)
	return t.at(&t.shards[si], li)
}

// alloc takes a free entry; s.mu held. It returns nilIdx when the shard is
// at its bound.
func (t *Table) alloc(s *shard) uint32 {
	if s.used.Load() >= int32(t.perShard) {
		return nilIdx
	}
	li := s.free
	if li != nilIdx {
		s.free = t.at(s, li).wnext
	} else {
		li = s.allocated.Load()
		ci := li >> t.chunkShift
		if s.chunks[ci].Load() == nil {
			s.chunks[ci].Store(newChunk(t.chunkSize))
		}
		s.allocated.Store(li + 1)
	}
	s.used.Add(1)
	return li
}

// release returns an entry to the free list; s.mu held, entry already
// unlinked from the indexes and the wheel and marked dead.
func (t *Table) release(s *shard, li uint32) {
	e := t.at(s, li)
	e.wnext = s.free
	s.free = li
	s.used.Add(-1)
}

// --- index chains (s.mu held for changes) -------------------------------------

func (t *Table) linkIn(s *shard, b uint64, li uint32) {
	e := t.at(s, li)
	e.nextIn.Store(s.inB[b].Load())
	s.inB[b].Store(li)
	s.seq.Add(1)
}

func (t *Table) linkOut(s *shard, b uint64, li uint32) {
	e := t.at(s, li)
	e.nextOut.Store(s.outB[b].Load())
	s.outB[b].Store(li)
	s.seq.Add(1)
}

// unlinkIn removes li from its inbound chain. The removed entry keeps its
// own next link, so a reader standing on it can still walk on.
func (t *Table) unlinkIn(s *shard, b uint64, li uint32) bool {
	next := t.at(s, li).nextIn.Load()
	cur := s.inB[b].Load()
	if cur == li {
		s.inB[b].Store(next)
		s.seq.Add(1)
		return true
	}
	for n := 0; cur != nilIdx && n <= int(t.perShard); n++ {
		e := t.at(s, cur)
		nx := e.nextIn.Load()
		if nx == li {
			e.nextIn.Store(next)
			s.seq.Add(1)
			return true
		}
		cur = nx
	}
	return false
}

func (t *Table) unlinkOut(s *shard, b uint64, li uint32) bool {
	next := t.at(s, li).nextOut.Load()
	cur := s.outB[b].Load()
	if cur == li {
		s.outB[b].Store(next)
		s.seq.Add(1)
		return true
	}
	for n := 0; cur != nilIdx && n <= int(t.perShard); n++ {
		e := t.at(s, cur)
		nx := e.nextOut.Load()
		if nx == li {
			e.nextOut.Store(next)
			s.seq.Add(1)
			return true
		}
		cur = nx
	}
	return false
}

// --- timing wheel (s.mu held) -------------------------------------------------

func (s *shard) wheelStart(nowTick uint32) {
	if !s.wheelInit {
		s.wheelNext = nowTick >> slotShift
		s.wheelInit = true
	}
}

// wheelAdd files li under its expiry; slot numbers are absolute (ticks>>5)
// and compared with wrap-around.
func (t *Table) wheelAdd(s *shard, li uint32, exp uint32, nowTick uint32) {
	s.wheelStart(nowTick)
	slot := exp >> slotShift
	if int32(slot-s.wheelNext) < 0 {
		slot = s.wheelNext
	}
	// Never the slot Sweep may be processing right now (wheelNext-1).
	if slot-s.wheelNext >= wheelSize-1 {
		slot = s.wheelNext + wheelSize - 2
	}
	i := slot & wheelMask
	e := t.at(s, li)
	e.filed.Store(slot)
	e.wprev = headMarker | i
	e.wnext = s.wheel[i]
	if e.wnext != nilIdx {
		t.at(s, e.wnext).wprev = li
	}
	s.wheel[i] = li
}

func (t *Table) wheelDel(s *shard, li uint32) {
	e := t.at(s, li)
	if e.wprev == nilIdx {
		return // not filed (being processed by Sweep)
	}
	if e.wprev&headMarker != 0 {
		s.wheel[e.wprev&^headMarker] = e.wnext
	} else {
		t.at(s, e.wprev).wnext = e.wnext
	}
	if e.wnext != nilIdx {
		t.at(s, e.wnext).wprev = e.wprev
	}
	e.wnext, e.wprev = nilIdx, nilIdx
}
