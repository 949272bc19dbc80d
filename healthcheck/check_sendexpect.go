package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"time"
)

// maxResponse bounds what a send_expect or udp check reads.
const maxResponse = 64 << 10

// sendExpect is the send_expect check (TCP or UDP) and the udp check: it
// sends a payload and waits, within the timeout, for a reply that matches a
// regular expression (udp: any reply when expect is empty).
type sendExpect struct {
	addr    netip.AddrPort
	udp     bool
	send    []byte
	expect  *regexp.Regexp // nil: any reply (udp)
	timeout time.Duration
}

func newSendExpect(s *Spec) (checker, error) {
	c := &s.Config
	send, err := Unescape(c.Send)
	if err != nil {
		return nil, cfgErr("send", "%v", err)
	}
	se := &sendExpect{addr: s.target(), udp: c.Type == TypeUDP || c.Proto == "udp", send: send, timeout: c.Timeout}
	if c.Expect != "" {
		if se.expect, err = regexp.Compile(c.Expect); err != nil {
			return nil, cfgErr("expect", "%v", err)
		}
	}
	return se, nil
}

func (s *sendExpect) check(ctx context.Context) Result {
	network := "tcp"
	if s.udp {
		network = "udp"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, s.addr.String())
	if err != nil {
		return failErr(err, s.timeout, s.udp)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Unblock I/O as soon as ctx is canceled (manager closing), not only at
	// the deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if len(s.send) > 0 || s.udp {
		if _, err := conn.Write(s.send); err != nil {
			return failErr(ctxErr(ctx, err), s.timeout, s.udp)
		}
	}
	if s.udp {
		return s.readDatagram(ctx, conn)
	}
	return s.readStream(ctx, conn)
}

func (s *sendExpect) readDatagram(ctx context.Context, conn net.Conn) Result {
	buf := make([]byte, maxResponse)
	n, err := conn.Read(buf)
	if err == nil && pastDeadline(ctx) {
		err = context.DeadlineExceeded
	}
	if err != nil {
		if errors.Is(ctxErr(ctx, err), context.DeadlineExceeded) || isTimeout(err) {
			return failResult(fmt.Sprintf("timeout after %s: no reply", s.timeout))
		}
		return failErr(ctxErr(ctx, err), s.timeout, true)
	}
	if s.expect != nil && !s.expect.Match(buf[:n]) {
		return failResult(fmt.Sprintf("reply does not match expect (%d bytes: %s)", n, quoteSnippet(buf[:n])))
	}
	return okResult(fmt.Sprintf("reply of %d bytes", n))
}

func (s *sendExpect) readStream(ctx context.Context, conn net.Conn) Result {
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxResponse {
				return failResult(fmt.Sprintf("response does not match expect within %d bytes", maxResponse))
			}
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		n, err := conn.Read(buf[len(buf):cap(buf)])
		if pastDeadline(ctx) {
			// An answer that comes after the deadline is a timeout, even
			// if this goroutine only got to read it late.
			n, err = 0, context.DeadlineExceeded
		}
		buf = buf[:len(buf)+n]
		if s.expect.Match(buf) {
			return okResult(fmt.Sprintf("response matches after %d bytes", len(buf)))
		}
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				return failResult(fmt.Sprintf("connection closed before expected response (got %d bytes: %s)", len(buf), quoteSnippet(buf)))
			case errors.Is(ctxErr(ctx, err), context.DeadlineExceeded) || isTimeout(err):
				return failResult(fmt.Sprintf("timeout after %s waiting for expected response (got %d bytes)", s.timeout, len(buf)))
			}
			return failErr(ctxErr(ctx, err), s.timeout, false)
		}
	}
}

// pastDeadline reports whether ctx's deadline has passed, by the clock
// rather than by ctx.Err, which its timer sets a little later.
func pastDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// ctxErr prefers ctx's error (deadline, cancel) to the I/O error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ce := ctx.Err(); ce != nil {
		return ce
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// quoteSnippet shows at most 32 bytes of b, quoted.
func quoteSnippet(b []byte) string {
	if len(b) > 32 {
		return fmt.Sprintf("%q...", b[:32])
	}
	return fmt.Sprintf("%q", b)
}
