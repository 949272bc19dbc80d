// Package failover makes two ulvs directors an active/backup pair: VRRPv3
// election with heartbeats on every configured network, VIP takeover with a
// gratuitous ARP / unsolicited NA burst, authenticated fencing of the old
// active, failback that waits for the connection table, and connection
// synchronisation so that established connections survive a takeover.
//
// # Layout
//
//   - Machine (this package) is the state machine. It does no I/O and reads
//     no clock: Step(now, event) returns actions, Deadline says when to call
//     again. Tests drive it with a fake clock and a simulated network.
//   - Node runs a Machine over real sockets and calls the Director
//     (implemented by ulvsd): BecomeActive / BecomeBackup.
//   - vrrp encodes, checks and transports RFC 5798 adverts on raw IP
//     sockets (protocol 112), so that keepalived (vrrp_version 3) can be the
//     peer.
//   - garp builds gratuitous ARPs and unsolicited neighbour advertisements
//     and sends bursts on AF_PACKET.
//   - ctlmsg seals and opens the HMAC-SHA256 control messages (stand-down,
//     sync request, bulk done) with replay protection.
//   - connsync is the IPVS sync protocol (v1, v0 decode), the master's send
//     rules and batching Sender, its UDP transport, and the bulk copy.
//
// # Election (RFC 5798 §6.4)
//
// Every director starts as backup (a priority-255 director without
// preempt_delay and sync starts as master, as the RFC's address owner). A
// backup takes over when it has heard no advert for Master_Down_Interval =
// 3 × Master_Adver_Interval + Skew_Time, Skew_Time = (256 − priority) ×
// Master_Adver_Interval / 256, where Master_Adver_Interval is learned from
// the active's adverts. An advert with a higher priority, or the same
// priority and a higher primary address (the sender's address on that
// network, compared as unsigned integers), beats the receiver. A master
// that hears a better master becomes backup at once; one that hears a worse
// master answers with an advert at once (an ulvs addition: the worse one
// then yields within one round trip instead of one interval). On graceful
// shutdown the active sends priority 0 and the backup takes over after
// Skew_Time instead of Master_Down_Interval.
//
// Preempt: with preempt on, a backup with a higher priority than the
// active ignores its adverts, so that its down timer fires and it takes over
// (an equal priority never preempts: the address only breaks ties between
// two masters, RFC 5798 §6.4.2); it starts doing
// so only preempt_delay after it became backup and, with sync = true, only
// once a complete bulk copy of the active's connection table has arrived.
// Until then it treats the active's adverts as valid and stays backup. With
// preempt off a backup never takes the role from a live active.
//
// # Several heartbeat networks
//
// Adverts are sent on every configured interface (the public and the
// private network, as piranha's pulse does). A backup resets its down timer
// on an advert from any network, so the active counts as dead only when its
// adverts are missing on all of them. A network whose adverts stop while
// another still carries them is reported (ActNetworkDown, logged as an
// error) and is not a failover; it is reported up again when adverts
// resume. VRRP backups are silent, so only the backup can see a broken
// heartbeat network; the active cannot.
//
// # Fencing (stand-down) and the two-actives question
//
// When a backup takes over, it sends a stand-down message to the peer's
// address on every network: ctlmsg, HMAC-SHA256 with the shared secret,
// carrying a timestamp and a random nonce. A receiver accepts it only with a
// valid MAC, for its VRID, dated within 10 s of its own clock, and not seen
// before. An active that has been active for at least one interval obeys a
// valid stand-down at once (it is the old active whose adverts were lost: a
// hung process, a broken sending path, a one-way link); two directors that
// became active within one interval of each other (a healed partition, a
// simultaneous start) obey only if the sender wins the VRRP comparison, so
// that they do not both stand down.
//
// What guarantees that two directors never forward at once, and what does
// not:
//
//   - While they can exchange packets on any one network, the overlap is
//     bounded by one advert exchange: the worse active hears the better
//     one's advert (sent at once when a worse advert is heard) and becomes
//     backup, and Director.BecomeBackup stops ARP answers and forwarding
//     synchronously before the next event is handled.
//   - A director whose adverts stopped but that is otherwise alive (hung in
//     a GC pause or a stuck goroutine, or with its sending path broken) is
//     fenced by the stand-down as soon as it reads its socket again.
//   - In a full partition, where no packet passes between them on any
//     heartbeat network, each director sees a dead peer and both become
//     active. No two-node protocol can avoid this: deciding which side
//     should serve needs a third party (a quorum, a witness, or fencing
//     hardware). ulvs makes the partition unlikely (it needs every heartbeat
//     network to fail; run at least two, on different switches), makes it
//     visible (a single lost network is logged as an error), and ends it
//     within one advert exchange once any network heals, with the VRRP
//     winner keeping the role. If your clients are on the same L2 segment as
//     both directors, a partition of the heartbeat networks usually also
//     means that only one director can reach the clients. Deployments that
//     cannot accept a split-brain window must add an external arbiter (e.g.
//     a router or ECMP/BGP, DESIGN.md "Scale beyond one director").
//
// # Trust
//
// VRRPv3 has no authentication (RFC 5798 §9). Adverts are accepted only
// with TTL / hop limit 255 (not routed), from the configured peer address on
// that network, for our VRID, with a valid checksum. Anyone who can put
// packets on a heartbeat segment and spoof the peer's source address can
// still claim mastership with a high priority (keeping a backup from taking
// over, or making an active yield) or send priority 0 (making the backup
// take over early). They cannot make an active stand down by stand-down
// message, request a bulk copy of the connection table, or fake the end of
// one, without the shared secret. The connection sync messages themselves
// are the kernel's format and are not authenticated either (so that a
// kernel IPVS backup can read them): run sync on the private network and
// filter UDP 8848 and 8849 from elsewhere.
//
// # Bulk copy (a ulvs extension)
//
// A backup with sync = true sends an authenticated sync request to the
// active (over any heartbeat network, repeated every second until done).
// The active streams its whole table, templates included, as ordinary v1
// sync messages unicast to the backup's address on the sync network, paced
// to spare the backup's socket buffer, then sends an authenticated
// bulk-done message with the number of entries. When the runner knows how
// many entries its sync receiver delivered (Config.SyncReceived), the copy
// counts as complete only if at least that many arrived since the request.
// The bulk-done message can overtake the copy's last datagrams while the
// receiver works through its socket buffer, so a short count is not
// failure yet: the backup waits while the count still grows, and asks again
// only once it has stood still for 750 ms below the announced number
// (datagrams were lost). Once complete, the backup
// counts as synced and may preempt. Entries keep flowing as ordinary
// incremental sync afterwards. Incremental sync and the copy share the
// receiver, so the count is a check against lost datagrams, not an exact
// proof; a connection lost on the way reappears at its next incremental
// sync (in_pkts % 50 == 3, or its next state change).
package failover
