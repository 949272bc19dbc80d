package ctlmsg

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

func TestSealOpen(t *testing.T) {
	sec := []byte("k")
	m := Msg{Type: BulkDone, VRID: 57, Priority: 150, Time: 12345, Nonce: 99, Arg: 3000}
	b := Seal(make([]byte, Size), sec, m)
	// Independent check of the layout and MAC.
	if string(b[:4]) != "ULVS" || b[4] != 1 || b[5] != 3 || b[6] != 57 || b[7] != 150 || b[27] != 0xb8 || b[26] != 0x0b {
		t.Fatalf("layout %x", b[:32])
	}
	h := hmac.New(sha256.New, sec)
	h.Write(b[:32])
	if !hmac.Equal(h.Sum(nil), b[32:]) {
		t.Fatal("MAC is not HMAC-SHA256 over bytes 0..31")
	}
	got, err := Open(b, sec)
	if err != nil || got != m {
		t.Fatalf("%+v %v", got, err)
	}
	for i := 0; i < Size; i++ {
		c := append([]byte(nil), b...)
		c[i] ^= 0x80
		if _, err := Open(c, sec); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if _, err := Open(b, []byte("other")); !errors.Is(err, ErrMAC) {
		t.Fatal(err)
	}
	if _, err := Open(b, nil); !errors.Is(err, ErrNoSecret) {
		t.Fatal(err)
	}
	if _, err := Open(b[:63], sec); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
}

func TestGuard(t *testing.T) {
	now := time.Unix(1000, 0)
	g := Guard{Window: 5 * time.Second}
	m := Msg{Time: now.UnixNano(), Nonce: 1}
	if err := g.Check(now, m); err != nil {
		t.Fatal(err)
	}
	if err := g.Check(now, m); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: %v", err)
	}
	m.Nonce = 2
	if err := g.Check(now.Add(6*time.Second), m); !errors.Is(err, ErrStale) {
		t.Fatalf("stale: %v", err)
	}
	if err := g.Check(now.Add(-6*time.Second), m); !errors.Is(err, ErrStale) {
		t.Fatalf("future: %v", err)
	}
	// The cache stays bounded under a flood of fresh messages.
	for i := 0; i < 3*maxSeen; i++ {
		g.Check(now, Msg{Time: now.UnixNano(), Nonce: uint64(10 + i)})
	}
	if len(g.seen) > maxSeen {
		t.Fatalf("replay cache grew to %d", len(g.seen))
	}
}
