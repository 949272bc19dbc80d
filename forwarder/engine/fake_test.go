package engine

import (
	"bytes"
	"errors"
	"testing"
)

func TestFakeRoundTrip(t *testing.T) {
	f := NewFake(2, 4, 16)
	if len(f.Queues()) != 2 || f.Queues()[0].BatchSize() != 4 {
		t.Fatalf("queues %d batch %d", len(f.Queues()), f.Queues()[0].BatchSize())
	}
	for i := 0; i < 6; i++ {
		if err := f.Inject(1, Private, []byte{byte(i), 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	q := f.Queues()[1]
	pkts := NewBatch(4, 64)
	n, err := q.Read(pkts)
	if err != nil || n != 4 {
		t.Fatalf("Read = %d, %v; want the batch of 4", n, err)
	}
	for i := 0; i < n; i++ {
		if pkts[i].Off != Headroom || pkts[i].Iface != Private || !bytes.Equal(pkts[i].Frame(), []byte{byte(i), 1, 2, 3}) {
			t.Fatalf("slot %d: %+v", i, pkts[i])
		}
	}
	if n, _ := q.Read(pkts); n != 2 {
		t.Fatalf("second Read = %d, want the 2 left", n)
	}
	// Prepend a header in the headroom and send out the other interface.
	pkts[0].Off -= 2
	pkts[0].Len += 2
	pkts[0].Buf[pkts[0].Off], pkts[0].Buf[pkts[0].Off+1] = 0xaa, 0xbb
	pkts[0].Iface = Public
	pkts[1].Len = 0 // dropped
	if n, err := q.Write(pkts[:2]); n != 1 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got := <-f.Sent()
	if got.Iface != Public || !bytes.Equal(got.Frame, []byte{0xaa, 0xbb, 4, 1, 2, 3}) {
		t.Fatalf("sent %+v", got)
	}
	s := f.Stats()
	if s.RxFrames != 6 || s.TxFrames != 1 || s.TxDropped != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Too big for the slot: counted, not delivered.
	f.Inject(0, Public, make([]byte, 100))
	f.Inject(0, Public, []byte{9})
	if n, _ := f.Queues()[0].Read(NewBatch(4, 64)); n != 1 || f.Stats().RxTooBig != 1 {
		t.Fatalf("Read = %d, stats %+v", n, f.Stats())
	}
	if err := f.Inject(5, Public, nil); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("Inject to a missing queue: %v", err)
	}
}

func TestFakeClose(t *testing.T) {
	f := NewFake(1, 0, 0)
	done := make(chan error)
	go func() {
		_, err := f.Queues()[0].Read(NewBatch(1, 0))
		done <- err
	}()
	f.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := f.Inject(0, Public, []byte{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Inject after Close: %v", err)
	}
	f.Close()
}

func TestFakeReadAllocs(t *testing.T) {
	f := NewFake(1, 8, 8)
	q := f.Queues()[0]
	pkts := NewBatch(8, 64)
	frame := []byte{1, 2, 3}
	a := testing.AllocsPerRun(100, func() {
		f.queues[0].in <- FakeFrame{Frame: frame}
		if n, _ := q.Read(pkts); n != 1 {
			t.Fatal("no frame")
		}
	})
	if a != 0 {
		t.Fatalf("fake Read allocates %.1f per call", a)
	}
}
