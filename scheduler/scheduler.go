// Package scheduler holds the real servers of a virtual service and the
// fourteen IPVS scheduling algorithms that pick one for each new connection:
// rr wrr lc wlc sed nq lblc lblcr dh sh mh fo ovf twos.
//
// # Exactly the kernel's decisions
//
// Every algorithm makes the decision kernel IPVS makes (net/netfilter/ipvs,
// ip_vs_<name>.c) for the same server list, counters, flags and packet,
// ties included. The server list is in IPVS order, most recently added
// first; every "first wins" rule refers to that order.
//
// # Why it is faster
//
// The kernel scans the whole list for lc, wlc, sed, nq, fo, ovf, twos and the
// lblc/lblcr overload test, and wrr and rr may scan long runs of ineligible
// servers. A Pool instead keeps an index over list positions (leaves) and
// answers each question in O(log n):
//
//   - a max tree of a per-leaf key (rr: eligible; wrr, fo: weight if not
//     OVERLOAD; ovf: weight if eligible and active <= weight) with a "first
//     leaf at or after i whose key >= x" descent. The kernel's scans ask
//     exactly that question: rr wants the next eligible server after its
//     cursor, wrr the next server with weight >= cw, fo/ovf the first server
//     of maximal weight;
//   - a 4-ary arg-min tree (lc, wlc, sed, nq, lblc, lblcr) whose node holds
//     the leftmost best leaf of its range (with a copy of its key), combined
//     with branch-free comparisons. The kernel's scan keeps a server until
//     a later one is strictly better, so it returns the leftmost minimum of a
//     total preorder (overhead, or overhead/weight compared by exact 64-bit
//     cross-multiplication, or nq's "idle first"); combining two ranges as
//     "right only if strictly better" is associative and yields the same
//     leftmost minimum;
//   - a sum tree of eligible weights (twos), where "the first server at
//     which r - Σw reaches <= 0" is a prefix-sum descent;
//   - a count of servers with 2*active < weight for the lblc/lblcr
//     is_overloaded test.
//
// Leaves are laid out right to left in insertion order (the newest server
// gets the lowest free leaf), so leaf order is list order and adding a server
// never moves the others; deleted servers leave empty (ineligible) leaves
// until the index is compacted.
//
// Data-path workers change a Dest's counters with Bind, Unbind and SetActive
// at any time. Those only set the Dest's bit in its Pool's dirty bitmap (one
// atomic OR, plus one more the first time a word becomes dirty in an index
// of more than 512 leaves), and only for the changes the Pool's keys depend
// on: rr, wrr, fo and twos follow OVERLOAD alone, sed, nq and ovf also the
// active counter, the others every counter. Schedule
// takes the Pool's lock (as the kernel takes its per-service sched_lock for
// the stateful schedulers), refreshes the dirty leaves from the atomic
// counters, and reads the answer. dh, sh and mh need no index: their tables
// are immutable snapshots behind an atomic pointer and Schedule takes no lock.
//
// A leaf's refresh costs O(log n) and stops early where the winner of a
// range and its key did not change. The tests compare every indexed
// scheduler with a literal port of the kernel loops under random sequences
// of adds, edits, deletes, binds, unbinds, state changes and threshold
// changes, decision by decision.
//
// # Arithmetic as in C
//
// The kernel computes overheads in int (32 bits), compares them in 64 bits
// for wlc/sed/nq/lblc/lblcr but in int for twos, and compares the int
// connection total with the __u32 thresholds as unsigned. This package does
// the same, so decisions agree even where the C arithmetic wraps.
//
// # Deliberate differences
//
//   - mh refuses an Add beyond its table size (ErrTooManyServers); the
//     kernel adds the server and keeps its old table (ip_vs_mh_reassign
//     fails with EINVAL, and the error is ignored).
//   - Hashes fold each address by its own family; the kernel folds a real
//     server's address by the service's family (they differ only for IPv4
//     real servers behind an IPv6 service, which need tunnelling).
//   - lblc/lblcr collection runs when the caller's clock passes each 60-s
//     due time (Tick), each run at its due time, instead of on a kernel timer.
//   - Connection counters are assumed never to go negative (every Unbind
//     follows its Bind); the kernel's wlc could pick a weight-0 server whose
//     overhead were negative, ulvs never picks a weight-0 server.
package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// Flow is what a scheduler may look at when it picks a real server for a new
// connection: the first packet's addresses and ports. Addresses are in the
// 16-byte form of netip.Addr.As16 (IPv4 as ::ffff:a.b.c.d), network byte order.
//
// sh and mh hash Src (and SrcPort with sh-port/mh-port); dh, lblc and lblcr
// use Dst. For an ICMP error that the kernel schedules "inverse", the caller
// puts the address the kernel would hash in Src.
type Flow struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Proto            uint8
	IPv6             bool
}

