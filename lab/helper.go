package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/ulvs/ulvs/realserver"
)

// helperEnv, set to 1, makes any binary that imports lab run RunHelper with
// its arguments instead of main (or the tests). The lab re-executes itself
// this way, so that the built-in servers need no other binary: a test binary
// of any package that imports lab can build a full lab.
const helperEnv = "ULVS_LAB_HELPER"

func init() {
	if os.Getenv(helperEnv) == "1" {
		os.Unsetenv(helperEnv)
		os.Exit(RunHelper(os.Args[1:]))
	}
}

// RunHelper runs one of the lab's helper roles in the current process and
// returns the exit code:
//
//	serve --name NAME [--http PORT] [--udp-echo PORT] [--udp-name PORT]
//	realserver-tun --vip ADDR [--vip ADDR] [--state-dir DIR]
//
// serve is the real servers' built-in server: HTTP answering "NAME\n" (with
// the header X-Real-Server: NAME), a UDP echo, and a UDP port answering
// "NAME\n". UDP replies leave from the address the request was sent to (the
// VIP in DR and TUN modes). realserver-tun is `ulvs-realserver tun`.
// Both write "ready\n" to file descriptor 3, when it is open, once
// listening, and run until SIGTERM or SIGINT.
func RunHelper(args []string) int {
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "lab helper: want a role: serve or realserver-tun")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch args[0] {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		name := fs.String("name", "", "name to answer with")
		httpPort := fs.Int("http", 80, "HTTP port (0: none)")
		echoPort := fs.Int("udp-echo", 7, "UDP echo port (0: none)")
		namePort := fs.Int("udp-name", 7001, "UDP port answering the name (0: none)")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if *name == "" {
			fmt.Fprintln(os.Stderr, "serve: --name is required")
			return 2
		}
		srv, err := Serve(*name, *httpPort, *echoPort, *namePort)
		if err != nil {
			log.Error().Err(err).Msg("serve")
			return 1
		}
		notifyReady()
		log.Info().Str("name", *name).Int("http", *httpPort).Int("udp_echo", *echoPort).Int("udp_name", *namePort).Msg("serving")
		<-ctx.Done()
		srv.Close()
		return 0
	case "realserver-tun":
		fs := flag.NewFlagSet("realserver-tun", flag.ContinueOnError)
		var vips vipList
		fs.Var(&vips, "vip", "VIP (repeatable)")
		stateDir := fs.String("state-dir", "", "state directory")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		t, err := realserver.NewTunnel(realserver.TUNConfig{VIPs: vips, StateDir: *stateDir}, log)
		if err != nil {
			log.Error().Err(err).Msg("realserver tun")
			return 1
		}
		notifyReady()
		if err := t.Run(ctx); err != nil {
			log.Error().Err(err).Msg("realserver tun")
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "lab helper: unknown role %q\n", args[0])
	return 2
}

type vipList []netip.Addr

func (v *vipList) String() string { return fmt.Sprint(*v) }
func (v *vipList) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return err
	}
	*v = append(*v, a)
	return nil
}

func notifyReady() {
	f := os.NewFile(3, "ready")
	if f == nil {
		return
	}
	if _, err := f.Stat(); err != nil {
		return
	}
	f.WriteString("ready\n")
	f.Close()
}

// Server is the built-in server of a real server.
type Server struct {
	Name    string
	closers []io.Closer
}

// Close stops every listener.
func (s *Server) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Serve starts the built-in server in the calling thread's network
// namespace: HTTP on httpPort answering name, a UDP echo on echoPort and a
// UDP port answering name on namePort, each on IPv4 and (when the host has
// it) IPv6. A port of 0 is not served.
func Serve(name string, httpPort, echoPort, namePort int) (*Server, error) {
	s := &Server{Name: name}
	if httpPort > 0 {
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(httpPort))
		if err != nil {
			return nil, fmt.Errorf("serve %s: http: %w", name, err)
		}
		hs := &http.Server{Handler: nameHandler(name), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		s.closers = append(s.closers, hs)
	}
	body := []byte(name + "\n")
	for _, u := range []struct {
		port  int
		reply func([]byte) []byte
	}{{echoPort, func(b []byte) []byte { return b }}, {namePort, func([]byte) []byte { return body }}} {
		if u.port <= 0 {
			continue
		}
		c4, err := net.ListenPacket("udp4", ":"+strconv.Itoa(u.port))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("serve %s: udp4 port %d: %w", name, u.port, err)
		}
		s.closers = append(s.closers, c4)
		p4 := ipv4.NewPacketConn(c4)
		if err := p4.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
			s.Close()
			return nil, fmt.Errorf("serve %s: udp4 pktinfo: %w", name, err)
		}
		go serveUDP4(p4, u.reply)
		if c6, err := net.ListenPacket("udp6", ":"+strconv.Itoa(u.port)); err == nil {
			s.closers = append(s.closers, c6)
			p6 := ipv6.NewPacketConn(c6)
			if err := p6.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
				s.Close()
				return nil, fmt.Errorf("serve %s: udp6 pktinfo: %w", name, err)
			}
			go serveUDP6(p6, u.reply)
		}
	}
	return s, nil
}

func nameHandler(name string) http.Handler {
	body := []byte(name + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Real-Server", name)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
}

func serveUDP4(c *ipv4.PacketConn, reply func([]byte) []byte) {
	buf := make([]byte, 65536)
	for {
		n, cm, src, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		var out *ipv4.ControlMessage
		if cm != nil {
			out = &ipv4.ControlMessage{Src: cm.Dst}
		}
		c.WriteTo(reply(buf[:n]), out, src)
	}
}

func serveUDP6(c *ipv6.PacketConn, reply func([]byte) []byte) {
	buf := make([]byte, 65536)
	for {
		n, cm, src, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		var out *ipv6.ControlMessage
		if cm != nil {
			out = &ipv6.ControlMessage{Src: cm.Dst}
		}
		c.WriteTo(reply(buf[:n]), out, src)
	}
}
