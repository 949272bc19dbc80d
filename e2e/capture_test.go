package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ulvs/ulvs/lab"
)

// controlPort is a closed port on the director's own address;
// controlBadSport the source port of a datagram sent with a wrong checksum.
const (
	controlPort     = 9
	controlBadSport = 4242
)

// capture is a tcpdump running in a lab host, writing a pcap file.
type capture struct {
	host, iface, file string
	p                 *lab.Process
}

// startCapture starts tcpdump in host on iface (or "any") and waits until
// it listens. snap limits the bytes kept per packet (0: whole packets). The
// capture is bounded by count; stop ends it.
func (e *env) startCapture(t *testing.T, host, iface string, snap int) *capture {
	t.Helper()
	c := &capture{host: host, iface: iface, file: filepath.Join(e.dir, fmt.Sprintf("%s-%s-%s.pcap", e.mode, host, iface))}
	argv := []string{"tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-Z", "root", "-c", "200000", "-w", c.file}
	if snap > 0 {
		argv = append(argv, "-s", fmt.Sprint(snap))
	}
	p, err := e.l.Start(host, argv...)
	if err != nil {
		t.Fatal(err)
	}
	c.p = p
	t.Cleanup(func() { p.Stop(3 * time.Second) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := p.Output()
		if bytes.Contains(out, []byte("listening on")) {
			return c
		}
		select {
		case <-p.Done():
			t.Fatalf("tcpdump in %s exited: %v\n%s", host, p.Wait(), out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump in %s not listening after 10 s:\n%s", host, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the capture (tcpdump writes every packet out with -U).
func (c *capture) stop() {
	// Let the last frames of the traffic reach the capture first.
	time.Sleep(200 * time.Millisecond)
	c.p.Stop(3 * time.Second)
}

// frame is one captured frame, as tshark dissected it. Fields with several
// occurrences (IP-in-IP) hold them comma-separated.
type frame struct {
	num, src, ipSrc, ip6Src, rst, icmp, icmp6, ipCk, tcpCk, udpCk, summary, tcpSport, udpDport, udpSport string
}

// frames dissects a capture with tshark, checksum verification on.
func frames(t *testing.T, file string) []frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fields := []string{"frame.number", "eth.src", "sll.src.eth", "ip.src", "ipv6.src", "tcp.flags.reset",
		"icmp.type", "icmpv6.type", "ip.checksum.status", "tcp.checksum.status", "udp.checksum.status", "_ws.col.Info", "tcp.srcport", "udp.dstport", "udp.srcport"}
	args := []string{"-r", file, "-n",
		"-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.CommandContext(ctx, "tshark", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v\n%s", file, err, stderr.String())
	}
	var fs []frame
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		for len(f) < len(fields) {
			f = append(f, "")
		}
		src := f[1]
		if src == "" {
			src = f[2]
		}
		fs = append(fs, frame{num: f[0], src: src, ipSrc: f[3], ip6Src: f[4], rst: f[5], icmp: f[6], icmp6: f[7],
			ipCk: f[8], tcpCk: f[9], udpCk: f[10], summary: f[11], tcpSport: f[12], udpDport: f[13], udpSport: f[14]})
	}
	return fs
}

// firstOf returns the first of comma-separated occurrences.
func firstOf(s string) string {
	a, _, _ := strings.Cut(s, ",")
	return a
}

func hasValue(list, v string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == v {
			return true
		}
	}
	return false
}

// capture: with tcpdump on the director (every interface) and on the
// receiving sides, normal traffic through the VIP (HTTP on both VIPs, a
// 1 MiB download, UDP echo) shows no RST and no ICMP from the director's
// addresses or the VIPs (ulvs sends neither in normal traffic, so any
// would be the kernel's), and every frame the director forwarded carries
// valid IP, TCP and UDP checksums.
func (e *env) testCapture(t *testing.T, web4, web6, echo4 netip.AddrPort) {
	needTools(t, "tcpdump", "tshark")
	if d, err := time.ParseDuration(os.Getenv("E2E_CAPTURE_SLEEP")); err == nil {
		time.Sleep(d)
		return
	}
	dir, _ := e.l.Plan.Host("dir1")
	// Frames that the director forwards, by receiving host: the MAC of the
	// director's interface on that host's net.
	type side struct {
		host string
		mac  string
	}
	var sides []side
	rsNet := "public"
	if e.mode == lab.NAT {
		rsNet = "private"
		pub, _ := dir.Iface("public")
		sides = append(sides, side{"client1", pub.MAC}) // NAT replies come back through ulvs
	}
	priv, _ := dir.Iface(rsNet)
	for _, rs := range e.l.Plan.RealServers() {
		sides = append(sides, side{rs.Name, priv.MAC})
	}

	dcap := e.startCapture(t, "dir1", "any", 256)
	caps := map[string]*capture{}
	for _, s := range sides {
		caps[s.host] = e.startCapture(t, s.host, "eth0", 0)
	}

	split(t, e.curlMany(t, "client1", url(web4, "/"), 30))
	split(t, e.curlMany(t, "client1", url(web6, "/"), 9))
	e.fetch(t, "client1", url(web4, "/mid.bin"), midSize, e.midSum)
	e.udpAskAll(t, "client2", echo4, 6, bytes.Repeat([]byte("u"), 700))
	// Controls, which prove the capture and the analysis see kernel
	// answers: a TCP SYN and a UDP datagram to a closed port of the
	// director's own address make its kernel send a RST and an ICMP port
	// unreachable.
	dirAddr := dir.Addr4()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	if c, err := e.l.Dialer("client1")(ctx, "tcp", netip.AddrPortFrom(dirAddr, controlPort).String()); err == nil {
		c.Close()
		t.Errorf("control: director %s:%d accepted a connection; want a RST", dirAddr, controlPort)
	}
	if c, err := e.l.Dialer("client1")(ctx, "udp", netip.AddrPortFrom(dirAddr, controlPort).String()); err == nil {
		c.Write([]byte("control"))
		c.Close()
	}
	cancel()
	// A UDP datagram with a wrong checksum, which ulvs forwards still wrong
	// (see testBadL4Checksum): the real server's capture must flag it, which
	// proves the checksum check finds bad ones.
	fd, ifindex := e.rawSocket(t, "client1", "eth0")
	c1, _ := e.l.Plan.Host("client1")
	pub, _ := dir.Iface("public")
	cl, _ := c1.Iface("public")
	bsrc := netip.AddrPortFrom(c1.Addr4(), controlBadSport)
	u := udpSeg(bsrc, echo4, []byte("control: bad checksum"))
	u[6] ^= 0x33
	if err := sendFrame(fd, ifindex, ether(pub.HardwareAddr(), cl.HardwareAddr(), 0x0800, ipv4(bsrc.Addr(), echo4.Addr(), 17, u, 0, 0))); err != nil {
		t.Fatal(err)
	}

	dcap.stop()
	for _, c := range caps {
		c.stop()
	}

	// The director: no RST and no ICMP from its own addresses or VIPs,
	// besides the controls.
	own := map[string]bool{e.l.Plan.VIP4.String(): true, e.l.Plan.VIP6.String(): true}
	for _, ifc := range dir.Ifaces {
		own[ifc.Addr4.Addr().String()] = true
		own[ifc.Addr6.Addr().String()] = true
	}
	fs := frames(t, dcap.file)
	ctlRST, ctlICMP := 0, 0
	var otherRST []string
	for _, f := range fs {
		rst := hasValue(f.rst, "1") || hasValue(f.rst, "True")
		src := firstOf(f.ipSrc)
		if f.ip6Src != "" && src == "" {
			src = firstOf(f.ip6Src)
		}
		icmp := f.icmp != ""
		if f.icmp6 != "" {
			switch firstOf(f.icmp6) {
			case "133", "134", "135", "136", "137": // NDP: ulvs answers for the VIPs
			default:
				icmp = true
			}
		}
		switch {
		case rst && src == dirAddr.String() && f.tcpSport == strconv.Itoa(controlPort):
			ctlRST++
		case icmp && src == dirAddr.String() && hasValue(f.udpDport, strconv.Itoa(controlPort)):
			ctlICMP++
		case rst && own[src]:
			t.Errorf("director capture frame %s: a TCP RST from the director's %s (%s)", f.num, src, f.summary)
		case icmp && own[src]:
			t.Errorf("director capture frame %s: ICMP from the director's %s during normal traffic (%s)", f.num, src, f.summary)
		case rst:
			otherRST = append(otherRST, src+": "+f.summary)
		}
	}
	if ctlRST == 0 || ctlICMP == 0 {
		t.Errorf("controls: the capture shows %d RST and %d ICMP port unreachable from the director's %s for port %d; want both (the check cannot see kernel answers)",
			ctlRST, ctlICMP, dirAddr, controlPort)
	}
	if len(fs) < 100 {
		out, _ := dcap.p.Output()
		t.Fatalf("director capture holds %d frames; the traffic was not captured; tcpdump said:\n%s", len(fs), out)
	}

	// The receiving sides: no bad checksum in what the director sent, but
	// for the control.
	ctlBad := 0
	for _, s := range sides {
		good, checked := 0, 0
		all := frames(t, caps[s.host].file)
		for _, f := range all {
			if !strings.EqualFold(f.src, s.mac) {
				continue
			}
			if hasValue(f.udpSport, strconv.Itoa(controlBadSport)) {
				if hasValue(f.udpCk, "0") {
					ctlBad++
				}
				continue
			}
			for i, ck := range []string{f.ipCk, f.tcpCk, f.udpCk} {
				if ck == "" {
					continue
				}
				checked++
				if i == 1 && hasValue(ck, "0") && strings.Contains(f.summary, "[TCP CHECKSUM 0xFFFF]") {
					// 0xffff for a checksum that computes to 0x0000 (tshark
					// notes exactly that case so; a wrong checksum that
					// happens to be 0xffff reads INCORRECT): one's
					// complement -0, which receivers accept (RFC 1624).
					// Linux senders that checksum in software write it
					// (skb_checksum_help's CSUM_MANGLED_0), and a director
					// that leaves TCP's checksum alone (DR, TUN) or updates
					// it incrementally passes it on.
					t.Logf("%s capture frame %s: TCP checksum 0xffff for 0x0000 (accepted): %s", s.host, f.num, f.summary)
					good++
					continue
				}
				if hasValue(ck, "0") {
					t.Errorf("%s capture frame %s from the director: bad checksum (ip %s tcp %s udp %s): %s", s.host, f.num, f.ipCk, f.tcpCk, f.udpCk, f.summary)
				}
				if hasValue(ck, "1") {
					good++
				}
			}
		}
		if good == 0 {
			t.Errorf("%s capture: no frame from the director (%s) with a verified checksum (%d checked, %d frames captured): nothing was verified", s.host, s.mac, checked, len(all))
		}
		t.Logf("%s: %d checksums verified good in frames the director forwarded", s.host, good)
	}
	if e.mode == lab.NAT {
		// NAT verifies L4 checksums and drops the control (bad_l4_checksum),
		// as IPVS does: it never reaches a real server. The director's own
		// capture sees it arrive, flagged, which proves the check works.
		for _, f := range fs {
			if hasValue(f.udpSport, strconv.Itoa(controlBadSport)) && hasValue(f.udpCk, "0") {
				ctlBad++
			}
		}
	}
	if ctlBad != 1 {
		t.Errorf("control: %d frames with the bad UDP checksum sent on purpose were flagged (on the real servers, or for NAT on the director), want 1", ctlBad)
	}
	t.Logf("director: %d frames, none a RST or ICMP of its own; controls seen: %d RST, %d ICMP, %d bad checksum", len(fs), ctlRST, ctlICMP, ctlBad)
	if len(otherRST) > 0 {
		// Not the director's: reported, not failed.
		t.Logf("RSTs from other hosts seen on the director: %q", otherRST)
	}
}
