package failover

import (
	"context"
	"net/netip"

	"github.com/ulvs/ulvs/failover/connsync"
)

// The connection-sync seam, in plain data (see package connsync).
type (
	// ConnRecord is one synchronised connection.
	ConnRecord = connsync.Conn
	// ConnSink receives synced connections on the backup; the daemon's
	// implementation inserts or updates them in its connection table,
	// flagged SYNC.
	ConnSink = connsync.Sink
	// ConnSource iterates the active's connection table for a bulk copy.
	ConnSource = connsync.ConnSource
)

// NewBulkSender returns the BulkSender a Node uses on the active side: on
// request it opens a unicast sync socket on the sync interface to the
// requester and streams src in v1 messages, paced (connsync.PacedWriter).
func NewBulkSender(src ConnSource, tc connsync.TransportConfig, syncID uint8, maxLen int) BulkSender {
	return func(ctx context.Context, to netip.Addr) (int, error) {
		c := tc
		c.Peer = to
		w, err := connsync.DialSender(c)
		if err != nil {
			return 0, err
		}
		defer w.Close()
		return connsync.SendBulk(src, &connsync.PacedWriter{W: w, Ctx: ctx}, syncID, maxLen)
	}
}
