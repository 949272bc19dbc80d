package forwarder

import (
	"github.com/ulvs/ulvs/conntrack"
	"github.com/ulvs/ulvs/forwarder/pkt"
)

// Drop says why the director did not forward a packet. The values below
// pkt.NumDrops are the packet core's (malformed packets, failed rewrites);
// the rest are the director's own. Every value names a counter.
type Drop uint8

// The director's drop reasons.
const (
	// DropNotOurs: neither for a virtual service nor a reply of a tracked
	// NAT connection (the BPF filter lets a few such packets through).
	DropNotOurs Drop = Drop(pkt.NumDrops) + iota
	// DropStandby: this director is the backup; the active one forwards.
	DropStandby
	// DropNoConnection: a TCP segment that cannot start a connection (no
	// SYN, or RST) and matches none. Dropped silently: no RST is sent.
	DropNoConnection
	// DropWrongPort: a packet to a non-persistent service's address on
	// another port.
	DropWrongPort
	// DropNoServer: the scheduler found no available real server.
	DropNoServer
	// DropTableFull: the connection table is at its bound; only new flows
	// are refused.
	DropTableFull
	// DropNoDest: the connection's real server was deleted and
	// expire_nodest_conn is 0.
	DropNoDest
	// DropNoRoute: no route to the next hop out of the director's interfaces.
	DropNoRoute
	// DropNoNeighbour: the next hop's MAC address is not resolved yet; a
	// request was sent and later packets will pass.
	DropNoNeighbour
	// DropICMPNoConnection: an ICMP error quoting no tracked connection.
	DropICMPNoConnection
	// DropICMPRateLimited: an ICMP error ulvs would have sent was held back
	// by the rate limit.
	DropICMPRateLimited
	// DropTxFailed: the engine could not transmit the frame.
	DropTxFailed
	// DropNoTunnelSource: TUN forwarding needs an address of the outgoing
	// interface's family to use as the outer source.
	DropNoTunnelSource
	// DropAnswered: not forwarded because the director answered it itself
	// (ARP and NDP for a VIP, an ICMP error about a tunnel packet relayed
	// to the client). Counted, but not a failure.
	DropAnswered
	// DropBadL4Checksum: a NAT packet whose TCP or UDP checksum does not
	// verify. NAT rewrites the packet, so it is checked first, as IPVS does;
	// DR and TUN leave the transport header alone and forward it as it is.
	DropBadL4Checksum

	numDrops
)

var directorDropNames = [...]string{
	DropNotOurs - Drop(pkt.NumDrops):          "not_ours",
	DropStandby - Drop(pkt.NumDrops):          "standby",
	DropNoConnection - Drop(pkt.NumDrops):     "no_connection",
	DropWrongPort - Drop(pkt.NumDrops):        "wrong_port",
	DropNoServer - Drop(pkt.NumDrops):         "no_server",
	DropTableFull - Drop(pkt.NumDrops):        "conn_table_full",
	DropNoDest - Drop(pkt.NumDrops):           "no_dest",
	DropNoRoute - Drop(pkt.NumDrops):          "no_route",
	DropNoNeighbour - Drop(pkt.NumDrops):      "no_neighbour",
	DropICMPNoConnection - Drop(pkt.NumDrops): "icmp_no_connection",
	DropICMPRateLimited - Drop(pkt.NumDrops):  "icmp_rate_limited",
	DropTxFailed - Drop(pkt.NumDrops):         "tx_failed",
	DropNoTunnelSource - Drop(pkt.NumDrops):   "no_tunnel_source",
	DropAnswered - Drop(pkt.NumDrops):         "answered",
	DropBadL4Checksum - Drop(pkt.NumDrops):    "bad_l4_checksum",
}

// String returns the counter name of the reason.
func (d Drop) String() string {
	if d < Drop(pkt.NumDrops) {
		return pkt.Drop(d).String()
	}
	if i := int(d - Drop(pkt.NumDrops)); i < len(directorDropNames) {
		return directorDropNames[i]
	}
	return "unknown"
}

// DropReasons returns every reason in counter order.
func DropReasons() []Drop {
	out := make([]Drop, 0, numDrops)
	for d := Drop(1); d < numDrops; d++ {
		out = append(out, d)
	}
	return out
}

// resultDrop maps a conntrack.Connect refusal to the director's reason.
func resultDrop(r conntrack.Result) Drop {
	switch r {
	case conntrack.NotNew:
		return DropNoConnection
	case conntrack.WrongPort:
		return DropWrongPort
	case conntrack.NoServer:
		return DropNoServer
	case conntrack.Full:
		return DropTableFull
	}
	return DropNoServer
}