// Flags are a virtual service's scheduler flags (ipvsadm -b), with IPVS's
// IP_VS_SVC_F_SCHED* values in the low bits.
type Flags uint32

// Scheduler flag bits as in include/uapi/linux/ip_vs.h.
const (
	FlagSched1 Flags = 0x08 // flag-1; sh-fallback for sh, mh-fallback for mh
	FlagSched2 Flags = 0x10 // flag-2; sh-port for sh, mh-port for mh
	FlagSched3 Flags = 0x20 // flag-3

	// named* remember that a flag was given by a scheduler-specific name, so
	// that New can reject sh-* for a scheduler other than sh (as ipvsadm
	// does). They are not part of the IPVS value (Bits).
	namedSH Flags = 1 << 30
	namedMH Flags = 1 << 31

	schedBits = FlagSched1 | FlagSched2 | FlagSched3
)

// Bits returns the IPVS flag value (IP_VS_SVC_F_SCHED1..3).
func (f Flags) Bits() uint32 { return uint32(f & schedBits) }

// ParseFlags parses ipvsadm -b flag names: flag-1, flag-2, flag-3,
// sh-fallback, sh-port, mh-fallback, mh-port. sh-* and mh-* may not be mixed;
// New and SetScheduler reject them for another scheduler.
func ParseFlags(names []string) (Flags, error) {
	var f Flags
	for _, n := range names {
		switch strings.TrimSpace(n) {
		case "flag-1":
			f |= FlagSched1
		case "flag-2":
			f |= FlagSched2
		case "flag-3":
			f |= FlagSched3
		case "sh-fallback":
			f |= FlagSched1 | namedSH
		case "sh-port":
			f |= FlagSched2 | namedSH
		case "mh-fallback":
			f |= FlagSched1 | namedMH
		case "mh-port":
			f |= FlagSched2 | namedMH
		default:
			return 0, fmt.Errorf("%w: %q (want flag-1, flag-2, flag-3, sh-fallback, sh-port, mh-fallback or mh-port)", ErrUnknownFlag, n)
		}
	}
	if f&namedSH != 0 && f&namedMH != 0 {
		return 0, fmt.Errorf("%w: sh-* and mh-* flags together", ErrIncompatibleFlag)
	}
	return f, nil
}

// Format returns the flags as ipvsadm lists them for scheduler sched, comma
// separated ("sh-fallback,sh-port", "flag-1"), or "" when none is set.
func (f Flags) Format(sched string) string {
	var out []string
	one, two := "flag-1", "flag-2"
	switch sched {
	case "sh":
		one, two = "sh-fallback", "sh-port"
	case "mh":
		one, two = "mh-fallback", "mh-port"
	}
	if f&FlagSched1 != 0 {
		out = append(out, one)
	}
	if f&FlagSched2 != 0 {
		out = append(out, two)
	}
	if f&FlagSched3 != 0 {
		out = append(out, "flag-3")
	}
	return strings.Join(out, ",")
}

