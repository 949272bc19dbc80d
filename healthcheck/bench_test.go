package healthcheck

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

type instantChecker struct{}

func (instantChecker) check(context.Context) Result { return okResult("ok") }

// BenchmarkScheduler10kChecks measures the Manager's own cost per probe:
// 10,000 checks due at once on a fake clock, instant checkers, results
// through the rise/fall state machine. One op = one round of 10,000 probes.
func BenchmarkScheduler10kChecks(b *testing.B) {
	const n = 10000
	clk := newFakeClock()
	var applied, target atomic.Int64
	done := make(chan struct{}, 1)
	m := NewManager(zerolog.Nop(), nil, WithClock(clk), WithJitter(func(time.Duration) time.Duration { return 0 }),
		withCheckers(func(*Spec) (checker, error) { return instantChecker{}, nil }),
		withHook(func(s string) {
			if s == "result" && applied.Add(1) == target.Load() {
				done <- struct{}{}
			}
		}))
	defer m.Close()
	specs := make([]Spec, n)
	for i := range specs {
		specs[i] = spec(i, Config{Interval: time.Second})
	}
	target.Store(n)
	if err := m.Update(specs); err != nil {
		b.Fatal(err)
	}
	<-done
	b.ResetTimer()
	for range b.N {
		target.Add(n)
		clk.Advance(time.Second)
		<-done
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/probe")
}

// BenchmarkTCPProbe is one tcp check against a loopback listener.
func BenchmarkTCPProbe(b *testing.B) {
	ln := listenTCPB(b)
	s := Spec{ID: TargetID{"s", ln}, Config: Config{Type: TypeTCP, Timeout: time.Second}}
	ch, _ := newChecker(&s)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if r := ch.check(ctx); !r.OK {
			b.Fatal(r.Reason)
		}
	}
}

// BenchmarkReload10kUnchanged is a reload of 10,000 unchanged tcp checks:
// validation, checker construction and reconciliation (nothing restarts).
func BenchmarkReload10kUnchanged(b *testing.B) {
	const n = 10000
	m := NewManager(zerolog.Nop(), nil, WithClock(newFakeClock()))
	defer m.Close()
	specs := make([]Spec, n)
	for i := range specs {
		specs[i] = spec(i, Config{Type: TypeTCP, Interval: time.Hour})
	}
	if err := m.Update(specs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := m.Update(specs); err != nil {
			b.Fatal(err)
		}
	}
}
