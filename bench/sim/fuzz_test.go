package sim

import (
	"fmt"
	"testing"
)

// The --fail and --reweight parsers never panic, and what they accept
// prints back to a spec that parses to the same value.
func FuzzParseSpecs(f *testing.F) {
	for _, s := range []string{"4:100s:150s", "0:1s", "7:200s:4", "1:2s:1s", ":", "::", "1:1h:-3", "x:1s:2", "1:1e9h:2", "-1:-1s:-1s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if fl, err := parseFail(s); err == nil {
			spec := fmt.Sprintf("%d:%v", fl.Server, fl.At)
			if fl.Back != 0 {
				spec += fmt.Sprintf(":%v", fl.Back)
			}
			again, err := parseFail(spec)
			if err != nil || *again != *fl {
				t.Errorf("parseFail(%q) = %+v; reprinted %q gives %+v, %v", s, fl, spec, again, err)
			}
			if fl.Back != 0 && fl.Back <= fl.At {
				t.Errorf("parseFail(%q) accepted return %v <= failure %v", s, fl.Back, fl.At)
			}
		}
		if rw, err := parseReweight(s); err == nil {
			spec := fmt.Sprintf("%d:%v:%d", rw.Server, rw.At, rw.Weight)
			again, err := parseReweight(spec)
			if err != nil || *again != *rw {
				t.Errorf("parseReweight(%q) = %+v; reprinted %q gives %+v, %v", s, rw, spec, again, err)
			}
		}
		_, _, _ = parseSched(s)
		_, _ = parseInts(s)
	})
}
