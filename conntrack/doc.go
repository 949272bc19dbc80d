// Package conntrack is ulvs's connection table: the IPVS connection and
// persistence-template entries, their TCP/UDP state machine and timeouts,
// the active/inactive/persistent counters of the real servers, and expiry,
// shared by all data-path workers (IPVS-SPEC.md §1, §3, §4, §9).
//
// # Use
//
// The forwarder registers every real server once (RegisterDest, which gives
// it a small DestID and its forwarding method) and then, per packet:
//
//	v := t.In(&flow, tcpFlags, now, &conn)        // client -> VIP
//	if v == conntrack.Miss {
//		r := t.Connect(&svc, &flow, tcpFlags, now, pool, &conn) // schedule
//	}
//	v := t.Out(&flow, tcpFlags, now, &conn)       // real server -> client (NAT)
//
// and, from one housekeeping loop, t.Sweep(now) a few times per second.
// A worker that handles packets in batches calls t.PrefetchIn (or
// PrefetchOut) on the batch's flows first: the cache misses of the whole
// batch then overlap, which halves the CPU time per lookup in a table much
// larger than the CPU caches.
// now is a time in nanoseconds on any monotonic base. conn is a Conn the
// worker owns; it receives a copy of the connection (real server address
// and port, method, state, flags), so nothing is allocated per packet.
// Verdict and Result values are the drop reasons and counters.
//
// # Structure
//
// The table is split into a power-of-two number of shards. A connection
// lives in the shard chosen by the hash of its client address, client port,
// protocol and family (IPVS hashes the same fields), so that both of its
// index links, the inbound key (caddr, cport, vaddr, vport, proto) and the
// outbound key (daddr or vaddr, dport or vport, caddr, cport, proto), are in
// one shard under one lock. The hash is keyed with a random seed.
//
// Each shard owns a slab of fixed-size entries, allocated in chunks as it
// fills up and never beyond its share of MaxConns, a free list, two arrays
// of bucket heads (one per direction) and a timing wheel. Chains, the free
// list and the wheel are linked by 32-bit slab indexes; templates are named
// by a global index (shard and slot). An entry holds no pointer: the real
// server is a DestID into the table's registry. An entry is 112 bytes in
// two parts (64 bytes compared by lookups, 48 bytes of the rest); with the
// bucket heads an IPv4 or IPv6 connection costs about 121 bytes at 1M
// entries (TestMemoryPerConnection measures it).
//
// # Concurrency
//
// Lookups take no lock. Every field a reader may see is an atomic, and
// each entry has a control word (ctl) holding its expiry, a generation
// number, the TCP state and the NOOUTPUT/INACTIVE bits. A reader checks
// ctl before and after reading a key: a change of generation means the
// entry was freed (and maybe reused) under it, and the walk restarts. A
// match between two equal generations is a true hit, because keys are
// unique. A miss is trusted only if the shard's sequence number, bumped on
// every link and unlink, did not move during the walk; otherwise the walk
// is retried and finally redone under the lock. Creating, freeing and
// re-keying entries take the shard lock; no code path holds two shard
// locks (persistence takes the template's shard lock, releases it, then
// takes the connection's).
//
// A packet changes its connection with one compare-and-swap of ctl: the
// state transition, NOOUTPUT, INACTIVE and the new expiry together. The
// goroutine whose swap succeeds moves the server's counters, so every
// transition is counted once; a swap that finds a new generation reports a
// miss. Within one clock tick (1/64 s) an established flow's ctl does not
// change, so most packets write nothing but in_pkts.
//
// Expiry needs no goroutine or timer per entry. Each shard has a timing
// wheel of 512 half-second slots. Packets only store the new expiry; when
// a slot comes round, Sweep frees the entries that are due and files the
// others again under their current expiry (entries further than the
// wheel's horizon are refiled when they come round). A state change that
// shortens the expiry (ESTABLISHED to CLOSE, say) moves the entry to its
// earlier slot if the shard lock is free at once. Freeing an entry unbinds
// its real server (which may clear OVERLOAD) and releases its template; a
// template that still controls connections is re-armed for 60 s instead.
//
// Listing (Range) reads entries with the same generation check, without a
// lock and without stopping the data path.
//
// # Differences from IPVS
//
//   - Entries are bounded (Config.MaxConns, split evenly over the shards):
//     when a shard is full a new flow gets Result Full and nothing else
//     changes. IPVS allocates until memory runs out.
//   - The clock is coarse: expiries are kept in 1/64 s ticks and fire up to
//     one wheel slot (0.5 s) plus the Sweep interval late.
//   - Timeouts are accepted up to 31 days (ipvsadm's limit) rather than the
//     kernel's INT_MAX/HZ.
//   - There is no netfilter conntrack, so conn_reuse_mode never has to drop
//     a SYN because an old conntrack entry is still in use.
//   - No application helpers (FTP) or sequence adjustment, no SCTP state
//     table (other protocols are handled like UDP), no persistence engines
//     (--pe), no cache_bypass entries.
//   - The outbound index only holds connections (not templates).
//   - A re-keyed (invalidated) template is taken out of the index instead of
//     being hashed again under ports 65535; it is listed with those ports.
package conntrack
