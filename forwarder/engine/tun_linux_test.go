package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func TestTUNRoundTrip(t *testing.T) {
	ns := newNS(t)
	var e *TUN
	var err error
	ns.do(func() { e, err = OpenTUN(TUNConfig{Name: "ulvstun0", Workers: 2, BatchSize: 8}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ns.exec("ip", "addr", "add", "10.9.0.1/24", "dev", "ulvstun0")
	ns.exec("ip", "link", "set", "ulvstun0", "up")

	var conn *net.UDPConn
	ns.do(func() { conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 9, 0, 1)}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	local := conn.LocalAddr().(*net.UDPAddr)

	// Kernel -> TUN: datagrams to 10.9.0.2 are routed into the device; the
	// two queues share them by flow.
	got := make(chan []byte, 64)
	var readers sync.WaitGroup
	for _, q := range e.Queues() {
		readers.Add(1)
		go func() {
			defer readers.Done()
			pkts := NewBatch(q.BatchSize(), 0)
			for {
				n, err := q.Read(pkts)
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("Read: %v", err)
					}
					return
				}
				for i := 0; i < n; i++ {
					select {
					case got <- bytes.Clone(pkts[i].Frame()):
					default: // the test no longer listens
					}
				}
			}
		}()
	}
	const flows = 8
	for i := 0; i < flows; i++ {
		if _, err := conn.WriteToUDP([]byte("ping"), &net.UDPAddr{IP: net.IPv4(10, 9, 0, 2), Port: 7000 + i}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint16]bool{}
	timeout := time.After(10 * time.Second)
	for len(seen) < flows {
		select {
		case p := <-got:
			if p[0]>>4 != 4 || p[9] != 17 || netip.AddrFrom4([4]byte(p[16:20])) != netip.MustParseAddr("10.9.0.2") {
				continue // not ours (the kernel may send other packets)
			}
			hl := int(p[0]&0xf) * 4
			if string(p[hl+8:]) != "ping" {
				t.Fatalf("payload %q", p[hl+8:])
			}
			seen[binary.BigEndian.Uint16(p[hl+2:])] = true
		case <-timeout:
			t.Fatalf("read %d of %d datagrams from the TUN", len(seen), flows)
		}
	}

	// TUN -> kernel: a batch of datagrams from 10.9.0.2 reaches the socket.
	q := e.Queues()[0]
	pkts := NewBatch(4, 0)
	for i := range pkts {
		l4 := ports(7000, uint16(local.Port), 0)
		l4 = append(l4, 'p', 'o', 'n', 'g', byte('0'+i))
		binary.BigEndian.PutUint16(l4[4:6], uint16(len(l4)))
		ip := ipv4(netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.0.1"), 17, 0, false, l4)
		binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip[:20]))
		pkts[i].Len = copy(pkts[i].Buf[Headroom:], ip)
	}
	if n, err := q.Write(pkts); n != len(pkts) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	for i := range pkts {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if want := "pong" + string(rune('0'+i)); string(buf[:n]) != want || from.Port != 7000 {
			t.Fatalf("datagram %d: %q from %v, want %q", i, buf[:n], from, want)
		}
	}
	if s := e.Stats(); s.TxFrames != 4 || s.RxFrames < flows {
		t.Fatalf("stats %+v", s)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { readers.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("readers still blocked after Close")
	}
	if _, err := q.Write(pkts); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestTUNConfigErrors(t *testing.T) {
	for _, c := range []TUNConfig{{}, {Name: "a-very-long-device-name"}, {Name: "x", Workers: -1}} {
		if _, err := OpenTUN(c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

func TestTUNZeroAlloc(t *testing.T) {
	ns := newNS(t)
	var e *TUN
	var err error
	ns.do(func() { e, err = OpenTUN(TUNConfig{Name: "ulvstun1", Workers: 1}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ns.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
	ns.exec("sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0")
	ns.exec("sysctl", "-qw", "net.ipv4.conf.ulvstun1.send_redirects=0")
	ns.exec("ip", "addr", "add", "10.9.1.1/24", "dev", "ulvstun1")
	ns.exec("ip", "link", "set", "ulvstun1", "up")
	// Packets written from 10.9.1.2 to 10.9.1.3 are forwarded by the kernel
	// straight back into the device.
	q := e.Queues()[0]
	out := NewBatch(4, 0)
	for i := range out {
		ip := ipv4(netip.MustParseAddr("10.9.1.2"), netip.MustParseAddr("10.9.1.3"), 17, 0, false, ports(1, 2, 10))
		binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip[:20]))
		out[i].Len = copy(out[i].Buf[Headroom:], ip)
	}
	in := NewBatch(16, 0)
	guard := time.AfterFunc(time.Minute, func() { e.Close() })
	defer guard.Stop()
	loop := func() {
		if n, err := q.Write(out); n != len(out) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		for got := 0; got < len(out); {
			n, err := q.Read(in)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				if in[i].Buf[in[i].Off+19] == 3 { // forwarded to 10.9.1.3
					got++
				}
			}
		}
	}
	for i := 0; i < 5; i++ {
		loop()
	}
	if a := testing.AllocsPerRun(50, loop); a != 0 {
		t.Fatalf("steady-state TUN Write+Read allocates %.1f per batch", a)
	}
}
