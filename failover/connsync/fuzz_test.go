package connsync

import "testing"

func FuzzDecode(f *testing.F) {
	e := NewEncoder(0, 0)
	a, b := v6conn, v4conn
	e.Add(&a)
	e.Add(&b)
	f.Add(append([]byte(nil), e.Bytes()...))
	e.Reset()
	e.Add(&b)
	f.Add(append([]byte(nil), e.Bytes()...))
	f.Add([]byte{2, 0, 0, 52, 0, 6, 0x1f, 0x90, 0, 80, 0, 80, 10, 0, 0, 1, 10, 0, 0, 2, 10, 0, 0, 3, 0, 3, 0, 1,
		0, 6, 0x1f, 0x90, 0, 80, 0, 80, 10, 0, 0, 1, 10, 0, 0, 2, 10, 0, 0, 3, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 8, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		var d Decoder
		var s collect
		r := d.Decode(msg, &s)
		if r.Conns != len(s.got) {
			t.Fatalf("conns %d, delivered %d", r.Conns, len(s.got))
		}
		if r.Version != 1 {
			return
		}
		// Round trip: what was accepted re-encodes to entries that decode
		// to the same connections.
		enc := NewEncoder(r.SyncID, 65535)
		for i := range s.got {
			c := s.got[i]
			if !enc.Add(&c) {
				return
			}
		}
		var s2 collect
		r2 := (&Decoder{}).Decode(enc.Bytes(), &s2)
		if r2.Reason != OK || len(s2.got) != len(s.got) {
			t.Fatalf("re-decode %+v", r2)
		}
		for i := range s.got {
			if s2.got[i] != s.got[i] {
				t.Fatalf("entry %d: %+v != %+v", i, s2.got[i], s.got[i])
			}
		}
	})
}
