package healthcheck

import (
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func dnsReply(t testing.TB, id uint16, name string, rcode dnsmessage.RCode, a [4]byte) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true, RCode: rcode})
	b.StartQuestions()
	n := dnsmessage.MustNewName(name)
	b.Question(dnsmessage.Question{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	b.StartAnswers()
	b.AResource(dnsmessage.ResourceHeader{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a})
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func testDNSChecker(t testing.TB, expect string) *dnsChecker {
	s := Spec{ID: TargetID{"d", netip.MustParseAddrPort("127.0.0.1:53")},
		Config: Config{Type: TypeDNS, QueryName: "x.test", ExpectAnswer: expect}.Normalize()}
	c, err := newDNSChecker(&s)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*dnsChecker)
}

func TestDNSJudge(t *testing.T) {
	d := testDNSChecker(t, "192.0.2.7")
	for _, tc := range []struct {
		name   string
		msg    []byte
		match  bool
		ok     bool
		reason string
	}{
		{"answer", dnsReply(t, 7, "x.test.", dnsmessage.RCodeSuccess, [4]byte{192, 0, 2, 7}), true, true, "NOERROR, answer 192.0.2.7"},
		{"name case differs", dnsReply(t, 7, "X.Test.", dnsmessage.RCodeSuccess, [4]byte{192, 0, 2, 7}), true, true, "NOERROR, answer 192.0.2.7"},
		{"other answer", dnsReply(t, 7, "x.test.", dnsmessage.RCodeSuccess, [4]byte{192, 0, 2, 8}), true, false, "answer 192.0.2.7 not found (got [192.0.2.8])"},
		{"nxdomain", dnsReply(t, 7, "x.test.", dnsmessage.RCodeNameError, [4]byte{}), true, false, "rcode NXDOMAIN"},
		{"servfail", dnsReply(t, 7, "x.test.", dnsmessage.RCodeServerFailure, [4]byte{}), true, false, "rcode SERVFAIL"},
		{"wrong id: ignored", dnsReply(t, 8, "x.test.", dnsmessage.RCodeSuccess, [4]byte{192, 0, 2, 7}), false, false, ""},
		{"wrong question: ignored", dnsReply(t, 7, "y.test.", dnsmessage.RCodeSuccess, [4]byte{192, 0, 2, 7}), false, false, ""},
		{"truncated header", []byte{0, 7, 0x80}, true, false, "malformed DNS reply: .*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, match := d.judge(7, tc.msg)
			if match != tc.match || r.OK != tc.ok || (tc.match && tc.reason != "malformed DNS reply: .*" && r.Reason != tc.reason) {
				t.Fatalf("match=%v %+v, want match=%v ok=%v %q", match, r, tc.match, tc.ok, tc.reason)
			}
		})
	}
}

// FuzzDNSJudge: any reply bytes give a verdict without panicking; a reply
// that is not ours never counts; a well-formed reply with the expected
// answer always passes.
func FuzzDNSJudge(f *testing.F) {
	f.Add(dnsReply(f, 7, "x.test.", dnsmessage.RCodeSuccess, [4]byte{192, 0, 2, 7}), uint16(7))
	f.Add(dnsReply(f, 7, "x.test.", dnsmessage.RCodeNameError, [4]byte{}), uint16(7))
	f.Add([]byte{0, 7, 0x80, 0, 0, 1}, uint16(7))
	d := testDNSChecker(f, "192.0.2.7")
	f.Fuzz(func(t *testing.T, msg []byte, id uint16) {
		r, match := d.judge(id, msg)
		if !match && (r.OK || r.Reason != "") {
			t.Fatalf("unmatched reply produced a verdict: %+v", r)
		}
		if match && !r.OK && r.Reason == "" {
			t.Fatal("failure without a reason")
		}
		good := dnsReply(t, id, "x.test.", dnsmessage.RCodeSuccess, [4]byte{192, 0, 2, 7})
		if r, match := d.judge(id, good); !match || !r.OK {
			t.Fatalf("good reply rejected: %+v", r)
		}
	})
}
