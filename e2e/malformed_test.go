package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Frames built by hand, so that they can be wrong on purpose.

func csum(b []byte, acc uint32) uint16 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return ^uint16(acc)
}

// pseudo returns the pseudo-header sum of an L4 segment.
func pseudo(src, dst netip.Addr, proto uint8, n int) uint32 {
	var acc uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			acc += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	acc += uint32(proto) + uint32(n)
	return acc
}

// tcpSYN is a 20-byte SYN with a valid checksum.
func tcpSYN(src, dst netip.AddrPort, seq uint32) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], src.Port())
	binary.BigEndian.PutUint16(b[2:], dst.Port())
	binary.BigEndian.PutUint32(b[4:], seq)
	b[12] = 5 << 4
	b[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(b[14:], 64240)
	binary.BigEndian.PutUint16(b[16:], csum(b, pseudo(src.Addr(), dst.Addr(), 6, len(b))))
	return b
}

// udpSeg is a UDP datagram with a valid checksum.
func udpSeg(src, dst netip.AddrPort, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], src.Port())
	binary.BigEndian.PutUint16(b[2:], dst.Port())
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], payload)
	c := csum(b, pseudo(src.Addr(), dst.Addr(), 17, len(b)))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[6:], c)
	return b
}

// ipv4 wraps payload; frag is the flags+offset field; totLen 0 means the
// true length. The header checksum is valid.
func ipv4(src, dst netip.Addr, proto uint8, payload []byte, frag uint16, totLen int) []byte {
	b := make([]byte, 20+len(payload))
	b[0] = 0x45
	if totLen == 0 {
		totLen = len(b)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(totLen))
	binary.BigEndian.PutUint16(b[4:], 0x4242)
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = 64
	b[9] = proto
	copy(b[12:16], src.AsSlice())
	copy(b[16:20], dst.AsSlice())
	binary.BigEndian.PutUint16(b[10:], csum(b[:20], 0))
	copy(b[20:], payload)
	return b
}

func fixIPv4Checksum(b []byte) {
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], csum(b[:20], 0))
}

// ipv6 wraps payload; plen 0 means the true payload length.
func ipv6(src, dst netip.Addr, nh uint8, payload []byte, plen int) []byte {
	b := make([]byte, 40+len(payload))
	b[0] = 0x60
	if plen == 0 {
		plen = len(payload)
	}
	binary.BigEndian.PutUint16(b[4:], uint16(plen))
	b[6] = nh
	b[7] = 64
	copy(b[8:24], src.AsSlice())
	copy(b[24:40], dst.AsSlice())
	copy(b[40:], payload)
	return b
}

func ether(dst, src net.HardwareAddr, etype uint16, payload []byte) []byte {
	b := make([]byte, 14+len(payload))
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:], etype)
	copy(b[14:], payload)
	return b
}

