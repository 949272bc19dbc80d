package scheduler

import (
	"fmt"
	"testing"
)

// BenchmarkSchedule measures one decision per op, with realistic counter
// churn: the chosen server gets a connection (Bind) and, to keep the load
// steady, one connection elsewhere in the pool closes (Unbind) and another
// opens (Bind) and changes state (SetActive), so every op dirties several
// leaves of the index.
func BenchmarkSchedule(b *testing.B) {
	for _, name := range Names {
		for _, n := range []int{8, 128, 1024, 16384} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				p, ds := benchPool(b, name, n)
				flows := benchFlows(4096)
				open := make([]*Dest, 0, 1024)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					d := p.Schedule(&flows[i&4095], int64(i)*1000)
					if d != nil {
						d.Bind(false, false)
						open = append(open, d)
					}
					o := ds[(i*7919)%n]
					o.Bind(false, false)
					o.SetActive(true)
					o.Unbind(false, true)
					if len(open) == cap(open) {
						for _, x := range open {
							x.Unbind(false, false)
						}
						open = open[:0]
					}
				}
			})
		}
	}
}
