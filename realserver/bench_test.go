package realserver_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/ulvs/ulvs/lab"
	"github.com/ulvs/ulvs/lab/labtest"
	"github.com/ulvs/ulvs/realserver"
)

// BenchmarkTunnelInject measures the userspace decapsulator in a lab: the
// director sends b.N IP-in-IP packets (inner UDP, 64-byte payload) to rs1,
// where an in-process Tunnel injects them into its TUN device and a UDP
// socket on the VIP drains them. It reports injected packets per second;
// packets the sender's or receiver's queues dropped are reported as lost.
func BenchmarkTunnelInject(b *testing.B) {
	labtest.RequireRoot(b)
	l := labtest.New(b, lab.Spec{Mode: lab.TUN, Servers: 1, NoRealServerSetup: true, NoServers: true})
	p := &l.Plan
	rs, _ := p.Host("rs1")
	client, _ := p.Host("client1")
	var tn *realserver.Tunnel
	var sink *net.UDPConn
	if err := l.Do("rs1", func() error {
		var err error
		tn, err = realserver.NewTunnel(realserver.TUNConfig{VIPs: []netip.Addr{p.VIP4}, StateDir: b.TempDir()}, zerolog.Nop())
		if err != nil {
			return err
		}
		sink, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 9})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tn.Run(ctx) }()
	defer func() { cancel(); <-done }()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := sink.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	var fd int
	if err := l.Do("dir1", func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, realserver.ProtoIPIP)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	inner := make([]byte, 28+64)
	inner[0], inner[8], inner[9] = 0x45, 64, 17
	inner[3] = byte(len(inner))
	s, d := client.Addr4().As4(), p.VIP4.As4()
	copy(inner[12:], s[:])
	copy(inner[16:], d[:])
	inner[20], inner[21], inner[23], inner[25] = 0x9c, 0x40, 9, 8+64
	ipsum(inner[:20])
	to := &unix.SockaddrInet4{Addr: rs.Addr4().As4()}

	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for unix.Sendto(fd, inner, 0, to) != nil {
			time.Sleep(10 * time.Microsecond) // sender queue full
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for tn.Stats().Get(realserver.Injected) < uint64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	got := tn.Stats().Get(realserver.Injected)
	b.ReportMetric(float64(got)/el.Seconds(), "injected/s")
	b.ReportMetric(float64(uint64(b.N)-got), "lost")
}