// rawSocket opens an AF_PACKET socket in host, for sending frames on
// iface. The socket stays in host's namespace.
func (e *env) rawSocket(t *testing.T, host, iface string) (fd, ifindex int) {
	t.Helper()
	err := e.l.Do(host, func() error {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		ifindex = ifc.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatalf("AF_PACKET socket in %s: %v", host, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, ifindex
}

func sendFrame(fd, ifindex int, frame []byte) error {
	return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6})
}

// malformedCase is one kind of bad packet and the drop reason ulvsd must
// count it under.
type malformedCase struct {
	name   string
	reason string
	frames func(sport uint16) [][]byte
}

func (e *env) malformedCases(web4, web6, name4 netip.AddrPort) []malformedCase {
	c1, _ := e.l.Plan.Host("client1")
	src4, src6 := c1.Addr4(), c1.Addr6()
	ap := netip.AddrPortFrom
	l2 := func(etype uint16, p []byte) []byte {
		dir, _ := e.l.Plan.Host("dir1")
		pub, _ := dir.Iface("public")
		cl, _ := c1.Iface("public")
		return ether(pub.HardwareAddr(), cl.HardwareAddr(), etype, p)
	}
	v4 := func(p []byte) [][]byte { return [][]byte{l2(0x0800, p)} }
	v6 := func(p []byte) [][]byte { return [][]byte{l2(0x86dd, p)} }
	syn4 := func(sp uint16) []byte { return tcpSYN(ap(src4, sp), web4, 1000) }
	return []malformedCase{
		{"bad IPv4 header checksum", "bad_ipv4_checksum", func(sp uint16) [][]byte {
			p := ipv4(src4, web4.Addr(), 6, syn4(sp), 0, 0)
			p[10] ^= 0x5a
			return v4(p)
		}},
		{"IPv4 total length beyond the frame", "bad_ipv4_length", func(sp uint16) [][]byte {
			return v4(ipv4(src4, web4.Addr(), 6, syn4(sp), 0, 1000))
		}},
		{"IPv4 ethertype, version 6", "bad_ip_version", func(sp uint16) [][]byte {
			p := ipv4(src4, web4.Addr(), 6, syn4(sp), 0, 0)
			p[0] = 0x65
			fixIPv4Checksum(p)
			return v4(p)
		}},
		{"IPv4 fragments (first and non-first)", "ip_fragment", func(sp uint16) [][]byte {
			first := ipv4(src4, web4.Addr(), 6, syn4(sp), 0x2000, 0)      // MF, offset 0
			later := ipv4(src4, web4.Addr(), 6, make([]byte, 24), 185, 0) // offset 1480
			return [][]byte{l2(0x0800, first), l2(0x0800, later)}
		}},
		{"TCP header cut at 12 bytes", "truncated_tcp", func(sp uint16) [][]byte {
			return v4(ipv4(src4, web4.Addr(), 6, syn4(sp)[:12], 0, 0))
		}},
		{"TCP data offset beyond the segment", "bad_tcp_data_offset", func(sp uint16) [][]byte {
			s := syn4(sp)
			s[12] = 15 << 4
			return v4(ipv4(src4, web4.Addr(), 6, s, 0, 0))
		}},
		{"UDP header cut at 6 bytes", "truncated_udp", func(sp uint16) [][]byte {
			return v4(ipv4(src4, name4.Addr(), 17, udpSeg(ap(src4, sp), name4, []byte("x"))[:6], 0, 0))
		}},
		{"UDP length beyond the datagram", "bad_udp_length", func(sp uint16) [][]byte {
			u := udpSeg(ap(src4, sp), name4, []byte("abcd"))
			binary.BigEndian.PutUint16(u[4:], 400)
			return v4(ipv4(src4, name4.Addr(), 17, u, 0, 0))
		}},
		{"IPv6 payload length beyond the frame", "bad_ipv6_length", func(sp uint16) [][]byte {
			return v6(ipv6(src6, web6.Addr(), 6, tcpSYN(ap(src6, sp), web6, 1000), 1000))
		}},
		{"IPv6 non-first fragment", "ip_fragment", func(sp uint16) [][]byte {
			fh := make([]byte, 8+24)
			fh[0] = 6                                      // next header: TCP
			binary.BigEndian.PutUint16(fh[2:], 1480)       // offset 1480, no M flag
			binary.BigEndian.PutUint32(fh[4:], uint32(sp)) // identification
			return v6(ipv6(src6, web6.Addr(), 44, fh, 0))
		}},
	}
}

// malformed: bad packets sent at the VIPs from client1 are dropped and
// counted under their reason, exactly, while a request loop from client2
// keeps succeeding.
func (e *env) testMalformed(t *testing.T, web4, web6, name4 netip.AddrPort) {
	const copies = 4
	fd, ifindex := e.rawSocket(t, "client1", "eth0")
	cases := e.malformedCases(web4, web6, name4)
	want := map[string]uint64{}
	for _, c := range cases {
		want[c.reason] += copies * uint64(len(c.frames(1)))
	}
	st0 := e.status(t)
	before := st0.Drops

	// The request loop, running before, during and after the bad packets.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		hc := e.l.HTTPClient("client2", 3*time.Second)
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := hc.Get(url(web4, "/"))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %s", resp.Status)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				continue
			}
			ok.Add(1)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	sport := uint16(40000)
	for i := 0; i < copies; i++ {
		for _, c := range cases {
			sport++
			for _, f := range c.frames(sport) {
				if err := sendFrame(fd, ifindex, f); err != nil {
					t.Fatalf("%s: send: %v", c.name, err)
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	// Counters move as the worker handles the frames: wait for them.
	var got map[string]uint64
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = e.drops(t)
		done := true
		for r, n := range want {
			if got[r]-before[r] < n {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // and a little more, to catch over-counting
	st1 := e.status(t)
	got = st1.Drops
	close(stop)
	wg.Wait()

	bad := false
	for _, c := range cases {
		if d := got[c.reason] - before[c.reason]; d != want[c.reason] {
			t.Errorf("%s: drop counter %q moved by %d, want %d", c.name, c.reason, d, want[c.reason])
			bad = true
		}
	}
	if bad {
		moved := map[string]uint64{}
		for r, n := range got {
			if n != before[r] {
				moved[r] = n - before[r]
			}
		}
		t.Logf("every drop counter that moved: %v\nengine before: %v\nengine after:  %v", moved, st0.Engine, st1.Engine)
	}
	if failed.Load() > 0 {
		t.Errorf("request loop: %d of %d requests failed during the bad packets (first: %v)", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() < 5 {
		t.Errorf("request loop: only %d requests completed", ok.Load())
	}
	t.Logf("malformed: %d bad frames counted by reason; %d requests succeeded meanwhile", sum(want), ok.Load())
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// snmpCounter reads one counter of /proc/net/snmp ("Tcp", "InCsumErrors")
// in host's namespace.
func (e *env) snmpCounter(t *testing.T, host, group, name string) uint64 {
	t.Helper()
	var v uint64
	err := e.l.Do(host, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i+1 < len(lines); i++ {
			if !strings.HasPrefix(lines[i], group+": ") || !strings.HasPrefix(lines[i+1], group+": ") {
				continue
			}
			names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			for j := range names {
				if names[j] == name && j < len(vals) {
					v, err = strconv.ParseUint(vals[j], 10, 64)
					return err
				}
			}
		}
		return fmt.Errorf("no %s %s in /proc/net/snmp", group, name)
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// badL4: segments with a wrong TCP or UDP checksum are never repaired on
// the way: each is either dropped by ulvsd (counted under some reason) or
// delivered still wrong (ulvs's incremental NAT rewrite keeps it wrong; DR
// and TUN leave it untouched), so that the real server's kernel rejects it
// (its InCsumErrors counters move). None may reach a real server valid.
// It returns how many the real servers rejected and how many ulvsd counted
// under a checksum drop reason.
func (e *env) testBadL4Checksum(t *testing.T, web4, name4 netip.AddrPort) (rejected, dropped uint64) {
	const copies = 5
	fd, ifindex := e.rawSocket(t, "client1", "eth0")
	c1, _ := e.l.Plan.Host("client1")
	dir, _ := e.l.Plan.Host("dir1")
	pub, _ := dir.Iface("public")
	cl, _ := c1.Iface("public")
	count := func() (n uint64) {
		for _, rs := range e.l.Plan.RealServers() {
			n += e.snmpCounter(t, rs.Name, "Tcp", "InCsumErrors")
			n += e.snmpCounter(t, rs.Name, "Udp", "InCsumErrors")
		}
		return n
	}
	// Only checksum reasons count (bad_ipv4_checksum, and whatever name a
	// TCP/UDP checksum reason gets): other reasons move with unrelated
	// background frames.
	total := func(m map[string]uint64) (n uint64) {
		for r, v := range m {
			if strings.Contains(r, "checksum") || strings.Contains(r, "csum") {
				n += v
			}
		}
		return n
	}
	rs0, d0 := count(), total(e.drops(t))
	for i := 0; i < copies; i++ {
		src := netip.AddrPortFrom(c1.Addr4(), uint16(41000+i))
		s := tcpSYN(src, web4, 7)
		s[16] ^= 0x33
		if err := sendFrame(fd, ifindex, ether(pub.HardwareAddr(), cl.HardwareAddr(), 0x0800, ipv4(src.Addr(), web4.Addr(), 6, s, 0, 0))); err != nil {
			t.Fatal(err)
		}
		u := udpSeg(src, name4, []byte("bad checksum"))
		u[6] ^= 0x33
		if err := sendFrame(fd, ifindex, ether(pub.HardwareAddr(), cl.HardwareAddr(), 0x0800, ipv4(src.Addr(), name4.Addr(), 17, u, 0, 0))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rejected, dropped = count()-rs0, total(e.drops(t))-d0
		if rejected+dropped >= 2*copies || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rejected+dropped != 2*copies {
		t.Errorf("%d segments with bad TCP/UDP checksums: real servers rejected %d, ulvsd counted %d drops; want the two to add up to %d (none repaired, none lost uncounted)",
			2*copies, rejected, dropped, 2*copies)
	}
	return rejected, dropped
}
