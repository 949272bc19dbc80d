package healthcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
)

// TargetID names one checked real server of one virtual service. It is the
// key of Update's reconciliation and of every Sink call.
type TargetID struct {
	Service string         `json:"service"` // the virtual service, as the sink names it (e.g. "tcp/192.0.2.10:80" or a config name)
	Server  netip.AddrPort `json:"server"`  // the real server
}

func (id TargetID) String() string { return id.Service + " " + id.Server.String() }

// Spec is one check to run: which real server, with which configuration.
type Spec struct {
	ID     TargetID
	Weight int    // the configured (administrative) weight; 0 = quiesced by the admin, never raised here
	Config Config // the health_check table that applies to this real server
}

// Result is the outcome of one probe.
type Result struct {
	OK bool
	// Reason says why a probe failed ("timeout after 1s", "status 503"), or
	// gives a short detail of a success ("status 200", "exit code 0").
	Reason string
	// Weight is the weight the probe asks for (exec exit codes 2..255,
	// feedback), or -1 when it has no opinion.
	Weight int
	// CertNotAfter is the expiry of the server's leaf certificate (https,
	// tls), zero otherwise.
	CertNotAfter time.Time

	deadband int // feedback: a weight change smaller than this is not applied
}

func okResult(reason string) Result   { return Result{OK: true, Reason: reason, Weight: -1} }
func failResult(reason string) Result { return Result{Reason: reason, Weight: -1} }
func failErr(err error, t time.Duration, udp bool) Result {
	return failResult(Describe(err, t, udp))
}

// checker runs one probe. Implementations must return when ctx is done and
// leave nothing running behind them.
type checker interface {
	check(ctx context.Context) Result
}

// closer is implemented by checkers that hold resources (an HTTP transport).
type closer interface{ close() }

// target is where a network check connects.
func (s *Spec) target() netip.AddrPort {
	addr, port := s.ID.Server.Addr(), s.ID.Server.Port()
	if s.Config.ConnectAddress != "" {
		a, p, _ := parseConnectAddress(s.Config.ConnectAddress)
		addr = a
		if p != 0 {
			port = p
		}
	}
	if s.Config.ConnectPort != 0 {
		port = uint16(s.Config.ConnectPort)
	}
	return netip.AddrPortFrom(addr, port)
}

// newChecker builds the checker of a normalized, validated spec.
func newChecker(s *Spec) (checker, error) {
	c := &s.Config
	switch c.Type {
	case TypeTCP:
		return &tcpChecker{addr: s.target(), timeout: c.Timeout}, nil
	case TypeSendExpect, TypeUDP:
		return newSendExpect(s)
	case TypeHTTP, TypeHTTPS:
		return newHTTPChecker(s)
	case TypeTLS:
		return newTLSChecker(s)
	case TypeDNS:
		return newDNSChecker(s)
	case TypeExec:
		return newExecChecker(s), nil
	case TypeFeedback:
		return newFeedbackChecker(s), nil
	case TypeNone:
		return noneChecker{}, nil
	}
	return nil, cfgErr("type", "unknown check type %q", c.Type)
}

// Probe runs one check of spec now and returns its result; it is what the
// Manager runs on every interval, offered for one-shot use (a CLI "check
// now", tests). The probe's deadline is the earlier of ctx's and the check's
// timeout.
func Probe(ctx context.Context, spec Spec) Result {
	spec.Config = spec.Config.Normalize()
	if err := spec.Config.Validate(); err != nil {
		return failResult(err.Error())
	}
	ch, err := newChecker(&spec)
	if err != nil {
		return failResult(err.Error())
	}
	if c, ok := ch.(closer); ok {
		defer c.close()
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Config.Timeout)
	defer cancel()
	return enforceDeadline(ctx, ch.check(ctx), spec.Config.Timeout)
}

// enforceDeadline turns a success that completed after the deadline into a
// timeout: a server that answers late is slow, even if the probe's goroutine
// was itself late to notice the deadline.
func enforceDeadline(ctx context.Context, r Result, timeout time.Duration) Result {
	if r.OK && pastDeadline(ctx) {
		return failResult(fmt.Sprintf("timeout after %s", timeout))
	}
	return r
}

type noneChecker struct{}

func (noneChecker) check(context.Context) Result { return okResult("no check") }

type tcpChecker struct {
	addr    netip.AddrPort
	timeout time.Duration
}

func (t *tcpChecker) check(ctx context.Context) Result {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.addr.String())
	if err != nil {
		return failErr(err, t.timeout, false)
	}
	conn.Close()
	return okResult("connected")
}

// Describe turns a probe error into the short reason that transitions carry:
// "timeout after 1s", "connection refused", "ICMP port unreachable" (udp),
// "connection reset by peer", "certificate verify failed: ...".
func Describe(err error, timeout time.Duration, udp bool) string {
	var (
		unknownCA  x509.UnknownAuthorityError
		invalid    x509.CertificateInvalidError
		hostname   x509.HostnameError
		verifyErr  *tls.CertificateVerificationError
		recordErr  tls.RecordHeaderError
		alert      tls.AlertError
		netErr     net.Error
		dnsErr     *net.DNSError
		timeoutStr = fmt.Sprintf("timeout after %s", timeout)
	)
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return timeoutStr
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		if udp {
			return "ICMP port unreachable"
		}
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return "operation not permitted" // a local firewall rule or a prohibit route
	case errors.As(err, &verifyErr):
		return "certificate verify failed: " + verifyDetail(verifyErr.Err)
	case errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &hostname):
		return "certificate verify failed: " + verifyDetail(err)
	case errors.As(err, &recordErr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "TLS handshake failed: server did not answer with TLS"
	case errors.As(err, &alert):
		return "TLS handshake failed: " + alert.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by peer"
	case errors.As(err, &dnsErr):
		return dnsErr.Error()
	case errors.As(err, &netErr) && netErr.Timeout():
		return timeoutStr
	}
	return err.Error()
}

func verifyDetail(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
	)
	switch {
	case errors.As(err, &unknownCA):
		return "unknown authority"
	case errors.As(err, &hostname):
		return hostname.Error()
	case errors.As(err, &invalid):
		return invalid.Error()
	}
	return err.Error()
}
