package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

var dnsTypes = map[string]dnsmessage.Type{
	"A": dnsmessage.TypeA, "AAAA": dnsmessage.TypeAAAA, "CNAME": dnsmessage.TypeCNAME,
	"MX": dnsmessage.TypeMX, "NS": dnsmessage.TypeNS, "PTR": dnsmessage.TypePTR,
	"SOA": dnsmessage.TypeSOA, "SRV": dnsmessage.TypeSRV, "TXT": dnsmessage.TypeTXT,
}

func dnsName(s string) (dnsmessage.Name, error) {
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return dnsmessage.NewName(s)
}

// dnsChecker is the dns check: a query over UDP gets a NOERROR answer, and,
// when expect_answer is set, that answer is among the answer records.
type dnsChecker struct {
	addr    netip.AddrPort
	name    dnsmessage.Name
	qtype   dnsmessage.Type
	expect  string // normalized expected answer, "" = any
	timeout time.Duration
}

func newDNSChecker(s *Spec) (checker, error) {
	c := &s.Config
	name, err := dnsName(c.QueryName)
	if err != nil {
		return nil, cfgErr("query_name", "%v", err)
	}
	qt, ok := dnsTypes[c.QueryType]
	if !ok {
		return nil, cfgErr("query_type", "unsupported query type %q", c.QueryType)
	}
	return &dnsChecker{addr: s.target(), name: name, qtype: qt, expect: normAnswer(c.ExpectAnswer), timeout: c.Timeout}, nil
}

// normAnswer makes answers comparable: lower case, no trailing dot, IP
// addresses in canonical form.
func normAnswer(s string) string {
	s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	return s
}

func (d *dnsChecker) query(id uint16) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: d.name, Type: d.qtype, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	return b.Finish()
}

func (d *dnsChecker) check(ctx context.Context) Result {
	var dl net.Dialer
	conn, err := dl.DialContext(ctx, "udp", d.addr.String())
	if err != nil {
		return failErr(err, d.timeout, true)
	}
	defer conn.Close()
	if t, ok := ctx.Deadline(); ok {
		conn.SetDeadline(t)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	id := uint16(rand.Uint32())
	q, err := d.query(id)
	if err != nil {
		return failResult("building query: " + err.Error())
	}
	if _, err := conn.Write(q); err != nil {
		return failErr(ctxErr(ctx, err), d.timeout, true)
	}
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err == nil && pastDeadline(ctx) {
			err = context.DeadlineExceeded
		}
		if err != nil {
			err = ctxErr(ctx, err)
			if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				return failResult(fmt.Sprintf("timeout after %s: no DNS reply", d.timeout))
			}
			return failErr(err, d.timeout, true)
		}
		res, match := d.judge(id, buf[:n])
		if match {
			return res
		}
		// A reply to another query (wrong ID): keep waiting until the
		// deadline, as a resolver does.
	}
}

// judge parses a reply. match is false when the reply is not for our query.
func (d *dnsChecker) judge(id uint16, msg []byte) (res Result, match bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return failResult("malformed DNS reply: " + err.Error()), true
	}
	if h.ID != id || !h.Response {
		return Result{}, false
	}
	q, err := p.Question()
	if err != nil || !strings.EqualFold(q.Name.String(), d.name.String()) || q.Type != d.qtype {
		return Result{}, false
	}
	if err := p.SkipAllQuestions(); err != nil {
		return failResult("malformed DNS reply: " + err.Error()), true
	}
	if h.RCode != dnsmessage.RCodeSuccess {
		return failResult("rcode " + rcodeName(h.RCode)), true
	}
	answers, err := p.AllAnswers()
	if err != nil {
		return failResult("malformed DNS reply: " + err.Error()), true
	}
	if d.expect == "" {
		return okResult(fmt.Sprintf("NOERROR, %d answers", len(answers))), true
	}
	var got []string
	for _, rr := range answers {
		s := answerString(rr)
		if s == d.expect {
			return okResult("NOERROR, answer " + s), true
		}
		if s != "" {
			got = append(got, s)
		}
	}
	if h.Truncated {
		return failResult("reply truncated and expected answer " + d.expect + " not in it"), true
	}
	return failResult(fmt.Sprintf("answer %s not found (got [%s])", d.expect, strings.Join(got, " "))), true
}

func rcodeName(r dnsmessage.RCode) string {
	// dnsmessage's String gives "RCodeNameError"; show the usual names.
	switch r {
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN"
	case dnsmessage.RCodeNotImplemented:
		return "NOTIMP"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	}
	return fmt.Sprintf("%d", r)
}

// answerString renders an answer's data the way expect_answer is written.
func answerString(rr dnsmessage.Resource) string {
	switch b := rr.Body.(type) {
	case *dnsmessage.AResource:
		return netip.AddrFrom4(b.A).String()
	case *dnsmessage.AAAAResource:
		return netip.AddrFrom16(b.AAAA).String()
	case *dnsmessage.CNAMEResource:
		return normAnswer(b.CNAME.String())
	case *dnsmessage.NSResource:
		return normAnswer(b.NS.String())
	case *dnsmessage.PTRResource:
		return normAnswer(b.PTR.String())
	case *dnsmessage.MXResource:
		return normAnswer(b.MX.String())
	case *dnsmessage.SRVResource:
		return normAnswer(b.Target.String())
	case *dnsmessage.SOAResource:
		return normAnswer(b.NS.String())
	case *dnsmessage.TXTResource:
		return strings.ToLower(strings.Join(b.TXT, ""))
	}
	return ""
}
