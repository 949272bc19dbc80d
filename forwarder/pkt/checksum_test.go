package pkt

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestSumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 2000)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for n := 0; n < 200; n++ {
		for _, off := range []int{0, 1, 2, 3, 7} {
			want := uint16(naiveSum(b[off : off+n]))
			if n > 0 && want == 0 {
				want = 0xffff
			}
			got := Fold(Sum(b[off:off+n], 0))
			if got != want && !(n == 0 || want == 0xffff && got == 0) {
				t.Fatalf("n=%d off=%d: Fold(Sum) %#04x, naive %#04x", n, off, got, want)
			}
		}
	}
	// All-ones data stress the carries.
	ff := make([]byte, 1500)
	for i := range ff {
		ff[i] = 0xff
	}
	if got := Fold(Sum(ff, 0)); got != 0xffff {
		t.Fatalf("all-ones sum %#04x", got)
	}
	// Chaining even-length pieces equals summing the whole.
	if Fold(Sum(b[100:], Sum(b[:100], 0))) != Fold(Sum(b, 0)) {
		t.Fatal("chained sum differs")
	}
}

// TestIncrementalUpdate checks RFC 1624 updates against full recomputation
// for random data and random 16-, 32- and 128-bit field changes.
func TestIncrementalUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		n := 40 + 2*r.IntN(40)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if i%7 == 0 { // runs of zeros and ones around the field
			for j := 0; j < 20; j++ {
				b[j] = 0
			}
		}
		binary.BigEndian.PutUint16(b[0:], 0)
		binary.BigEndian.PutUint16(b[0:], Checksum(b))
		csum := binary.BigEndian.Uint16(b)
		at := 2 + 2*r.IntN((n-20)/2)
		switch i % 4 {
		case 0:
			old := binary.BigEndian.Uint16(b[at:])
			nw := uint16(r.Uint32())
			binary.BigEndian.PutUint16(b[at:], nw)
			csum = Update16(csum, old, nw)
		case 1:
			old := binary.BigEndian.Uint32(b[at:])
			nw := r.Uint32()
			binary.BigEndian.PutUint32(b[at:], nw)
			csum = Update32(csum, old, nw)
		case 2:
			var old, nw [16]byte
			copy(old[:], b[at:])
			for j := range nw {
				nw[j] = byte(r.Uint32())
			}
			copy(b[at:], nw[:])
			csum = Update128(csum, &old, &nw)
		case 3:
			old := append([]byte(nil), b[at:at+6]...)
			nw := []byte{byte(i), 2, 3, 4, 5, byte(i >> 8)}
			copy(b[at:], nw)
			csum = UpdateBytes(csum, old, nw)
		}
		binary.BigEndian.PutUint16(b, csum)
		if s := naiveSum(b); s != 0xffff {
			t.Fatalf("case %d: updated checksum does not verify (sum %#04x)", i%4, s)
		}
	}
}

func TestPseudoSum(t *testing.T) {
	s, d := a16(client4), a16(vip4)
	want := naiveSum(append(append(append([]byte{}, s[12:]...), d[12:]...), 0, 6, 0, 20))
	if got := Fold(PseudoSum(&s, &d, true, 6, 20)); uint32(got) != want {
		t.Fatalf("v4 pseudo sum %#04x, want %#04x", got, want)
	}
	s, d = a16(client6), a16(vip6)
	b := append(append(append([]byte{}, s[:]...), d[:]...), 0, 0, 0x01, 0x00, 0, 0, 0, 58)
	if got := Fold(PseudoSum(&s, &d, false, 58, 256)); uint32(got) != naiveSum(b) {
		t.Fatalf("v6 pseudo sum %#04x, want %#04x", got, naiveSum(b))
	}
}

func TestSum20(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	h := make([]byte, 20)
	for i := 0; i < 1000; i++ {
		for j := range h {
			h[j] = byte(r.Uint32())
		}
		if Fold(sum20(h)) != Fold(Sum(h, 0)) {
			t.Fatalf("sum20 differs for %x", h)
		}
	}
}
