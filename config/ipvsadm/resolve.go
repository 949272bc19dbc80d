package ipvsadm

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ulvs/ulvs/config"
)

// Resolver turns names into addresses and ports and back, as ipvsadm does
// with gethostbyname, getservbyname, gethostbyaddr and getservbyport.
type Resolver interface {
	// LookupHost returns the first IPv4 address of name (ipvsadm resolves
	// host names to IPv4 only).
	LookupHost(name string) (netip.Addr, error)
	// LookupPort returns the port of a service name for the protocol.
	LookupPort(proto config.Protocol, name string) (uint16, error)
	// HostName returns the name of addr, or "" if it has none.
	HostName(addr netip.Addr) string
	// PortName returns the service name of port, or "" if it has none.
	PortName(proto config.Protocol, port uint16) string
}

// ErrNotFound is returned by resolvers for names they cannot resolve.
var ErrNotFound = errors.New("name not found")

// NoResolver resolves nothing: only numeric addresses and ports are
// accepted, and listings without -n print numbers as -n would.
type NoResolver struct{}

// LookupHost implements Resolver.
func (NoResolver) LookupHost(string) (netip.Addr, error) { return netip.Addr{}, ErrNotFound }

// LookupPort implements Resolver.
func (NoResolver) LookupPort(config.Protocol, string) (uint16, error) { return 0, ErrNotFound }

// HostName implements Resolver.
func (NoResolver) HostName(netip.Addr) string { return "" }

// PortName implements Resolver.
func (NoResolver) PortName(config.Protocol, uint16) string { return "" }

// NetResolver resolves with the system's resolver (net.DefaultResolver,
// so /etc/hosts and DNS) with a timeout per lookup, and service names from
// a services file (/etc/services by default). Reverse lookups are cached
// for the resolver's lifetime, so a listing asks once per address.
type NetResolver struct {
	Timeout      time.Duration // per lookup; 0 = 2s
	ServicesFile string        // "" = /etc/services

	mu       sync.Mutex
	names    map[netip.Addr]string
	services map[string]uint16 // "name/tcp" -> port
	ports    map[string]string // "80/tcp" -> name
}

func (r *NetResolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return 2 * time.Second
}

// LookupHost implements Resolver.
func (r *NetResolver) LookupHost(name string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout())
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", name)
	if err != nil || len(addrs) == 0 {
		return netip.Addr{}, ErrNotFound
	}
	return addrs[0].Unmap(), nil
}

// HostName implements Resolver.
func (r *NetResolver) HostName(addr netip.Addr) string {
	r.mu.Lock()
	if n, ok := r.names[addr]; ok {
		r.mu.Unlock()
		return n
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout())
	defer cancel()
	var n string
	if names, err := net.DefaultResolver.LookupAddr(ctx, addr.String()); err == nil && len(names) > 0 {
		n = strings.TrimSuffix(names[0], ".")
	}
	r.mu.Lock()
	if r.names == nil {
		r.names = map[netip.Addr]string{}
	}
	r.names[addr] = n
	r.mu.Unlock()
	return n
}

func (r *NetResolver) loadServices() {
	if r.services != nil {
		return
	}
	r.services, r.ports = map[string]uint16{}, map[string]string{}
	path := r.ServicesFile
	if path == "" {
		path = "/etc/services"
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		portStr, proto, ok := strings.Cut(fields[1], "/")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			continue
		}
		key := portStr + "/" + proto
		if _, dup := r.ports[key]; !dup {
			r.ports[key] = fields[0] // getservbyport returns the first entry
		}
		for _, n := range append([]string{fields[0]}, fields[2:]...) {
			if _, dup := r.services[n+"/"+proto]; !dup {
				r.services[n+"/"+proto] = uint16(port)
			}
		}
	}
}

// LookupPort implements Resolver.
func (r *NetResolver) LookupPort(proto config.Protocol, name string) (uint16, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadServices()
	if p, ok := r.services[name+"/"+proto.String()]; ok {
		return p, nil
	}
	return 0, ErrNotFound
}

// PortName implements Resolver.
func (r *NetResolver) PortName(proto config.Protocol, port uint16) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadServices()
	return r.ports[strconv.Itoa(int(port))+"/"+proto.String()]
}

const (
	serviceAddr = 1
	servicePort = 2
)

type parsedService struct {
	flags int
	addr  netip.Addr
	port  uint16
}

// parseService is ipvsadm's parse_service: "[v6]:port", a bare IPv6
// address, "v4[:port]" in any inet_aton form, or a host name (IPv4 only),
// with a numeric port or a service name.
func parseService(res Resolver, buf string, proto config.Protocol) parsedService {
	var r parsedService
	if isDigits(buf) {
		return r
	}
	var portp string
	hasPort := false
	if strings.HasPrefix(buf, "[") {
		buf = buf[1:]
		i := strings.IndexByte(buf, ']')
		if i < 0 {
			return r
		}
		after := buf[i+1:]
		buf = buf[:i]
		if !strings.HasPrefix(after, ":") {
			return r
		}
		portp, hasPort = after[1:], true
	}
	if a, err := netip.ParseAddr(buf); err == nil && a.Is6() && a.Zone() == "" {
		r.addr = a
	} else {
		if !hasPort {
			if i := strings.LastIndexByte(buf, ':'); i >= 0 {
				portp, hasPort = buf[i+1:], true
				buf = buf[:i]
			}
		}
		if a, ok := inetAton(buf); ok {
			r.addr = a
		} else if a, err := res.LookupHost(buf); err == nil && a.Is4() {
			r.addr = a
		} else {
			return r
		}
	}
	r.flags |= serviceAddr
	if hasPort {
		r.flags |= servicePort
		if n, ok := stringToNumber(portp, 0, 65535); ok {
			r.port = uint16(n)
		} else if p, err := res.LookupPort(proto, portp); err == nil {
			r.port = p
		} else {
			return parsedService{}
		}
	}
	return r
}

// isDigits is ipvsadm's str_is_digit (true for "").
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// inetAton parses an IPv4 address as glibc's inet_aton: one to four parts,
// each decimal, octal (leading 0) or hex (0x); the last part fills the
// remaining bytes ("10.1" is 10.0.0.1).
func inetAton(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	// glibc stops at the first white space and ignores the rest.
	if i := strings.IndexAny(s, " \t\n\v\f\r"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, ok := cNumber(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var v uint32
	n := len(vals)
	for i := 0; i < n-1; i++ {
		if vals[i] > 0xff {
			return netip.Addr{}, false
		}
		v |= uint32(vals[i]) << (24 - 8*i)
	}
	maxLast := uint64(0xffffffff) >> (8 * (n - 1))
	if vals[n-1] > maxLast {
		return netip.Addr{}, false
	}
	v |= uint32(vals[n-1])
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func cNumber(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base := 10
	switch {
	case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true // glibc accepts "0x" as 0
		}
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	v, err := strconv.ParseUint(p, base, 64)
	if err != nil || v > 0xffffffff {
		return 0, false
	}
	return v, true
}

// inetPton4 is inet_pton(AF_INET): exactly four decimal parts.
func inetPton4(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}
