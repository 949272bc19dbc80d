package forwarder

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

func a16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func TestNeighTableSetLookup(t *testing.T) {
	tab := NewNeighTable(16)
	ip := a16("10.0.1.11")
	if _, ok := tab.Lookup(&ip, 1); ok {
		t.Fatal("empty table resolved an address")
	}
	mac := [6]byte{2, 0, 0, 0, 1, 11}
	tab.set(&ip, mac, 5)
	got, ok := tab.Lookup(&ip, 6)
	if !ok || got != mac {
		t.Fatalf("Lookup = %v %v, want %v true", got, ok, mac)
	}
	mac2 := [6]byte{2, 0, 0, 0, 1, 12}
	tab.set(&ip, mac2, 7)
	if got, _ := tab.Lookup(&ip, 8); got != mac2 {
		t.Fatalf("after update Lookup = %v, want %v", got, mac2)
	}
	if n := len(tab.entries(nil)); n != 1 {
		t.Fatalf("update created a second entry: %d entries", n)
	}
	v6 := a16("2001:db8::11")
	tab.set(&v6, mac, 9)
	if got, ok := tab.Lookup(&v6, 10); !ok || got != mac {
		t.Fatalf("IPv6 Lookup = %v %v", got, ok)
	}
}

func TestNeighTableFullWindowEvictsLRU(t *testing.T) {
	tab := NewNeighTable(1) // 64 slots
	var ips [][16]byte
	for i := 0; i < 2000; i++ {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}).As16()
		ips = append(ips, ip)
		tab.set(&ip, [6]byte{2, 0, 0, 0, byte(i >> 8), byte(i)}, int64(i+1))
	}
	if n := len(tab.entries(nil)); n != 64 {
		t.Fatalf("table holds %d entries, want all 64 slots used", n)
	}
	// The most recent address must always be resolvable, with its own MAC.
	last := ips[len(ips)-1]
	got, ok := tab.Lookup(&last, 3000)
	if !ok || got != ([6]byte{2, 0, 0, 0, byte(1999 >> 8), byte(1999 & 0xff)}) {
		t.Fatalf("newest entry lost: %v %v", got, ok)
	}
	// No lookup ever returns another address's MAC.
	for i, ip := range ips {
		if m, ok := tab.Lookup(&ip, 3000); ok && (m[4] != byte(i>>8) || m[5] != byte(i)) {
			t.Fatalf("address %d resolved to a MAC of another address: %v", i, m)
		}
	}
}

func TestNeighTableLookupAllocs(t *testing.T) {
	tab := NewNeighTable(16)
	ip := a16("10.0.1.11")
	tab.set(&ip, [6]byte{1, 2, 3, 4, 5, 6}, 1)
	if n := testing.AllocsPerRun(1000, func() { tab.Lookup(&ip, 2) }); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
}

// TestNeighTableConcurrent runs readers against the single writer; under
// -race this checks the seqlock, and readers must never see a torn entry
// (an address paired with a MAC that was never stored for it).
func TestNeighTableConcurrent(t *testing.T) {
	tab := NewNeighTable(64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 256; i++ {
					ip := netip.AddrFrom4([4]byte{10, 0, byte(i), 1}).As16()
					if m, ok := tab.Lookup(&ip, 1); ok && m[5] != byte(i) {
						t.Errorf("torn read: %d -> %v", i, m)
						return
					}
				}
			}
		}()
	}
	for round := 0; round < 50; round++ {
		for i := 0; i < 256; i++ {
			ip := netip.AddrFrom4([4]byte{10, 0, byte(i), 1}).As16()
			tab.set(&ip, [6]byte{2, byte(round), 0, 0, 0, byte(i)}, int64(round))
		}
	}
	close(stop)
	wg.Wait()
}

type fakeClock struct{ t int64 }

func (c *fakeClock) now() int64 { return c.t }

func TestResolverAsksOnceThenRetries(t *testing.T) {
	clk := &fakeClock{t: 1}
	var asked [][16]byte
	r := NewResolver(NewNeighTable(16), func(ip [16]byte) error { asked = append(asked, ip); return nil }, clk.now)
	ip := a16("10.0.1.11")
	r.handleWant(ip)
	r.handleWant(ip) // within RetryAfter: no second request
	if len(asked) != 1 {
		t.Fatalf("asked %d times, want 1", len(asked))
	}
	clk.t += int64(r.RetryAfter)
	r.housekeep()
	if len(asked) != 2 {
		t.Fatalf("unanswered request not repeated: asked %d times", len(asked))
	}
	r.handleLearn(learned{ip: ip, mac: [6]byte{1, 2, 3, 4, 5, 6}})
	if _, ok := r.Table.Lookup(&ip, clk.t); !ok {
		t.Fatal("answer not stored")
	}
	clk.t += int64(r.RetryAfter)
	r.housekeep()
	if len(asked) != 2 {
		t.Fatalf("answered address asked again: %d", len(asked))
	}
	// Give up after 10 RetryAfter without an answer.
	ip2 := a16("10.0.1.12")
	r.handleWant(ip2)
	for i := 0; i < 12; i++ {
		clk.t += int64(r.RetryAfter)
		r.housekeep()
	}
	if _, ok := r.pending[ip2]; ok {
		t.Fatal("unanswerable address still pending after giving up")
	}
}

func TestResolverRefreshesUsedStaleEntries(t *testing.T) {
	clk := &fakeClock{t: 1}
	var asked int
	r := NewResolver(NewNeighTable(16), func([16]byte) error { asked++; return nil }, clk.now)
	used, idle := a16("10.0.1.11"), a16("10.0.1.12")
	r.handleLearn(learned{ip: used, mac: [6]byte{1}})
	r.handleLearn(learned{ip: idle, mac: [6]byte{2}})
	clk.t += int64(r.RefreshAfter) + int64(time.Second)
	r.Table.Lookup(&used, clk.t) // a worker uses it
	r.housekeep()
	if asked != 1 {
		t.Fatalf("refresh asked %d times, want 1 (only the used entry)", asked)
	}
}

func TestResolverSeenOnlyUpdates(t *testing.T) {
	clk := &fakeClock{t: 1}
	r := NewResolver(NewNeighTable(16), func([16]byte) error { return nil }, clk.now)
	ip := a16("10.0.0.50")
	r.handleLearn(learned{ip: ip, mac: [6]byte{9}, onlyUpdate: true})
	if _, ok := r.Table.Lookup(&ip, 2); ok {
		t.Fatal("an address seen in passing created an entry")
	}
	r.handleLearn(learned{ip: ip, mac: [6]byte{9}})
	r.handleLearn(learned{ip: ip, mac: [6]byte{7}, onlyUpdate: true})
	if m, _ := r.Table.Lookup(&ip, 2); m[0] != 7 {
		t.Fatalf("existing entry not updated: %v", m)
	}
}
