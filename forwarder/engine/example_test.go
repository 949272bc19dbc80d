package engine_test

import (
	"fmt"

	"github.com/ulvs/ulvs/forwarder/engine"
)

// A worker loop on the fake engine: read a batch, rewrite in place (here:
// prepend a 2-byte header into the headroom and send out the other
// interface), write the batch.
func Example() {
	eng := engine.NewFake(1, 8, 16)
	defer eng.Close()
	eng.Inject(0, engine.Public, []byte("frame"))

	q := eng.Queues()[0]
	pkts := engine.NewBatch(q.BatchSize(), 0) // once per worker, before the loop
	n, err := q.Read(pkts)
	if err != nil {
		return
	}
	for i := range pkts[:n] {
		p := &pkts[i]
		p.Off -= 2
		p.Len += 2
		copy(p.Buf[p.Off:], "H:")
		p.Iface = engine.Private
	}
	q.Write(pkts[:n])

	out := <-eng.Sent()
	fmt.Printf("%s on %s\n", out.Frame, out.Iface)
	// Output: H:frame on private
}