// Errors returned by the control-plane calls; test with errors.Is.
var (
	ErrUnknownScheduler = errors.New("unknown scheduler")
	ErrUnknownFlag      = errors.New("unknown scheduler flag")
	ErrIncompatibleFlag = errors.New("incompatible scheduler flag")
	// ErrRange is the kernel's ERANGE: weight < 0 or lower threshold > upper.
	ErrRange = errors.New("out of range")
	// ErrExists: the Dest already belongs to a Pool.
	ErrExists = errors.New("real server already in a virtual service")
	// ErrNotFound: the Dest does not belong to this Pool.
	ErrNotFound = errors.New("real server not in this virtual service")
	// ErrTooManyServers: mh cannot hold more real servers than its table size.
	ErrTooManyServers = errors.New("more real servers than the mh table size")
	// ErrBadOption: an Options field is out of range.
	ErrBadOption = errors.New("bad scheduler option")
)

// Names lists the schedulers in IPVS's order of documentation.
var Names = []string{"rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf", "twos"}

type kind uint8

const (
	kRR kind = iota
	kWRR
	kLC
	kWLC
	kSED
	kNQ
	kLBLC
	kLBLCR
	kDH
	kSH
	kMH
	kFO
	kOVF
	kTWOS
)

func kindOf(name string) (kind, bool) {
	for i, n := range Names {
		if n == name {
			return kind(i), true
		}
	}
	return 0, false
}

func (k kind) String() string { return Names[k] }

// hashed reports whether the scheduler uses a lock-free lookup table.
func (k kind) hashed() bool { return k == kDH || k == kSH || k == kMH }

func checkFlags(k kind, f Flags) error {
	if f&namedSH != 0 && k != kSH {
		return fmt.Errorf("%w: sh-* flags need the sh scheduler, not %s", ErrIncompatibleFlag, k)
	}
	if f&namedMH != 0 && k != kMH {
		return fmt.Errorf("%w: mh-* flags need the mh scheduler, not %s", ErrIncompatibleFlag, k)
	}
	if f&^(schedBits|namedSH|namedMH) != 0 {
		return fmt.Errorf("%w: bits %#x", ErrUnknownFlag, uint32(f&^(schedBits|namedSH|namedMH)))
	}
	return nil
}

// tracker is a Pool's record of which Dests changed since its index was last
// brought up to date: one bit per leaf, set by data-path workers without
// locks, and one summary bit per dirty word. want says which changes the
// Pool's keys depend on; the others are not recorded (rr, wrr, fo and twos
// keys read only the weight and OVERLOAD, sed, nq and ovf also the active
// counter), which spares their data-path workers two atomic
// read-modify-writes per counter change and their decisions a refresh.
type tracker struct {
	want    uint32 // ev* bits
	dirty   []atomic.Uint64
	summary []atomic.Uint64
}

// Changes a Dest reports to its tracker.
const (
	evFlags    uint32 = 1 << iota // OVERLOAD set or cleared
	evActive                      // active counter moved
	evInactive                    // inactive counter moved
)

// trackedEvents returns the changes that move k's index keys (see refresh).
func trackedEvents(k kind) uint32 {
	switch k {
	case kRR, kWRR, kFO, kTWOS:
		return evFlags
	case kOVF, kSED, kNQ:
		return evFlags | evActive
	}
	return evFlags | evActive | evInactive
}

// flatWords is the largest dirty bitmap kept without a summary: drain then
// reads every word (plain loads, 64 bytes at most), which costs less than
// the summary's read-modify-writes (one per changed word, and a swap per
// drain). Measured: with 32 words (1024 real servers, 2048 leaves) the scan
// cost more than it saved, so the summary stays above 512 leaves.
const flatWords = 8

func newTracker(leaves int, want uint32) *tracker {
	words := (leaves + 63) / 64
	t := &tracker{want: want, dirty: make([]atomic.Uint64, words)}
	if words > flatWords {
		t.summary = make([]atomic.Uint64, (words+63)/64)
	}
	return t
}

func (t *tracker) changed(d *Dest) {
	i := d.slot.Load()
	w := int(i >> 6)
	if i < 0 || w >= len(t.dirty) {
		return // a stale slot seen during a re-layout; the Pool refreshes every leaf after one
	}
	if t.dirty[w].Or(1<<(uint(i)&63)) == 0 && t.summary != nil {
		t.summary[w>>6].Or(1 << (uint(w) & 63))
	}
}
